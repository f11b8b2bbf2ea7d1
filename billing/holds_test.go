package billing

import (
	"strings"
	"testing"

	"github.com/narayana/narayanad/billing/apierr"
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
