// Package db opens the billing database (SQLite or PostgreSQL, chosen by the DSN),
// applies the embedded migrations and translates driver errors by code.
package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	"github.com/jmoiron/sqlx"
	"github.com/mattn/go-sqlite3"
)

// Dialect names the SQL dialect behind a DB.
type Dialect string

const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// DefaultDSN is the embedded default database.
const DefaultDSN = "sqlite:narayana.db"

// DB is the billing database. SQL is written once with `?` placeholders; the helpers
// rebind it for PostgreSQL.
type DB struct {
	*sqlx.DB
	Dialect Dialect

	writeSlot chan struct{} // SQLite: our write transactions queue here, one at a time
	batch     batcher
	pg        pgBatcher // PostgreSQL's group commit
	dsn       string
	writes    atomic.Uint64 // see Writes
	ids       idBlocks      // PostgreSQL: ids handed out by InsertDeferred
}

// Writes counts the statements and transactions that may have written through d, but
// for the group-commit writer's (InTxBatch): the call path's own writes. A cache of rows
// that the call path never writes (who is who) can skip re-reading its version while
// this count stands still and only other processes could have changed the database.
func (d *DB) Writes() uint64 { return d.writes.Load() }

// wrote counts a write once it is done (committed or failed: either way it is over).
func (d *DB) wrote() { d.writes.Add(1) }

// reads reports a statement that cannot write: a SELECT (or PRAGMA).
func reads(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	return len(q) >= 6 && (strings.EqualFold(q[:6], "SELECT") || strings.EqualFold(q[:6], "PRAGMA"))
}

// Errors the store layer tells apart, translated from driver codes (never message text).
var (
	ErrConflict   = errors.New("unique constraint violated")
	ErrForeignKey = errors.New("foreign key constraint violated")
)

// Open connects to dsn: "sqlite:PATH" or "postgres://…" (also "postgresql://").
func Open(ctx context.Context, dsn string) (*DB, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		if path == "" {
			return nil, fmt.Errorf("db: empty sqlite path in %q", dsn)
		}
		if dir := sqliteDir(dsn); dir != "" {
			if _, err := os.Stat(dir); err != nil {
				return nil, fmt.Errorf("db: the folder of %s: %w", dsn, err)
			}
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		// WAL lets readers run beside the one writer; BEGIN IMMEDIATE takes the write lock
		// at the start of a transaction so two writers queue on the busy timeout instead of
		// failing with SQLITE_BUSY when a read lock is upgraded. The statement cache saves
		// re-preparing the call path's statements (a third of its SQLite time).
		x, err := sqlx.Open("sqlite3", "file:"+path+sep+
			"_journal_mode=WAL&_busy_timeout=10000&_foreign_keys=on&_synchronous=NORMAL&_txlock=immediate&_stmt_cache_size=64")
		if err != nil {
			return nil, err
		}
		x.SetMaxOpenConns(8)
		x.SetMaxIdleConns(8)
		x.SetConnMaxLifetime(0)
		d := &DB{DB: x, Dialect: SQLite, writeSlot: make(chan struct{}, 1)}
		return d, d.ping(ctx)
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		x, err := sqlx.Open("pgx", dsn)
		if err != nil {
			return nil, err
		}
		x.SetMaxOpenConns(32)
		x.SetMaxIdleConns(32)
		x.SetConnMaxIdleTime(5 * time.Minute)
		d := &DB{DB: x, Dialect: Postgres, dsn: dsn}
		return d, d.ping(ctx)
	}
	return nil, fmt.Errorf("db: unsupported DSN %q (want sqlite:PATH or postgres://…)", Redact(dsn))
}

// sqliteDir is the folder of a sqlite: DSN's file, "" for other DSNs.
func sqliteDir(dsn string) string {
	path, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok {
		return ""
	}
	path, _, _ = strings.Cut(path, "?")
	if path == "" || path == ":memory:" {
		return ""
	}
	return filepath.Dir(path)
}

// CreateDir creates the folder of a sqlite: DSN's file (mode 0750) if it is missing, so
// that `init` can start from nothing. Open itself does not: a daemon pointed at a
// mistyped path should fail, not serve an empty database from a new folder.
func CreateDir(dsn string) error {
	if dir := sqliteDir(dsn); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("db: %w", err)
		}
	}
	return nil
}

