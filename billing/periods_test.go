package billing

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// TestRatePeriods: a peak period around now on the base tariff (Russia 0.10/min + 0.05
// switch, by the second), priced 0.60/min in a zone where it is about noon; callPrepare
// grants across the boundary ahead, callFinish charges a call that crossed the one behind,
// each second at the rate in force then (an independent per-second model).
func TestRatePeriods(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		rates := strconv.FormatInt(s.base.ID, 10)
		now := time.Now().Unix()
		h := 12 - time.Unix(now, 0).UTC().Hour() // local time about noon: no midnight in the window
		zone := "Etc/GMT"
		if h > 0 {
			zone = fmt.Sprintf("Etc/GMT-%d", h)
		} else if h < 0 {
			zone = fmt.Sprintf("Etc/GMT+%d", -h)
		}
		off := int64(h) * 3600
		sod := func(t int64) int64 { return ((t+off)%86400 + 86400) % 86400 }
		from, to := sod(now)-30, sod(now)+40
		clock := func(s int64) string { return fmt.Sprintf("%02d:%02d:%02d", s/3600, s/60%60, s%60) }

		// Bad input: clear errors, nothing stored.
		for _, bad := range []struct {
			kv   []string
			code string
		}{
			{[]string{"name", "x", "days", "mon-fry"}, apierr.InvalidArgument},
			{[]string{"name", "x", "days", "mon", "start", "10:00", "end", "09:00"}, apierr.InvalidArgument},
			{[]string{"name", "x", "days", "mon", "end", "24:01"}, apierr.InvalidArgument},
			{[]string{"name", "x", "dates", "2026-02-30"}, apierr.InvalidArgument},
			{[]string{"name", "x", "days", "mon", "timezone", "Mars/Olympus"}, apierr.InvalidArgument},
			{[]string{"name", "x"}, apierr.MissingArgument},
		} {
			e.fails(e.do(e.web, "addRatePeriod", admin(append([]string{"rates", rates}, bad.kv...)...)), bad.code, 400)
		}
		e.ok(e.do(e.web, "addRatePeriod", admin("rates", rates, "name", "peak", "days", "sun-sat",
			"start", clock(from), "end", clock(to), "timezone", zone)))
		e.fails(e.do(e.web, "addRatePeriod", admin("rates", rates, "name", "peak", "days", "mon")), apierr.DataAbort, 200)
		// A holiday far away, in the tariff's zone (given once), listed first.
		e.ok(e.do(e.web, "addRatePeriod", admin("rates", rates, "name", "xmas", "dates", "2030-12-25,2030-12-26")))
		e.fails(e.do(e.web, "updateDirectionPeriod", admin("rates", rates, "direction", "1", "period", "nope",
			"cost", "0.6")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "updateDirectionPeriod", admin("rates", rates, "direction", "5", "period", "peak",
			"cost", "0.6")), apierr.NotExist, 200)
		e.ok(e.do(e.web, "updateDirectionPeriod", admin("rates", rates, "direction", "1", "period", "peak", "cost", "0.6")))
		e.ok(e.do(e.web, "updateDirectionPeriod", admin("rates", rates, "direction", "1", "period", "xmas", "cost", "0.01")))
		e.ok(e.do(e.web, "updateDirectionPeriod", admin("rates", rates, "direction", "1", "period", "xmas"))) // removed
		ps := objs(t, e.ok(e.do(e.web, "getRatePeriods", admin("rates", rates))))
		if len(ps) != 2 || jstr(ps[0]["name"]) != "xmas" || jstr(ps[1]["timezone"]) != zone ||
			jstr(ps[1]["days"]) != "sun,mon,tue,wed,thu,fri,sat" || !strings.Contains(fmt.Sprint(ps[1]["costs"]), "cost:0.6 ") ||
			fmt.Sprint(ps[0]["costs"]) != "[]" {
			t.Fatalf("getRatePeriods: %v", ps)
		}

		// The model: 0.60/min in [from, to) local, else 0.10; by the second + 0.05.
		charge := func(start int64, length int) money.Micro {
			if length <= 0 {
				return 0
			}
			var sum int64
			for i := range int64(length) {
				if x := sod(start + i); x >= from && x < to {
					sum += 600_000
				} else {
					sum += 100_000
				}
			}
			return money.Micro((sum+30)/60) + 50_000
		}
		grant := func(start int64, avail money.Micro) int {
			l := 0
			for charge(start, l+1) <= avail {
				l++
			}
			return l
		}

		// 0.65: the peak's remaining ~40 s cost ~0.40, then 0.20 buys ~120 s off-peak (not
		// 60 s at the peak price, nor 360 s off-peak).
		callUser(t, e, s, "alice", "10001", "0.65")
		t0 := time.Now().Unix()
		a := e.ast("callPrepare", "10001", "destination", "74950000001", "uniqueid", "p1")
		t1 := time.Now().Unix()
		got, _ := strconv.Atoi(strings.TrimPrefix(fields(a)[1], ""))
		ok := false
		for st := t0; st <= t1; st++ {
			ok = ok || (strings.HasPrefix(a, "Allowed ") && got == grant(st, 650_000))
		}
		if !ok || got < 150 || got > 170 {
			t.Fatalf("callPrepare across the boundary: %q, want %d (start %d)", a, grant(t0, 650_000), t0)
		}
		if _, _, held := balanceOf(t, e.s.DB, "alice"); held > 650_000 || held < 640_000 {
			t.Fatalf("held %s", held)
		}

		// A 90 s call ending now began ~60 s before the peak: charged per segment.
		before, _, _ := balanceOf(t, e.s.DB, "alice")
		t0 = time.Now().Unix()
		a = e.ast("callFinish", "10001", "destination", "74950000001", "length", "90", "uniqueid", "p1")
		t1 = time.Now().Unix()
		if !strings.HasPrefix(a, "Saved ") {
			t.Fatalf("callFinish: %q", a)
		}
		after, led, held := balanceOf(t, e.s.DB, "alice")
		ok = false
		for end := t0; end <= t1; end++ {
			ok = ok || before-after == charge(end-90, 90)
		}
		if !ok || led != after || held != 0 {
			t.Fatalf("charged %s, want %s (ledger %s, held %s)", before-after, charge(t0-90, 90), led, held)
		}
		if flat := charge(0, 0); before-after == 150_000+flat || before-after == 900_000+50_000 {
			t.Fatalf("charged a flat price: %s", before-after)
		}

		// Deleting the period brings the plain price back: 0.10/min.
		e.ok(e.do(e.web, "deleteRatePeriod", admin("rates", rates, "name", "peak")))
		e.fails(e.do(e.web, "deleteRatePeriod", admin("rates", rates, "name", "peak")), apierr.NotExist, 200)
		before, _, _ = balanceOf(t, e.s.DB, "alice")
		e.ast("callFinish", "10001", "destination", "74950000001", "length", "60", "uniqueid", "p2")
		if after, _, _ := balanceOf(t, e.s.DB, "alice"); before-after != 150_000 {
			t.Fatalf("after deleteRatePeriod: charged %s, want 0.15", before-after)
		}
		// A user may read its tariff's periods, not change them.
		if a := e.do(e.web, "addRatePeriod", user("alice", "rates", rates, "name", "y", "days", "mon")); a.code() != apierr.InsufficientAccess {
			t.Fatalf("a user adds a period: %s", a.Body)
		}
		if ps := objs(t, e.ok(e.do(e.web, "getRatePeriods", user("alice", "rates", rates)))); len(ps) != 1 {
			t.Fatalf("alice's tariff's periods: %v", ps)
		}
	})
}

