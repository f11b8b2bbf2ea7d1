package billing

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// syncBuffer is a log destination the test reads while the daemon writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// captureLog sends the daemon's log to a buffer the test reads.
func captureLog(e *env) *syncBuffer {
	var b syncBuffer
	e.s.Log = slog.New(slog.NewTextHandler(&b, nil))
	return &b
}

// lastLog is the newest event-log record of user, as getLogs answers it.
func lastLog(e *env, name string) map[string]any {
	e.t.Helper()
	recs, _ := e.ok(e.do(e.web, "getLogs", user(name, "limit", "1"))).Response.([]any)
	if len(recs) != 1 {
		e.t.Fatalf("getLogs of %s: %v", name, recs)
	}
	return recs[0].(map[string]any)
}

// The reproduction: prepare A, finish an unprepared B, prepare C. B's finish must
// not release A's reservation, so C finds nothing left to spend.
func TestFinishSettlesOnlyItsOwnReservation(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "alice", "10001", "10")
		const dest = "79010000001" // 0.20/min + 0.05: 10 EUR buys 2985 s
		if a := e.ast("callPrepare", "10001", "destination", dest, "uniqueid", "A"); !strings.HasPrefix(a, "Allowed 2985 ") {
			t.Fatalf("prepare A: %q", a)
		}
		e.ast("callFinish", "10001", "destination", dest, "length", "60", "status", "ANSWER", "uniqueid", "B")
		charge := ratCharge(s.base, 200_000, 60, false)
		if bal, _, held := balanceOf(t, e.s.DB, "alice"); bal != 10*money.One-charge || held != 10*money.One {
			t.Fatalf("after unprepared B: balance %s, held %s (A's reservation must stay)", bal, held)
		}
		if got := lastLog(e, "alice")["granted"]; got != "" {
			t.Errorf("unprepared call's granted = %v, want empty", got)
		}
		if a := e.ast("callPrepare", "10001", "destination", dest, "uniqueid", "C"); a != "Declined E_INSUFFICIENT_MONEY" {
			t.Fatalf("prepare C while A holds everything: %q", a)
		}
		// A ends at its grant: it was paid for, and only B's unprepared cost is below zero.
		e.ast("callFinish", "10001", "destination", dest, "length", "2985", "status", "ANSWER", "uniqueid", "A")
		bal, led, held := balanceOf(t, e.s.DB, "alice")
		if bal != -charge || led != bal || held != 0 {
			t.Fatalf("after A: balance %s ledger %s held %s, want %s", bal, led, held, -charge)
		}
		// Without uniqueid, a finish settles the oldest reservation of that destination.
		e.ok(e.do(e.web, "transferMoney", admin("destination", "alice", "amount", "10")))
		e.ast("callPrepare", "10001", "destination", dest, "uniqueid", "D")
		e.ast("callFinish", "10001", "destination", dest, "length", "1", "status", "ANSWER")
		if _, _, held := balanceOf(t, e.s.DB, "alice"); held != 0 {
			t.Fatalf("a finish without uniqueid left %s held", held)
		}
		checkLedger(t, e)
	})
}

// A length up to 2 s above the grant is billed as the grant; more than 5 s above it is
// charged in full, flagged on the log record and logged.
func TestFinishAboveGrant(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		logs := captureLog(e)
		s := seedCalls(t, e)
		const dest = "79010000001" // 0.20/min + 0.05: 10 EUR buys 2985 s
		for i, c := range []struct {
			length, charged int
			over            bool
		}{{2987, 2985, false}, {2988, 2988, false}, {2990, 2990, false}, {2991, 2991, true}, {2000, 2000, false}} {
			name, ext, uid := "u"+itoa(i), itoa(10010+i), "call"+itoa(i)
			callUser(t, e, s, name, ext, "10")
			if a := e.ast("callPrepare", ext, "destination", dest, "uniqueid", uid); !strings.HasPrefix(a, "Allowed 2985 ") {
				t.Fatalf("prepare: %q", a)
			}
			a := e.ast("callFinish", ext, "destination", dest, "length", itoa(c.length), "status", "ANSWER", "uniqueid", uid)
			if f := fields(a); f[5] != itoa(c.charged) {
				t.Errorf("length %d: answered %q, want %d s charged", c.length, a, c.charged)
			}
			bal, led, _ := balanceOf(t, e.s.DB, name)
			if want := 10*money.One - ratCharge(s.base, 200_000, c.charged, false); bal != want || led != bal {
				t.Errorf("length %d: balance %s ledger %s, want %s", c.length, bal, led, want)
			}
			rec := lastLog(e, name)
			if rec["granted"] != nil && rec["granted"].(interface{ String() string }).String() != "2985" {
				t.Errorf("length %d: granted = %v", c.length, rec["granted"])
			}
			if rec["over_grant"] != c.over {
				t.Errorf("length %d: over_grant = %v, want %v", c.length, rec["over_grant"], c.over)
			}
			// The WARN line, not the request line, which names every call's uniqueid.
			warned := false
			for _, line := range strings.Split(logs.String(), "\n") {
				warned = warned || strings.Contains(line, "level=WARN") && strings.Contains(line, "uniqueid="+uid+" ")
			}
			if warned != c.over {
				t.Errorf("length %d: logged %v, want %v:\n%s", c.length, warned, c.over, logs.String())
			}
		}
		if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "user=u3") {
			t.Errorf("the overrun is not a WARN naming the user:\n%s", logs.String())
		}
		checkLedger(t, e)
	})
}

