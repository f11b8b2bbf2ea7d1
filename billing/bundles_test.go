package billing

import (
	"context"
	"fmt"
	"math/rand"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// bundleOf is alice's one bundle as getBundles answers it.
func bundleOf(t *testing.T, e *env, name string) map[string]any {
	t.Helper()
	bs := objs(t, e.ok(e.do(e.web, "getBundles", user(name))))
	if len(bs) != 1 {
		t.Fatalf("getBundles: %v", bs)
	}
	return bs[0]
}

func wantBundle(t *testing.T, b map[string]any, paid bool, quota, used, held, remaining int) {
	t.Helper()
	if b["paid"] != paid || jstr(b["quota"]) != strconv.Itoa(quota) || jstr(b["used"]) != strconv.Itoa(used) ||
		jstr(b["held"]) != strconv.Itoa(held) || jstr(b["remaining"]) != strconv.Itoa(remaining) {
		t.Fatalf("bundle: %v, want paid %v quota %d used %d held %d remaining %d", b, paid, quota, used, held, remaining)
	}
}

// costOf is the cost field of a callFinish line.
func costOf(line string) money.Micro {
	m, err := money.Parse(fields(line)[6])
	if err != nil {
		return -1
	}
	return m
}

// bundleFees counts the bundle fees in alice's ledger.
func bundleFees(t *testing.T, e *env, name string) (n int, sum money.Micro) {
	t.Helper()
	var r struct {
		N   int         `db:"n"`
		Sum money.Micro `db:"total"`
	}
	err := e.s.DB.Q().Get(context.Background(), &r, `SELECT COUNT(*) AS n, COALESCE(SUM(l.amount), 0) AS total FROM ledger l
		JOIN users u ON u.account_id = l.account_id WHERE u.username = ? AND l.kind = ?`, name, KindBundle)
	if err != nil {
		t.Fatal(err)
	}
	return r.N, r.Sum
}

// onOption makes the seeded UK option public, gives alice balance and switches her to
// the option, with the service's clock at 2030-01-15 12:00 UTC: set *clock to move it.
func onOption(t *testing.T, e *env, s rtSeed, balance string) (opt string, clock *time.Time) {
	t.Helper()
	opt = strconv.FormatInt(s.option.ID, 10)
	clock = new(time.Time)
	*clock = time.Date(2030, 1, 15, 12, 0, 0, 0, time.UTC)
	e.s.Now = func() time.Time { return *clock }
	e.ok(e.do(e.web, "updateRates", admin("id", opt, "is_public", "true")))
	callUser(t, e, s, "alice", "10001", balance)
	e.ok(e.do(e.web, "switchRates", user("alice", "id", opt, "state", "true")))
	return opt, clock
}

// TestBundles: a bundle of 10 minutes on the UK option for 1.50 a month. The fee is
// charged once a month by maintenance; calls to the UK spend the quota before money,
// concurrent calls never hold more than the quota, a call that runs out of quota mid-call
// pays the rest at the option's price, and the quota renews at the month's start.
func TestBundles(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		opt, clock := onOption(t, e, s, "1.5")

		// Defining a bundle: bad input changes nothing.
		e.fails(e.do(e.web, "setBundle", admin("rates", strconv.FormatInt(s.base.ID, 10), "minutes", "10")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "setBundle", admin("rates", opt, "minutes", "0")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "setBundle", admin("rates", opt, "minutes", "10", "fee", "-1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "setBundle", admin("rates", "999", "minutes", "10")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "setBundle", user("alice", "rates", opt, "minutes", "10")), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "deleteBundle", admin("rates", opt)), apierr.NotExist, 200)
		if bs := objs(t, e.ok(e.do(e.web, "getBundles", user("alice")))); len(bs) != 0 {
			t.Fatalf("no bundle yet: %v", bs)
		}
		e.ok(e.do(e.web, "setBundle", admin("rates", opt, "minutes", "10", "fee", "1.5")))

		// Before the month is charged there is no quota: the UK costs money (none left
		// after the fee, 1.50 now buys the cap).
		wantBundle(t, bundleOf(t, e, "alice"), false, 0, 0, 0, 0)
		for i := 0; i < 2; i++ {
			if _, err := e.s.RunMaintenance(context.Background(), "test"); err != nil {
				t.Fatal(err)
			}
		}
		if n, sum := bundleFees(t, e, "alice"); n != 1 || sum != -1_500_000 {
			t.Fatalf("fee charged %d times, %s", n, sum)
		}
		if bal, led, _ := balanceOf(t, e.s.DB, "alice"); bal != 0 || led != 0 {
			t.Fatalf("after the fee: balance %s ledger %s", bal, led)
		}
		wantBundle(t, bundleOf(t, e, "alice"), true, 600, 0, 0, 600)

		// Concurrent calls with no money: together they are granted exactly the quota.
		var wg sync.WaitGroup
		lines := make([]string, 8)
		for i := range lines {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				_, lines[i] = raw(e.h, astKey, "callPrepare", url.Values{"login": {"10001"},
					"destination": {"4430000001"}, "uniqueid": {fmt.Sprintf("c%d", i)}})
			}(i)
		}
		wg.Wait()
		total, allowed := 0, []int{}
		for i, l := range lines {
			if f := fields(l); f[0] == "Allowed" {
				n, _ := strconv.Atoi(f[1])
				total += n
				allowed = append(allowed, i)
			} else if l != "Declined "+apierr.InsufficientMoney {
				t.Fatalf("callPrepare: %q", l)
			}
		}
		if total != 600 || len(allowed) != 1 {
			t.Fatalf("concurrent grants: %v", lines)
		}
		wantBundle(t, bundleOf(t, e, "alice"), true, 600, 0, 600, 0)
		a := e.ast("callFinish", "10001", "destination", "4430000001", "length", "100", "uniqueid", fmt.Sprintf("c%d", allowed[0]))
		if !strings.HasPrefix(a, "Saved ") || costOf(a) != 0 {
			t.Fatalf("callFinish within the quota: %q", a)
		}
		wantBundle(t, bundleOf(t, e, "alice"), true, 600, 100, 0, 500)

		// Other directions are not in the bundle: Russia costs money, of which there is none.
		if a := e.ast("callPrepare", "10001", "destination", "74950000001", "uniqueid", "ru"); a != "Declined "+apierr.InsufficientMoney {
			t.Fatalf("outside the bundle: %q", a)
		}

		// 0.01 buys 60 s at the option's 0.01/min: granted the 500 s left plus 60.
		e.ok(e.do(e.web, "transferMoney", admin("destination", "alice", "amount", "0.01")))
		if a := e.ast("callPrepare", "10001", "destination", "4430000001", "uniqueid", "x1"); !strings.HasPrefix(a, "Allowed 560 ") {
			t.Fatalf("quota and money: %q", a)
		}
		if _, _, held := balanceOf(t, e.s.DB, "alice"); held != 10_000 {
			t.Fatalf("reserved %s for the part past the quota", held)
		}
		// It exhausts the quota mid-call: 500 s from the quota, 30 s at 0.01/min.
		a = e.ast("callFinish", "10001", "destination", "4430000001", "length", "530", "uniqueid", "x1")
		if !strings.HasPrefix(a, "Saved ") || costOf(a) != 5_000 {
			t.Fatalf("callFinish past the quota: %q", a)
		}
		if bal, led, held := balanceOf(t, e.s.DB, "alice"); bal != 5_000 || led != bal || held != 0 {
			t.Fatalf("after the call: balance %s ledger %s held %s", bal, led, held)
		}
		wantBundle(t, bundleOf(t, e, "alice"), true, 600, 600, 0, 0)
		// Quota spent: money alone, 0.005 buys 30 s.
		if a := e.ast("callPrepare", "10001", "destination", "4430000001", "uniqueid", "x2"); !strings.HasPrefix(a, "Allowed 30 ") {
			t.Fatalf("quota spent: %q", a)
		}
		e.ast("callFinish", "10001", "destination", "4430000001", "length", "0", "uniqueid", "x2")

		// The next month: no quota until maintenance charges the fee, once.
		*clock = time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC)
		wantBundle(t, bundleOf(t, e, "alice"), false, 0, 0, 0, 0)
		e.ok(e.do(e.web, "transferMoney", admin("destination", "alice", "amount", "1.995")))
		for i := 0; i < 2; i++ {
			if _, err := e.s.RunMaintenance(context.Background(), "test"); err != nil {
				t.Fatal(err)
			}
		}
		if n, sum := bundleFees(t, e, "alice"); n != 2 || sum != -3_000_000 {
			t.Fatalf("fees after renewal: %d, %s", n, sum)
		}
		wantBundle(t, bundleOf(t, e, "alice"), true, 600, 0, 0, 600)
		if bal, led, _ := balanceOf(t, e.s.DB, "alice"); bal != 500_000 || led != bal {
			t.Fatalf("after renewal: balance %s ledger %s", bal, led)
		}

		// A reservation never settled stops holding its quota when it expires.
		if a := e.ast("callPrepare", "10001", "destination", "4430000001", "uniqueid", "h1"); !strings.HasPrefix(a, "Allowed 3600 ") {
			t.Fatalf("renewed quota and 0.50: %q", a)
		}
		wantBundle(t, bundleOf(t, e, "alice"), true, 600, 0, 600, 0)
		execSQL(t, e.s.DB, `UPDATE reservations SET expires_at = 1 WHERE uniqueid = 'h1'`)
		wantBundle(t, bundleOf(t, e, "alice"), true, 600, 0, 0, 600)
		if rep, err := e.s.RunMaintenance(context.Background(), "test"); err != nil || rep.Reservations != 1 || rep.Bundles != 0 {
			t.Fatalf("sweep: %+v %v", rep, err)
		}

		// A user who cannot pay gets no quota; deleting the bundle stops the charges but
		// leaves this month's quota.
		callUser(t, e, s, "bob", "10002", "1")
		e.ok(e.do(e.web, "switchRates", user("bob", "id", opt, "state", "true")))
		rep, err := e.s.RunMaintenance(context.Background(), "test")
		if err != nil || rep.BundlesUnpaid != 1 || rep.Bundles != 0 {
			t.Fatalf("unpaid: %+v %v", rep, err)
		}
		wantBundle(t, bundleOf(t, e, "bob"), false, 0, 0, 0, 0)
		e.ok(e.do(e.web, "deleteBundle", admin("rates", opt)))
		if a := e.ast("callPrepare", "10001", "destination", "4430000001", "uniqueid", "y1"); !strings.HasPrefix(a, "Allowed 3600 ") {
			t.Fatalf("paid month after deleteBundle: %q", a) // 600 s quota + 0.50 buys 3000 s
		}
	})
}

