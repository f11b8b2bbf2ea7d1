package billing

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// bundleMethods declares the methods whose handlers are in this file: bundles of minutes
// on tariff options (not in the reference; docs/RATING.md "Bundles").
func (s *Service) bundleMethods() []Method {
	return []Method{
		method("setBundle", 22, s.setBundle, "rates:int!", "minutes:int!", "fee:money=0").
			Doc("give a tariff option a monthly quota of minutes for a monthly fee (not in the reference)", "true"),
		method("deleteBundle", 22, s.deleteBundle, "rates:int!").
			Doc("take the bundle off a tariff option; months already paid stay usable (not in the reference)", "true"),
		method("getBundles", 1, s.getBundles).
			Doc("the user's bundles this month: quota, used, held by open calls, remaining (not in the reference)",
				"[{rates, name, minutes, fee, period, paid, quota, used, held, remaining}] (seconds)"),
	}
}

// Bundles (docs/RATING.md): a tariff option with a row in bundles gives each user who has
// it on a SIP account (sip_rates_options) a quota of seconds per calendar month (UTC) for
// a monthly fee. The maintenance step charges the fee, once per user and month, and writes
// the month's bundle_usage row: a month without a row (not yet charged, or not paid) has
// no quota. A call rated through the option spends the quota before money: callPrepare
// grants the remaining quota plus what money buys past it, and holds the quota part on the
// call's reservation (reservations.quota, counted like its amount: released by callFinish,
// worthless once expired); callFinish takes the seconds from the quota and prices the rest
// as a call of that length. Everything runs under the account's lock (the call path's
// InTxBatch), so concurrent calls never hold or spend more than the quota.

// maxBundleMinutes bounds a bundle: a month has 44 640 minutes.
const maxBundleMinutes = 44_640

// bundlePeriod is the calendar month (UTC) of t: the bundle's period.
func bundlePeriod(t time.Time) string { return t.UTC().Format("2006-01") }

// setBundle(22) puts a bundle on a tariff option the caller owns: minutes per month, and
// the monthly fee (system currency). Changing it applies from the next month charged.
func (s *Service) setBundle(r *Request) (any, error) {
	minutes, fee := r.Int("minutes"), r.Money("fee")
	if minutes < 1 || minutes > maxBundleMinutes {
		return nil, apierr.New(apierr.InvalidArgument, "minutes: want 1 to %d", maxBundleMinutes)
	}
	if fee < 0 { // the binder has checked it is an amount
		return nil, apierr.New(apierr.InvalidArgument, "fee: want an amount of 0 or more")
	}
	return true, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		t, err := r.ownedRate(r.ctx, tx, r.Int("rates"))
		if err != nil {
			return err
		}
		if t.IsOption == 0 {
			return apierr.New(apierr.InvalidArgument, "rates: tariff %d is not an option", t.ID)
		}
		_, err = tx.Exec(r.ctx, `INSERT INTO bundles (rates_id, minutes, fee) VALUES (?, ?, ?)
			ON CONFLICT (rates_id) DO UPDATE SET minutes = excluded.minutes, fee = excluded.fee`, t.ID, minutes, fee)
		return err
	})
}

// deleteBundle(22) takes the bundle off a tariff option: no month is charged after; the
// quota of a month already paid stays usable until the month ends.
func (s *Service) deleteBundle(r *Request) (any, error) {
	return true, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		t, err := r.ownedRate(r.ctx, tx, r.Int("rates"))
		if err != nil {
			return err
		}
		res, err := tx.Exec(r.ctx, `DELETE FROM bundles WHERE rates_id = ?`, t.ID)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apierr.New(apierr.NotExist, "tariff %d has no bundle", t.ID)
		}
		return nil
	})
}

// bundleView is one of getBundles' answers.
type bundleView struct {
	Rates     int64  `json:"rates"`
	Name      string `json:"name"`
	Minutes   int    `json:"minutes"`
	Fee       string `json:"fee"`
	Period    string `json:"period"`
	Paid      bool   `json:"paid"` // this month's fee is charged: the quota is there
	Quota     int    `json:"quota"`
	Used      int    `json:"used"`
	Held      int    `json:"held"` // by open calls
	Remaining int    `json:"remaining"`
}

