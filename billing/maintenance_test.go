package billing

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// maintKey creates a level-90 server key owned by the admin and returns it.
func maintKey(t *testing.T, e *env) string {
	t.Helper()
	const k = "maintenance-key-90"
	e.serverKey("cron", k, keys.LevelExclusive)
	return k
}

func TestDoMaintenance(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		q := e.s.DB.Q()
		key := maintKey(t, e)
		e.register(admin(), "alice", 11, "balance", "10")
		e.register(admin(), "bob", 11, "balance", "1")
		e.register(admin(), "carol", 11, "balance", "100")

		// Only a level-90 server key runs it.
		e.fails(e.do(e.web, "doMaintenance", admin()), apierr.InsufficientAccess, 200)

		now := time.Now().Unix()
		due := now - 3600
		add := func(did, owner string, cost string, exp int64, autoRenew int) {
			t.Helper()
			c, _ := money.Parse(cost)
			if _, err := q.Exec(ctx, `INSERT INTO dids (did, owner_id, cost, expiration, auto_renew)
				VALUES (?, (SELECT id FROM users WHERE username = ?), ?, ?, ?)`, did, owner, c, exp, autoRenew); err != nil {
				t.Fatal(err)
			}
		}
		add("7800000001", "alice", "3", due, 1)            // renewed: alice pays 3
		add("7800000002", "alice", "3", due, 0)            // no auto renewal: left alone
		add("7800000003", "bob", "3", due, 1)              // bob cannot pay: disabled
		add("7800000004", "alice", "3", now+86400, 1)      // not due yet
		add("7800000005", "carol", "2.5", due-40*86400, 1) // two months behind: two rents
		// An expired reservation of alice's is released.
		if _, err := q.Exec(ctx, `INSERT INTO reservations (account_id, user_id, destination, prior, amount, max_call_time, created_at, expires_at)
			SELECT account_id, id, '123', 1, 5000000, 60, ?, ? FROM users WHERE username = 'alice'`, now-7200, now-60); err != nil {
			t.Fatal(err)
		}

		for run := 0; run < 2; run++ {
			// A cron job calls it with the server key alone, or naming a user.
			params := url.Values{}
			if run == 1 {
				params.Set("login", adminName)
			}
			a := e.ok(e.do(key, "doMaintenance", params))
			if a.Response != true {
				t.Fatalf("doMaintenance: %s", a.Body)
			}
			// The second run the same day changes nothing.
			for name, want := range map[string]string{"alice": "7", "bob": "1", "carol": "95"} {
				if got, _, _ := balanceOf(t, e.s.DB, name); got.String() != want {
					t.Fatalf("run %d: %s's balance %s, want %s", run+1, name, got, want)
				}
			}
			var rows int
			if err := q.Get(ctx, &rows, `SELECT COUNT(*) FROM ledger WHERE kind = ?`, KindDID); err != nil {
				t.Fatal(err)
			}
			if rows != 3 {
				t.Fatalf("run %d: %d DID rent rows, want 3", run+1, rows)
			}
		}
		type didRow struct {
			Expiration int64 `db:"expiration"`
			Enabled    int   `db:"enabled"`
		}
		get := func(did string) didRow {
			var d didRow
			if err := q.Get(ctx, &d, `SELECT expiration, enabled FROM dids WHERE did = ?`, did); err != nil {
				t.Fatal(err)
			}
			return d
		}
		month := func(from int64, n int) int64 { return time.Unix(from, 0).UTC().AddDate(0, n, 0).Unix() }
		if d := get("7800000001"); d.Expiration != month(due, 1) || d.Enabled != 1 {
			t.Fatalf("renewed DID: %+v", d)
		}
		if d := get("7800000002"); d.Expiration != due || d.Enabled != 1 {
			t.Fatalf("DID without auto renewal: %+v", d)
		}
		if d := get("7800000003"); d.Expiration != due || d.Enabled != 0 {
			t.Fatalf("unpaid DID: %+v", d)
		}
		if d := get("7800000004"); d.Expiration != now+86400 {
			t.Fatalf("DID not due: %+v", d)
		}
		if d := get("7800000005"); d.Expiration != month(due-40*86400, 2) || d.Enabled != 1 {
			t.Fatalf("DID two months behind: %+v", d)
		}
		var left int
		if err := q.Get(ctx, &left, `SELECT COUNT(*) FROM reservations`); err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("%d expired reservations left", left)
		}
		checkLedger(t, e)
	})
}
