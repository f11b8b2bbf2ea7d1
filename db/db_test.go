package db_test

import (
	"context"
	"errors"
	"testing"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

func TestMigrateAndErrors(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if err := d.CheckSchema(ctx); err != nil {
			t.Fatal(err)
		}
		// Migrate again is a no-op.
		if err := d.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := d.Q().Get(ctx, &n, `SELECT count(*) FROM currencies`); err != nil || n != 3 {
			t.Fatalf("currencies: %d, %v", n, err)
		}
		var acc int64
		err := d.InTx(ctx, func(tx *db.Tx) error {
			var err error
			acc, err = tx.Insert(ctx, `INSERT INTO accounts (balance) VALUES (?)`, 0)
			return err
		})
		if err != nil || acc != 100000001 {
			t.Fatalf("first account number = %d, %v", acc, err)
		}
		_, err = d.Q().Exec(ctx, `INSERT INTO currencies (code, displayname, eur_course) VALUES ('EUR', 'x', 1)`)
		if !errors.Is(err, db.ErrConflict) {
			t.Fatalf("duplicate: %v", err)
		}
		_, err = d.Q().Exec(ctx, `INSERT INTO extensions (extension, user_id, updated_at) VALUES ('x', 999, 0)`)
		if !errors.Is(err, db.ErrForeignKey) {
			t.Fatalf("foreign key: %v", err)
		}
	})
}

func TestCheckSchemaEmpty(t *testing.T) {
	d, err := db.Open(context.Background(), "sqlite:"+t.TempDir()+"/x.db")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.CheckSchema(context.Background()); err == nil {
		t.Fatal("an empty database passed the schema check")
	}
}

// TestCheckSchemaMissingMigration: a database that lacks one of the binary's migrations
// (say one that arrived beside a newer one) is refused until migrate applies it.
func TestCheckSchemaMissingMigration(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		if _, err := d.Q().Exec(ctx, `DELETE FROM schema_migrations WHERE version = 2`); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Q().Exec(ctx, `DROP TABLE directory_version CASCADE`); err != nil && d.Dialect == db.Postgres {
			t.Fatal(err)
		}
		if d.Dialect == db.SQLite {
			for _, tr := range []string{"users", "extensions", "sip_servers", "currencies"} {
				for _, op := range []string{"ins", "upd", "del"} {
					d.Q().Exec(ctx, `DROP TRIGGER `+tr+`_`+op+`_dir`)
				}
			}
			d.Q().Exec(ctx, `DROP TABLE directory_version`)
		} else {
			d.Q().Exec(ctx, `DROP FUNCTION bump_directory_version() CASCADE`)
		}
		if err := d.CheckSchema(ctx); err == nil {
			t.Fatal("a database without migration 2 passed the check")
		}
		if err := d.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.CheckSchema(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// A statement prepared in a transaction is rebound for PostgreSQL, translates driver
// errors and writes only what its transaction commits.
func TestTxPrepare(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		insert := `INSERT INTO currencies (code, displayname, eur_course) VALUES (?, ?, ?)`
		err := d.InTx(ctx, func(tx *db.Tx) error {
			st, err := tx.Prepare(ctx, insert)
			if err != nil {
				return err
			}
			defer st.Close()
			for _, code := range []string{"AAA", "BBB"} {
				if _, err := st.Exec(ctx, code, code, 1); err != nil {
					return err
				}
			}
			if _, err := st.Exec(ctx, "EUR", "x", 1); !errors.Is(err, db.ErrConflict) {
				t.Errorf("duplicate through a prepared statement: %v", err)
			}
			return errors.New("roll back")
		})
		if err == nil || err.Error() != "roll back" {
			t.Fatal(err)
		}
		var n int
		if err := d.Q().Get(ctx, &n, `SELECT count(*) FROM currencies WHERE code IN ('AAA', 'BBB')`); err != nil || n != 0 {
			t.Fatalf("rolled-back rows: %d, %v", n, err)
		}
		err = d.InTx(ctx, func(tx *db.Tx) error {
			st, err := tx.Prepare(ctx, insert)
			if err != nil {
				return err
			}
			defer st.Close()
			_, err = st.Exec(ctx, "AAA", "a", 2)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Q().Get(ctx, &n, `SELECT count(*) FROM currencies WHERE code = 'AAA'`); err != nil || n != 1 {
			t.Fatalf("committed row: %d, %v", n, err)
		}
	})
}
