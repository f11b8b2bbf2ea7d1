package billing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// smsCarrier plays Kannel's sendsms interface on loopback: it accepts messages, refuses
// them while failing is set, and while gate is set each request waits there (after
// saying so on arrived) until the test lets it go.
type smsCarrier struct {
	failing  atomic.Bool
	accepted atomic.Int64
	mu       sync.Mutex
	gate     chan struct{}
	arrived  chan struct{}
}

func startSMSCarrier(t *testing.T, e *env) *smsCarrier {
	t.Helper()
	c := &smsCarrier{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		gate, arrived := c.gate, c.arrived
		c.mu.Unlock()
		if gate != nil {
			arrived <- struct{}{}
			<-gate
		}
		if c.failing.Load() {
			http.Error(w, "Service unavailable", http.StatusServiceUnavailable)
			return
		}
		c.accepted.Add(1)
		w.WriteHeader(http.StatusAccepted)
		w.Write([]byte("0: Accepted for delivery"))
	}))
	t.Cleanup(srv.Close)
	e.s.Config.KannelSendURL = srv.URL + "/cgi-bin/sendsms"
	return c
}

// hold makes the next requests wait at a gate; the answer lets them go.
func (c *smsCarrier) hold() (arrived <-chan struct{}, release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gate, c.arrived = make(chan struct{}), make(chan struct{}, 100)
	gate, ch := c.gate, c.arrived
	return ch, func() {
		c.mu.Lock()
		c.gate, c.arrived = nil, nil
		c.mu.Unlock()
		close(gate)
	}
}