// TestRatePeriodsReseller: the reseller's own tariff has a peak around now; its grant is
// the longest its account pays across the boundary ahead, and a call that crossed the
// boundary behind is charged to it per segment, its users' plain price unchanged.
func TestRatePeriodsReseller(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		resellerChain(t, e, s, "2", "1.0")
		resellerUser(t, e, s, "alice", "10001", "0.5") // corp keeps 0.50
		var wholesale int64
		if err := e.s.DB.Q().Get(context.Background(), &wholesale, `SELECT id FROM rates WHERE name = 'wholesale'`); err != nil {
			t.Fatal(err)
		}
		rates := strconv.FormatInt(wholesale, 10)
		now := time.Now().Unix()
		from, to := now-30, now+40 // unix seconds; the period in UTC wall clock around them
		sod := func(t int64) int64 { return (t%86400 + 86400) % 86400 }
		if sod(from) > sod(to) {
			t.Skip("the test's window would span midnight UTC") // 70 s a day
		}
		clock := func(x int64) string { return fmt.Sprintf("%02d:%02d:%02d", x/3600, x/60%60, x%60) }
		e.ok(e.do(e.web, "addRatePeriod", admin("rates", rates, "name", "peak", "days", "sun-sat",
			"start", clock(sod(from)), "end", clock(sod(to)))))
		e.ok(e.do(e.web, "updateDirectionPeriod", admin("rates", rates, "direction", "1", "period", "peak", "cost", "0.6")))
		// corp's price: 0.60/min at the peak, else 0.06; by the second, no switch price.
		sum := func(start int64, n int) int64 {
			var v int64
			for i := range int64(n) {
				if x := start + i; x >= from && x < to {
					v += 600_000
				} else {
					v += 60_000
				}
			}
			return v
		}
		corpCharge := func(start int64, n int) money.Micro { return money.Micro((sum(start, n) + 30) / 60) }

		// alice alone pays 270 s; corp's 0.50 pays the ~40 s left of the peak (0.40) and
		// ~100 s after it.
		t0 := time.Now().Unix()
		a := e.ast("callPrepare", "10001", "destination", "74950000001", "uniqueid", "r1")
		t1 := time.Now().Unix()
		got, _ := strconv.Atoi(fields(a)[1])
		ok := false
		for st := t0; st <= t1; st++ {
			l := 0
			for corpCharge(st, l+1) <= 500_000 {
				l++
			}
			ok = ok || l == got
		}
		if !strings.HasPrefix(a, "Allowed ") || !ok || got < 130 || got > 150 {
			t.Fatalf("callPrepare: %q", a)
		}
		before, _, _ := balanceOf(t, e.s.DB, "corp")
		t0 = time.Now().Unix()
		if a := e.ast("callFinish", "10001", "destination", "74950000001", "length", "90", "uniqueid", "r1"); !strings.HasPrefix(a, "Saved ") {
			t.Fatalf("callFinish: %q", a)
		}
		t1 = time.Now().Unix()
		after, _, held := balanceOf(t, e.s.DB, "corp")
		ok = false
		for end := t0; end <= t1; end++ {
			ok = ok || before-after == corpCharge(end-90, 90)
		}
		if !ok || held != 0 {
			t.Fatalf("corp charged %s, want %s (held %s)", before-after, corpCharge(t0-90, 90), held)
		}
		if bal, _, _ := balanceOf(t, e.s.DB, "alice"); bal != 300_000 { // 90 s at 0.10 + 0.05
			t.Fatalf("alice: %s", bal)
		}
		checkBooks(t, e.s.DB, "alice", "corp", "top")
	})
}

func TestParseDays(t *testing.T) {
	for in, want := range map[string]string{"mon-fri": "mon,tue,wed,thu,fri", "fri-mon": "sun,mon,fri,sat",
		"Sat, sun": "sun,sat", "wed": "wed", "": ""} {
		if m, err := parseDays(in); err != nil || formatDays(m) != want {
			t.Errorf("parseDays(%q) = %q, %v; want %q", in, formatDays(m), err, want)
		}
	}
	for _, bad := range []string{"mon-", "-fri", "monday", "mon-xyz"} {
		if _, err := parseDays(bad); err == nil {
			t.Errorf("parseDays(%q): no error", bad)
		}
	}
}
