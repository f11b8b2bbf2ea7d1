package db

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jmoiron/sqlx"
)

// PostgreSQL's group commit (bench/NOTES.md, "PostgreSQL"). Measured under load, a call
// path transaction per request spent most of its time in round trips (BEGIN, the
// account's lock, the sum of its reservations, the INSERT, COMMIT: 40% of the daemon's
// CPU was the syscalls of them) and in the WAL flush of its own COMMIT (a third of the
// backends waited on WALWrite). Here a few writer goroutines each run a group of jobs in
// one transaction on a connection of their own, in lockstep: every round sends the next
// statement of each job still running as one pipeline (a pgx batch), with the writes a
// job does not wait for (ExecDeferred) and, once every job has returned, COMMIT. So a
// group of 64 callPrepares costs two round trips and one WAL flush instead of 320 and 64.
//
// The jobs of a group share one backend, so their locks do not keep them apart:
// jobs that read and then write the same rows name them (InTxBatch's keys, account ids),
// no two jobs with a common key share a group, and a group locks all its keys first, in
// id order, in its first round (SetBatchLock), so that groups of several writers and
// several daemons queue on those locks and never deadlock on them.
//
// A job that fails (an SQL error, or fn's own error) fails its group: the group is rolled
// back and each of its jobs runs again in a transaction of its own (InTx), which decides
// its true outcome. Jobs must therefore be safe to run twice (they are on SQLite too).

// pgWriters is how many groups run at once: while one group waits for its round trip
// or its commit, another runs. Four gave about 8% more callPrepares a second than two
// once groups no longer waited on each other's accounts (bench/NOTES.md).
const pgWriters = 4

// roundTimeout bounds one round trip of a group.
const roundTimeout = 10 * time.Second

// errAlone tells a job that its group failed before committing: it runs again alone.
var errAlone = errors.New("db: group failed; the job runs alone")

// errGroupAborted answers the statements of a group that has already failed.
var errGroupAborted = errors.New("db: the group commit was aborted")

type pgBatcher struct {
	mu   sync.Mutex // forming a group
	held []*pgJob   // jobs that clashed with a group's keys, or were left when it closed
	// busy are the keys of the groups running now. A job naming one waits for the next
	// group rather than join another writer's, whose first round would wait on the
	// locks of the running group (measured: the writers' most common wait).
	busy  map[int64]bool
	freed chan struct{} // a group ended: its keys are free again
	once  sync.Once
	jobs  chan *pgJob
	stop  chan struct{}
	wg    sync.WaitGroup
	lock  string // the statement locking a group's keys (SetBatchLock), with one ? for the array

	shared atomic.Uint64 // see SharedStatements
}

// SharedStatements reports how many GetShared and ExecDeferredShared went out as part of
// one statement for several jobs (PostgreSQL's groups).
func (d *DB) SharedStatements() uint64 { return d.pg.shared.Load() }

type pgJob struct {
	ctx   context.Context
	fn    func(*Tx) error
	keys  []int64
	start chan *Tx       // the writer hands the job its Tx
	stmts chan *pipeStmt // the job's next statement; nil once fn has returned (err is set)
	err   error          // fn's result
	done  chan error     // the outcome: nil (committed), errAlone, or the commit's error
}

type pipeStmt struct {
	query    string
	args     []any
	dest     any // Get or Select: where the rows go; nil: Exec
	get      bool
	deferred bool // ExecDeferred: the job goes on without its result
	res      chan error
	tag      pgconn.CommandTag

	first   bool        // the job's first statement of its round
	many    string      // GetShared, ExecDeferredShared: the statement for several jobs
	members []*pipeStmt // a shared statement: the jobs' statements it stands for
	got     bool        // a member of a shared read: its row has come
}

// SetBatchLock sets the statement that locks a group's keys on PostgreSQL, written with
// one ? that receives the keys in ascending order, e.g.
// `SELECT pg_advisory_xact_lock(k) FROM unnest(?::bigint[]) AS k`. Call it before the
// first InTxBatch; without it keys only keep jobs in separate groups.
func (d *DB) SetBatchLock(query string) {
	if d != nil { // a Service without a database (the generated docs)
		d.pg.lock = query
	}
}

