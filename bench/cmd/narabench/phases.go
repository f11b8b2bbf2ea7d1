package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/narayana/narayanad/bench/loadgen"
	"github.com/narayana/narayanad/db"
)

// Phase names.
const (
	phHealthz = "healthz"
	phFloor   = "floor (getCurrencies)"
	phPrepare = "callPrepare"
	phCycle   = "call cycle"
	phRawTx   = "raw write tx"
	phRawGrp  = "raw writes, group commit"
)

// phase is one measured run at one concurrency.
type phase struct {
	Name        string
	Conc        int
	Ops, Failed int64
	Requests    int64
	Elapsed     time.Duration
	Rate        float64 // successful operations a second
	P50, P99    time.Duration
	P999, Max   time.Duration
	DaemonCPU   time.Duration // per successful operation; 0 when there is no daemon
	GenCPU      time.Duration // the load generator's (this process's) CPU per operation
	ServerCPU   time.Duration // PostgreSQL's processes' CPU per operation (shown for PostgreSQL only)
	Errors      string
}

func fromResult(name string, r *loadgen.Result) phase {
	h := r.Latency
	return phase{Name: name, Conc: r.Concurrency, Ops: r.Ops, Failed: r.Failed, Requests: r.Requests,
		Elapsed: r.Elapsed, Rate: r.Rate(), P50: h.Quantile(0.5), P99: h.Quantile(0.99), P999: h.Quantile(0.999),
		Max: h.Max(), Errors: r.ErrorSummary()}
}

// loader drives one running daemon.
type loader struct {
	s    *settings
	d    *daemon
	ds   *dataset
	logf func(string, ...any)
	seq  *atomic.Int64 // uniqueid counter, unique over the whole run
	run  int64         // run id, the first part of every uniqueid
	also *daemon       // a second daemon whose CPU counts too (the two-daemon block)
}

// cpu is the daemons' CPU time so far.
func (l *loader) cpu() time.Duration {
	c, _ := procCPU(l.d.pid)
	if l.also != nil {
		c2, _ := procCPU(l.also.pid)
		c += c2
	}
	return c
}

// measure warms the connections up, then runs op at conc for dur and reads the daemon's
// CPU time around the measured run.
// before, when set, runs between the warm-up and the measured run.
func (l *loader) measure(ctx context.Context, name string, conc int, dur time.Duration, maxOps int64, op loadgen.Op,
	before func()) phase {
	loadgen.Run(ctx, loadgen.Config{Concurrency: conc, Duration: l.s.warm, Seed: 1}, op)
	if before != nil {
		before()
	}
	cpu0, mark := l.cpu(), markCPU()
	r := loadgen.Run(ctx, loadgen.Config{Concurrency: conc, Duration: dur, MaxOps: maxOps, Seed: 2}, op)
	cpu1 := l.cpu()
	p := fromResult(name, r)
	mark.since(&p)
	if r.Ops > 0 {
		p.DaemonCPU = (cpu1 - cpu0) / time.Duration(r.Ops)
	}
	l.logf("%-22s c=%-3d %8.0f/s  p50 %-9v p99 %-9v p99.9 %-9v daemon CPU %v/op  failed %d %s", name, conc, p.Rate,
		round(p.P50), round(p.P99), round(p.P999), round(p.DaemonCPU), p.Failed, p.Errors)
	return p
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 100*time.Millisecond:
		return d.Round(time.Millisecond)
	case d >= 100*time.Microsecond:
		return d.Round(10 * time.Microsecond)
	case d >= time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}

func (l *loader) api(key, method string) string {
	return l.d.base() + "/billing/api/2.2/" + key + "/" + method
}

// expect checks an answer: HTTP 200 and a body starting with prefix.
func expect(status int, body []byte, err error, prefix string) error {
	if err != nil {
		return err
	}
	if status != http.StatusOK || !bytes.HasPrefix(body, []byte(prefix)) {
		if len(body) > 100 {
			body = body[:100]
		}
		return fmt.Errorf("HTTP %d: %s", status, body)
	}
	return nil
}

func (l *loader) healthzOp() loadgen.Op {
	url := l.d.base() + "/healthz"
	return func(ctx context.Context, w *loadgen.Worker) error {
		st, b, err := w.Get(ctx, url)
		return expect(st, b, err, "ok")
	}
}

// floorOp is getCurrencies on the client key: no user, one read of a three-row table.
func (l *loader) floorOp() loadgen.Op {
	url := l.api(webKey, "getCurrencies")
	return func(ctx context.Context, w *loadgen.Worker) error {
		st, b, err := w.Get(ctx, url)
		return expect(st, b, err, `{"result":true`)
	}
}

// call is one call's identity: a random user calling a random destination.
type call struct{ ext, dest, uid string }

func (l *loader) newCall(w *loadgen.Worker) call {
	return call{
		ext:  l.ds.exts[w.Rand.Intn(len(l.ds.exts))],
		dest: l.ds.numbers[w.Rand.Intn(len(l.ds.numbers))],
		uid:  strconv.FormatInt(l.run, 10) + "." + strconv.FormatInt(l.seq.Add(1), 10),
	}
}