// getBundles(1) lists the bundles of the options on the user's SIP accounts, this month.
func (s *Service) getBundles(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	ctx, q := r.ctx, s.DB.Q()
	opts, err := userOptions(ctx, q, u.ID)
	if err != nil {
		return nil, err
	}
	period := bundlePeriod(s.now())
	out := []bundleView{}
	for _, id := range opts {
		var rows []struct {
			Name    string        `db:"name"`
			Minutes int           `db:"minutes"`
			Fee     money.Micro   `db:"fee"`
			Quota   sql.NullInt64 `db:"quota"`
			Used    sql.NullInt64 `db:"used"`
			Row     sql.NullInt64 `db:"paid_row"`
			Held    int           `db:"held"`
		}
		err := q.Select(ctx, &rows, `SELECT t.name, b.minutes, b.fee, u.quota, u.used,
			u.user_id AS paid_row, COALESCE((SELECT SUM(r.quota) FROM reservations r WHERE r.user_id = ? AND r.bundle = t.id
			AND r.expires_at >= ?), 0) AS held
			FROM rates t JOIN bundles b ON b.rates_id = t.id
			LEFT JOIN bundle_usage u ON u.rates_id = t.id AND u.user_id = ? AND u.period = ?
			WHERE t.id = ?`, u.ID, time.Now().Unix(), u.ID, period, id)
		if err != nil {
			return nil, err
		}
		for _, b := range rows {
			v := bundleView{Rates: id, Name: b.Name, Minutes: b.Minutes, Fee: b.Fee.String(), Period: period,
				Paid: b.Row.Valid, Quota: int(b.Quota.Int64), Used: int(b.Used.Int64), Held: b.Held}
			v.Remaining = max(0, v.Quota-v.Used-v.Held)
			out = append(out, v)
		}
	}
	return out, nil
}

