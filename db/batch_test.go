package db_test

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// TestInTxBatch: concurrent batched transactions each commit or roll back on their own:
// a failing or panicking job leaves no trace and the others are all written.
func TestInTxBatch(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		var acc int64
		if err := d.InTx(ctx, func(tx *db.Tx) error {
			var err error
			acc, err = tx.Insert(ctx, `INSERT INTO accounts (balance) VALUES (0)`)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		errOdd := errors.New("odd")
		var wg sync.WaitGroup
		errs := make([]error, 200)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = d.InTxBatch(ctx, func(tx *db.Tx) error {
					if _, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + 1 WHERE id = ?`, acc); err != nil {
						return err
					}
					switch i % 10 {
					case 3:
						return errOdd
					case 7:
						if d.Dialect == db.SQLite { // a batch must survive one job's panic
							panic("job panics")
						}
						return errOdd
					}
					return nil
				})
			}()
		}
		wg.Wait()
		ok := 0
		for i, err := range errs {
			switch {
			case i%10 == 3 && !errors.Is(err, errOdd), i%10 == 7 && err == nil:
				t.Errorf("job %d: %v", i, err)
			case err == nil:
				ok++
			}
		}
		var balance int
		if err := d.Q().Get(ctx, &balance, `SELECT balance FROM accounts WHERE id = ?`, acc); err != nil {
			t.Fatal(err)
		}
		if balance != ok || ok != 160 {
			t.Fatalf("balance %d after %d committed jobs", balance, ok)
		}
		// A cancelled context before the job starts writes nothing.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := d.InTxBatch(cctx, func(tx *db.Tx) error {
			_, err := tx.Exec(ctx, `UPDATE accounts SET balance = 0`)
			return err
		}); err == nil {
			t.Fatal("a cancelled job ran")
		}
	})
}

// TestInTxBatchSameKeyInTurn: jobs of one key sent one after the other, each as soon as
// the previous answered (a callPrepare, then its callFinish), while other keys' jobs run:
// each waits at most for the group that holds its key, never for ever. (A writer that
// waited for jobs while holding the batcher's lock once kept the previous group from
// letting its key go.)
func TestInTxBatchSameKeyInTurn(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var accs []int64
		for range 5 {
			if err := d.InTx(ctx, func(tx *db.Tx) error {
				id, err := tx.Insert(ctx, `INSERT INTO accounts (balance) VALUES (0)`)
				accs = append(accs, id)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		add := func(acc int64) error {
			return d.InTxBatch(ctx, func(tx *db.Tx) error {
				return tx.ExecDeferred(ctx, `UPDATE accounts SET balance = balance + 1 WHERE id = ?`, acc)
			}, acc)
		}
		var wg sync.WaitGroup
		for _, acc := range accs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 300 {
					if err := add(acc); err != nil {
						t.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		for _, acc := range accs {
			var balance int
			if err := d.Q().Get(ctx, &balance, `SELECT balance FROM accounts WHERE id = ?`, acc); err != nil {
				t.Fatal(err)
			}
			if balance != 300 {
				t.Errorf("account %d: balance %d after 300 jobs", acc, balance)
			}
		}
	})
}

// TestInsertDeferred: the id InsertDeferred answers is the row's, in a group and alone;
// and a group whose id taken ahead is already used (a new primary's sequence handing out
// again what the old one had) fails, and its job, run alone, takes a fresh id.
func TestInsertDeferred(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		insert := func(batch bool, balance int) (int64, error) {
			var id int64
			fn := func(tx *db.Tx) error {
				var err error
				id, err = tx.InsertDeferred(ctx, "accounts", `INSERT INTO accounts (id, balance) VALUES (?, ?)`, balance)
				return err
			}
			if batch {
				return id, d.InTxBatch(ctx, fn)
			}
			return id, d.InTx(ctx, fn)
		}
		balanceOf := func(id int64) int {
			var b int
			if err := d.Q().Get(ctx, &b, `SELECT balance FROM accounts WHERE id = ?`, id); err != nil {
				t.Fatalf("account %d: %v", id, err)
			}
			return b
		}
		for i, batch := range []bool{false, true, true, false} {
			id, err := insert(batch, 10+i)
			if err != nil {
				t.Fatal(err)
			}
			if got := balanceOf(id); got != 10+i {
				t.Fatalf("insert %d (group %v): account %d has balance %d", i, batch, id, got)
			}
		}
		if d.Dialect != db.Postgres {
			return
		}
		first, err := insert(true, 1)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.Q().Exec(ctx, `INSERT INTO accounts (id, balance) VALUES (?, 99)`, first+1); err != nil {
			t.Fatal(err)
		}
		id, err := insert(true, 2)
		if err != nil {
			t.Fatalf("the job of a group that met a used id: %v", err)
		}
		if id == first+1 || balanceOf(id) != 2 || balanceOf(first+1) != 99 {
			t.Fatalf("id %d (the used one was %d)", id, first+1)
		}
	})
}

// TestGetShared: on PostgreSQL the reads (and the writes) of a group's jobs that name
// the same statement go as one, and each job gets its own row, its NULLs kept, or
// sql.ErrNoRows when there is none, as Get would answer it; each job's write is done.
func TestGetShared(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		var accs []int64
		for i := range 10 {
			if err := d.InTx(ctx, func(tx *db.Tx) error {
				id, err := tx.Insert(ctx, `INSERT INTO accounts (balance) VALUES (?)`, i*100)
				accs = append(accs, id)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		const one = `SELECT balance + ? AS balance, ? || '.' AS tag FROM accounts WHERE id = ?`
		const many = `SELECT j.n, a.balance + j.plus AS balance, j.tag || '.' AS tag
			FROM unnest(?::bigint[], ?::text[], ?::bigint[]) WITH ORDINALITY AS j(plus, tag, id, n)
			JOIN accounts a ON a.id = j.id`
		var wg sync.WaitGroup
		for i := range 300 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				acc, missing := accs[i%10], i%7 == 6
				tag := sql.NullString{String: strconv.Itoa(i), Valid: i%3 != 0}
				if missing {
					acc = -1 - int64(i)
				}
				var got struct {
					Balance int64          `db:"balance"`
					Tag     sql.NullString `db:"tag"`
				}
				err := d.InTxBatch(ctx, func(tx *db.Tx) error {
					err := tx.GetShared(ctx, &got, one, many, i, tag, acc)
					if missing && db.IsNotFound(err) {
						return nil
					} else if err != nil {
						return err
					}
					// And a write, which a round's other jobs may send with it.
					return tx.ExecDeferredShared(ctx, `UPDATE accounts SET overdraft = overdraft + ? WHERE id = ?`,
						`UPDATE accounts a SET overdraft = a.overdraft + j.plus FROM unnest(?::bigint[], ?::bigint[]) AS j(plus, id)
						WHERE a.id = j.id`, i, acc)
				}, acc)
				wantTag := sql.NullString{} // NULL || '.' is NULL
				if tag.Valid {
					wantTag = sql.NullString{String: strconv.Itoa(i) + ".", Valid: true}
				}
				switch {
				case err != nil:
					t.Errorf("job %d: %v", i, err)
				case missing && got.Balance != 0:
					t.Errorf("job %d: a row for a missing account: %+v", i, got)
				case !missing && (got.Balance != int64(i%10*100+i) || got.Tag != wantTag):
					t.Errorf("job %d: %+v, want balance %d, tag %+v", i, got, i%10*100+i, wantTag)
				}
			}()
		}
		wg.Wait()
		if d.Dialect == db.Postgres && d.SharedStatements() == 0 {
			t.Error("no statement was shared among 300 concurrent jobs")
		}
		for k, acc := range accs {
			want := 0
			for i := k; i < 300; i += 10 {
				if i%7 != 6 {
					want += i
				}
			}
			var got int
			if err := d.Q().Get(ctx, &got, `SELECT overdraft FROM accounts WHERE id = ?`, acc); err != nil || got != want {
				t.Errorf("account %d: the jobs' writes added %d, want %d (%v)", acc, got, want, err)
			}
		}
	})
}

// TestWriterPricesOutSeqScans: a PostgreSQL group's connection plans with sequential
// scans priced out (connectWriter), so that statistics taken while reservations was
// empty do not make the call path scan it whole once it fills.
func TestWriterPricesOutSeqScans(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		if d.Dialect != db.Postgres {
			t.Skip("a PostgreSQL setting")
		}
		ctx := context.Background()
		var setting string
		if err := d.InTxBatch(ctx, func(tx *db.Tx) error {
			return tx.Get(ctx, &setting, `SELECT current_setting('enable_seqscan')`)
		}); err != nil || setting != "off" {
			t.Fatalf("enable_seqscan in a group: %q, %v", setting, err)
		}
	})
}

// TestWriterEpoch: the group-commit writer's epoch stands while only its own jobs
// commit, and moves after another connection's commit or a failed job; outside the
// writer (InTx, PostgreSQL) it is 0.
func TestWriterEpoch(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		epoch := func(fail bool) uint64 {
			t.Helper()
			var e uint64
			err := d.InTxBatch(ctx, func(tx *db.Tx) error {
				e = tx.Epoch()
				if _, err := tx.Exec(ctx, `INSERT INTO accounts (balance) VALUES (0)`); err != nil {
					return err
				}
				if fail {
					return errors.New("fails")
				}
				return nil
			})
			if (err != nil) != fail {
				t.Fatalf("batch (fail %v): %v", fail, err)
			}
			return e
		}
		d.InTx(ctx, func(tx *db.Tx) error {
			if tx.Epoch() != 0 {
				t.Errorf("InTx epoch %d", tx.Epoch())
			}
			return nil
		})
		first := epoch(false)
		if d.Dialect == db.Postgres {
			if first != 0 {
				t.Fatalf("PostgreSQL epoch %d", first)
			}
			return
		}
		if first == 0 || epoch(false) != first {
			t.Fatalf("epoch moved with only the writer's own commits (first %d)", first)
		}
		if _, err := d.Q().Exec(ctx, `UPDATE accounts SET balance = 1`); err != nil {
			t.Fatal(err)
		}
		second := epoch(false)
		if second == first {
			t.Fatal("epoch stood after another connection's commit")
		}
		epoch(true)
		if third := epoch(false); third == second {
			t.Fatal("epoch stood after a failed job")
		}
	})
}

// TestCheckpointer: the group-commit writer leaves checkpoints to the checkpointer, which
// copies the WAL into the database and, about once a second, has our writers wait so the
// WAL starts over even under writes that never pause (SQLite; PostgreSQL has no WAL file
// of ours).
func TestCheckpointer(t *testing.T) {
	ctx := context.Background()
	d, err := db.Open(ctx, dbtest.DSN(t, db.SQLite))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Q().Exec(ctx, `CREATE TABLE rows (id INTEGER PRIMARY KEY, b BLOB)`); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 100)
	stop := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := d.InTxBatch(ctx, func(tx *db.Tx) error {
					_, err := tx.Exec(ctx, `INSERT INTO rows (b) VALUES (?)`, blob)
					return err
				}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	commits, _ := d.GroupCommits()
	// Every commit appended at least one page to the WAL; one that started over holds
	// only those since.
	var busy, frames, copied int64
	if err := d.QueryRowxContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied); err != nil {
		t.Fatal(err)
	}
	if frames >= int64(commits) {
		t.Fatalf("the WAL holds %d pages after %d commits: it never started over", frames, commits)
	}
}