// BenchmarkCallCycleBundle is BenchmarkCallCycle for calls spent from a bundle: what a
// bundle costs the call path when it is used.
func BenchmarkCallCycleBundle(b *testing.B) {
	e, s := benchEnv(b)
	opt := strconv.FormatInt(s.option.ID, 10)
	e.ok(e.do(e.web, "updateRates", admin("id", opt, "is_public", "true")))
	e.ok(e.do(e.web, "setBundle", admin("rates", opt, "minutes", "44640")))
	const users = 64
	for i := 0; i < users; i++ {
		name := fmt.Sprintf("u%d", i)
		callUser(b, e, s, name, fmt.Sprintf("%05d", 30000+i), "1000000")
		e.ok(e.do(e.web, "switchRates", user(name, "id", opt, "state", "true")))
	}
	if _, err := e.s.RunMaintenance(context.Background(), "bench"); err != nil {
		b.Fatal(err)
	}
	runCalls(b, e, users, "4430000001", "1", true)
}

// TestBundleInvariant mixes bundle calls at random (open, finish within or past the
// quota, unprepared finishes, month changes, maintenance, top-ups) for three users: at
// every step quota used + held never exceeds the quota, balances equal their ledgers,
// every call costs what an independent model says, and at the end the seconds taken
// from the quotas are those the call records say.
func TestBundleInvariant(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		opt := strconv.FormatInt(s.option.ID, 10)
		clock := time.Date(2030, 3, 1, 0, 0, 0, 0, time.UTC)
		e.s.Now = func() time.Time { return clock }
		e.ok(e.do(e.web, "updateRates", admin("id", opt, "is_public", "true")))
		e.ok(e.do(e.web, "setBundle", admin("rates", opt, "minutes", "3", "fee", "0.2")))
		names := []string{"ua", "ub", "uc"}
		exts := map[string]string{}
		for i, n := range names {
			exts[n] = fmt.Sprintf("%05d", 21000+i)
			callUser(t, e, s, n, exts[n], "0.3")
			e.ok(e.do(e.web, "switchRates", user(n, "id", opt, "state", "true")))
		}
		rng := rand.New(rand.NewSource(11))
		type call struct{ user, uid string }
		var open []call
		ctx := context.Background()
		for i := 0; i < 150; i++ {
			a := names[rng.Intn(len(names))]
			switch rng.Intn(8) {
			case 0:
				if _, err := e.s.RunMaintenance(ctx, "test"); err != nil {
					t.Fatal(err)
				}
			case 1:
				if rng.Intn(4) == 0 {
					clock = clock.AddDate(0, 1, 0)
				}
				e.ok(e.do(e.web, "transferMoney", admin("destination", a, "amount", fmt.Sprintf("0.0%d", rng.Intn(10)))))
			case 2, 3, 4:
				uid := fmt.Sprintf("k%d", i)
				if ans := e.ast("callPrepare", exts[a], "destination", "4430000001", "uniqueid", uid); strings.HasPrefix(ans, "Allowed ") {
					open = append(open, call{a, uid})
				}
			case 5, 6, 7:
				if len(open) == 0 {
					continue
				}
				k := rng.Intn(len(open))
				c := open[k]
				open = append(open[:k], open[k+1:]...)
				var own []int
				if err := e.s.DB.Q().Select(ctx, &own, `SELECT quota FROM reservations WHERE uniqueid = ?`, c.uid); err != nil {
					t.Fatal(err)
				}
				left := 0 // what this call may take: the quota left with its own hold back
				if bs := objs(t, e.ok(e.do(e.web, "getBundles", user(c.user)))); len(bs) == 1 && bs[0]["paid"] == true {
					q, _ := strconv.Atoi(jstr(bs[0]["quota"]))
					u, _ := strconv.Atoi(jstr(bs[0]["used"]))
					h, _ := strconv.Atoi(jstr(bs[0]["held"]))
					if len(own) == 1 {
						h -= own[0]
					}
					left = max(0, q-u-h)
				}
				length := rng.Intn(200)
				ans := e.ast("callFinish", exts[c.user], "destination", "4430000001", "length", itoa(length), "uniqueid", c.uid)
				grant := length // within its grant or not, the model follows what was charged
				if f := fields(ans); len(f) > 5 {
					grant, _ = strconv.Atoi(f[5])
				}
				rest := grant - min(grant, left)
				want := money.Micro((int64(rest)*10_000*2 + 60) / 120) // 0.01/min per second, half-up
				var got money.Micro                                    // the exact cost: the answer line shows 4 decimals
				if err := e.s.DB.Q().Get(ctx, &got, `SELECT cost FROM call_log WHERE uniqueid = ?`, c.uid); err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("op %d: %q cost %s, want %s (left %d)", i, ans, got, want, left)
				}
			}
			var bad int
			if err := e.s.DB.Q().Get(ctx, &bad, `SELECT COUNT(*) FROM bundle_usage b WHERE b.used < 0 OR b.used +
				COALESCE((SELECT SUM(r.quota) FROM reservations r WHERE r.user_id = b.user_id AND r.bundle = b.rates_id), 0) > b.quota
				AND b.period = ?`, bundlePeriod(clock)); err != nil { // holds count against the current month
				t.Fatal(err)
			}
			if bad != 0 {
				t.Fatalf("op %d: a quota is overspent", i)
			}
			if bal, led, _ := balanceOf(t, e.s.DB, a); bal != led {
				t.Fatalf("op %d: %s balance %s, ledger %s", i, a, bal, led)
			}
		}
		var used, logged int
		if err := e.s.DB.Q().Get(ctx, &used, `SELECT COALESCE(SUM(used), 0) FROM bundle_usage`); err != nil {
			t.Fatal(err)
		}
		var debugs []string
		if err := e.s.DB.Q().Select(ctx, &debugs, `SELECT debug FROM call_log WHERE debug LIKE '%quota_seconds=%'`); err != nil {
			t.Fatal(err)
		}
		for _, d := range debugs {
			n, _ := strconv.Atoi(d[strings.LastIndex(d, "=")+1:])
			logged += n
		}
		if used != logged || used == 0 {
			t.Fatalf("quotas used %d s, calls say %d s", used, logged)
		}
	})
}
