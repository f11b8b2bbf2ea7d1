package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// ErrPostgresBackup is the answer of Backup and Restore to a PostgreSQL DSN: its own
// tools do it better (consistent dumps of a live cluster, roles, compression, parallel
// restore), and their version must match the server's, which only the operator knows.
var ErrPostgresBackup = errors.New("backup and restore are for SQLite; for PostgreSQL use pg_dump " +
	"(pg_dump --format=custom --file FILE DSN) and pg_restore (pg_restore --clean --if-exists --dbname DSN FILE): see docs/OPERATIONS.md")

// BackupStats says what a backup copied.
type BackupStats struct {
	Bytes int64
	Took  time.Duration
}

// Backup copies the SQLite database of dsn into file with SQLite's online backup API,
// while daemons keep serving it. The copy is one step (sqlite3_backup_step(-1)) inside one
// read transaction: under WAL the writers go on meanwhile, and the copy is the database as
// of the step's start. In several smaller steps, any write between two steps would make
// SQLite start the copy over, so a busy switch's backup might never end. The copy is
// written beside file and renamed over it once checked (PRAGMA quick_check), so file is
// either the previous backup or a complete new one.
func Backup(ctx context.Context, dsn, file string) (BackupStats, error) {
	start := time.Now()
	src, err := sqlitePath(dsn)
	if err != nil {
		return BackupStats{}, err
	}
	srcDB, err := Open(ctx, dsn)
	if err != nil {
		return BackupStats{}, err
	}
	defer srcDB.Close()
	if v, err := srcDB.SchemaVersion(ctx); err != nil {
		return BackupStats{}, err
	} else if v == 0 {
		return BackupStats{}, fmt.Errorf("%s holds no narayanad schema: nothing to back up", Redact(dsn))
	}
	if abs, _ := filepath.Abs(file); abs == mustAbs(src) {
		return BackupStats{}, fmt.Errorf("the backup file is the database itself")
	}
	tmp := file + ".partial"
	os.Remove(tmp)
	defer os.Remove(tmp) // gone after the rename; left only by a failure
	dest, err := sql.Open("sqlite3", "file:"+tmp)
	if err != nil {
		return BackupStats{}, err
	}
	err = copySQLite(ctx, srcDB.DB.DB, dest)
	if err == nil {
		var check string
		if err = dest.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&check); err == nil && check != "ok" {
			err = fmt.Errorf("quick_check of the copy: %s", check)
		}
	}
	dest.Close()
	if err != nil {
		return BackupStats{}, fmt.Errorf("backup: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return BackupStats{}, err
	}
	if err := os.Rename(tmp, file); err != nil {
		return BackupStats{}, err
	}
	syncFile(filepath.Dir(file))
	fi, err := os.Stat(file)
	if err != nil {
		return BackupStats{}, err
	}
	return BackupStats{Bytes: fi.Size(), Took: time.Since(start)}, nil
}

// Restore replaces the SQLite database of dsn with the backup in file, through the same
// backup API (so the database's own WAL and locks stay coherent). It refuses a target
// that holds a narayanad schema unless force is set; the daemons using it must be stopped
// first (they keep caches of what the database held).
func Restore(ctx context.Context, file, dsn string, force bool) error {
	if _, err := sqlitePath(dsn); err != nil {
		return err
	}
	if _, err := os.Stat(file); err != nil {
		return err
	}
	// The backup must be a whole narayanad database before anything is touched.
	backup, err := Open(ctx, "sqlite:"+file)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	defer backup.Close()
	var check string
	if err := backup.GetContext(ctx, &check, `PRAGMA quick_check`); err != nil || check != "ok" {
		return fmt.Errorf("%s is not a sound SQLite database (quick_check: %q %v)", file, check, err)
	}
	if v, err := backup.SchemaVersion(ctx); err != nil || v == 0 {
		return fmt.Errorf("%s holds no narayanad schema (%v)", file, err)
	}
	if err := CreateDir(dsn); err != nil {
		return err
	}
	target, err := Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer target.Close()
	if v, err := target.SchemaVersion(ctx); err != nil {
		return err
	} else if v != 0 && !force {
		return fmt.Errorf("%s is an initialised database (schema version %d): stop the daemons using it and restore --force to replace it", Redact(dsn), v)
	}
	return copySQLite(ctx, backup.DB.DB, target.DB.DB)
}

// copySQLite copies the main database of the pool src over that of the pool dest.
func copySQLite(ctx context.Context, src, dest *sql.DB) error {
	srcConn, err := src.Conn(ctx)
	if err != nil {
		return err
	}
	defer srcConn.Close()
	destConn, err := dest.Conn(ctx)
	if err != nil {
		return err
	}
	defer destConn.Close()
	return destConn.Raw(func(d any) error {
		return srcConn.Raw(func(s any) error {
			return backupStep(d.(*sqlite3.SQLiteConn), s.(*sqlite3.SQLiteConn))
		})
	})
}

func backupStep(dest, src *sqlite3.SQLiteConn) error {
	b, err := dest.Backup("main", src, "main")
	if err != nil {
		return err
	}
	for {
		done, err := b.Step(-1)
		if err != nil {
			var se sqlite3.Error
			// Another connection holds a lock on the destination: wait and go on.
			if errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			b.Finish()
			return err
		}
		if done {
			return b.Finish()
		}
	}
}

func sqlitePath(dsn string) (string, error) {
	path, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok {
		if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
			return "", ErrPostgresBackup
		}
		return "", fmt.Errorf("db: unsupported DSN %q (want sqlite:PATH)", Redact(dsn))
	}
	path, _, _ = strings.Cut(path, "?")
	if path == "" || path == ":memory:" {
		return "", fmt.Errorf("db: %q names no database file", dsn)
	}
	return path, nil
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
