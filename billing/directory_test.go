package billing

import (
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
)

// TestDirectoryCacheSeesChanges: the call path answers from the directory cache, and any
// change to users or SIP accounts made through this daemon, by the API or straight in
// its database, is seen by the very next request.
func TestDirectoryCacheSeesChanges(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "dora", "10007", "100")
		prepare := func() string { return e.ast("callPrepare", "10007", "destination", "74951234567") }
		if a := prepare(); !strings.HasPrefix(a, "Allowed ") || fields(a)[3] != "10007" {
			t.Fatalf("first: %q", a)
		}
		execSQL(t, e.s.DB, `UPDATE extensions SET callerid = '4951112233' WHERE extension = '10007'`)
		if a := prepare(); fields(a)[3] != "4951112233" {
			t.Fatalf("caller ID changed in the database: %q", a)
		}
		execSQL(t, e.s.DB, `UPDATE users SET active = -1 WHERE username = 'dora'`)
		if a := prepare(); a != "Declined "+apierr.UserLocked {
			t.Fatalf("locked in the database: %q", a)
		}
		e.ok(e.do(e.web, "updateUser", admin("user", "dora", "active", "1")))
		if a := prepare(); !strings.HasPrefix(a, "Allowed ") {
			t.Fatalf("unlocked through the API: %q", a)
		}
		// A currency's course changed in the database shows in the next callFinish.
		e.ok(e.do(e.web, "updateUser", admin("user", "dora", "currency", "USD")))
		execSQL(t, e.s.DB, `UPDATE currencies SET eur_course = 2000000 WHERE code = 'USD'`)
		fin := e.ast("callFinish", "10007", "destination", "74951234567", "length", "60", "status", "ANSWER")
		if !strings.HasSuffix(fin, " 60 0.3 USD ANSWER") { // 0.10/min + 0.05 switch = 0.15 EUR
			t.Fatalf("finish in USD at 2.0: %q", fin)
		}
		checkLedger(t, e)
	})
}

// TestDirectorySeesOtherProcesses: a change made by another process (here another pool
// of connections to the same database, as another daemon or psql would make it) is seen
// by the first request after Directory.ForeignEvery.
func TestDirectorySeesOtherProcesses(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			open := samePool(t, dialect)
			e := newEnv(t, open())
			other := open()
			e.s.Gate.Directory.ForeignEvery = 30 * time.Millisecond
			s := seedCalls(t, e)
			callUser(t, e, s, "dora", "10007", "100")
			prepare := func() string { return e.ast("callPrepare", "10007", "destination", "74951234567") }
			if a := prepare(); !strings.HasPrefix(a, "Allowed ") {
				t.Fatalf("first: %q", a)
			}
			execSQL(t, other, `UPDATE users SET active = -1 WHERE username = 'dora'`)
			time.Sleep(40 * time.Millisecond)
			if a := prepare(); a != "Declined "+apierr.UserLocked {
				t.Fatalf("locked by another process %v ago: %q", 40*time.Millisecond, a)
			}
		})
	}
}
