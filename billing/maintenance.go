package billing

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// maintenanceMethods declares the methods whose handlers are in this file: the reference's
// "Technical maintenance".
func (s *Service) maintenanceMethods() []Method {
	return []Method{
		method("doMaintenance", 90, s.doMaintenance).
			Doc("run the periodic work once: reservations, DID renewals, invoice expiry, exchange rates, postpaid invoices, notifications",
				"true; false when another runner is at it"),
		method("getMaintenance", keys.LevelAdmin, s.getMaintenance).
			Doc("when the periodic work last ran, what it did, and the mail outbox (not in the reference)",
				"{last_started, last_finished, ran_by, running, report, interval, mail, outbox: {queued, failed, sent}}"),
	}
}

// maxRenewPeriods bounds the months one run catches up on for a DID whose expiration
// lies far back (maintenance did not run for a long time).
const maxRenewPeriods = 24

// maintenanceLease is how long a runner holds the schedule. A run takes seconds; a
// runner that dies mid-run frees it when the lease runs out.
const maintenanceLease = 15 * time.Minute

// MaintenanceReport is what one run of the periodic work did.
type MaintenanceReport struct {
	Skipped          bool     `json:"skipped,omitempty"` // another runner held the schedule
	Holder           string   `json:"holder,omitempty"`  // that runner, when skipped
	Started          int64    `json:"started"`
	Finished         int64    `json:"finished"`
	Reservations     int      `json:"reservations"`      // expired reservations released
	DIDRents         int      `json:"did_rents"`         // months of DID rent charged
	DIDsDisabled     int      `json:"dids_disabled"`     // DIDs whose owner could not pay
	InvoicesExpired  int      `json:"invoices_expired"`  // unpaid invoices past valid_thru
	Rates            int      `json:"rates"`             // currencies whose eur_course was set
	PostpaidInvoices int      `json:"postpaid_invoices"` // monthly invoices of postpaid accounts
	Notices          int      `json:"notices"`           // messages queued (low balance, DID expiry, invoices)
	Bundles          int      `json:"bundles"`           // months of bundles charged (bundles.go)
	BundlesUnpaid    int      `json:"bundles_unpaid"`    // bundles whose fee the user could not pay
	Errors           []string `json:"errors,omitempty"`  // steps that failed (the others ran)
}

// schedule is the daemon's own timer for the periodic work and the mail sender.
type schedule struct {
	once   sync.Once
	id     string // this runner's name in the lease
	cancel context.CancelFunc
	wg     sync.WaitGroup
	wake   chan struct{} // a message was queued: send now
}

// runnerID names this process in the lease: host, pid and a random part (two Services
// in one process are two runners).
func (s *Service) runnerID() string {
	s.sched.once.Do(func() {
		host, _ := os.Hostname()
		b := make([]byte, 3)
		rand.Read(b)
		s.sched.id = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
		s.sched.wake = make(chan struct{}, 1)
	})
	return s.sched.id
}