func TestChargedLength(t *testing.T) {
	grant := sql.NullInt64{Int64: 100, Valid: true}
	for _, c := range []struct {
		secs    int
		grant   sql.NullInt64
		charged int
		over    bool
	}{{100, grant, 100, false}, {101, grant, 100, false}, {102, grant, 100, false}, {103, grant, 103, false},
		{105, grant, 105, false}, {106, grant, 106, true}, {50, grant, 50, false}, {500, sql.NullInt64{}, 500, false}} {
		if charged, over := chargedLength(c.secs, c.grant); charged != c.charged || over != c.over {
			t.Errorf("chargedLength(%d, %v) = %d, %v; want %d, %v", c.secs, c.grant, charged, over, c.charged, c.over)
		}
	}
}

// ledgerRows counts an account's ledger rows.
func ledgerRows(t *testing.T, e *env, account string) int {
	t.Helper()
	var n int
	if err := e.s.DB.Q().Get(context.Background(), &n, `SELECT count(*) FROM ledger WHERE account_id = ?`, account); err != nil {
		t.Fatal(err)
	}
	return n
}

// An account that holds money or has a history is not deleted, and its ledger stays.
func TestDeleteAccountKeepsHistory(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		account := func(name string) string { return field(e.ok(e.do(e.web, "getInfo", user(name))), "account") }
		e.register(admin(), "ann", 11, "balance", "10")
		e.register(admin(), "bob", 11, "balance", "5")
		e.register(admin(), "cat", 11)
		ann, bob, cat := account("ann"), account("bob"), account("cat")
		e.ok(e.do(e.web, "transferMoney", user("bob", "destination", "ann", "amount", "5"))) // bob: 0, with a history
		for _, n := range []string{"ann", "bob", "cat"} {
			e.ok(e.do(e.web, "deleteUser", admin("user", n)))
		}
		for _, a := range []string{ann, bob} {
			before := ledgerRows(t, e, a)
			e.fails(e.do(e.web, "deleteAccount", admin("account", a)), apierr.DataAbort, 200)
			if after := ledgerRows(t, e, a); before == 0 || after != before {
				t.Errorf("account %s: %d ledger rows, then %d", a, before, after)
			}
			e.ok(e.do(e.web, "getAccountInfo", admin("account", a))) // closed, kept
		}
		if got := field(e.ok(e.do(e.web, "getAccountInfo", admin("account", ann))), "balance"); got != "15" {
			t.Errorf("closed account's balance = %s, want 15", got)
		}
		// The database refuses too, whatever asks.
		if _, err := e.s.DB.Q().Exec(context.Background(), `DELETE FROM ledger WHERE account_id = ?`, ann); err == nil {
			t.Error("the database let a ledger row be deleted")
		}
		// An account without money or history goes.
		e.ok(e.do(e.web, "deleteAccount", admin("account", cat)))
		e.fails(e.do(e.web, "getAccountInfo", admin("account", cat)), apierr.NotExist, 200)
		checkLedger(t, e)
	})
}

