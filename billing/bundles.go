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
// and SMS on tariff options (not in the reference; docs/RATING.md "Bundles").
func (s *Service) bundleMethods() []Method {
	return []Method{
		method("setBundle", 22, s.setBundle, "rates:int!", "minutes:int=0", "sms:int=0", "fee:money=0").
			Doc("give a tariff option a monthly quota of minutes and/or SMS (at least one) for a monthly fee (not in the reference)", "true"),
		method("deleteBundle", 22, s.deleteBundle, "rates:int!").
			Doc("take the bundle off a tariff option; months already paid stay usable (not in the reference)", "true"),
		method("getBundles", 1, s.getBundles).
			Doc("the user's bundles this month: quota, used, held by open calls, remaining; the same for SMS (not in the reference)",
				"[{rates, name, minutes, sms, fee, period, paid, quota, used, held, remaining, sms_quota, sms_used, sms_held, sms_remaining}] (seconds; messages)"),
	}
}

// Bundles (docs/RATING.md): a tariff option with a row in bundles gives each user who has
// it on a SIP account (sip_rates_options) a quota of seconds and/or of SMS per calendar
// month (UTC) for a monthly fee. The maintenance step charges the fee, once per user and month, and writes
// the month's bundle_usage row: a month without a row (not yet charged, or not paid) has
// no quota. A call rated through the option spends the quota before money: callPrepare
// grants the remaining quota plus what money buys past it, and holds the quota part on the
// call's reservation (reservations.quota, counted like its amount: released by callFinish,
// worthless once expired); callFinish takes the seconds from the quota and prices the rest
// as a call of that length. Everything runs under the account's lock (the call path's
// InTxBatch), so concurrent calls never hold or spend more than the quota. Messages:
// see "SMS quotas" below.

// maxBundleMinutes bounds a bundle: a month has 44 640 minutes.
const maxBundleMinutes = 44_640

// maxBundleSMS bounds a bundle's messages per month: a retail package, not bulk sending
// (about one message every 26 s, day and night).
const maxBundleSMS = 100_000

// bundlePeriod is the calendar month (UTC) of t: the bundle's period.
func bundlePeriod(t time.Time) string { return t.UTC().Format("2006-01") }

