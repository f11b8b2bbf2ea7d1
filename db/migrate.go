package db

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	schema "github.com/narayana/narayanad/sql"
)

type migration struct {
	version int
	name    string
	body    string
}

func (d *DB) migrations() ([]migration, error) {
	dir := string(d.Dialect)
	entries, err := fs.ReadDir(schema.Files, dir)
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			return nil, fmt.Errorf("db: migration %s/%s is not named NNN_name.sql", dir, e.Name())
		}
		body, err := fs.ReadFile(schema.Files, dir+"/"+e.Name())
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{v, e.Name(), string(body)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	return ms, nil
}

// LatestVersion is the schema version this binary carries.
func (d *DB) LatestVersion() int {
	ms, err := d.migrations()
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// SchemaVersion is the version recorded in the database, 0 when it holds no schema.
func (d *DB) SchemaVersion(ctx context.Context) (int, error) {
	var exists int
	q := `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_migrations'`
	if d.Dialect == Postgres {
		q = `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_migrations'`
	}
	if err := d.GetContext(ctx, &exists, q); err != nil {
		return 0, err
	}
	if exists == 0 {
		return 0, nil
	}
	var v int
	err := d.GetContext(ctx, &v, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`)
	return v, err
}

// applied lists the versions recorded in schema_migrations.
func (d *DB) applied(ctx context.Context) (map[int]bool, error) {
	var vs []int
	if err := d.SelectContext(ctx, &vs, `SELECT version FROM schema_migrations`); err != nil {
		return nil, err
	}
	out := map[int]bool{}
	for _, v := range vs {
		out[v] = true
	}
	return out, nil
}

// Migrate applies every migration the database has not recorded, in order, each in its
// own transaction. Recording each version (not just the highest) means a migration that
// arrived beside a newer one is still applied.
func (d *DB) Migrate(ctx context.Context) error {
	if _, err := d.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("db: create schema_migrations: %w", err)
	}
	cur, err := d.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if cur > d.LatestVersion() {
		return fmt.Errorf("db: the database schema is version %d, newer than this binary's %d", cur, d.LatestVersion())
	}
	ms, err := d.migrations()
	if err != nil {
		return err
	}
	done, err := d.applied(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if done[m.version] {
			continue
		}
		err := d.InTx(ctx, func(tx *Tx) error {
			if _, err := tx.tx.ExecContext(ctx, m.body); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, time.Now().Unix())
			return err
		})
		if err != nil {
			return fmt.Errorf("db: migration %s: %w", m.name, err)
		}
	}
	return nil
}

// migrateIn creates the whole schema inside tx, on a database that holds none: what
// Load does, so that a failed load leaves no half-made schema behind.
func (d *DB) migrateIn(ctx context.Context, tx *Tx) error {
	if _, err := tx.tx.ExecContext(ctx, `CREATE TABLE schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("db: create schema_migrations: %w", err)
	}
	ms, err := d.migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		if _, err := tx.tx.ExecContext(ctx, m.body); err != nil {
			return fmt.Errorf("db: migration %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
			m.version, m.name, time.Now().Unix()); err != nil {
			return err
		}
	}
	return nil
}

// CheckSchema refuses a database whose schema is missing, lacks a migration of this
// binary, or is newer than it.
func (d *DB) CheckSchema(ctx context.Context) error {
	v, err := d.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	want := d.LatestVersion()
	switch {
	case v == 0:
		return fmt.Errorf("the database holds no narayanad schema: run `narayanad init` first")
	case v > want:
		return fmt.Errorf("the database schema is version %d, newer than this binary's %d: upgrade narayanad", v, want)
	}
	ms, err := d.migrations()
	if err != nil {
		return err
	}
	done, err := d.applied(ctx)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if !done[m.version] {
			return fmt.Errorf("the database lacks migration %s of this binary: run `narayanad migrate`", m.name)
		}
	}
	return nil
}
