// Package sql embeds the schema migrations: numbered .sql files, one folder per dialect,
// applied in order by db.Migrate. Each file runs in its own transaction.
package sql

import "embed"

// Files holds sqlite/NNN_name.sql and postgres/NNN_name.sql.
//
//go:embed sqlite/*.sql postgres/*.sql
var Files embed.FS
