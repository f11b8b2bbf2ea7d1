package billing

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
)

// eventually waits until ok holds. It asserts an order of events, not a speed: the
// deadline is only there so that a broken build fails instead of hanging.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// TestChangesAnnounced: two daemons on one PostgreSQL. Directory and rating changes made
// through one reach the other by LISTEN/NOTIFY, with its polling set to an hour, so only
// the notification can have brought them. When its LISTEN connection is killed
// (pg_terminate_backend), the other falls back to polling and sees changes that way while
// the connection is down, then reconnects and is told again.
func TestChangesAnnounced(t *testing.T) {
	ctx := context.Background()
	open := samePool(t, db.Postgres)
	d1 := open()
	e := newEnv(t, d1)
	s2, err := Start(ctx, open(), testConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	s := seedCalls(t, e)
	callUser(t, e, s, "erin", "10005", "1")
	l := s2.rt.listener
	eventually(t, "daemon 2 listens", l.Up)

	h2 := s2.Handler()
	prepare := func() string { // on daemon 2, leaving no reservation behind
		_, a := raw(h2, astKey, "callPrepare", kv("login", "10005", "destination", "74951234567"))
		execSQL(t, d1, `DELETE FROM reservations`)
		return a
	}
	answers := func(prefix string) func() bool {
		return func() bool { return strings.HasPrefix(prepare(), prefix) }
	}
	setCost := func(cost int) { // as another daemon changes a rate: in one transaction with the version
		execSQL(t, d1, `UPDATE rate_entries SET cost = ? WHERE direction_id = 1`, cost)
		execSQL(t, d1, `UPDATE rating_version SET version = version + 1`)
	}
	poll := func(every time.Duration) {
		s2.Gate.Directory.ForeignEvery = every
		s2.rt.every = every
	}
	eventually(t, "daemon 2 rates erin's call at 0.10/min", answers("Allowed 570 ")) // 0.95 / 0.10

	// Announced: daemon 2 no longer polls, yet sees both kinds of change.
	poll(time.Hour)
	setCost(200_000)
	eventually(t, "daemon 2 sees the new rate without polling", answers("Allowed 285 "))
	e.updateUser("erin", "active", "-1")
	eventually(t, "daemon 2 sees erin locked without polling", answers("Declined "+apierr.UserLocked))

	// The LISTEN connection is killed: daemon 2 polls meanwhile.
	l.SetRetry(time.Minute) // it stays down while we look
	pid := l.PID()
	var killed bool
	if err := d1.Q().Get(ctx, &killed, `SELECT pg_terminate_backend(?)`, int64(pid)); err != nil || !killed {
		t.Fatalf("pg_terminate_backend(%d): %v %v", pid, killed, err)
	}
	eventually(t, "daemon 2 notices its LISTEN connection is gone", func() bool { return !l.Up() })
	poll(10 * time.Millisecond)
	e.updateUser("erin", "active", "1")
	setCost(100_000)
	eventually(t, "daemon 2 sees the changes by polling", answers("Allowed 570 "))
	if l.Up() {
		t.Fatal("the LISTEN connection came back before its retry: the test proved nothing")
	}

	// It reconnects (at once, now) and is told again.
	l.SetRetry(10 * time.Millisecond)
	eventually(t, "daemon 2 listens again", func() bool { return l.Up() && l.PID() != pid })
	poll(time.Hour)
	setCost(200_000)
	eventually(t, "daemon 2 sees the new rate without polling, again", answers("Allowed 285 "))
	e.updateUser("erin", "active", "-1")
	eventually(t, "daemon 2 sees erin locked without polling, again", answers("Declined "+apierr.UserLocked))
	checkLedger(t, e)
}