func (d *DB) pgBatch(ctx context.Context, fn func(*Tx) error, keys []int64) error {
	b := &d.pg
	b.once.Do(func() {
		b.jobs = make(chan *pgJob, maxBatch)
		b.stop = make(chan struct{})
		b.busy = map[int64]bool{}
		b.freed = make(chan struct{}, 1)
		b.wg.Add(1)
		go d.runPgGroups()
	})
	// stmts is buffered so that a job's deferred statements do not each wait for the writer.
	j := &pgJob{ctx: ctx, fn: fn, keys: keys, start: make(chan *Tx, 1), stmts: make(chan *pipeStmt, 4),
		done: make(chan error, 1)}
	select {
	case b.jobs <- j:
	case <-ctx.Done():
		return ctx.Err()
	case <-b.stop:
		return fmt.Errorf("db: closed")
	}
	tx := <-j.start
	if tx != nil {
		j.err = runJob(fn, tx)
		j.stmts <- nil
	}
	err := <-j.done
	if err == errAlone {
		return d.pgAlone(ctx, fn, keys)
	}
	return err
}

// pgAlone runs a job of a failed group in a transaction of its own, which takes the
// job's keys first like a group does (so the two never lock in opposite orders), and
// runs again after a deadlock.
func (d *DB) pgAlone(ctx context.Context, fn func(*Tx) error, keys []int64) error {
	var err error
	for range 3 {
		err = d.inTx(ctx, func(tx *Tx) error {
			if len(keys) > 0 && d.pg.lock != "" {
				k := slices.Sorted(slices.Values(keys))
				if _, err := tx.Exec(ctx, d.pg.lock, k); err != nil {
					return err
				}
			}
			return fn(tx)
		})
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "40P01" {
			return err
		}
	}
	return err
}

// runPgGroups runs pgWriters writers, each with its own connection. A writer forms its
// next group when it is free, from every job queued by then.
func (d *DB) runPgGroups() {
	defer d.pg.wg.Done()
	var writers sync.WaitGroup
	for range pgWriters {
		writers.Add(1)
		go func() {
			defer writers.Done()
			w := &pgWriter{d: d}
			defer w.close()
			for {
				g := d.nextGroup()
				if g == nil {
					return
				}
				w.run(g)
				d.pg.release(g)
			}
		}()
	}
	writers.Wait()
	refuse(d.pg.jobs, d.pg.held)
}

// nextGroup takes the jobs held over and those queued, and returns a group of them in
// which no two share a key, nor any with a running group; nil once the database closes.
// It never waits while holding b.mu, which release needs.
func (d *DB) nextGroup() []*pgJob {
	b := &d.pg
	for {
		b.mu.Lock()
		group := b.formGroup()
		b.mu.Unlock()
		if len(group) > 0 {
			return group
		}
		// Nothing to run: every job held waits for a running group's keys, or none is
		// held. Wait for a group to end or for a job.
		select {
		case <-b.freed:
		case j := <-b.jobs:
			b.mu.Lock()
			b.held = append(b.held, j)
			b.mu.Unlock()
		case <-b.stop:
			return nil
		}
	}
}

// formGroup takes what has queued into held and forms a group from it, keys and all;
// the caller holds b.mu.
func (b *pgBatcher) formGroup() []*pgJob {
	// Take what has queued, then let the goroutines about to queue run once.
	for round := 0; round < 2; round++ {
	more:
		for len(b.held) < 4*maxBatch {
			select {
			case j := <-b.jobs:
				b.held = append(b.held, j)
			default:
				break more
			}
		}
		if round == 0 && len(b.held) > 0 && len(b.held) < minBatch {
			runtime.Gosched()
		}
	}
	var group, rest []*pgJob
	for _, j := range b.held {
		if len(group) >= maxBatch || slices.ContainsFunc(j.keys, func(k int64) bool { return b.busy[k] }) {
			rest = append(rest, j) // clashes: first in a later group
			continue
		}
		for _, k := range j.keys {
			b.busy[k] = true
		}
		group = append(group, j)
	}
	b.held = rest
	return group
}