func (l *loader) prepare(ctx context.Context, w *loadgen.Worker, c call) error {
	st, b, err := w.Get(ctx, l.api(serverKey, "callPrepare")+"?login="+c.ext+"&destination="+c.dest+"&uniqueid="+c.uid)
	return expect(st, b, err, "Allowed ")
}

func (l *loader) finish(ctx context.Context, w *loadgen.Worker, c call) error {
	length, status := 1+w.Rand.Intn(600), "ANSWER"
	if w.Rand.Intn(10) == 0 {
		length, status = 0, "NOANSWER"
	}
	st, b, err := w.Get(ctx, l.api(serverKey, "callFinish")+"?login="+c.ext+"&destination="+c.dest+"&uniqueid="+c.uid+
		"&length="+strconv.Itoa(length)+"&status="+status)
	return expect(st, b, err, "Saved ")
}

// prepareOp is callPrepare from the Asterisk's server key (auth_by sip_extension).
func (l *loader) prepareOp() loadgen.Op {
	return func(ctx context.Context, w *loadgen.Worker) error { return l.prepare(ctx, w, l.newCall(w)) }
}

// cycleOp is one call: callPrepare, then callFinish with a random length.
func (l *loader) cycleOp() loadgen.Op {
	return func(ctx context.Context, w *loadgen.Worker) error {
		c := l.newCall(w)
		if err := l.prepare(ctx, w, c); err != nil {
			return fmt.Errorf("callPrepare: %w", err)
		}
		if err := l.finish(ctx, w, c); err != nil {
			return fmt.Errorf("callFinish: %w", err)
		}
		return nil
	}
}

// probe answers whether the daemon serves method (not E_UNKNOWN_METHOD), with its answer.
func (l *loader) probe(ctx context.Context, method, query string) (bool, string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, l.api(serverKey, method)+"?"+query, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(resp.Body)
	return !bytes.Contains(buf.Bytes(), []byte("E_UNKNOWN_METHOD")), buf.String()
}

// clearReservations ends the calls a phase left open (callPrepare alone, failed cycles),
// so every phase starts with none; reservations hold money but do not change a balance.
func clearReservations(ctx context.Context, d *db.DB) error {
	_, err := d.Q().Exec(ctx, `DELETE FROM reservations`)
	return err
}

// moneyCheck compares the charges of the calls with the change of the balances.
type moneyCheck struct {
	Calls        int64 // call_log records
	Charges      int64 // sum of their costs
	BalanceDrop  int64 // initial total − current total of the bench users' balances
	CallLedger   int64 // sum of the ledger's call rows (negative)
	BadAccounts  int64 // accounts whose balance differs from the sum of their ledger
	OpenReserved int64 // reservations still open
}

func (m moneyCheck) OK() bool {
	return m.Charges == m.BalanceDrop && m.CallLedger == -m.Charges && m.BadAccounts == 0
}

func (m moneyCheck) String() string {
	verdict := "OK"
	if !m.OK() {
		verdict = "MISMATCH"
	}
	return fmt.Sprintf("%s: %d calls charged %s EUR; balances fell by %s EUR; ledger call rows %s EUR; %d accounts differ from their ledger",
		verdict, m.Calls, eur(m.Charges), eur(m.BalanceDrop), eur(m.CallLedger), m.BadAccounts)
}

func eur(micro int64) string {
	sign := ""
	if micro < 0 {
		sign, micro = "-", -micro
	}
	return fmt.Sprintf("%s%d.%06d", sign, micro/1_000_000, micro%1_000_000)
}

func checkMoney(ctx context.Context, d *db.DB, initialTotal int64) (moneyCheck, error) {
	var m moneyCheck
	var total int64
	q := d.Q()
	err := q.Get(ctx, &m.Calls, `SELECT COUNT(*) FROM call_log`)
	if err == nil {
		err = q.Get(ctx, &m.Charges, `SELECT COALESCE(SUM(cost), 0) FROM call_log`)
	}
	if err == nil {
		err = q.Get(ctx, &total, `SELECT COALESCE(SUM(balance), 0) FROM accounts WHERE billing_name LIKE 'bench%'`)
	}
	if err == nil {
		err = q.Get(ctx, &m.CallLedger, `SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'call'`)
	}
	if err == nil {
		err = q.Get(ctx, &m.BadAccounts, `SELECT COUNT(*) FROM accounts a
			WHERE a.balance <> (SELECT COALESCE(SUM(l.amount), 0) FROM ledger l WHERE l.account_id = a.id)`)
	}
	if err == nil {
		err = q.Get(ctx, &m.OpenReserved, `SELECT COUNT(*) FROM reservations`)
	}
	m.BalanceDrop = initialTotal - total
	return m, err
}