// smsBundleSeed adds to seedCalls a Kannel SMS route and messages on it: UK 0.05 and
// Russia 0.03 on the base tariff, UK 0.02 on the UK option (after the option's voice entry).
func smsBundleSeed(t *testing.T, e *env, s rtSeed) {
	t.Helper()
	d := e.s.DB
	route := insertID(t, d, `INSERT INTO routes (name, type, prefix) VALUES ('Kannel', 'sms', 'kannel')`)
	for _, en := range []struct {
		tariff int64
		dir    int
		cost   money.Micro
	}{{s.base.ID, 3, 50_000}, {s.base.ID, 1, 30_000}, {s.option.ID, 3, 20_000}} {
		execSQL(t, d, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES (?, ?, 2, ?, ?)`,
			en.tariff, en.dir, en.cost, route)
	}
	execSQL(t, d, `UPDATE rating_version SET version = version + 1`)
	e.s.ratingChanged(context.Background())
}

func wantSMSBundle(t *testing.T, b map[string]any, paid bool, quota, used, held, remaining int) {
	t.Helper()
	if b["paid"] != paid || jstr(b["sms_quota"]) != strconv.Itoa(quota) || jstr(b["sms_used"]) != strconv.Itoa(used) ||
		jstr(b["sms_held"]) != strconv.Itoa(held) || jstr(b["sms_remaining"]) != strconv.Itoa(remaining) {
		t.Fatalf("bundle: %v, want paid %v sms quota %d used %d held %d remaining %d", b, paid, quota, used, held, remaining)
	}
}

func maintain(t *testing.T, e *env, times int) {
	t.Helper()
	for range times {
		if _, err := e.s.RunMaintenance(context.Background(), "test"); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBundleSMS: a bundle of 5 messages (no minutes) on the UK option for 1.00 a month.
// Messages to the UK spend the quota before money, 20 concurrent messages spend exactly
// the quota, a message whose carrier refuses gives its message back, the quota is held
// while the carrier answers, and it renews with the month; a bundle of minutes and
// messages is one fee.
func TestBundleSMS(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		smsBundleSeed(t, e, s)
		carrier := startSMSCarrier(t, e)
		opt, clock := onOption(t, e, s, "1")
		uk := func(kv ...string) answer {
			return e.do(e.web, "sendSMS", user("alice", append([]string{"to", "447700900001", "text", "hi", "callerid", "Narayana"}, kv...)...))
		}

		// Defining: messages, minutes or both; not neither, not too many.
		e.fails(e.do(e.web, "setBundle", admin("rates", opt)), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "setBundle", admin("rates", opt, "minutes", "0", "sms", "0")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "setBundle", admin("rates", opt, "sms", "-1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "setBundle", admin("rates", opt, "sms", itoa(maxBundleSMS+1))), apierr.InvalidArgument, 400)
		e.ok(e.do(e.web, "setBundle", admin("rates", opt, "sms", "5", "fee", "1")))
		b := bundleOf(t, e, "alice")
		if jstr(b["sms"]) != "5" || jstr(b["minutes"]) != "0" {
			t.Fatalf("bundle defined: %v", b)
		}
		wantSMSBundle(t, b, false, 0, 0, 0, 0)

		// The fee, once; it leaves no money.
		maintain(t, e, 2)
		if n, sum := bundleFees(t, e, "alice"); n != 1 || sum != -money.One {
			t.Fatalf("fee charged %d times, %s", n, sum)
		}
		b = bundleOf(t, e, "alice")
		wantBundle(t, b, true, 0, 0, 0, 0) // no minutes
		wantSMSBundle(t, b, true, 5, 0, 0, 5)

		// 20 messages at once with no money: the quota carries exactly 5, the carrier
		// sees only those, the others are refused before it.
		// The carrier keeps the messages that reach it waiting until the others are done.
		arrived, release := carrier.hold()
		answers := make([]string, 20)
		finished := make(chan int, len(answers))
		for i := range answers {
			go func(i int) {
				_, answers[i] = raw(e.h, e.web, "sendSMS", user("alice", "to", "447700900001", "text", "hi "+itoa(i), "callerid", "Narayana"))
				finished <- i
			}(i)
		}
		for range 5 {
			<-arrived
		}
		for n := 0; n < len(answers)-5; {
			select {
			case <-finished:
				n++
			case <-arrived:
				release()
				t.Fatal("a sixth message reached the carrier")
			}
		}
		if b := bundleOf(t, e, "alice"); jstr(b["sms_held"]) != "5" || jstr(b["sms_remaining"]) != "0" {
			t.Fatalf("while the carrier answers: %v", b)
		}
		release()
		for range 5 {
			<-finished
		}
		ok := 0
		for _, a := range answers {
			switch {
			case strings.Contains(a, `"result":true`):
				ok++
			case !strings.Contains(a, apierr.InsufficientMoney):
				t.Fatalf("sendSMS: %s", a)
			}
		}
		if ok != 5 || carrier.accepted.Load() != 5 {
			t.Fatalf("concurrent: %d sent, carrier took %d: %v", ok, carrier.accepted.Load(), answers)
		}
		wantSMSBundle(t, bundleOf(t, e, "alice"), true, 5, 5, 0, 0)
		if bal, led, _ := balanceOf(t, e.s.DB, "alice"); bal != 0 || led != 0 {
			t.Fatalf("after the quota: balance %s ledger %s", bal, led)
		}

		// Quota spent: money at the option's price; other directions at the tariff's.
		e.ok(e.do(e.web, "transferMoney", admin("destination", "alice", "amount", "0.05")))
		e.ok(uk())
		e.ok(e.do(e.web, "sendSMS", user("alice", "to", "74950000001", "text", "hi", "callerid", "Narayana")))
		if bal, led, _ := balanceOf(t, e.s.DB, "alice"); bal != 0 || led != 0 {
			t.Fatalf("paid messages: balance %s ledger %s", bal, led) // 0.05 − 0.02 − 0.03
		}
		e.fails(uk(), apierr.InsufficientMoney, 200)
		wantSMSBundle(t, bundleOf(t, e, "alice"), true, 5, 5, 0, 0)

		// Next month, minutes and messages: one fee for both, the quotas renewed.
		e.ok(e.do(e.web, "setBundle", admin("rates", opt, "minutes", "10", "sms", "5", "fee", "1")))
		*clock = time.Date(2030, 2, 1, 0, 0, 0, 0, time.UTC)
		wantSMSBundle(t, bundleOf(t, e, "alice"), false, 0, 0, 0, 0)
		e.ok(e.do(e.web, "transferMoney", admin("destination", "alice", "amount", "1.1")))
		maintain(t, e, 2)
		if n, sum := bundleFees(t, e, "alice"); n != 2 || sum != -2*money.One {
			t.Fatalf("fees after renewal: %d, %s", n, sum)
		}
		b = bundleOf(t, e, "alice")
		wantBundle(t, b, true, 600, 0, 0, 600)
		wantSMSBundle(t, b, true, 5, 0, 0, 5)

		// Quota before money: a long message (several parts) is one message of the quota.
		e.ok(uk("text", strings.Repeat("long text ", 40)))
		wantSMSBundle(t, bundleOf(t, e, "alice"), true, 5, 1, 0, 4)
		if bal, _, _ := balanceOf(t, e.s.DB, "alice"); bal != 100_000 {
			t.Fatalf("a message from the quota cost money: balance %s", bal)
		}

		// A carrier that refuses gives the message back.
		carrier.failing.Store(true)
		e.fails(uk(), apierr.CarrierError, 200)
		carrier.failing.Store(false)
		wantSMSBundle(t, bundleOf(t, e, "alice"), true, 5, 1, 0, 4)

		// Held while the carrier answers; a hold that expired (its daemon stopped) no
		// longer counts, and the message still takes the quota while one is left.
		arrived, release = carrier.hold()
		done := make(chan string)
		go func() {
			_, a := raw(e.h, e.web, "sendSMS", user("alice", "to", "447700900001", "text", "slow", "callerid", "Narayana"))
			done <- a
		}()
		<-arrived
		wantSMSBundle(t, bundleOf(t, e, "alice"), true, 5, 1, 1, 3)
		execSQL(t, e.s.DB, `UPDATE sms_holds SET expires_at = 1`)
		wantSMSBundle(t, bundleOf(t, e, "alice"), true, 5, 1, 0, 4)
		release()
		if a := <-done; !strings.Contains(a, `"result":true`) {
			t.Fatalf("slow carrier: %s", a)
		}
		wantSMSBundle(t, bundleOf(t, e, "alice"), true, 5, 2, 0, 3)
		if bal, _, _ := balanceOf(t, e.s.DB, "alice"); bal != 100_000 {
			t.Fatalf("balance %s", bal)
		}
		var holds int
		if err := e.s.DB.Q().Get(context.Background(), &holds, `SELECT COUNT(*) FROM sms_holds`); err != nil || holds != 0 {
			t.Fatalf("holds left: %d %v", holds, err)
		}
		checkLedger(t, e)
	})
}