func (d *DB) ping(ctx context.Context) error {
	if err := d.PingContext(ctx); err != nil {
		d.Close()
		return fmt.Errorf("db: %w", err)
	}
	return nil
}

// Queryer is what both *DB and *Tx offer: rebinding Get, Select and Exec.
type Queryer interface {
	Get(ctx context.Context, dest any, query string, args ...any) error
	Select(ctx context.Context, dest any, query string, args ...any) error
	Exec(ctx context.Context, query string, args ...any) (sql.Result, error)
	Insert(ctx context.Context, query string, args ...any) (int64, error)
	Dialect() Dialect
}

// Q returns d as a Queryer.
func (d *DB) Q() Queryer { return dbq{d} }

type dbq struct{ d *DB }

func (q dbq) Get(ctx context.Context, dest any, query string, args ...any) error {
	if !reads(query) {
		defer q.d.wrote()
	}
	return Translate(q.d.GetContext(ctx, dest, q.d.Rebind(query), args...))
}
func (q dbq) Select(ctx context.Context, dest any, query string, args ...any) error {
	if !reads(query) {
		defer q.d.wrote()
	}
	return Translate(q.d.SelectContext(ctx, dest, q.d.Rebind(query), args...))
}
func (q dbq) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	defer q.d.wrote()
	r, err := q.d.ExecContext(ctx, q.d.Rebind(query), args...)
	return r, Translate(err)
}
func (q dbq) Insert(ctx context.Context, query string, args ...any) (int64, error) {
	if q.d.Dialect == SQLite {
		return lastInsertID(q.Exec(ctx, query, args...))
	}
	var id int64
	err := q.Get(ctx, &id, query+" RETURNING id", args...)
	return id, err
}
func (q dbq) Dialect() Dialect { return q.d.Dialect }

// Tx is a transaction; private store helpers take it so a debit, its ledger row and its
// log record commit together.
type Tx struct {
	d       *DB
	tx      *sqlx.Tx
	dialect Dialect
	epoch   uint64
	pipe    *pgJob // a job of PostgreSQL's group commit: statements go to its group's rounds
}

// Epoch is nonzero only for a job of the group-commit writer (SQLite). While it stays
// the same, nothing but the writer's own jobs has changed the database since it last
// moved, so rows a job read or wrote may be kept in memory for the next jobs of the same
// epoch (which see them exactly as the database would). Zero: keep nothing.
func (t *Tx) Epoch() uint64 { return t.epoch }

func (t *Tx) Get(ctx context.Context, dest any, query string, args ...any) error {
	if t.pipe != nil {
		_, err := t.pipe.query(query, args, dest, true)
		return err
	}
	return Translate(t.tx.GetContext(ctx, dest, t.tx.Rebind(query), args...))
}

// GetShared is Get of a read that the jobs of a PostgreSQL group send as one statement
// when several send it in the same round: many is query for several jobs, each of its ?
// the array of the jobs' values for the same ? of query (bigint[] or text[], in the jobs'
// order), and its rows lead with the job's ordinal (from 1), then query's columns. dest
// is a pointer to a struct. Alone, and on SQLite, it is Get of query.
func (t *Tx) GetShared(ctx context.Context, dest any, query, many string, args ...any) error {
	if t.pipe != nil {
		return t.pipe.shared(query, many, args, dest)
	}
	return t.Get(ctx, dest, query, args...)
}

func (t *Tx) Select(ctx context.Context, dest any, query string, args ...any) error {
	if t.pipe != nil {
		_, err := t.pipe.query(query, args, dest, false)
		return err
	}
	return Translate(t.tx.SelectContext(ctx, dest, t.tx.Rebind(query), args...))
}
func (t *Tx) Exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if t.pipe != nil {
		tag, err := t.pipe.query(query, args, nil, false)
		return pgResult{tag}, err
	}
	r, err := t.tx.ExecContext(ctx, t.tx.Rebind(query), args...)
	return r, Translate(err)
}

// ExecDeferred is Exec for a write whose result fn does not read. In a PostgreSQL group
// (InTxBatch) it goes out with the group's next round, or with its COMMIT, instead of
// taking a round trip of its own, and returns nil at once: should it fail, the group
// fails and the job runs again alone, where ExecDeferred is Exec and its error is
// returned. So fn must not act on the write having succeeded, beyond the transaction.
func (t *Tx) ExecDeferred(ctx context.Context, query string, args ...any) error {
	return t.ExecDeferredShared(ctx, query, "", args...)
}