// rawWrites measures the database's write transactions a second with the daemon's own
// settings (db.Open with the same DSN): each is the smallest money move, an UPDATE of a
// balance and an INSERT of a ledger-like row, in one transaction.
func rawWrites(ctx context.Context, s *settings, dsn string, logf func(string, ...any)) ([]phase, error) {
	d, err := db.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	id := "INTEGER PRIMARY KEY AUTOINCREMENT"
	if d.Dialect == db.Postgres {
		id = "BIGSERIAL PRIMARY KEY"
	}
	for _, q := range []string{
		`DROP TABLE IF EXISTS bench_raw_log`, `DROP TABLE IF EXISTS bench_raw_acc`,
		`CREATE TABLE bench_raw_acc (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)`,
		`CREATE TABLE bench_raw_log (id ` + id + `, account_id BIGINT NOT NULL, amount BIGINT NOT NULL,
			balance BIGINT NOT NULL, created_at BIGINT NOT NULL)`,
	} {
		if _, err := d.ExecContext(ctx, q); err != nil {
			return nil, err
		}
	}
	const accounts = 1000
	err = d.InTx(ctx, func(tx *db.Tx) error {
		return insertRows(ctx, tx, `INSERT INTO bench_raw_acc (id, balance) VALUES `, 2, accounts,
			func(i int, a []any) { a[0], a[1] = i+1, userBalance })
	})
	if err != nil {
		return nil, err
	}
	op := func(ctx context.Context, w *loadgen.Worker) error {
		acc, amount := 1+w.Rand.Intn(accounts), -int64(1+w.Rand.Intn(100_000))
		return d.InTx(ctx, func(tx *db.Tx) error { return moveMoney(ctx, tx, acc, amount) })
	}
	var out []phase
	for _, c := range s.levels {
		loadgen.Run(ctx, loadgen.Config{Concurrency: c, Duration: s.warm / 2, Seed: 1}, op)
		mark := markCPU()
		r := loadgen.Run(ctx, loadgen.Config{Concurrency: c, Duration: s.rawDur, Seed: 2}, op)
		p := fromResult(phRawTx, r)
		mark.since(&p)
		logf("%-22s c=%-3d %8.0f/s  p50 %-9v p99 %-9v p99.9 %-9v failed %d %s", phRawTx, c, p.Rate,
			round(p.P50), round(p.P99), round(p.P999), p.Failed, p.Errors)
		out = append(out, p)
		if ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() == nil {
		p := groupCommit(ctx, s, d, accounts)
		logf("%-22s c=%-3d %8.0f/s  p50 %-9v p99 %-9v p99.9 %-9v failed %d %s", phRawGrp, p.Conc, p.Rate,
			round(p.P50), round(p.P99), round(p.P999), p.Failed, p.Errors)
		out = append(out, p)
	}
	for _, q := range []string{`DROP TABLE bench_raw_log`, `DROP TABLE bench_raw_acc`} {
		d.ExecContext(ctx, q)
	}
	return out, nil
}

// moveMoney is the raw write: a balance update and its ledger-like row.
func moveMoney(ctx context.Context, tx *db.Tx, acc int, amount int64) error {
	var bal int64
	if err := tx.Get(ctx, &bal, `UPDATE bench_raw_acc SET balance = balance + ? WHERE id = ? RETURNING balance`, amount, acc); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `INSERT INTO bench_raw_log (account_id, amount, balance, created_at) VALUES (?, ?, ?, ?)`,
		acc, amount, bal, time.Now().Unix())
	return err
}

// groupCommit measures the same money moves sent by the clients to one writer goroutine
// that commits whatever has queued up (up to 256) in one transaction: what batching
// concurrent writes buys over one transaction each. Run at the targets' concurrency.
func groupCommit(ctx context.Context, s *settings, d *db.DB, accounts int) phase {
	type move struct {
		acc    int
		amount int64
		done   chan error
	}
	queue := make(chan move, 1024)
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		batch := make([]move, 0, 256)
		for m := range queue {
			batch = append(batch[:0], m)
		fill:
			for len(batch) < cap(batch) {
				select {
				case m, ok := <-queue:
					if !ok {
						break fill
					}
					batch = append(batch, m)
				default:
					break fill
				}
			}
			err := d.InTx(ctx, func(tx *db.Tx) error {
				for _, m := range batch {
					if err := moveMoney(ctx, tx, m.acc, m.amount); err != nil {
						return err
					}
				}
				return nil
			})
			for _, m := range batch {
				m.done <- err
			}
		}
	}()
	op := func(ctx context.Context, w *loadgen.Worker) error {
		m := move{acc: 1 + w.Rand.Intn(accounts), amount: -int64(1 + w.Rand.Intn(100_000)), done: make(chan error, 1)}
		queue <- m
		return <-m.done
	}
	c := level64(s.levels)
	loadgen.Run(ctx, loadgen.Config{Concurrency: c, Duration: s.warm / 2, Seed: 1}, op)
	mark := markCPU()
	r := loadgen.Run(ctx, loadgen.Config{Concurrency: c, Duration: s.rawDur, Seed: 2}, op)
	p := fromResult(phRawGrp, r)
	mark.since(&p)
	close(queue)
	<-writerDone
	return p
}
