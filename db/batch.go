package db

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
)

// SQLite has one writer. Two of our transactions that both BEGIN IMMEDIATE would meet in
// SQLite's busy handler, which sleeps (1, 2, 5, 10… ms) rather than queues: so our own
// write transactions queue on writeSlot instead, and the hot path's small transactions
// go further, through group commit: one goroutine runs whatever has queued, back to back
// (each in its own SAVEPOINT when one fails), and commits them all at once.
//
// The group-commit writer keeps one connection of its own, so its page cache stays warm,
// and counts epochs: the epoch moves whenever something other than the writer's own
// committed jobs may have changed the database (another connection's commit, seen in
// PRAGMA data_version, or a job or batch rolled back). Jobs may keep rows they read or
// wrote in memory for as long as the epoch stays (Tx.Epoch).

// maxBatch bounds how many jobs one group commit takes.
const maxBatch = 256

type batchJob struct {
	ctx  context.Context
	fn   func(*Tx) error
	done chan error
}

type batcher struct {
	once sync.Once
	jobs chan *batchJob
	stop chan struct{}
	wg   sync.WaitGroup

	commits, jobsRun atomic.Uint64 // see GroupCommits

	// Owned by the writer goroutine.
	conn        *sqlx.Conn // the writer's own connection; nil until the first batch or after an error
	dataVersion int64      // PRAGMA data_version after the writer's last commit
	epoch       uint64     // see Tx.Epoch; 0 is never used
}

// InTxBatch runs fn in a transaction like InTx. On SQLite, fn runs in a group commit
// with other callers' functions and they commit together; an error rolls back only that
// fn. fn must only use tx (a fn that waits for another transaction would wait for
// itself), and may run twice (a batch whose other job failed runs again), so it must
// have no effect outside tx but setting its own results and keeping rows under
// tx.Epoch() (a rolled-back attempt moves the epoch). On PostgreSQL the group runs its
// jobs' statements in lockstep, pipelined (pgbatch.go): keys name the rows (account ids)
// that fn reads and then writes, which no other job of its group may touch, and which
// the group locks first. Not counted in Writes. Once fn has started it runs to the end
// whatever happens to ctx, and InTxBatch waits for it: the caller always learns whether
// it committed.
func (d *DB) InTxBatch(ctx context.Context, fn func(*Tx) error, keys ...int64) error {
	if d.Dialect != SQLite {
		return d.pgBatch(ctx, fn, keys) // the call path's own writes: not counted in Writes
	}
	d.batch.once.Do(func() {
		d.batch.jobs = make(chan *batchJob, maxBatch)
		d.batch.stop = make(chan struct{})
		d.batch.wg.Add(2)
		go d.runBatches()
		go d.runCheckpoints()
	})
	j := &batchJob{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case d.batch.jobs <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-d.batch.stop:
		return fmt.Errorf("db: closed")
	}
	return <-j.done
}

// minBatch: a smaller group lets the goroutines ready to run go first, once, so their
// jobs join it. A commit costs about as much as several jobs (its own pages: the tails
// of the tables and indexes every job appends to), and a goroutine about to queue a job
// is usually waiting only for a processor.
const minBatch = 8

// collect adds the jobs queued now to batch, up to maxBatch.
func (d *DB) collect(batch []*batchJob) []*batchJob {
	for len(batch) < maxBatch {
		select {
		case j := <-d.batch.jobs:
			batch = append(batch, j)
		default:
			return batch
		}
	}
	return batch
}

func (d *DB) runBatches() {
	defer d.batch.wg.Done()
	for {
		var first *batchJob
		select {
		case first = <-d.batch.jobs:
		case <-d.batch.stop:
			return
		}
		batch := d.collect([]*batchJob{first})
		if len(batch) < minBatch {
			runtime.Gosched()
			batch = d.collect(batch)
		}
		d.commitBatch(batch)
	}
}

// commitBatch runs the jobs in one transaction and tells each its outcome. Jobs rarely
// fail, so the batch first runs them back to back; if one fails, that attempt is rolled
// back and the batch runs again with each job in its own SAVEPOINT, so a failure undoes
// only its job.
func (d *DB) commitBatch(batch []*batchJob) {
	d.writeSlot <- struct{}{}
	defer func() { <-d.writeSlot }()
	var live []*batchJob
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.done <- err // gone before it started: nothing of it is written
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	results, err := d.runBatch(live, false)
	if err == errJobFailed {
		results, err = d.runBatch(live, true)
	}
	for i, j := range live {
		if err != nil {
			j.done <- err
		} else {
			j.done <- results[i]
		}
	}
}

// errJobFailed stops an attempt without savepoints at the first failing job.
var errJobFailed = errors.New("db: a batched job failed")

