// Package dbtest opens fresh, migrated databases for tests: a new SQLite file, or a new
// PostgreSQL schema that is dropped afterwards. Every storage test runs on both through
// Each.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/narayana/narayanad/db"
)

// PostgresEnv names the variable holding the PostgreSQL DSN the tests use.
const PostgresEnv = "NARAYANA_TEST_POSTGRES"

// Each runs fn once on SQLite and once on PostgreSQL, as subtests named after the dialect.
func Each(t *testing.T, fn func(t *testing.T, d *db.DB)) {
	t.Helper()
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			fn(t, Open(t, dialect))
		})
	}
}

// Open returns a fresh migrated database of the dialect, closed and removed when t ends.
func Open(t testing.TB, dialect db.Dialect) *db.DB {
	t.Helper()
	d := OpenEmpty(t, dialect)
	if err := d.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
}

// OpenEmpty returns a fresh database of the dialect without any schema.
func OpenEmpty(t testing.TB, dialect db.Dialect) *db.DB {
	t.Helper()
	d, err := db.Open(context.Background(), DSN(t, dialect))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// EachEmpty is Each with databases that hold no schema yet.
func EachEmpty(t *testing.T, fn func(t *testing.T, d *db.DB)) {
	t.Helper()
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			fn(t, OpenEmpty(t, dialect))
		})
	}
}

// DSN returns a DSN for a fresh, empty database of the dialect (not migrated).
func DSN(t testing.TB, dialect db.Dialect) string {
	t.Helper()
	if dialect == db.SQLite {
		return "sqlite:" + t.TempDir() + "/test.db"
	}
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Fatalf("%s is not set: the PostgreSQL half of the storage tests cannot run (make test sets it; see README)", PostgresEnv)
	}
	buf := make([]byte, 6)
	rand.Read(buf)
	schema := "t_" + hex.EncodeToString(buf)
	admin, err := db.Open(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		admin.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
		admin.Close()
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