// release frees the keys of a group that has ended.
func (b *pgBatcher) release(group []*pgJob) {
	b.mu.Lock()
	for _, j := range group {
		for _, k := range j.keys {
			delete(b.busy, k)
		}
	}
	b.mu.Unlock()
	select {
	case b.freed <- struct{}{}:
	default:
	}
}

// refuse answers the jobs not run when the database closes.
func refuse(queued chan *pgJob, jobs []*pgJob) {
	for {
		select {
		case j := <-queued:
			jobs = append(jobs, j)
			continue
		default:
		}
		break
	}
	for _, j := range jobs {
		j.start <- nil
		j.done <- fmt.Errorf("db: closed")
	}
}

// pgWriter runs groups on its own connection, opened on first use and again after an
// error (to whichever host of the DSN is then the primary).
type pgWriter struct {
	d    *DB
	conn *pgx.Conn
}

// connectWriter opens a writer's connection with sequential scans priced out. Its
// statements (the call path's) all find their rows by an index, but reservations is a
// queue: when autovacuum finds it empty (a quiet night, or between two benchmark phases)
// its statistics say so, and plans made then scan the whole table, which by the time the
// calls come back holds thousands of rows, until autoanalyze comes by. Measured: a
// callPrepare took 580 µs of PostgreSQL's CPU instead of 45 (bench/NOTES.md).
func connectWriter(ctx context.Context, dsn string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.RuntimeParams["enable_seqscan"] = "off"
	return pgx.ConnectConfig(ctx, cfg)
}

func (w *pgWriter) close() {
	if w.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		w.conn.Close(ctx)
		cancel()
		w.conn = nil
	}
}