// Refusals come after ownership: another tenant's account tells nothing of its users.
func TestDeleteAccountOwnershipFirst(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "corpa", 22)
		e.register(admin(), "corpb", 22)
		e.register(user("corpb"), "custb", 11)
		accountB := field(e.ok(e.do(e.web, "getInfo", user("custb"))), "account")
		a := e.do(e.web, "deleteAccount", user("corpa", "account", accountB))
		e.fails(a, apierr.DoesNotBelongToYou, 200)
		if strings.Contains(a.Body, "custb") || strings.Contains(a.Body, "users") {
			t.Errorf("a stranger learns about the account's users: %s", a.Body)
		}
		e.fails(e.do(e.web, "deleteAccount", user("corpa", "account", "999999999")), apierr.NotExist, 200)
		// Its manager is told.
		e.fails(e.do(e.web, "deleteAccount", user("corpb", "account", accountB)), apierr.AccountHasUsers, 200)
	})
}

// A deleted user's open calls go with it: reservations have no foreign key (sql/*/024),
// deleteUser deletes them itself, and keeps its call records.
func TestDeleteUserEndsItsReservations(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "alice", "10001", "10")
		if a := e.ast("callFinish", "10001", "destination", "79010000001", "uniqueid", "done", "length", "30"); !strings.HasPrefix(a, "Saved ") {
			t.Fatalf("finish: %q", a)
		}
		if a := e.ast("callPrepare", "10001", "destination", "79010000001", "uniqueid", "A"); !strings.HasPrefix(a, "Allowed ") {
			t.Fatalf("prepare: %q", a)
		}
		if n := e.count(`SELECT count(*) FROM reservations`); n != 1 {
			t.Fatalf("%d reservations open, want 1", n)
		}
		e.ok(e.do(e.web, "deleteUser", admin("user", "alice")))
		if n := e.count(`SELECT count(*) FROM reservations`); n != 0 {
			t.Errorf("%d reservations left by the deleted user", n)
		}
		// Its call records stay, naming no user (call_log has no foreign key on
		// PostgreSQL: sql/postgres/025).
		if n := e.count(`SELECT count(*) FROM call_log WHERE uniqueid = 'done' AND user_id IS NULL`); n != 1 {
			t.Errorf("the deleted user's call record: %d rows without a user, want 1", n)
		}
	})
}

// A corporate manager is a reseller: what it gives its users comes out of its account;
// administrators issue money.
func TestResellerPaysBalances(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		info := func(name string) answer { return e.ok(e.do(e.web, "getInfo", admin("username", name))) }
		bal := func(name string) string { return field(info(name), "balance") }
		e.register(admin(), "corp", 22)
		// The reproduction: a manager with nothing cannot hand out a million.
		e.fails(e.do(e.web, "registerUser", user("corp", "user", "sub", "web_password", md5hex("subpw"),
			"accesslevel", "11", "balance", "1000000")), apierr.InsufficientMoney, 200)
		e.fails(e.do(e.web, "getInfo", admin("username", "sub")), apierr.NotExist, 200)
		// Administrators issue money: one ledger row, nothing taken from their account.
		adminBefore := bal(adminName)
		e.register(admin(), "rich", 11, "balance", "100")
		richAcc := field(info("rich"), "account")
		if bal(adminName) != adminBefore || ledgerRows(t, e, richAcc) != 1 {
			t.Fatalf("issued money: admin %s → %s, %d rows", adminBefore, bal(adminName), ledgerRows(t, e, richAcc))
		}
		e.ok(e.do(e.web, "transferMoney", admin("destination", "corp", "amount", "100")))
		e.register(user("corp"), "sub", 11, "balance", "30")
		if bal("corp") != "70" || bal("sub") != "30" {
			t.Fatalf("after giving 30: corp %s, sub %s", bal("corp"), bal("sub"))
		}
		// A raise comes out of the manager's account, a cut goes back to it.
		e.ok(e.do(e.web, "updateAccount", user("corp", "username", "sub", "balance", "50")))
		if bal("corp") != "50" || bal("sub") != "50" {
			t.Fatalf("after a raise: corp %s, sub %s", bal("corp"), bal("sub"))
		}
		e.ok(e.do(e.web, "updateAccount", user("corp", "username", "sub", "balance", "10")))
		if bal("corp") != "90" || bal("sub") != "10" {
			t.Fatalf("after a cut: corp %s, sub %s", bal("corp"), bal("sub"))
		}
		e.fails(e.do(e.web, "updateAccount", user("corp", "username", "sub", "balance", "1000")), apierr.InsufficientMoney, 200)
		// The manager's overdraft counts, as for a transfer.
		e.ok(e.do(e.web, "updateAccount", admin("username", "corp", "overdraft", "20")))
		e.ok(e.do(e.web, "updateAccount", user("corp", "username", "sub", "balance", "105")))
		e.ok(e.do(e.web, "transferMoney", user("sub", "destination", "corp", "amount", "105")))
		if bal("corp") != "100" || bal("sub") != "0" {
			t.Fatalf("round trip: corp %s, sub %s: money was made", bal("corp"), bal("sub"))
		}
		// In the giver's currency; both rows carry the same system-currency amount.
		e.register(admin(), "usd", 22, "currency", "USD", "balance", "100")
		e.register(user("usd"), "usub", 11, "balance", "10.80") // 10 EUR at 1.08
		if bal("usd") != "90" || bal("usub") != "10" {
			t.Fatalf("USD reseller: usd %s, usub %s", bal("usd"), bal("usub"))
		}
		var rows []money.Micro
		if err := e.s.DB.Q().Select(context.Background(), &rows, `SELECT amount FROM ledger WHERE kind = ? ORDER BY id DESC LIMIT 2`,
			KindInitial); err != nil {
			t.Fatal(err)
		}
		if len(rows) != 2 || rows[0] != -rows[1] || max(rows[0], rows[1]) != 10*money.One {
			t.Errorf("the gift's two rows: %v", rows)
		}
		checkLedger(t, e)
	})
}