// userOptions is the tariff options on the user's SIP accounts, each once.
func userOptions(ctx context.Context, q db.Queryer, userID int64) ([]int64, error) {
	exts, err := extensionsOf(ctx, q, userID)
	if err != nil {
		return nil, err
	}
	var out []int64
	seen := map[int64]bool{}
	for _, e := range exts {
		for _, id := range idList(e.RatesOptions) {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	return out, nil
}

// chargeBundles is the maintenance step: for this month (of now), every user with a
// bundle's option on a SIP account, and no bundle_usage row yet, is charged the fee
// (a ledger row of kind bundle) and gets the month's quota, in one transaction under the
// account's lock. The row's primary key makes it once per month, whatever the runs. A user
// who cannot pay (balance + overdraft − open reservations below the fee) gets no quota;
// the next run tries again. Months missed entirely are not charged afterwards: a quota is
// only worth something within its month.
func (s *Service) chargeBundles(ctx context.Context, now time.Time, by int64, rep *MaintenanceReport) error {
	q := s.DB.Q()
	var bundles []struct {
		ID      int64       `db:"rates_id"`
		Minutes int         `db:"minutes"`
		Fee     money.Micro `db:"fee"`
	}
	if err := q.Select(ctx, &bundles, `SELECT rates_id, minutes, fee FROM bundles ORDER BY rates_id`); err != nil {
		return err
	}
	if len(bundles) == 0 {
		return nil
	}
	var exts []struct {
		UserID  int64  `db:"user_id"`
		Account int64  `db:"account_id"`
		Options string `db:"rates_options"`
	}
	if err := q.Select(ctx, &exts, `SELECT e.user_id, u.account_id, e.rates_options FROM extensions e
		JOIN users u ON u.id = e.user_id WHERE e.rates_options <> '' ORDER BY e.user_id`); err != nil {
		return err
	}
	period := bundlePeriod(now)
	type sub struct{ user, account, rates int64 }
	done := map[sub]bool{}
	for _, b := range bundles {
		for _, e := range exts {
			k := sub{e.UserID, e.Account, b.ID}
			if done[k] || !containsID(idList(e.Options), b.ID) {
				continue
			}
			done[k] = true
			err := s.DB.InTx(ctx, func(tx *db.Tx) error {
				acc, err := lockAccounts(ctx, tx, e.Account)
				if err != nil {
					return err
				}
				var have int
				if err := tx.Get(ctx, &have, `SELECT COUNT(*) FROM bundle_usage WHERE user_id = ? AND rates_id = ? AND period = ?`,
					e.UserID, b.ID, period); err != nil || have > 0 {
					return err
				}
				avail, err := spendable(ctx, tx, acc[e.Account])
				if err != nil {
					return err
				}
				if avail < b.Fee {
					rep.BundlesUnpaid++
					return nil
				}
				if _, err := tx.Exec(ctx, `INSERT INTO bundle_usage (user_id, rates_id, period, account_id, quota, used, fee, created_at)
					VALUES (?, ?, ?, ?, ?, 0, ?, ?)`, e.UserID, b.ID, period, e.Account, b.Minutes*60, b.Fee, now.Unix()); err != nil {
					return err
				}
				rep.Bundles++
				if b.Fee == 0 {
					return nil
				}
				ref := fmt.Sprintf("bundle:%d:%d:%s", b.ID, e.UserID, period)
				return postAt(ctx, tx, now, e.Account, -b.Fee, KindBundle, ref, "bundle "+strconv.FormatInt(b.ID, 10)+" "+period, by)
			})
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func containsID(ids []int64, id int64) bool {
	for _, v := range ids {
		if v == id {
			return true
		}
	}
	return false
}

// bundleRemaining is, for a call rated through option rates, the seconds of its bundle the
// user can still spend this month, not counting call uid/prior's own hold (a retried
// callPrepare replaces it): quota − used − the other open calls' holds. Zero without a
// paid month. Read in tx, under the account's lock.
func (s *Service) bundleRemaining(ctx context.Context, tx *db.Tx, user, rates int64, now int64, uid string, prior int) (int, error) {
	var left []int
	err := tx.Select(ctx, &left, `SELECT b.quota - b.used - COALESCE((SELECT SUM(r.quota) FROM reservations r
		WHERE r.user_id = b.user_id AND r.bundle = b.rates_id AND r.expires_at >= ?
		AND NOT (r.uniqueid IS NOT NULL AND r.uniqueid = ? AND r.prior = ?)), 0)
		FROM bundle_usage b WHERE b.user_id = ? AND b.rates_id = ? AND b.period = ?`,
		now, uid, prior, user, rates, bundlePeriod(s.now()))
	if err != nil || len(left) == 0 {
		return 0, err
	}
	return max(0, left[0]), nil
}

// bundleGrant is callPrepare's grant for a call with remaining seconds of quota: the
// quota, then what avail buys past it priced as a call of its own (as callFinish charges
// it), within caps. It answers the grant, the seconds of quota to hold and the money to
// reserve; ok is false when neither quota nor money allows a call.
func bundleGrant(p rating.Price, avail money.Micro, caps rating.Caps, remaining int) (secs, quota int, amount money.Micro, ok bool) {
	limit := caps.Limit()
	if remaining >= limit {
		return limit, limit, 0, true
	}
	rest := rating.Caps{MaxCallTime: limit - remaining}
	m, amt, ok := p.MaxCallTime(avail, rest)
	if !ok {
		return remaining, remaining, 0, remaining > 0
	}
	return remaining + m, remaining, amt, true
}

// bundleSplit is the part of a call of secs seconds that its quota covers, given the
// quota held (at most secs), and the money for the rest.
func bundleSplit(p rating.Price, secs, quota int) (int, money.Micro) {
	quota = min(quota, secs)
	if secs == quota {
		return quota, 0
	}
	return quota, p.Charge(secs - quota)
}

// bundleConsume is callFinish's part for a call rated through option rates, after its own
// reservation is released: the seconds of charged taken from the quota (at most what is
// left besides the other open calls' holds), recorded as used.
func (s *Service) bundleConsume(ctx context.Context, tx *db.Tx, user, rates int64, charged int) (int, error) {
	left, err := s.bundleRemaining(ctx, tx, user, rates, time.Now().Unix(), "", 0)
	if err != nil || left == 0 || charged == 0 {
		return 0, err
	}
	used := min(left, charged)
	_, err = tx.Exec(ctx, `UPDATE bundle_usage SET used = used + ? WHERE user_id = ? AND rates_id = ? AND period = ?`,
		used, user, rates, bundlePeriod(s.now()))
	return used, err
}

// bundlePrepare is callPrepare's hook for a call rated through a tariff option: with a
// paid month of the option's bundle, the grant counts its remaining quota (bundleGrant)
// and quota is the seconds to hold; else the money grant stands as given.
func (s *Service) bundlePrepare(ctx context.Context, tx *db.Tx, user int64, q rating.Quote, avail money.Micro, caps rating.Caps,
	now int64, uid string, prior int, secs int, amount money.Micro, granted bool) (int, int, money.Micro, bool, error) {
	left, err := s.bundleRemaining(ctx, tx, user, q.Tariff.ID, now, uid, prior)
	if err != nil || left == 0 {
		return secs, 0, amount, granted, err
	}
	secs, quota, amount, granted := bundleGrant(q.Price, avail, caps, left)
	return secs, quota, amount, granted, nil
}

// bundleFinish is callFinish's hook for a call rated through a tariff option: the part of
// charged seconds the quota covers costs nothing, the rest is priced as a call of its own
// length. It answers the cost and a note for the call's debug field.
func (s *Service) bundleFinish(ctx context.Context, tx *db.Tx, user int64, q rating.Quote, charged int, cost money.Micro) (money.Micro, string, error) {
	used, err := s.bundleConsume(ctx, tx, user, q.Tariff.ID, charged)
	if err != nil || used == 0 {
		return cost, "", err
	}
	_, cost = bundleSplit(q.Price, charged, used)
	return cost, fmt.Sprintf(" bundle=%d quota_seconds=%d", q.Tariff.ID, used), nil
}