func (w *pgWriter) run(group []*pgJob) {
	ctx := context.Background()
	var live []*pgJob
	for _, j := range group {
		if err := j.ctx.Err(); err != nil {
			j.start <- nil
			j.done <- err // gone before it started: nothing of it is written
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	if w.conn == nil {
		c, err := connectWriter(ctx, w.d.dsn)
		if err != nil {
			for _, j := range live {
				j.start <- nil
				j.done <- errAlone // the pool's connections may still reach a primary
			}
			return
		}
		w.conn = c
	}
	var keys []int64
	for _, j := range live {
		keys = append(keys, j.keys...)
		j.start <- &Tx{d: w.d, dialect: Postgres, pipe: j}
	}
	slices.Sort(keys)
	failed, begun := false, false
	running := live
	for len(running) > 0 && !failed {
		// Each job still running gives its deferred statements, then the one whose result
		// it waits for, or returns (nil).
		var stmts []*pipeStmt
		next := running[:0:0]
		for _, j := range running {
			for first := true; ; first = false {
				st := <-j.stmts
				if st == nil {
					failed = failed || j.err != nil
					break
				}
				st.first = first
				stmts = append(stmts, st)
				if !st.deferred {
					next = append(next, j)
					break
				}
			}
		}
		running = next
		if failed {
			abort(stmts)
			break
		}
		stmts = share(stmts)
		// Once every job has returned, the last round carries COMMIT: one round trip less.
		commit := len(running) == 0
		if len(stmts) == 0 && !begun {
			break // no statement at all: nothing to commit
		}
		b := &pgx.Batch{}
		if !begun {
			b.Queue("BEGIN")
			if len(keys) > 0 && w.d.pg.lock != "" {
				b.Queue(dollars(w.d.pg.lock), keys)
			}
		}
		for _, st := range stmts {
			b.Queue(st.query, st.args...)
		}
		if commit {
			b.Queue("COMMIT")
		}
		// A round that hangs (a primary gone without a word) gives up: the group runs
		// again, job by job, on the pool, which finds the new primary.
		rctx, cancel := context.WithTimeout(ctx, roundTimeout)
		br := w.conn.SendBatch(rctx, b)
		var err error // the round's first error
		if !begun {
			_, err = br.Exec()
			if err == nil && len(keys) > 0 && w.d.pg.lock != "" {
				_, err = br.Exec()
			}
			begun = true
		}
		for i, st := range stmts {
			if err != nil {
				abort(stmts[i:])
				break
			}
			err = st.run(br)
			st.answer(Translate(err))
			w.d.pg.shared.Add(uint64(len(st.members)))
		}
		committed := false
		if commit && err == nil {
			_, err = br.Exec()
			committed = err == nil
		}
		if cerr := br.Close(); err == nil && cerr != nil {
			if committed {
				w.close() // committed: its answer was read; only the connection is in doubt
			} else {
				err = cerr
			}
		}
		cancel()
		var pe *pgconn.PgError
		switch {
		case committed:
			w.d.batch.commits.Add(1)
			w.d.batch.jobsRun.Add(uint64(len(live)))
			for _, j := range live {
				j.done <- nil
			}
			return
		case commit && err != nil && !errors.As(err, &pe) && !pgconn.SafeToRetry(err):
			// COMMIT went out and no answer came back: whether it committed is unknown.
			// (A server's error means it did not: after an error it skips the rest of
			// the round, COMMIT too.) The callers learn of the error, as with InTx, and
			// nothing runs again.
			w.close()
			for _, j := range live {
				j.done <- Translate(err)
			}
			return
		}
		if err != nil {
			failed = true
		}
	}
	if !failed {
		for _, j := range live {
			j.done <- nil // no statement: nothing to commit
		}
		return
	}
	// Jobs still running wait for their next statement's answer: abort them.
	for _, j := range running {
		for st := <-j.stmts; st != nil; st = <-j.stmts {
			abort([]*pipeStmt{st})
		}
	}
	if begun {
		rctx, cancel := context.WithTimeout(ctx, roundTimeout)
		if _, err := w.conn.Exec(rctx, "ROLLBACK"); err != nil {
			w.close()
		}
		cancel()
	}
	for _, j := range live {
		j.done <- errAlone
	}
}

// abort answers statements of a group that has failed.
func abort(stmts []*pipeStmt) {
	for _, st := range stmts {
		st.answer(errGroupAborted)
	}
}

// answer gives the job (or the jobs of a shared read) the statement's outcome: err, else
// a member's own (no row for it: sql.ErrNoRows, as Get).
func (st *pipeStmt) answer(err error) {
	if st.members == nil {
		st.res <- err
		return
	}
	for _, m := range st.members {
		switch {
		case err != nil:
			m.res <- err
		case st.dest != nil && !m.got:
			m.res <- sql.ErrNoRows
		default:
			m.res <- nil
		}
	}
}

// share folds the shared statements of a round that name the same statement into one:
// a job's GetShared is its last statement of the round, so their read goes in the place
// of the last of them; an ExecDeferredShared is folded only when it is its job's first
// statement of the round, in the place of the first of them. Either way each job's own
// statements keep their order (those of different jobs touch different keys). One
// statement instead of one a job saves PostgreSQL a statement's start and end per job,
// which cost more than a row's read or write (bench/NOTES.md). Statements whose
// arguments make no arrays go one by one.
func share(stmts []*pipeStmt) []*pipeStmt {
	var byMany map[string][]*pipeStmt
	for _, st := range stmts {
		if st.many != "" && (!st.deferred || st.first) {
			if byMany == nil {
				byMany = map[string][]*pipeStmt{}
			}
			byMany[st.many] = append(byMany[st.many], st)
		}
	}
	if byMany == nil {
		return stmts // a round of callFinishes, say: nothing to share
	}
	at := map[*pipeStmt]*pipeStmt{} // the member in whose place the shared statement goes → it
	folded := map[*pipeStmt]bool{}
	for many, ms := range byMany {
		if len(ms) < 2 {
			continue
		}
		args, ok := arrays(ms)
		if !ok {
			continue
		}
		sh := &pipeStmt{query: many, args: args, dest: ms[0].dest, deferred: ms[0].deferred, members: ms}
		if sh.deferred {
			at[ms[0]] = sh
		} else {
			at[ms[len(ms)-1]] = sh
		}
		for _, m := range ms {
			folded[m] = true
		}
	}
	if len(at) == 0 {
		return stmts
	}
	out := stmts[:0:0]
	for _, st := range stmts {
		if sh := at[st]; sh != nil {
			out = append(out, sh)
		} else if !folded[st] {
			out = append(out, st)
		}
	}
	return out
}

// arrays makes a shared statement's arguments: for each ? of the jobs' statement, the array of
// their values (bigint or text, NULLs kept); false when a ? has values of another kind,
// or of both, or only NULLs.
func arrays(ms []*pipeStmt) ([]any, bool) {
	out := make([]any, len(ms[0].args))
	vals := make([]any, len(ms))
	for p := range out {
		kind := reflect.Invalid
		for i, m := range ms {
			if len(m.args) != len(out) {
				return nil, false
			}
			v := m.args[p]
			if vr, ok := v.(driver.Valuer); ok {
				var err error
				if v, err = vr.Value(); err != nil {
					return nil, false
				}
			}
			vals[i] = v
			if v == nil {
				continue
			}
			k := reflect.String
			if rv := reflect.ValueOf(v); rv.CanInt() {
				k = reflect.Int64
			} else if rv.Kind() != reflect.String {
				return nil, false
			}
			if kind != reflect.Invalid && k != kind {
				return nil, false
			}
			kind = k
		}
		switch nulls := slices.Contains(vals, nil); kind {
		case reflect.Int64:
			out[p] = column(vals, nulls, reflect.Value.Int)
		case reflect.String:
			out[p] = column(vals, nulls, reflect.Value.String)
		default:
			return nil, false
		}
	}
	return out, true
}

// column is one argument's array: []T, which pgx encodes without reflection, or []*T
// when there are NULLs.
func column[T any](vals []any, nulls bool, get func(reflect.Value) T) any {
	if !nulls {
		a := make([]T, len(vals))
		for i, v := range vals {
			a[i] = get(reflect.ValueOf(v))
		}
		return a
	}
	a := make([]*T, len(vals))
	for i, v := range vals {
		if v != nil {
			x := get(reflect.ValueOf(v))
			a[i] = &x
		}
	}
	return a
}

// runShared reads a shared read's rows, each led by its job's ordinal (from 1), into
// the members' dest (structs, as sqlx scans them); a member's first row is its own.
func (st *pipeStmt) runShared(rows pgx.Rows) error {
	or := &ordinalRows{pgRows: pgRows{rows}}
	sl := reflect.New(reflect.SliceOf(reflect.TypeOf(st.dest).Elem()))
	if err := sqlx.StructScan(or, sl.Interface()); err != nil {
		return err
	}
	for i, n := range or.ns {
		if n < 1 || n > len(st.members) {
			return fmt.Errorf("db: a shared read answered for job %d of %d", n, len(st.members))
		}
		if m := st.members[n-1]; !m.got {
			reflect.ValueOf(m.dest).Elem().Set(sl.Elem().Index(i))
			m.got = true
		}
	}
	return nil
}

// ordinalRows shows sqlx a shared read's rows without their first column, the job's
// ordinal, which it keeps.
type ordinalRows struct {
	pgRows
	ns []int
}

func (r *ordinalRows) Columns() ([]string, error) {
	cols, err := r.pgRows.Columns()
	if len(cols) == 0 {
		return nil, errors.New("db: a shared read without its ordinal column")
	}
	return cols[1:], err
}

func (r *ordinalRows) Scan(dest ...any) error {
	var n int
	if err := r.Rows.Scan(append([]any{&n}, dest...)...); err != nil {
		return err
	}
	r.ns = append(r.ns, n)
	return nil
}

// run reads the statement's result from the pipeline.
func (st *pipeStmt) run(br pgx.BatchResults) error {
	if st.dest == nil {
		tag, err := br.Exec()
		st.tag = tag
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	if st.members != nil {
		return st.runShared(rows)
	}
	if !st.get {
		return scanRows(rows, st.dest)
	}
	// Get: scan into a one-row slice of dest's type.
	dv := reflect.ValueOf(st.dest)
	sl := reflect.New(reflect.SliceOf(dv.Type().Elem()))
	if err := scanRows(rows, sl.Interface()); err != nil {
		return err
	}
	if sl.Elem().Len() == 0 {
		return sql.ErrNoRows
	}
	dv.Elem().Set(sl.Elem().Index(0))
	return nil
}

var scannerType = reflect.TypeFor[sql.Scanner]()

// scanRows scans rows into *[]T: structs by their db tags (sqlx), other types (int64,
// string, sql.NullInt64…) from the one column.
func scanRows(rows pgx.Rows, dest any) error {
	sl := reflect.ValueOf(dest).Elem()
	et := sl.Type().Elem()
	if et.Kind() == reflect.Struct && !reflect.PointerTo(et).Implements(scannerType) {
		return sqlx.StructScan(pgRows{rows}, dest)
	}
	for rows.Next() {
		v := reflect.New(et)
		if err := rows.Scan(v.Interface()); err != nil {
			return err
		}
		sl.Set(reflect.Append(sl, v.Elem()))
	}
	return rows.Err()
}

// rebound caches dollars: the call path sends the same few statements again and again
// (at most maxRebound of them are kept, should some be built on the fly).
var (
	rebound  sync.Map
	nRebound atomic.Int32
)

const maxRebound = 1000

// dollars is query with PostgreSQL's $1, $2… for its ?s.
func dollars(query string) string {
	if q, ok := rebound.Load(query); ok {
		return q.(string)
	}
	q := sqlx.Rebind(sqlx.DOLLAR, query)
	if nRebound.Add(1) <= maxRebound {
		rebound.Store(query, q)
	}
	return q
}

// deferred sends a statement of the job to its group's next round without waiting for
// its result: a failure fails the group.
func (j *pgJob) deferred(query, many string, args []any) {
	j.stmts <- &pipeStmt{query: dollars(query), many: dollars(many), args: args, deferred: true, res: make(chan error, 1)}
}

// shared sends a GetShared of the job to its group's next round, where it may go as one
// statement with other jobs' (share), and waits for its result.
func (j *pgJob) shared(query, many string, args []any, dest any) error {
	st := &pipeStmt{query: dollars(query), many: dollars(many), args: args, dest: dest, get: true, res: make(chan error, 1)}
	j.stmts <- st
	return <-st.res
}

// query sends a statement of the job to its group's next round and waits for its result.
func (j *pgJob) query(query string, args []any, dest any, get bool) (pgconn.CommandTag, error) {
	st := &pipeStmt{query: dollars(query), args: args, dest: dest, get: get, res: make(chan error, 1)}
	j.stmts <- st
	err := <-st.res
	return st.tag, err
}

// pgRows lets sqlx scan pgx's rows.
type pgRows struct{ pgx.Rows }

func (r pgRows) Close() error { r.Rows.Close(); return nil }

func (r pgRows) Columns() ([]string, error) {
	fd := r.FieldDescriptions()
	out := make([]string, len(fd))
	for i, f := range fd {
		out[i] = f.Name
	}
	return out, nil
}

// pgResult is an Exec's result in a group.
type pgResult struct{ tag pgconn.CommandTag }

func (r pgResult) LastInsertId() (int64, error) {
	return 0, errors.New("db: no LastInsertId on PostgreSQL")
}
func (r pgResult) RowsAffected() (int64, error) { return r.tag.RowsAffected(), nil }

func (d *DB) closePgBatches() {
	if d.pg.stop != nil {
		close(d.pg.stop)
		d.pg.wg.Wait()
	}
}