// Currency codes are three ASCII letters; amounts are bounded and not negative.
func TestMoneyArgumentBounds(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		for _, code := range []string{"⯔", "US", "USDD", "U$D", "ÄBC", "uſd", "ßa"} {
			e.fails(e.do(e.web, "updateCurrency", admin("currency", code, "eur_course", "2")), apierr.InvalidArgument, 400)
		}
		e.ok(e.do(e.web, "updateCurrency", admin("currency", "chf", "eur_course", "0.95")))
		if got := field(e.ok(e.do(e.web, "getCourse", kv("currency", "CHF"))), "eur_course"); got != "0.95" {
			t.Errorf("CHF course = %s", got)
		}
		e.register(admin(), "ann", 11, "balance", "10")
		acc := field(e.ok(e.do(e.web, "getInfo", user("ann"))), "account")
		for _, c := range []struct {
			method string
			params []string
		}{
			{"createPrepaidCode", []string{"balance", "100000001"}},
			{"createPrepaidCode", []string{"balance", "-1"}},
			{"registerUser", []string{"user", "typo", "web_password", md5hex("x"), "balance", "100000000.000001"}},
			{"transferMoney", []string{"destination", "ann", "amount", "100000001"}},
			{"transferMoney", []string{"destination", "ann", "amount", "-5"}},
			{"updateAccount", []string{"account", acc, "overdraft", "-1"}},
			{"updateAccount", []string{"account", acc, "overdraft", "1e9"}},
			{"updateAccount", []string{"account", acc, "overdraft", "100000001"}},
			{"addDIDPool", []string{"country", "X", "area", "Y", "cost", "100000001"}},
			{"updateCurrency", []string{"currency", "EUR", "transfer_fee", "-1"}},
		} {
			e.fails(e.do(e.web, c.method, admin(c.params...)), apierr.InvalidArgument, 400)
		}
		if got := field(e.ok(e.do(e.web, "getInfo", user("ann"))), "balance"); got != "10" {
			t.Errorf("refused calls changed ann's balance: %s", got)
		}
		e.fails(e.do(e.web, "getInfo", admin("username", "typo")), apierr.NotExist, 200)
		// The bound itself is accepted.
		e.ok(e.do(e.web, "transferMoney", admin("destination", "ann", "amount", "100000000")))
		checkLedger(t, e)
	})
}

// With username, display* fields are in that user's currency, not the caller's.
func TestDisplayInTargetCurrency(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "yank", 11, "currency", "USD", "balance", "10") // 10 EUR = 10.80 USD
		info := e.ok(e.do(e.web, "getInfo", admin("username", "yank")))
		if got := field(info, "displaybalance"); got != "10.8" {
			t.Errorf("getInfo?username=yank displaybalance = %s, want 10.8 (USD)", got)
		}
		acc := field(info, "account")
		ai := e.ok(e.do(e.web, "getAccountInfo", admin("username", "yank", "account", acc)))
		if got := field(ai, "displaybalance"); got != "10.8" {
			t.Errorf("getAccountInfo?username=yank displaybalance = %s, want 10.8 (USD)", got)
		}
		// Without username, the caller's own view in its own currency.
		if got := field(e.ok(e.do(e.web, "getAccountInfo", admin("account", acc))), "displaybalance"); got != "10" {
			t.Errorf("admin's own view displaybalance = %s, want 10 (EUR)", got)
		}
	})
}