// startSchedule starts the periodic work (every maintenance_interval, the first run at
// once) and the mail sender; stopSchedule stops both, letting a send in flight finish.
func (s *Service) startSchedule(ctx context.Context) {
	s.runnerID()
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.sched.cancel = cancel
	if s.mailOn() {
		s.sched.wg.Add(1)
		go func() { defer s.sched.wg.Done(); s.mailLoop(ctx) }()
	} else {
		s.Log.Info("mail is off: smtp_host is not set, nothing is mailed")
	}
	if every := s.Config.MaintenanceInterval; every > 0 {
		s.sched.wg.Add(1)
		go func() {
			defer s.sched.wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				if _, err := s.RunMaintenance(ctx, "schedule"); err != nil && ctx.Err() == nil {
					s.Log.Error("maintenance", "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}()
	}
}

func (s *Service) stopSchedule() {
	if s.sched.cancel != nil {
		s.sched.cancel()
		s.sched.wg.Wait()
	}
}

// takeLease makes this runner the schedule's holder unless another holds an unexpired
// lease; it answers the holder that refused. One UPDATE decides, so it works alike on
// SQLite and PostgreSQL, for daemons and `narayanad maintenance` runs at once. The lease
// runs on the wall clock, not Service.Now: it is about processes being alive.
func (s *Service) takeLease(ctx context.Context) (string, error) {
	now := time.Now()
	res, err := s.DB.Q().Exec(ctx, `UPDATE maintenance SET holder = ?, lease_until = ?
		WHERE name = 'schedule' AND (holder = '' OR holder = ? OR lease_until < ?)`,
		s.runnerID(), now.Add(maintenanceLease).Unix(), s.runnerID(), now.Unix())
	if err != nil {
		return "", err
	}
	if n, err := res.RowsAffected(); err != nil {
		return "", err
	} else if n == 1 {
		return "", nil
	}
	var holder string
	err = s.DB.Q().Get(ctx, &holder, `SELECT holder FROM maintenance WHERE name = 'schedule'`)
	if holder == "" {
		holder = "another runner"
	}
	return holder, err
}

// releaseLease gives the schedule up and records the run.
func (s *Service) releaseLease(ctx context.Context, ranBy string, rep *MaintenanceReport) error {
	b, _ := json.Marshal(rep)
	_, err := s.DB.Q().Exec(ctx, `UPDATE maintenance SET holder = '', lease_until = 0, started_at = ?, finished_at = ?,
		ran_by = ?, report = ? WHERE name = 'schedule' AND holder = ?`,
		rep.Started, rep.Finished, ranBy, string(b), s.runnerID())
	return err
}

// RunMaintenance runs the periodic work once, unless another runner holds the schedule
// (then the report says Skipped and who holds it). Each step is idempotent, so a second
// run in the same period changes nothing; a failing step is logged and the others run.
// ranBy says who asked (schedule, doMaintenance, the command line).
func (s *Service) RunMaintenance(ctx context.Context, ranBy string) (*MaintenanceReport, error) {
	return s.runMaintenance(ctx, ranBy, 0)
}

func (s *Service) runMaintenance(ctx context.Context, ranBy string, by int64) (*MaintenanceReport, error) {
	rep := &MaintenanceReport{}
	holder, err := s.takeLease(ctx)
	if err != nil {
		return nil, err
	}
	if holder != "" {
		rep.Skipped, rep.Holder = true, holder
		s.Log.Info("maintenance skipped: another runner holds it", "holder", holder)
		return rep, nil
	}
	now := s.now()
	rep.Started = now.Unix()
	step := func(name string, f func() error) {
		if err := f(); err != nil {
			rep.Errors = append(rep.Errors, name+": "+err.Error())
			s.Log.Error("maintenance step failed", "step", name, "err", err)
		}
	}
	step("reservations", func() (err error) {
		rep.Reservations, err = s.sweepReservations(ctx, s.DB.Q(), 0)
		return err
	})
	step("rates", func() (err error) { rep.Rates, err = s.fetchRates(ctx); return err })
	step("dids", func() error { return s.renewDIDs(ctx, now, by, rep) })
	step("invoices", func() error {
		res, err := s.DB.Q().Exec(ctx, `UPDATE invoices SET status = ? WHERE status = ? AND valid_thru > 0 AND valid_thru < ?`,
			InvoiceExpired, InvoiceUnpaid, now.Unix())
		if err == nil {
			n, _ := res.RowsAffected()
			rep.InvoicesExpired = int(n)
		}
		return err
	})
	step("bundles", func() error { return s.chargeBundles(ctx, now, by, rep) })
	step("postpaid", func() error { return s.postpaidInvoices(ctx, now, rep) })
	step("notices", func() error { return s.notices(ctx, now, rep) })
	rep.Finished = s.now().Unix()
	s.Log.Info("maintenance", "ran_by", ranBy, "reservations", rep.Reservations, "did_rents", rep.DIDRents,
		"dids_disabled", rep.DIDsDisabled, "invoices_expired", rep.InvoicesExpired, "rates", rep.Rates,
		"postpaid_invoices", rep.PostpaidInvoices, "notices", rep.Notices, "errors", len(rep.Errors))
	if err := s.releaseLease(context.WithoutCancel(ctx), ranBy, rep); err != nil {
		return rep, err
	}
	if rep.Notices > 0 {
		s.wakeMail()
	}
	return rep, nil
}

// doMaintenance(90) runs the periodic duties once (RunMaintenance), for a cron job or an
// operator; the daemon runs them itself every maintenance_interval. Each duty is
// idempotent: running it twice in the same period changes nothing the second time.
//
//   - Releases the reservations of calls never settled (expired holds, logged).
//   - Exchange rates: with rates_source set, sets eur_course of every currency of the
//     currencies table that the ECB file lists (rates.go); a failed fetch keeps the rates.
//   - Renews DIDs whose expiration has passed and whose auto_renew is on: each month of
//     rent is a ledger row of kind `did` charged to the owner's account, and the
//     expiration moves one calendar month on from the old expiration (periods stay
//     contiguous; a run that was missed for months catches up month by month, at most
//     24). An owner who cannot pay (balance + overdraft − open reservations below the
//     rent) gets the DID disabled; it stays disabled until renewed by hand. DIDs without
//     an owner or already disabled are left alone. Postpaid accounts follow the same
//     rule: their credit is their overdraft.
//   - Marks unpaid invoices whose valid_thru has passed as expired (status 3); a late
//     confirmation from the payment provider still credits them (finishInvoice).
//   - Charges the monthly fee of bundles of minutes and SMS on tariff options and opens the
//     month's quotas, once per user and month (bundles.go).
//   - Issues the monthly invoice of every postpaid account charged last month (postpaid.go).
//   - Queues the notices of §8: low balance and DID expiry (mail.go).
//
// When another runner (a daemon, `narayanad maintenance`) is at it, it answers false and
// does nothing.
func (s *Service) doMaintenance(r *Request) (any, error) {
	var by int64
	if r.Caller.Actor != nil {
		by = r.Caller.Actor.ID
	}
	rep, err := s.runMaintenance(r.ctx, "doMaintenance", by)
	if err != nil {
		return nil, err
	}
	return !rep.Skipped, nil
}

// MaintenanceStatus is what getMaintenance answers.
type MaintenanceStatus struct {
	LastStarted  string             `json:"last_started"`
	LastFinished string             `json:"last_finished"`
	RanBy        string             `json:"ran_by"`
	Running      string             `json:"running"` // the holder of an unexpired lease
	Report       *MaintenanceReport `json:"report"`
	Interval     string             `json:"interval"`
	Mail         bool               `json:"mail"`
	Outbox       OutboxCounts       `json:"outbox"`
}

// OutboxCounts counts the outbox's messages by state.
type OutboxCounts struct {
	Queued int `json:"queued"`
	Failed int `json:"failed"`
	Sent   int `json:"sent"`
}

// Status answers when the periodic work last ran, what it did, and the outbox.
func (s *Service) Status(ctx context.Context) (*MaintenanceStatus, error) {
	var row struct {
		Holder     string `db:"holder"`
		LeaseUntil int64  `db:"lease_until"`
		Started    int64  `db:"started_at"`
		Finished   int64  `db:"finished_at"`
		RanBy      string `db:"ran_by"`
		Report     string `db:"report"`
	}
	if err := s.DB.Q().Get(ctx, &row, `SELECT holder, lease_until, started_at, finished_at, ran_by, report
		FROM maintenance WHERE name = 'schedule'`); err != nil {
		return nil, err
	}
	st := &MaintenanceStatus{LastStarted: formatTime(row.Started, 0), LastFinished: formatTime(row.Finished, 0),
		RanBy: row.RanBy, Interval: s.Config.MaintenanceInterval.String(), Mail: s.mailOn()}
	if row.Holder != "" && row.LeaseUntil >= time.Now().Unix() {
		st.Running = row.Holder
	}
	if row.Report != "" {
		st.Report = &MaintenanceReport{}
		if err := json.Unmarshal([]byte(row.Report), st.Report); err != nil {
			st.Report = nil
		}
	}
	var counts []struct {
		Status int `db:"status"`
		N      int `db:"n"`
	}
	if err := s.DB.Q().Select(ctx, &counts, `SELECT status, COUNT(*) AS n FROM outbox GROUP BY status`); err != nil {
		return nil, err
	}
	for _, c := range counts {
		switch c.Status {
		case outboxQueued:
			st.Outbox.Queued = c.N
		case outboxSent:
			st.Outbox.Sent = c.N
		case outboxFailed:
			st.Outbox.Failed = c.N
		}
	}
	return st, nil
}

// getMaintenance(33) answers Status: when the periodic work last ran (UTC), who ran it and
// what it did, whether a runner is at it now, and the mail outbox by state.
func (s *Service) getMaintenance(r *Request) (any, error) { return s.Status(r.ctx) }

// renewDIDs renews every DID due, each in its own transaction so one owner's trouble does
// not hold back the others.
func (s *Service) renewDIDs(ctx context.Context, now time.Time, by int64, rep *MaintenanceReport) error {
	var due []string
	if err := s.DB.Q().Select(ctx, &due, `SELECT did FROM dids WHERE auto_renew = 1 AND enabled = 1
		AND owner_id IS NOT NULL AND expiration > 0 AND expiration <= ? ORDER BY did`, now.Unix()); err != nil {
		return err
	}
	for _, did := range due {
		err := s.DB.InTx(ctx, func(tx *db.Tx) error {
			periods, disabled, err := renewDueDID(ctx, tx, did, now, by)
			if err == nil {
				rep.DIDRents += periods
				if disabled {
					rep.DIDsDisabled++
				}
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("renew DID %s: %w", did, err)
		}
	}
	return nil
}

// renewDueDID charges the rent of a DID due for renewal and moves its expiration on, or
// disables it when its owner cannot pay. The row is read again under lock, so two runs at
// the same time renew it once.
func renewDueDID(ctx context.Context, tx *db.Tx, did string, now time.Time, by int64) (int, bool, error) {
	var d struct {
		Owner      sql.NullInt64 `db:"owner_id"`
		Cost       money.Micro   `db:"cost"`
		Expiration int64         `db:"expiration"`
		Enabled    int           `db:"enabled"`
		AutoRenew  int           `db:"auto_renew"`
		Account    int64         `db:"account_id"`
	}
	err := tx.Get(ctx, &d, `SELECT d.owner_id, d.cost, d.expiration, d.enabled, d.auto_renew, u.account_id
		FROM dids d JOIN users u ON u.id = d.owner_id WHERE d.did = ?`+tx.ForUpdate(), did)
	if db.IsNotFound(err) {
		return 0, false, nil // deleted or given up meanwhile
	} else if err != nil {
		return 0, false, err
	}
	if d.Enabled != 1 || d.AutoRenew != 1 || d.Expiration <= 0 || d.Expiration > now.Unix() {
		return 0, false, nil // renewed by a run at the same time
	}
	acc, err := lockAccounts(ctx, tx, d.Account)
	if err != nil {
		return 0, false, err
	}
	avail, err := spendable(ctx, tx, acc[d.Account])
	if err != nil {
		return 0, false, err
	}
	exp := d.Expiration
	enabled, periods := 1, 0
	for i := 0; exp <= now.Unix() && i < maxRenewPeriods; i++ {
		if d.Cost > 0 && avail < d.Cost {
			enabled = 0
			break
		}
		next := time.Unix(exp, 0).UTC().AddDate(0, 1, 0).Unix()
		if d.Cost > 0 {
			comment := "DID " + did + " rent until " + formatTime(next, 0)
			if err := postAt(ctx, tx, now, d.Account, -d.Cost, KindDID, "did:"+did, comment, by); err != nil {
				return 0, false, err
			}
			avail -= d.Cost
			periods++
		}
		exp = next
	}
	// A renewed period may be told about again; a disabled number keeps its notice's mark.
	_, err = tx.Exec(ctx, `UPDATE dids SET expiration = ?, enabled = ?,
		renew_notify = CASE WHEN expiration <> ? THEN 0 ELSE renew_notify END WHERE did = ?`, exp, enabled, exp, did)
	return periods, enabled == 0, err
}

// languageOf maps a user's language to the one messages and invoices are written in:
// russian or english (the default).
func languageOf(lang string) string {
	switch strings.ToLower(strings.TrimSpace(lang)) {
	case "russian", "ru", "rus", "русский":
		return "ru"
	}
	return "en"
}

// MaintainOnce is what `narayanad maintenance` does for cron: one run of the periodic
// work (unless another runner holds it), then the outbox's due mail.
func (s *Service) MaintainOnce(ctx context.Context) (*MaintenanceReport, MailResult, error) {
	if !s.mailOn() {
		s.Log.Info("mail is off: smtp_host is not set, nothing is mailed")
	}
	rep, err := s.RunMaintenance(ctx, "command")
	if err != nil || rep.Skipped {
		return rep, MailResult{}, err
	}
	sent, err := s.SendMail(ctx)
	return rep, sent, err
}
