package billing

import (
	"context"
	"fmt"
	"math/rand"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// mixPrice is the independent model of one level's price for TestRatingMix: a bill type
// 30/6 (an initial block), a cost per minute by day and another from 00:00 to 06:00 UTC,
// and a switch price. Each billed second is priced at the cost in force at that second.
type mixPrice struct {
	day, night, sw int64 // micro-units (per minute for day and night)
	block          bool  // 30/6 when true, else by the second with no block
}

func (p mixPrice) charge(start time.Time, length int) int64 {
	billed := length
	if p.block && length > 0 {
		billed = 30
		if length > 30 {
			billed += (length - 30 + 5) / 6 * 6
		}
	}
	if billed <= 0 {
		return 0
	}
	var sum int64 // micro-units × seconds / minute: divided by 60 once, half-up
	for i := 0; i < billed; i++ {
		if start.Add(time.Duration(i)*time.Second).UTC().Hour() < 6 {
			sum += p.night
		} else {
			sum += p.day
		}
	}
	return (sum+30)/60 + p.sw
}

// TestRatingMix mixes the rating features at random: users of a reseller (corp, with a
// tariff of its own) on a tariff with an initial block and a night period, subscribed to
// a bundle option with a quota; concurrent callPrepares to the bundle's and to the
// tariff's directions, finishes of prepared calls (within the grant and in its slack) and
// of calls never prepared, top-ups, and maintenance runs while the clock (Service.Now)
// crosses the night's end, midnight and the month; with every top-up an SMS to the UK,
// which the bundle's quota of messages carries before money. After every step every
// balance equals its ledger and no quota is held or used beyond itself; every call and
// message costs the user and the reseller what an independent model says; at the end the
// ledger's call and SMS rows and the quotas used add up to the model's sums.
func TestRatingMix(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		ctx := context.Background()
		q := e.s.DB.Q()
		var clockMu sync.Mutex // concurrent callPrepares read the clock the main loop moves
		clock := time.Date(2030, 1, 31, 5, 58, 0, 0, time.UTC)
		e.s.Now = func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
		now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
		setClock := func(t time.Time) { clockMu.Lock(); clock = t; clockMu.Unlock() }
		tariff := func(name string) string {
			var id int64
			if err := q.Get(ctx, &id, `SELECT id FROM rates WHERE name = ?`, name); err != nil {
				t.Fatal(err)
			}
			return strconv.FormatInt(id, 10)
		}
		route := strconv.FormatInt(s.route1, 10)
		e.ok(e.do(e.web, "addBillType", admin("bill_type", "b30", "step", "6", "first_step", "30")))
		// The users' tariff: Russia Mobile 0.20/min, 0.05 at night, 0.02 a call, 30/6.
		e.ok(e.do(e.web, "addRates", admin("name", "retail", "bill_type", "b30", "switch_price", "0.02")))
		retail := tariff("retail")
		e.ok(e.do(e.web, "addDirection", admin("rates", retail, "direction", "2", "cost", "0.2", "route", route)))
		e.ok(e.do(e.web, "addRatePeriod", admin("rates", retail, "name", "night", "days", "sun-sat", "start", "00:00", "end", "06:00")))
		e.ok(e.do(e.web, "updateDirectionPeriod", admin("rates", retail, "direction", "2", "period", "night", "cost", "0.05")))
		// corp's tariff: Russia Mobile 0.12/min (0.03 at night) and the UK 0.006 (0.002 at
		// night), 0.01 a call, 30/6.
		e.ok(e.do(e.web, "addRates", admin("name", "wholesale", "bill_type", "b30", "switch_price", "0.01")))
		wholesale := tariff("wholesale")
		e.ok(e.do(e.web, "addDirection", admin("rates", wholesale, "direction", "2", "cost", "0.12", "route", route)))
		e.ok(e.do(e.web, "addDirection", admin("rates", wholesale, "direction", "3", "cost", "0.006", "route", route)))
		e.ok(e.do(e.web, "addRatePeriod", admin("rates", wholesale, "name", "night", "days", "sun-sat", "start", "00:00", "end", "06:00")))
		e.ok(e.do(e.web, "updateDirectionPeriod", admin("rates", wholesale, "direction", "2", "period", "night", "cost", "0.03")))
		e.ok(e.do(e.web, "updateDirectionPeriod", admin("rates", wholesale, "direction", "3", "period", "night", "cost", "0.002")))
		// The UK option (0.01/min by the second, SMS 0.02) with a bundle of 4 minutes and 3
		// messages for 0.10.
		smsBundleSeed(t, e, s)
		startSMSCarrier(t, e)
		opt := strconv.FormatInt(s.option.ID, 10)
		e.ok(e.do(e.web, "updateRates", admin("id", opt, "is_public", "true")))
		e.ok(e.do(e.web, "setBundle", admin("rates", opt, "minutes", "4", "sms", "3", "fee", "0.1")))
		e.register(admin(), "corp", 22, "balance", "30")
		e.updateUser("corp", "rates", wholesale)

		const ru, uk = "79010000001", "4430000001"
		models := map[string]mixPrice{
			ru: {day: 200_000, night: 50_000, sw: 20_000, block: true},
		}
		corpModels := map[string]mixPrice{
			ru: {day: 120_000, night: 30_000, sw: 10_000, block: true},
			uk: {day: 6_000, night: 2_000, sw: 10_000, block: true},
		}
		optionRest := mixPrice{day: 10_000, night: 10_000} // the part past the quota, by the second

		rng := rand.New(rand.NewSource(14))
		names := []string{"m1", "m2", "m3", "m4"}
		exts := map[string]string{}
		for i, n := range names {
			exts[n] = fmt.Sprintf("%05d", 22000+i)
			e.ok(e.do(e.web, "registerUser", user("corp", "user", n, "web_password", md5hex(n+"pw"), "accesslevel", "11",
				"balance", fmt.Sprintf("%d.%02d", 1+rng.Intn(2), rng.Intn(100)), "sip_server", "10.0.0.1", "sip_extension", exts[n])))
			e.ok(e.do(e.web, "updateUser", admin("user", n, "rates", retail)))
			e.ok(e.do(e.web, "switchRates", user(n, "id", opt, "state", "true")))
		}

		type call struct {
			user, dest, uid string
			grant           int
		}
		var open []call
		paid := map[string]int64{}                      // what the model says each user's calls cost
		var corpPaid, quotaTaken, nCalls, crossed int64 // and corp's; the seconds taken from quotas
		var smsFree, smsPaid int64                      // messages carried by quotas, and by money
		allHolds := func(i int) {
			t.Helper()
			var bad []struct {
				ID      int64       `db:"id"`
				Balance money.Micro `db:"balance"`
				Sum     money.Micro `db:"total"`
			}
			if err := q.Select(ctx, &bad, `SELECT a.id, a.balance, COALESCE(SUM(l.amount), 0) AS total
				FROM accounts a LEFT JOIN ledger l ON l.account_id = a.id GROUP BY a.id, a.balance
				HAVING a.balance <> COALESCE(SUM(l.amount), 0)`); err != nil {
				t.Fatal(err)
			}
			if len(bad) > 0 {
				t.Fatalf("op %d: balances differ from their ledgers: %+v", i, bad)
			}
			var over int
			if err := q.Get(ctx, &over, `SELECT COUNT(*) FROM bundle_usage b WHERE b.used < 0 OR (b.period = ? AND b.used +
				COALESCE((SELECT SUM(r.quota) FROM reservations r WHERE r.user_id = b.user_id AND r.bundle = b.rates_id), 0) > b.quota)`,
				bundlePeriod(now())); err != nil {
				t.Fatal(err)
			}
			if over != 0 {
				t.Fatalf("op %d: a quota is overspent", i)
			}
			if err := q.Get(ctx, &over, `SELECT COUNT(*) FROM bundle_usage WHERE sms_used < 0 OR sms_used > sms_quota`); err != nil {
				t.Fatal(err)
			}
			if over != 0 {
				t.Fatalf("op %d: a quota of messages is overspent", i)
			}
		}
		// sms sends a message to the UK: from the bundle while it has one left, else for
		// the option's 0.02 if the account can spend it.
		sms := func(i int, name string) {
			t.Helper()
			left := 0
			if bs := objs(t, e.ok(e.do(e.web, "getBundles", user(name)))); len(bs) == 1 && bs[0]["paid"] == true {
				left, _ = strconv.Atoi(jstr(bs[0]["sms_remaining"]))
			}
			before, _, held := balanceOf(t, e.s.DB, name)
			a := e.do(e.web, "sendSMS", user(name, "to", uk, "text", "op "+itoa(i), "callerid", "Narayana"))
			after, _, _ := balanceOf(t, e.s.DB, name)
			switch {
			case left > 0 && a.Result && after == before:
				smsFree++
			case left == 0 && before-held >= 20_000 && a.Result && after == before-20_000:
				smsPaid++
			case left == 0 && before-held < 20_000 && a.code() == apierr.InsufficientMoney && after == before:
			default:
				t.Fatalf("op %d: sendSMS with %d messages left and %s (%s held): %s, balance %s", i, left, before, held, a.Body, after)
			}
		}
		// finish ends a call (prepared or not) of length secs and checks its costs against
		// the model.
		finish := func(i int, c call, secs int, prepared bool) {
			t.Helper()
			charged := secs
			if prepared && secs > c.grant && secs <= c.grant+grantSlack {
				charged = c.grant // the switch's timer cut it at its grant
			}
			start := now().Add(-time.Duration(secs) * time.Second)
			left := 0 // the quota this call may take: what is left, with its own hold back
			if c.dest == uk {
				if bs := objs(t, e.ok(e.do(e.web, "getBundles", user(c.user)))); len(bs) == 1 && bs[0]["paid"] == true {
					qu, _ := strconv.Atoi(jstr(bs[0]["quota"]))
					u, _ := strconv.Atoi(jstr(bs[0]["used"]))
					h, _ := strconv.Atoi(jstr(bs[0]["held"]))
					var own []int
					if err := q.Select(ctx, &own, `SELECT quota FROM reservations WHERE uniqueid = ?`, c.uid); err != nil {
						t.Fatal(err)
					}
					for _, o := range own {
						h -= o
					}
					left = max(0, qu-u-h)
				}
			}
			ans := e.ast("callFinish", exts[c.user], "destination", c.dest, "length", itoa(secs), "uniqueid", c.uid)
			if !strings.HasPrefix(ans, "Saved ") {
				t.Fatalf("op %d: callFinish %+v %d s: %q", i, c, secs, ans)
			}
			var want int64
			if c.dest == uk {
				taken := min(charged, left)
				quotaTaken += int64(taken)
				want = optionRest.charge(start, charged-taken)
			} else {
				want = models[c.dest].charge(start, charged)
			}
			wantCorp := corpModels[c.dest].charge(start, charged)
			var got struct {
				ID   int64       `db:"id"`
				Cost money.Micro `db:"cost"`
			}
			if err := q.Get(ctx, &got, `SELECT id, cost FROM call_log WHERE uniqueid = ?`, c.uid); err != nil {
				t.Fatal(err)
			}
			var r struct { // no row for a call of no length: nothing was sold
				Bought money.Micro `db:"bought"`
				Sold   money.Micro `db:"sold"`
			}
			if err := q.Get(ctx, &r, `SELECT COALESCE(SUM(bought), 0) AS bought, COALESCE(SUM(sold), 0) AS sold
				FROM resale WHERE call_id = ?`, got.ID); err != nil {
				t.Fatal(err)
			}
			bought, sold := r.Bought, r.Sold
			if int64(got.Cost) != want || int64(bought) != wantCorp || sold != got.Cost {
				t.Fatalf("op %d: %+v %d s from %s (left %d): user %s corp %s (sold %s), want %s and %s",
					i, c, secs, start.Format(time.TimeOnly), left, got.Cost, bought, sold, money.Micro(want), money.Micro(wantCorp))
			}
			paid[c.user] += want
			if end := start.Add(time.Duration(charged+30) * time.Second); start.Hour() != end.Hour() && (end.Hour() == 6 || end.Hour() == 0) {
				crossed++ // about: the model prices each second either way
			}
			corpPaid += wantCorp
			nCalls++
		}
		finishAll := func(i int) {
			for _, c := range open {
				finish(i, c, rng.Intn(c.grant+1), true)
			}
			open = nil
		}
		// tick moves the clock; a month is crossed with no call open, so that each call's
		// quota is the month's it was held in.
		tick := func(i int, to time.Time) {
			if bundlePeriod(to) != bundlePeriod(now()) {
				finishAll(i)
			}
			setClock(to)
		}

		nightEnd, midnight, evening := false, false, false
		serial := 0
		for i := 0; i < 240; i++ {
			a := names[rng.Intn(len(names))]
			switch op := rng.Intn(12); {
			case op < 4: // concurrent callPrepares of several users to both directions
				n := 1 + rng.Intn(4)
				batch := make([]call, n)
				lines := make([]string, n)
				var wg sync.WaitGroup
				for k := range batch {
					serial++
					batch[k] = call{user: names[rng.Intn(len(names))], dest: []string{ru, uk}[rng.Intn(2)], uid: fmt.Sprintf("p%d", serial)}
					wg.Add(1)
					go func(k int) {
						defer wg.Done()
						_, lines[k] = raw(e.h, astKey, "callPrepare", url.Values{"login": {exts[batch[k].user]},
							"destination": {batch[k].dest}, "uniqueid": {batch[k].uid}})
					}(k)
				}
				wg.Wait()
				for k, l := range lines {
					f := fields(l)
					if f[0] != "Allowed" {
						if f[0] != "Declined" {
							t.Fatalf("op %d: callPrepare %+v: %q", i, batch[k], l)
						}
						continue
					}
					batch[k].grant, _ = strconv.Atoi(f[1])
					open = append(open, batch[k])
					// A grant fits in what each level can spend besides what others hold. (A
					// balance may be below zero: a finish of a call never prepared is charged
					// anyway; a grant from a bundle's quota then holds no money.)
					for _, who := range []string{batch[k].user, "corp"} {
						if bal, _, held := balanceOf(t, e.s.DB, who); held > 0 && held > bal {
							t.Fatalf("op %d: %s holds %s, more than its balance %s", i, who, held, bal)
						}
					}
				}
			case op < 7: // finish a prepared call, within its grant or in its slack
				if len(open) == 0 {
					continue
				}
				k := rng.Intn(len(open))
				c := open[k]
				open = slices.Delete(open, k, k+1)
				finish(i, c, rng.Intn(c.grant+grantSlack+1), true)
			case op == 7: // a call never prepared
				serial++
				finish(i, call{user: a, dest: []string{ru, uk}[rng.Intn(2)], uid: fmt.Sprintf("u%d", serial)}, 1+rng.Intn(90), false)
			case op == 8: // top-ups
				e.ok(e.do(e.web, "transferMoney", admin("destination", a, "amount", fmt.Sprintf("0.%02d", 1+rng.Intn(60)))))
				if rng.Intn(3) == 0 {
					e.ok(e.do(e.web, "transferMoney", admin("destination", "corp", "amount", "1")))
				}
				sms(i, a)
			default: // the clock moves on, and maintenance runs (bundle fees, the sweep)
				next := now().Add(time.Duration(5+rng.Intn(40)) * time.Second)
				if !evening && i >= 120 { // the evening of the same day: a minute before midnight and the month's end
					next, evening = time.Date(2030, 1, 31, 23, 59, 0, 0, time.UTC), true
				}
				tick(i, next)
				nightEnd = nightEnd || now().Hour() >= 6
				midnight = midnight || now().Month() == time.February
				if _, err := e.s.RunMaintenance(ctx, "test"); err != nil {
					t.Fatal(err)
				}
			}
			allHolds(i)
		}
		finishAll(240)
		allHolds(240)
		if !nightEnd || !midnight || crossed == 0 {
			t.Fatalf("the clock did not cross both boundaries: %s, %d calls across one", now(), crossed)
		}

		// The ledger: each user's call rows are what the model charged it, corp's what it
		// charged corp; every bundle fee is 0.10, and the quotas used are what the model
		// took from them.
		for _, n := range names {
			var sum money.Micro
			if err := q.Get(ctx, &sum, `SELECT COALESCE(-SUM(l.amount), 0) FROM ledger l JOIN users u ON u.account_id = l.account_id
				WHERE u.username = ? AND l.kind = 'call'`, n); err != nil {
				t.Fatal(err)
			}
			if int64(sum) != paid[n] {
				t.Errorf("%s: calls in the ledger %s, model %s", n, sum, money.Micro(paid[n]))
			}
			if fees, total := bundleFees(t, e, n); fees > 2 || total != money.Micro(-100_000*fees) {
				t.Errorf("%s: %d bundle fees of %s", n, fees, total)
			}
		}
		var corpSum money.Micro
		if err := q.Get(ctx, &corpSum, `SELECT COALESCE(-SUM(l.amount), 0) FROM ledger l JOIN users u ON u.account_id = l.account_id
			WHERE u.username = 'corp' AND l.kind = 'call'`); err != nil {
			t.Fatal(err)
		}
		if int64(corpSum) != corpPaid {
			t.Errorf("corp: calls in the ledger %s, model %s", corpSum, money.Micro(corpPaid))
		}
		var used int64
		if err := q.Get(ctx, &used, `SELECT COALESCE(SUM(used), 0) FROM bundle_usage`); err != nil {
			t.Fatal(err)
		}
		var held int
		if err := q.Get(ctx, &held, `SELECT COUNT(*) FROM reservations`); err != nil {
			t.Fatal(err)
		}
		if used != quotaTaken || quotaTaken == 0 || held != 0 {
			t.Errorf("quotas used %d s, model %d s; %d reservations left", used, quotaTaken, held)
		}
		var smsUsed, smsCharged int64
		if err := q.Get(ctx, &smsUsed, `SELECT COALESCE(SUM(sms_used), 0) FROM bundle_usage`); err != nil {
			t.Fatal(err)
		}
		if err := q.Get(ctx, &smsCharged, `SELECT COALESCE(-SUM(amount), 0) FROM ledger WHERE kind = ?`, KindSMS); err != nil {
			t.Fatal(err)
		}
		if smsUsed != smsFree || smsCharged != 20_000*smsPaid || smsFree == 0 || smsPaid == 0 {
			t.Errorf("messages: quotas used %d, model %d; charged %s for %d", smsUsed, smsFree, money.Micro(smsCharged), smsPaid)
		}
		checkLedger(t, e)
		t.Logf("%d calls (%d across a boundary), %d s from quotas, users paid %v, corp %s; %d messages from quotas, %d paid",
			nCalls, crossed, quotaTaken, paid, money.Micro(corpPaid), smsFree, smsPaid)
	})
}
