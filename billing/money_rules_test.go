package billing

import (
	"bytes"
	"database/sql"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/narayana/narayanad/billing/money"
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
			warned := strings.Contains(logs.String(), "uniqueid="+uid+" ")
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