// runBatch runs the jobs in one transaction and commits it. Without savepoints the
// first failing job rolls the whole attempt back (errJobFailed); with them, a failing
// job is rolled back alone and its error is its result.
func (d *DB) runBatch(jobs []*batchJob, savepoints bool) ([]error, error) {
	b := &d.batch
	x, err := d.beginWriter()
	if err != nil {
		return nil, err
	}
	ctx := context.Background() // a job's cancellation must not abort the others
	tx := &Tx{d: d, tx: x, dialect: d.Dialect, epoch: b.epoch}
	abort := func(err error) ([]error, error) {
		x.Rollback()
		b.epoch++ // what the jobs kept in memory was never committed
		return nil, err
	}
	results := make([]error, len(jobs))
	for i, j := range jobs {
		if savepoints {
			if _, err := x.ExecContext(ctx, `SAVEPOINT job`); err != nil {
				return abort(Translate(err))
			}
		}
		results[i] = runJob(j.fn, tx)
		if !savepoints {
			if results[i] != nil {
				return abort(errJobFailed)
			}
			continue
		}
		undo := ``
		if results[i] != nil {
			undo = `ROLLBACK TO job; `
			b.epoch++ // the failed job's writes are undone, whatever it kept in memory
			tx.epoch = b.epoch
		}
		if _, err := x.ExecContext(ctx, undo+`RELEASE job`); err != nil {
			return abort(Translate(err))
		}
	}
	b.commits.Add(1)
	b.jobsRun.Add(uint64(len(jobs)))
	if err := x.Commit(); err != nil {
		b.dropConn()
		return nil, Translate(err)
	}
	return results, nil
}

// beginWriter begins a transaction on the writer's own connection and moves the epoch
// when another connection has committed since the writer's last commit: data_version
// changes for exactly that (never for the connection's own commits).
func (d *DB) beginWriter() (*sqlx.Tx, error) {
	ctx := context.Background()
	b := &d.batch
	if b.conn == nil {
		c, err := d.Connx(ctx)
		if err != nil {
			return nil, Translate(err)
		}
		// Checkpoints are the checkpointer's (runCheckpoints), not the commit's.
		// The WAL file is cut back to 64 MiB when it starts over.
		if _, err := c.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = 67108864`); err != nil {
			c.Close()
			return nil, Translate(err)
		}
		b.conn, b.epoch = c, b.epoch+1
	}
	x, err := b.conn.BeginTxx(ctx, nil)
	if err == nil {
		var v int64
		if err = x.GetContext(ctx, &v, `PRAGMA data_version`); err != nil {
			x.Rollback()
		} else if v != b.dataVersion {
			b.dataVersion, b.epoch = v, b.epoch+1
		}
	}
	if err != nil {
		b.dropConn()
		return nil, Translate(err)
	}
	return x, nil
}

// dropConn gives up the writer's connection after an error that leaves its state
// unknown; the next group starts on a fresh one, in a new epoch.
func (b *batcher) dropConn() {
	b.conn.Close()
	b.conn = nil
	b.epoch++
}

// runJob runs one job, turning a panic into its error so the batch goes on.
func runJob(fn func(*Tx) error, tx *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("db: panic in a batched transaction: %v", p)
		}
	}()
	return fn(tx)
}

// checkpointEvery is how often the checkpointer copies the WAL into the database, and
// restartEvery how many of those end with our writers waiting, so the WAL starts over.
const (
	checkpointEvery = 100 * time.Millisecond
	restartEvery    = 10
	restartFrames   = 8192 // and sooner when the WAL holds this many pages (32 MiB)
)

// runCheckpoints copies the WAL back into the database on its own connection, beside
// the writer. Left to the writer (SQLite's wal_autocheckpoint), every thousandth page
// made one commit copy a thousand pages and wait for two fsyncs while every call waited
// behind it, and pages written again and again were copied each time. A PASSIVE
// checkpoint blocks no one, but the WAL only starts over once all of it is copied, which
// a writer that never pauses never lets happen: so every restartEvery-th time a second
// checkpoint, while our writers wait, copies what was written meanwhile, and the next
// transaction restarts the WAL from its beginning. That wait is two fsyncs (2-6 ms here,
// up to 15): once a second rather than ten times.
func (d *DB) runCheckpoints() {
	defer d.batch.wg.Done()
	ctx := context.Background()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	var c *sqlx.Conn
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	// checkpoint returns how many pages the WAL holds.
	checkpoint := func() (int, error) {
		var busy, frames, copied int
		err := c.QueryRowxContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
		return frames, err
	}
	for tick := 1; ; tick++ {
		select {
		case <-d.batch.stop:
			return
		case <-t.C:
		}
		if c == nil {
			var err error
			if c, err = d.Connx(ctx); err != nil {
				continue
			}
		}
		frames, err := checkpoint()
		if err == nil && (tick%restartEvery == 0 || frames >= restartFrames) {
			d.writeSlot <- struct{}{}
			_, err = checkpoint()
			<-d.writeSlot
		}
		if err != nil {
			c.Close()
			c = nil
		}
	}
}

// GroupCommits reports how many groups the writer has taken to COMMIT and how many jobs
// they held.
func (d *DB) GroupCommits() (commits, jobs uint64) {
	return d.batch.commits.Load(), d.batch.jobsRun.Load()
}

// closeBatches stops the group-commit goroutine.
func (d *DB) closeBatches() {
	if d.batch.stop != nil {
		close(d.batch.stop)
		d.batch.wg.Wait()
		if d.batch.conn != nil {
			d.batch.conn.Close()
		}
	}
}
