package billing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// astKey is the Asterisk's server key: auth_by sip_extension, so answers are plain text.
const astKey = "asterisk-key-0123456789"

// callTariff is a tariff as the tests seed it, with the numbers an independent
// computation needs.
type callTariff struct {
	ID                               int64
	BillType                         string
	Free, Step                       int
	First                            int // the initial block; 0 is Step
	Multiplier, DIDMult, SwitchPrice money.Micro
}

// rtSeed is the rating data the call tests use.
type rtSeed struct {
	base, perMinute, option callTariff
	route1, route2, route3  int64
	// cost per minute of each direction code's entries, by priority
}

// execSQL runs a statement or fails the test.
func execSQL(t testing.TB, d *db.DB, q string, args ...any) {
	t.Helper()
	if _, err := d.Q().Exec(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func insertID(t testing.TB, d *db.DB, q string, args ...any) int64 {
	t.Helper()
	id, err := d.Q().Insert(context.Background(), q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return id
}

// seedCalls creates the Asterisk key through addKey, and a SIP server, directions, routes
// and tariffs by SQL (their management methods are another file's business), then
// refreshes the snapshot.
//
//	directions: 7 Russia (id 1), 79 Russia Mobile (id 2, 11 digits only), 44 UK (id 3),
//	            4420 London (id 4), 999 Nowhere (id 5, no entries)
//	base (by_second, switch 0.05, ×1.0, DID ×2.0):
//	   Russia 0.10 via route1; Russia Mobile 0.20 via route1 then 0.30 via route2 then 0.40 via route3 (disabled)
//	   UK 0.05 via route2; London 0.0 via route1 (free)
//	perminute (byminute, ×1.5, no switch): Russia Mobile 0.20 via route2
//	option (is_option): UK 0.01 via route3-enabled? no: via route1
func seedCalls(t testing.TB, e *env) rtSeed {
	t.Helper()
	d := e.s.DB
	execSQL(t, d, `INSERT INTO sip_servers (name, address) VALUES ('pbx1', '10.0.0.1')`)
	e.addKey("name", "pbx1", "apikey", astKey, "auth_by", "sip_extension", "accessLevel", itoa(keys.LevelAsterisk))
	for _, dir := range []struct {
		code     string
		id       int
		name     string
		min, max int
	}{{"7", 1, "Russia", 0, 32}, {"79", 2, "Russia Mobile", 11, 11}, {"44", 3, "United Kingdom", 0, 32},
		{"4420", 4, "London", 0, 32}, {"999", 5, "Nowhere", 0, 32}} {
		execSQL(t, d, `INSERT INTO directions (code, id, name, min_len, max_len) VALUES (?, ?, ?, ?, ?)`,
			dir.code, dir.id, dir.name, dir.min, dir.max)
	}
	var s rtSeed
	s.route1 = insertID(t, d, `INSERT INTO routes (name, prefix, enabled) VALUES ('route1', 'out1/', 1)`)
	s.route2 = insertID(t, d, `INSERT INTO routes (name, prefix, enabled) VALUES ('route two', 'out2/', 1)`)
	s.route3 = insertID(t, d, `INSERT INTO routes (name, prefix, enabled) VALUES ('route3', 'out3/', 0)`)
	s.base = callTariff{BillType: "by_second", Step: 1, Multiplier: money.One, DIDMult: 2 * money.One, SwitchPrice: 50_000}
	s.base.ID = insertID(t, d, `INSERT INTO rates (name, bill_type, switch_price, multiplier, did_multiplier)
		VALUES ('base', 'by_second', ?, ?, ?)`, s.base.SwitchPrice, s.base.Multiplier, s.base.DIDMult)
	s.perMinute = callTariff{BillType: "byminute", Step: 60, Multiplier: 1_500_000, DIDMult: money.One}
	s.perMinute.ID = insertID(t, d, `INSERT INTO rates (name, bill_type, multiplier) VALUES ('perminute', 'byminute', 1500000)`)
	s.option = callTariff{BillType: "by_second", Step: 1, Multiplier: money.One, DIDMult: money.One}
	s.option.ID = insertID(t, d, `INSERT INTO rates (name, bill_type, is_option) VALUES ('uk-option', 'by_second', 1)`)
	entry := func(tariff int64, dir, prior int, cost money.Micro, route int64) {
		execSQL(t, d, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES (?, ?, ?, ?, ?)`,
			tariff, dir, prior, cost, route)
	}
	entry(s.base.ID, 1, 1, 100_000, s.route1)
	entry(s.base.ID, 2, 1, 200_000, s.route1)
	entry(s.base.ID, 2, 2, 300_000, s.route2)
	entry(s.base.ID, 2, 3, 400_000, s.route3)
	entry(s.base.ID, 3, 1, 50_000, s.route2)
	entry(s.base.ID, 4, 1, 0, s.route1)
	entry(s.perMinute.ID, 2, 1, 200_000, s.route2)
	entry(s.option.ID, 3, 1, 10_000, s.route1)
	execSQL(t, d, `UPDATE rating_version SET version = version + 1`)
	e.s.ratingChanged(context.Background())
	return s
}

// callUser registers a user with one extension, a balance and the base tariff.
func callUser(t testing.TB, e *env, s rtSeed, name, ext string, balance string, kv ...string) {
	t.Helper()
	e.register(admin(), name, 11, append([]string{"sip_server", "10.0.0.1", "sip_extension", ext, "balance", balance}, kv...)...)
	e.updateUser(name, "rates", strconv.FormatInt(s.base.ID, 10))
}

// raw sends a request through the router without touching t (safe from goroutines).
func raw(h http.Handler, key, method string, params url.Values) (int, string) {
	req := httptest.NewRequest(http.MethodGet, "/billing/api/2.2/"+key+"/"+method+"?"+params.Encode(), nil)
	req.RemoteAddr = net.JoinHostPort("127.0.0.1", "40000")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func kv(pairs ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Set(pairs[i], pairs[i+1])
	}
	return v
}

// ast calls a method as the Asterisk for extension ext and returns the plain answer.
func (e *env) ast(method, ext string, pairs ...string) string {
	e.t.Helper()
	p := kv(pairs...)
	p.Set("login", ext)
	code, body := raw(e.h, astKey, method, p)
	if code != 200 && code != 400 {
		e.t.Fatalf("%s %v: HTTP %d %s", method, p, code, body)
	}
	return body
}

// balanceOf reads an account's balance and the sum of its ledger.
func balanceOf(t testing.TB, d *db.DB, user string) (balance, ledger, held money.Micro) {
	t.Helper()
	ctx := context.Background()
	q := d.Q()
	if err := q.Get(ctx, &balance, `SELECT a.balance FROM accounts a JOIN users u ON u.account_id = a.id WHERE u.username = ?`, user); err != nil {
		t.Fatal(err)
	}
	if err := q.Get(ctx, &ledger, `SELECT COALESCE(SUM(l.amount), 0) FROM ledger l JOIN users u ON u.account_id = l.account_id
		WHERE u.username = ?`, user); err != nil {
		t.Fatal(err)
	}
	if err := q.Get(ctx, &held, `SELECT COALESCE(SUM(r.amount), 0) FROM reservations r JOIN users u ON u.account_id = r.account_id
		WHERE u.username = ?`, user); err != nil {
		t.Fatal(err)
	}
	return
}

// ratCharge is an independent charge computation with big.Rat: billed seconds × cost ×
// multiplier (× DID multiplier) / 60 + switch price when billed > 0, rounded half-up.
func ratCharge(t callTariff, costPerMin money.Micro, length int, did bool) money.Micro {
	billed, first := 0, t.First
	if first == 0 {
		first = t.Step
	}
	if length > t.Free && length > 0 {
		billed = first
		if length > first {
			billed += (length - first + t.Step - 1) / t.Step * t.Step
		}
	}
	if billed == 0 {
		return 0
	}
	r := new(big.Rat).SetFrac64(int64(costPerMin), 1_000_000) // currency units per minute
	r.Mul(r, new(big.Rat).SetFrac64(int64(t.Multiplier), 1_000_000))
	if did {
		r.Mul(r, new(big.Rat).SetFrac64(int64(t.DIDMult), 1_000_000))
	}
	r.Mul(r, new(big.Rat).SetFrac64(int64(billed), 60))
	r.Add(r, new(big.Rat).SetFrac64(int64(t.SwitchPrice), 1_000_000))
	// to micro-units, half-up
	r.Mul(r, new(big.Rat).SetInt64(1_000_000))
	r.Add(r, big.NewRat(1, 2))
	q := new(big.Int).Quo(r.Num(), r.Denom()) // floor for non-negative values
	return money.Micro(q.Int64())
}

func fields(line string) []string { return strings.Split(line, " ") }

func TestCallPrepareAndFinish(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "alice", "10001", "10")
		callUser(t, e, s, "bob", "10002", "1")

		// Allowed line: MaxCallTime is the cap (7200 s of 0.20/min = 24 > 10 EUR: money-limited).
		// available 10 − switch 0.05 = 9.95 → 9.95/0.20 min = 2985 s.
		a := e.ast("callPrepare", "10001", "destination", "+7 901-000-0001", "uniqueid", "u1")
		want := "Allowed 2985 79010000001 10001 RussiaMobile out1/ route1 -1 -1"
		if a != want {
			t.Fatalf("callPrepare:\n got %q\nwant %q", a, want)
		}
		_, _, held := balanceOf(t, e.s.DB, "alice")
		if want := ratCharge(s.base, 200_000, 2985, false); held != want || held != 10*money.One {
			t.Fatalf("reserved %s, want %s", held, want)
		}
		// A second call has nothing left.
		if a := e.ast("callPrepare", "10001", "destination", "79010000002"); a != "Declined E_INSUFFICIENT_MONEY" {
			t.Fatalf("second call: %q", a)
		}
		// Finish: 61 s at 0.20/min + 0.05 = 0.253333 → 0.253333 EUR.
		a = e.ast("callFinish", "10001", "destination", "79010000001", "length", "61", "status", "ANSWER", "uniqueid", "u1")
		if a != "Saved RussiaMobile [10001/79010000001] via [route1] 61 0.2533 EUR ANSWER" {
			t.Fatalf("callFinish: %q", a)
		}
		bal, led, held := balanceOf(t, e.s.DB, "alice")
		charge := ratCharge(s.base, 200_000, 61, false)
		if bal != 10*money.One-charge || led != bal || held != 0 {
			t.Fatalf("after finish: balance %s ledger %s held %s (charge %s)", bal, led, held, charge)
		}
		// Idempotent: the same line again, nothing charged.
		if a2 := e.ast("callFinish", "10001", "destination", "79010000001", "length", "61", "status", "ANSWER", "uniqueid", "u1"); a2 != a {
			t.Fatalf("repeat: %q", a2)
		}
		if b2, _, _ := balanceOf(t, e.s.DB, "alice"); b2 != bal {
			t.Fatalf("repeat charged: %s → %s", bal, b2)
		}
		// Failover: prior=2 takes route two at 0.30; prior=3's route is disabled.
		a = e.ast("callPrepare", "10001", "destination", "79010000001", "prior", "2", "callerid", "555")
		if f := fields(a); f[0] != "Allowed" || f[3] != "555" || f[5] != "out2/" || f[6] != "routetwo" {
			t.Fatalf("prior 2: %q", a)
		}
		if a := e.ast("callPrepare", "10001", "destination", "79010000001", "prior", "3"); a != "Declined E_UNROUTABLE" {
			t.Fatalf("prior 3: %q", a)
		}
		// Without uniqueid: settles the oldest reservation with that destination and priority.
		a = e.ast("callFinish", "10001", "destination", "79010000001", "prior", "2", "length", "30", "status", "ANSWER")
		if !strings.HasPrefix(a, "Saved RussiaMobile [10001/79010000001] via [routetwo] 30 0.2 EUR") {
			t.Fatalf("finish prior 2: %q", a)
		}
		if _, _, held := balanceOf(t, e.s.DB, "alice"); held != 0 {
			t.Fatalf("reservation not settled: %s", held)
		}
		// Zero-length and cancelled calls are logged and cost nothing (no switch price).
		a = e.ast("callFinish", "10001", "destination", "79010000002", "length", "0", "status", "0CANCEL")
		if a != "Saved RussiaMobile [10001/79010000002] via [route1] 0 0 EUR 0CANCEL" {
			t.Fatalf("cancelled: %q", a)
		}
		// Unroutable: no direction, or a direction without entries.
		for _, n := range []string{"12345", "9991234"} {
			if a := e.ast("callPrepare", "10001", "destination", n); a != "Declined E_UNROUTABLE" {
				t.Fatalf("%s: %q", n, a)
			}
		}
		// 7901 is 4 digits: not Russia Mobile (11 only) but Russia (0.10).
		if a := e.ast("callPrepare", "10001", "destination", "7901"); !strings.Contains(a, " Russia out1/ ") {
			t.Fatalf("7901: %q", a)
		}
		// Free direction: the cap.
		if a := e.ast("callPrepare", "10002", "destination", "442012345678"); !strings.HasPrefix(a, "Allowed 7200 442012345678 10002 London ") {
			t.Fatalf("free: %q", a)
		}
		// Options: the UK option replaces base's UK entries; allowed_call_len and sip_max_call_len cap.
		execSQL(t, e.s.DB, `UPDATE extensions SET rates_options = ?, max_call_len = 300, pitch_shift = 3 WHERE extension = '10002'`,
			fmt.Sprint(s.option.ID))
		if a := e.ast("callPrepare", "10002", "destination", "441234567"); a != "Allowed 300 441234567 10002 UnitedKingdom out1/ route1 3 3" {
			t.Fatalf("option: %q", a)
		}
		e.updateUser("bob", "allowed_call_len", "100")
		if a := e.ast("callPrepare", "10002", "destination", "441234567"); !strings.HasPrefix(a, "Allowed 100 ") {
			t.Fatalf("allowed_call_len: %q", a)
		}
		// The extension's tariff wins over the user's: perminute, byminute, ×1.5.
		execSQL(t, e.s.DB, `UPDATE extensions SET rates_id = ? WHERE extension = '10002'`, s.perMinute.ID)
		e.updateUser("bob", "allowed_call_len", "0")
		// bob: 1 EUR − held (the option calls: 300 s × 0.01/min = 0.05, 100 s → 0.016667) ...
		_, _, held = balanceOf(t, e.s.DB, "bob")
		avail := money.One - held
		// 0.30 per minute → whole minutes affordable
		mins := int(avail / 300_000)
		a = e.ast("callPrepare", "10002", "destination", "79031234567")
		if want := fmt.Sprintf("Allowed %d 79031234567 10002 RussiaMobile out2/ routetwo 3 3", min(mins*60, 300)); a != want {
			t.Fatalf("ext tariff: %q want %q", a, want)
		}
		a = e.ast("callFinish", "10002", "destination", "79031234567", "length", "61", "status", "ANSWER")
		if !strings.Contains(a, " 61 0.6 EUR ") { // two minutes × 0.30
			t.Fatalf("byminute: %q", a)
		}
		// DID multiplier: base tariff, is_did → ×2.
		a = e.ast("callFinish", "10001", "destination", "79010000009", "length", "60", "status", "ANSWER", "is_did", "4930123")
		if !strings.Contains(a, " 60 0.45 EUR ") { // 0.20×2 + 0.05
			t.Fatalf("did: %q", a)
		}
		bal, led, _ = balanceOf(t, e.s.DB, "alice")
		if bal != led {
			t.Fatalf("balance %s != ledger %s", bal, led)
		}

		// Locks: -1, 0, 3 decline everything; 2 only external destinations.
		for _, active := range []int{-1, 0, 3} {
			e.updateUser("alice", "active", strconv.Itoa(active))
			if a := e.ast("callPrepare", "10001", "destination", "10002"); a != "Declined E_USER_LOCKED" {
				t.Fatalf("active %d: %q", active, a)
			}
		}
		e.updateUser("alice", "active", "2")
		if a := e.ast("callPrepare", "10001", "destination", "79010000001"); a != "Declined E_USER_LOCKED" {
			t.Fatalf("active 2 external: %q", a)
		}
		if a := e.ast("callPrepare", "10001", "destination", "10002"); !strings.HasPrefix(a, "Allowed 7200 10002 10001 Internal  internal ") {
			t.Fatalf("active 2 internal: %q", a)
		}
		// A locked user's call in progress is still billed.
		e.updateUser("alice", "active", "-1")
		if a := e.ast("callFinish", "10001", "destination", "79010000001", "length", "1", "status", "ANSWER"); !strings.HasPrefix(a, "Saved ") {
			t.Fatalf("locked finish: %q", a)
		}
		e.updateUser("alice", "active", "1")

		// Bad input: documented codes, nothing changes.
		before, _, _ := balanceOf(t, e.s.DB, "alice")
		for _, c := range []struct {
			method, code string
			args         []string
		}{
			{"callPrepare", apierr.MissingArgument, nil},
			{"callPrepare", apierr.InvalidArgument, []string{"destination", "+"}},
			{"callPrepare", apierr.InvalidArgument, []string{"destination", "7901", "prior", "0"}},
			{"callPrepare", apierr.InvalidArgument, []string{"destination", "7901", "prior", "x"}},
			{"callFinish", apierr.InvalidArgument, []string{"destination", "7901", "length", "-1"}},
			{"callFinish", apierr.InvalidArgument, []string{"destination", "7901", "length", "abc"}},
			{"callFinish", apierr.InvalidArgument, []string{"destination", "79[01]"}},
		} {
			if a := e.ast(c.method, "10001", c.args...); a != c.code {
				t.Fatalf("%s %v: %q, want %s", c.method, c.args, a, c.code)
			}
		}
		if after, _, _ := balanceOf(t, e.s.DB, "alice"); after != before {
			t.Fatalf("bad input changed the balance")
		}
		// Client keys cannot reach level 50; an unknown extension is E_AUTH_FAILED.
		e.fails(e.do(e.web, "callPrepare", admin("destination", "7901")), apierr.InsufficientAccess, 200)
		if a := e.ast("callPrepare", "99999", "destination", "7901"); a != apierr.AuthFailed {
			t.Fatalf("unknown extension: %q", a)
		}
	})
}

// TestReservationExpiry: a reservation past MaxCallTime + grace no longer holds money.
func TestReservationExpiry(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "carol", "10003", "1")
		if a := e.ast("callPrepare", "10003", "destination", "79010000001"); !strings.HasPrefix(a, "Allowed 285 ") {
			t.Fatalf("prepare: %q", a)
		}
		if a := e.ast("callPrepare", "10003", "destination", "79010000001"); a != "Declined E_INSUFFICIENT_MONEY" {
			t.Fatalf("second: %q", a)
		}
		execSQL(t, e.s.DB, `UPDATE reservations SET expires_at = 1`)
		if a := e.ast("callPrepare", "10003", "destination", "79010000001"); !strings.HasPrefix(a, "Allowed 285 ") {
			t.Fatalf("after expiry: %q", a)
		}
		// Expired reservations hold nothing at once; the background sweep deletes and logs
		// both.
		execSQL(t, e.s.DB, `UPDATE reservations SET expires_at = 1`)
		if n, err := e.s.sweepReservations(context.Background(), e.s.DB.Q(), 0); err != nil || n != 2 {
			t.Fatalf("sweep: %d %v", n, err)
		}
	})
}

// prepared is one granted call of a concurrency test.
type prepared struct {
	uid  string
	secs int
	line string
}

// concurrentPrepare runs n callPrepare at once, spread over handlers, for one extension.
func concurrentPrepare(t *testing.T, hs []http.Handler, ext, dest string, n int) []prepared {
	var wg sync.WaitGroup
	out := make([]prepared, n)
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			uid := fmt.Sprintf("c%s-%d", ext, i)
			code, body := raw(hs[i%len(hs)], astKey, "callPrepare", kv("login", ext, "destination", dest, "uniqueid", uid))
			if code != 200 {
				errs <- fmt.Sprintf("HTTP %d %s", code, body)
				return
			}
			f := fields(body)
			switch {
			case f[0] == "Allowed":
				secs, _ := strconv.Atoi(f[1])
				out[i] = prepared{uid: uid, secs: secs, line: body}
			case body != "Declined E_INSUFFICIENT_MONEY":
				errs <- body
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for m := range errs {
		t.Fatal(m)
	}
	return out
}

func checkConcurrent(t *testing.T, e *env, hs []http.Handler, s rtSeed) {
	// 5.00 EUR balance, 2.00 overdraft.
	callUser(t, e, s, "dave", "10004", "5")
	execSQL(t, e.s.DB, `UPDATE accounts SET overdraft = 2000000 WHERE id = (SELECT account_id FROM users WHERE username = 'dave')`)
	// 120 s at 0.20/min + 0.05 = 0.45 a call: 15 whole calls, then one shorter.
	e.updateUser("dave", "allowed_call_len", "120")
	calls := concurrentPrepare(t, hs, "10004", "79010000001", 50)
	_, _, held := balanceOf(t, e.s.DB, "dave")
	var sum money.Micro
	granted := 0
	for _, c := range calls {
		if c.uid != "" {
			granted++
			sum += ratCharge(s.base, 200_000, c.secs, false)
		}
	}
	if held != sum || held > 7*money.One || granted != 16 || 7*money.One-held >= 50_000+200_000/60 {
		t.Fatalf("reserved %s (answers say %s) of 7.00 by %d calls", held, sum, granted)
	}
	t.Logf("%d of 50 concurrent calls granted, %s reserved of 7.00", granted, held)
	// Finish them all at once with lengths up to their grant.
	var wg sync.WaitGroup
	charges := make([]money.Micro, len(calls))
	for i, c := range calls {
		if c.uid == "" {
			continue
		}
		wg.Add(1)
		go func(i int, c prepared) {
			defer wg.Done()
			length := c.secs * (i % 7) / 6
			p := kv("login", "10004", "destination", "79010000001", "uniqueid", c.uid, "length", strconv.Itoa(length), "status", "ANSWER")
			// Every third call's callFinish is sent twice at once (a CURL retry racing the
			// original): both get the same line, one charge.
			var dup string
			var dupWG sync.WaitGroup
			if i%3 == 0 {
				dupWG.Add(1)
				go func() { defer dupWG.Done(); _, dup = raw(hs[i%len(hs)], astKey, "callFinish", p) }()
			}
			code, body := raw(hs[(i+1)%len(hs)], astKey, "callFinish", p)
			dupWG.Wait()
			if code == 200 && strings.HasPrefix(body, "Saved ") && (i%3 != 0 || dup == body) {
				charges[i] = ratCharge(s.base, 200_000, length, false)
			} else {
				t.Logf("finish %d: %d %q dup %q", i, code, body, dup)
				charges[i] = -1
			}
		}(i, c)
	}
	wg.Wait()
	var total money.Micro
	for _, c := range charges {
		if c < 0 {
			t.Fatal("a callFinish failed")
		}
		total += c
	}
	bal, led, held := balanceOf(t, e.s.DB, "dave")
	if bal != 5*money.One-total || led != bal || held != 0 {
		t.Fatalf("balance %s ledger %s held %s; want %s", bal, led, held, 5*money.One-total)
	}
	if bal < -2*money.One {
		t.Fatalf("spent past the overdraft: %s", bal)
	}
}

func TestCallConcurrency(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		checkConcurrent(t, e, []http.Handler{e.h}, s)
	})
}

// Calls and transfers out of one account at once never spend more than it has: the call
// path's groups and transferMoney take the same account locks (accountLocks).
func TestCallsAndTransfersShareTheLock(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "dave", "10004", "5") // no overdraft
		callUser(t, e, s, "erin", "10005", "0")
		e.updateUser("dave", "allowed_call_len", "120") // 0.45 a call
		var wg sync.WaitGroup
		var sent atomic.Int64 // transfers of 0.30 accepted
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, body := raw(e.h, e.web, "transferMoney", user("dave", "destination", "erin", "amount", "0.3"))
				switch {
				case code == 200 && strings.Contains(body, `"result":true`):
					sent.Add(1)
				case !strings.Contains(body, apierr.InsufficientMoney):
					t.Errorf("transfer %d: %d %s", i, code, body)
				}
			}()
		}
		calls := concurrentPrepare(t, []http.Handler{e.h}, "10004", "79010000001", 20)
		wg.Wait()
		bal, led, held := balanceOf(t, e.s.DB, "dave")
		if bal != 5*money.One-money.Micro(sent.Load())*300_000 || led != bal {
			t.Fatalf("balance %s, ledger %s after %d transfers", bal, led, sent.Load())
		}
		if held > bal {
			t.Fatalf("%s held by calls of an account with %s", held, bal)
		}
		granted := 0
		for _, c := range calls {
			if c.uid != "" {
				granted++
			}
		}
		ebal, _, _ := balanceOf(t, e.s.DB, "erin")
		t.Logf("%d transfers and %d calls granted: balance %s, held %s; erin %s", sent.Load(), granted, bal, held, ebal)
	})
}

// TestCallsTwoDaemons: two Services over one database (two connection pools, as two
// daemons would have) share reservations and see each other's rating changes.
func TestCallsTwoDaemons(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			open := samePool(t, dialect)
			d1 := open() // Bootstrap (in newEnv) migrates it
			e := newEnv(t, d1)
			s2, err := Start(ctx, open(), testConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			s2.rt.every = 10 * time.Millisecond
			s := seedCalls(t, e)
			// Daemon 2 notices the seeded rating on its next check. Calls that arrive while
			// a reload runs are rated with the previous snapshot (at most one interval
			// stale), so let one check happen before the burst.
			time.Sleep(20 * time.Millisecond)
			if _, err := s2.rating(ctx); err != nil {
				t.Fatal(err)
			}
			if s2.rt.version.Load() != e.s.rt.version.Load() {
				t.Fatalf("daemon 2 at rating version %d, daemon 1 at %d", s2.rt.version.Load(), e.s.rt.version.Load())
			}
			hs := []http.Handler{e.h, s2.Handler()}
			checkConcurrent(t, e, hs, s)

			// A rating change made through daemon 1 reaches daemon 2 within its check interval.
			callUser(t, e, s, "erin", "10005", "1")
			p := kv("login", "10005", "destination", "74951234567")
			if _, a := raw(hs[1], astKey, "callPrepare", p); !strings.HasPrefix(a, "Allowed 570 ") { // 0.95/0.10 min
				t.Fatalf("before: %q", a)
			}
			execSQL(t, d1, `DELETE FROM reservations`)
			execSQL(t, d1, `UPDATE rate_entries SET cost = 200000 WHERE direction_id = 1`)
			execSQL(t, d1, `UPDATE rating_version SET version = version + 1`)
			e.s.ratingChanged(ctx)
			if _, a := raw(hs[0], astKey, "callPrepare", p); !strings.HasPrefix(a, "Allowed 285 ") {
				t.Fatalf("daemon 1 after: %q", a)
			}
			execSQL(t, d1, `DELETE FROM reservations`)
			time.Sleep(20 * time.Millisecond)
			if _, a := raw(hs[1], astKey, "callPrepare", p); !strings.HasPrefix(a, "Allowed 285 ") {
				t.Fatalf("daemon 2 after: %q", a)
			}
		})
	}
}