// setBundle(22) puts a bundle on a tariff option the caller owns: minutes and messages
// per month (either may be 0, not both), and the monthly fee (system currency). Changing
// it applies from the next month charged.
func (s *Service) setBundle(r *Request) (any, error) {
	minutes, sms, fee := r.Int("minutes"), r.Int("sms"), r.Money("fee")
	if minutes < 0 || minutes > maxBundleMinutes {
		return nil, apierr.New(apierr.InvalidArgument, "minutes: want 0 to %d", maxBundleMinutes)
	}
	if sms < 0 || sms > maxBundleSMS {
		return nil, apierr.New(apierr.InvalidArgument, "sms: want 0 to %d", maxBundleSMS)
	}
	if minutes == 0 && sms == 0 {
		return nil, apierr.New(apierr.InvalidArgument, "minutes, sms: want a quota of at least one minute or one message")
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
		_, err = tx.Exec(r.ctx, `INSERT INTO bundles (rates_id, minutes, sms, fee) VALUES (?, ?, ?, ?)
			ON CONFLICT (rates_id) DO UPDATE SET minutes = excluded.minutes, sms = excluded.sms, fee = excluded.fee`,
			t.ID, minutes, sms, fee)
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
	SMS       int    `json:"sms"`
	Fee       string `json:"fee"`
	Period    string `json:"period"`
	Paid      bool   `json:"paid"` // this month's fee is charged: the quota is there
	Quota     int    `json:"quota"`
	Used      int    `json:"used"`
	Held      int    `json:"held"` // by open calls
	Remaining int    `json:"remaining"`

	SMSQuota     int `json:"sms_quota"`
	SMSUsed      int `json:"sms_used"`
	SMSHeld      int `json:"sms_held"` // by messages whose carrier has not answered yet
	SMSRemaining int `json:"sms_remaining"`
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
			SMS     int           `db:"sms"`
			Fee     money.Micro   `db:"fee"`
			Quota   sql.NullInt64 `db:"quota"`
			Used    sql.NullInt64 `db:"used"`
			Row     sql.NullInt64 `db:"paid_row"`
			Held    int           `db:"held"`
			SQuota  sql.NullInt64 `db:"sms_quota"`
			SUsed   sql.NullInt64 `db:"sms_used"`
			SHeld   int           `db:"sms_held"`
		}
		now := time.Now().Unix()
		err := q.Select(ctx, &rows, `SELECT t.name, b.minutes, b.sms, b.fee, u.quota, u.used, u.sms_quota, u.sms_used,
			u.user_id AS paid_row, COALESCE((SELECT SUM(r.quota) FROM reservations r WHERE r.user_id = ? AND r.bundle = t.id
			AND r.expires_at >= ?), 0) AS held,
			(SELECT COUNT(*) FROM sms_holds h WHERE h.user_id = ? AND h.rates_id = t.id AND h.period = ? AND h.expires_at >= ?) AS sms_held
			FROM rates t JOIN bundles b ON b.rates_id = t.id
			LEFT JOIN bundle_usage u ON u.rates_id = t.id AND u.user_id = ? AND u.period = ?
			WHERE t.id = ?`, u.ID, now, u.ID, period, now, u.ID, period, id)
		if err != nil {
			return nil, err
		}
		for _, b := range rows {
			v := bundleView{Rates: id, Name: b.Name, Minutes: b.Minutes, SMS: b.SMS, Fee: b.Fee.String(), Period: period,
				Paid: b.Row.Valid, Quota: int(b.Quota.Int64), Used: int(b.Used.Int64), Held: b.Held,
				SMSQuota: int(b.SQuota.Int64), SMSUsed: int(b.SUsed.Int64), SMSHeld: b.SHeld}
			v.Remaining = max(0, v.Quota-v.Used-v.Held)
			v.SMSRemaining = max(0, v.SMSQuota-v.SMSUsed-v.SMSHeld)
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
// (a ledger row of kind bundle) and gets the month's quota of seconds and messages, in one
// transaction under the account's lock: one row and one fee whatever the bundle holds. The row's primary key makes it once per month, whatever the runs. A user
// who cannot pay (balance + overdraft − open reservations below the fee) gets no quota;
// the next run tries again. Months missed entirely are not charged afterwards: a quota is
// only worth something within its month.
func (s *Service) chargeBundles(ctx context.Context, now time.Time, by int64, rep *MaintenanceReport) error {
	q := s.DB.Q()
	var bundles []struct {
		ID      int64       `db:"rates_id"`
		Minutes int         `db:"minutes"`
		SMS     int         `db:"sms"`
		Fee     money.Micro `db:"fee"`
	}
	if err := q.Select(ctx, &bundles, `SELECT rates_id, minutes, sms, fee FROM bundles ORDER BY rates_id`); err != nil {
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
				if _, err := tx.Exec(ctx, `INSERT INTO bundle_usage (user_id, rates_id, period, account_id, quota, used,
					sms_quota, sms_used, fee, created_at) VALUES (?, ?, ?, ?, ?, 0, ?, 0, ?, ?)`,
					e.UserID, b.ID, period, e.Account, b.Minutes*60, b.SMS, b.Fee, now.Unix()); err != nil {
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

// SMS quotas. A message sendSMS sends through a tariff option (smsRoutes: the first
// option on the user's SIP accounts with SMS routes for the destination) spends one
// message of that option's bundle this month instead of money. One message, whatever its
// length: sendSMS prices a message, not its parts, and the quota counts what is priced.
// A carrier may take seconds to answer and sendSMS holds no lock meanwhile, so the message
// is claimed before the carrier is asked: a row in sms_holds, written under the account's
// lock only while quota − used − the live holds leaves one. Once a carrier has taken the
// message, storeSent deletes the hold and takes one message from the quota in the
// transaction that stores the message, under the lock; when no carrier took it the hold is
// deleted. So concurrent messages of a user never hold or spend more than the quota, and a
// message is paid once: by the quota or by money. A hold lives smsHoldTime (a daemon
// stopped mid-request leaves one); a message taken after its hold expired uses the quota
// if one is still left, else it is charged money as every sent message is.

// smsHoldTime bounds a hold: far above a carrier's answer (Kannel's 10 s, a Lua
// handler's lua_timeout) times a few failover routes.
const smsHoldTime = 10 * time.Minute

// smsClaim is one message of a bundle held while the carriers answer.
type smsClaim struct {
	hold, user, rates int64
	period            string
}

// claimSMS holds one message of the bundle of option rates for u this month; nil when
// none is left (no bundle with messages, the month not paid, or the quota spent).
func (s *Service) claimSMS(ctx context.Context, u *User, rates int64) (*smsClaim, error) {
	period := bundlePeriod(s.now())
	var quota []int
	// Most options carry no messages: find out without taking the lock.
	err := s.DB.Q().Select(ctx, &quota, `SELECT sms_quota FROM bundle_usage WHERE user_id = ? AND rates_id = ? AND period = ?`,
		u.ID, rates, period)
	if err != nil || len(quota) == 0 || quota[0] == 0 {
		return nil, err
	}
	var c *smsClaim
	err = s.DB.InTx(ctx, func(tx *db.Tx) error {
		c = nil
		if _, err := lockAccounts(ctx, tx, u.AccountID); err != nil {
			return err
		}
		now := time.Now().Unix()
		if _, err := tx.Exec(ctx, `DELETE FROM sms_holds WHERE user_id = ? AND expires_at < ?`, u.ID, now); err != nil {
			return err
		}
		left, err := smsLeft(ctx, tx, u.ID, rates, period, now)
		if err != nil || left == 0 {
			return err
		}
		id, err := tx.Insert(ctx, `INSERT INTO sms_holds (user_id, rates_id, period, expires_at) VALUES (?, ?, ?, ?)`,
			u.ID, rates, period, now+int64(smsHoldTime/time.Second))
		if err != nil {
			return err
		}
		c = &smsClaim{hold: id, user: u.ID, rates: rates, period: period}
		return nil
	})
	return c, err
}

// smsLeft is the messages of a month's bundle still free: quota − used − live holds.
// Zero without a paid month.
func smsLeft(ctx context.Context, tx *db.Tx, user, rates int64, period string, now int64) (int, error) {
	var left []int
	err := tx.Select(ctx, &left, `SELECT b.sms_quota - b.sms_used - (SELECT COUNT(*) FROM sms_holds h
		WHERE h.user_id = b.user_id AND h.rates_id = b.rates_id AND h.period = b.period AND h.expires_at >= ?)
		FROM bundle_usage b WHERE b.user_id = ? AND b.rates_id = ? AND b.period = ?`, now, user, rates, period)
	if err != nil || len(left) == 0 {
		return 0, err
	}
	return max(0, left[0]), nil
}

// spend is storeSent's part for a claimed message a carrier took, in tx under the
// account's lock: the hold goes and one message of the quota is used, if one is left
// (always while the hold was live). false: none left, the message costs money.
func (c *smsClaim) spend(ctx context.Context, tx *db.Tx) (bool, error) {
	if _, err := tx.Exec(ctx, `DELETE FROM sms_holds WHERE id = ?`, c.hold); err != nil {
		return false, err
	}
	left, err := smsLeft(ctx, tx, c.user, c.rates, c.period, time.Now().Unix())
	if err != nil || left == 0 {
		return false, err
	}
	_, err = tx.Exec(ctx, `UPDATE bundle_usage SET sms_used = sms_used + 1 WHERE user_id = ? AND rates_id = ? AND period = ?`,
		c.user, c.rates, c.period)
	return err == nil, err
}

// releaseSMS gives a claimed message back: no carrier took it, or it was not stored.
func (s *Service) releaseSMS(ctx context.Context, c *smsClaim) {
	// The request may be gone (its client hung up); the hold must go all the same.
	if _, err := s.DB.Q().Exec(context.WithoutCancel(ctx), `DELETE FROM sms_holds WHERE id = ?`, c.hold); err != nil {
		s.Log.Warn("sms: quota hold not released, it expires by itself", "hold", c.hold, "err", err)
	}
}
