package billing

import (
	"strings"
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// TestCallPathSeesEveryWriter: on SQLite the call path answers from the group-commit
// writer's mirror of the account; a reservation or balance changed by anyone else (an
// operator in the database, the expiry sweep, another connection) is seen by the very
// next callPrepare, and the writer's own charges are mirrored exactly. On PostgreSQL
// nothing is mirrored and the same must hold.
func TestCallPathSeesEveryWriter(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "mira", "10011", "10")
		prepare := func(uid string) string {
			return e.ast("callPrepare", "10011", "destination", "79010000001", "uniqueid", uid)
		}
		// 10 EUR at 0.20/min + 0.05: 2985 s, which reserves all of it.
		if a := prepare("u1"); fields(a)[1] != "2985" {
			t.Fatalf("u1: %q", a)
		}
		if a := prepare("u2"); a != "Declined "+apierr.InsufficientMoney {
			t.Fatalf("u2 while u1 holds everything: %q", a)
		}
		// A retried callPrepare replaces its own reservation.
		if a := prepare("u1"); fields(a)[1] != "2985" {
			t.Fatalf("u1 again: %q", a)
		}
		// Deleted by an operator, straight in the database.
		execSQL(t, e.s.DB, `DELETE FROM reservations WHERE uniqueid = 'u1'`)
		if a := prepare("u2"); fields(a)[1] != "2985" {
			t.Fatalf("u2 after u1 was deleted in the database: %q", a)
		}
		// The writer's own charge: 60 s = 0.20 + 0.05, so 9.75 left → (9.75 − 0.05) / 0.20 min.
		fin := e.ast("callFinish", "10011", "destination", "79010000001", "uniqueid", "u2", "length", "60", "status", "ANSWER")
		if !strings.HasSuffix(fin, " 60 0.25 EUR ANSWER") {
			t.Fatalf("finish u2: %q", fin)
		}
		if a := prepare("u3"); fields(a)[1] != "2910" {
			t.Fatalf("u3 after u2 was charged: %q", a)
		}
		// A reservation past its expiry holds nothing, swept or not.
		execSQL(t, e.s.DB, `UPDATE reservations SET expires_at = 0 WHERE uniqueid = 'u3'`)
		if a := prepare("u4"); fields(a)[1] != "2910" {
			t.Fatalf("u4 after u3 expired: %q", a)
		}
		// Money moved by the API (another transaction on another connection).
		execSQL(t, e.s.DB, `DELETE FROM reservations`)
		e.ok(e.do(e.web, "transferMoney", admin("username", "mira", "destination", "admin", "amount", "4.75")))
		if a := prepare("u5"); fields(a)[1] != "1485" { // (5 − 0.05) / 0.20 min
			t.Fatalf("u5 with 5 EUR left and nothing held: %q", a)
		}
		checkLedger(t, e)
	})
}

// heldAccount keeps its sum across expiries, retries and removals exactly as the
// database's sum would be at each moment.
func TestHeldAccountSum(t *testing.T) {
	a := &heldAccount{balance: 100, overdraft: 10, open: map[holdKey]hold{}}
	a.count(1000)
	put := func(k holdKey, r hold) { a.open[k] = r; a.add(r) }
	del := func(k holdKey) { a.remove(a.open[k]); delete(a.open, k) }
	put(callHold("a", 1, 0), hold{amount: 30, expires: 1010})
	put(callHold("b", 1, 0), hold{amount: 20, expires: 1020})
	put(callHold("", 1, 7), hold{amount: 5, expires: 1030})
	for _, c := range []struct {
		now   int64
		uid   string
		prior int
		want  money.Micro
	}{
		{1000, "", 0, 110 - 55},
		{1010, "", 0, 110 - 55}, // expiring this second still holds
		{1010, "a", 1, 110 - 25},
		{1010, "a", 2, 110 - 55},
		{1011, "", 0, 110 - 25},
		{1011, "a", 1, 110 - 25}, // its own reservation has expired already
		{1021, "", 0, 110 - 5},
		{1031, "", 0, 110},
		{999, "", 0, 110 - 55}, // the clock went back: counted again
	} {
		if got := a.spendable(c.now, c.uid, c.prior); got != c.want {
			t.Errorf("at %d besides %q/%d: %d, want %d", c.now, c.uid, c.prior, got, c.want)
		}
	}
	del(callHold("b", 1, 0))
	put(callHold("c", 1, 0), hold{amount: 1, expires: 1005})
	if got := a.spendable(1001, "", 0); got != 110-36 {
		t.Errorf("after a removal and a new one: %d", got)
	}
	if got := a.spendable(1006, "", 0); got != 110-35 {
		t.Errorf("after the new one expired: %d", got)
	}
}