// ExecDeferredShared is ExecDeferred of a write that the jobs of a PostgreSQL group send
// as one statement when several send it first in the same round: many is query for
// several jobs, as GetShared's, without the ordinal (an INSERT … SELECT FROM unnest(…),
// say). Alone, and on SQLite, it is Exec of query.
func (t *Tx) ExecDeferredShared(ctx context.Context, query, many string, args ...any) error {
	if t.pipe != nil {
		t.pipe.deferred(query, many, args)
		return nil
	}
	_, err := t.Exec(ctx, query, args...)
	return err
}

// Grouped reports whether t is a job of a PostgreSQL group (InTxBatch), where
// ExecDeferred saves a round trip.
func (t *Tx) Grouped() bool { return t.pipe != nil }

// Stmt is a statement prepared inside a transaction, for a bulk write that runs the
// same statement many times (an import's full batches): preparing once saves parsing
// and planning it again for every batch. It ends with its transaction.
type Stmt struct{ st *sqlx.Stmt }

// Prepare prepares query (written with ?) in the transaction.
func (t *Tx) Prepare(ctx context.Context, query string) (*Stmt, error) {
	if t.pipe != nil {
		return nil, errors.New("db: no prepared statements in a group commit")
	}
	st, err := t.tx.PreparexContext(ctx, t.tx.Rebind(query))
	if err != nil {
		return nil, Translate(err)
	}
	return &Stmt{st}, nil
}

func (s *Stmt) Exec(ctx context.Context, args ...any) (sql.Result, error) {
	r, err := s.st.ExecContext(ctx, args...)
	return r, Translate(err)
}

func (s *Stmt) Close() error { return s.st.Close() }

// Insert runs an INSERT and returns the new row's id: SQLite's last insert rowid (its
// RETURNING makes a statement about twice as costly), PostgreSQL's RETURNING.
func (t *Tx) Insert(ctx context.Context, query string, args ...any) (int64, error) {
	if t.dialect == SQLite {
		return lastInsertID(t.Exec(ctx, query, args...))
	}
	var id int64
	err := t.Get(ctx, &id, query+" RETURNING id", args...)
	return id, err
}

func lastInsertID(r sql.Result, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	return r.LastInsertId()
}
func (t *Tx) Dialect() Dialect { return t.dialect }

// ForUpdate is the row-lock suffix for a SELECT in a transaction: PostgreSQL locks the
// rows; SQLite needs none because BEGIN IMMEDIATE already holds the only write lock.
func (t *Tx) ForUpdate() string {
	if t.dialect == Postgres {
		return " FOR UPDATE"
	}
	return ""
}

// Close stops the group commit and closes the database.
func (d *DB) Close() error {
	d.closeBatches()
	d.closePgBatches()
	return d.DB.Close()
}

// InTx runs fn in a transaction, committing when it returns nil.
func (d *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	defer d.wrote()
	return d.inTx(ctx, fn)
}

// inTx is InTx without counting it in Writes.
func (d *DB) inTx(ctx context.Context, fn func(*Tx) error) error {
	if d.writeSlot != nil {
		select {
		case d.writeSlot <- struct{}{}:
			defer func() { <-d.writeSlot }()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	x, err := d.BeginTxx(ctx, nil)
	if err != nil {
		return Translate(err)
	}
	if err := fn(&Tx{d: d, tx: x, dialect: d.Dialect}); err != nil {
		x.Rollback()
		return err
	}
	return Translate(x.Commit())
}

// Translate maps driver errors to the package's sentinel errors by their codes.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.ExtendedCode {
		case sqlite3.ErrConstraintUnique, sqlite3.ErrConstraintPrimaryKey:
			return fmt.Errorf("%w: %v", ErrConflict, err)
		case sqlite3.ErrConstraintForeignKey:
			return fmt.Errorf("%w: %v", ErrForeignKey, err)
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505":
			return fmt.Errorf("%w: %v", ErrConflict, err)
		case "23503":
			return fmt.Errorf("%w: %v", ErrForeignKey, err)
		}
	}
	return err
}

// IsNotFound reports a query that found no row.
func IsNotFound(err error) bool { return errors.Is(err, sql.ErrNoRows) }
