package billing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/narayana/narayanad/asterisk/amisim"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// winSetup is a daemon with reservation windows on, a test clock, and an AMI simulator
// as the SIP server pbx2 (10.0.0.2) of the user's extension. The tariff costs exactly
// 0.001 a second (0.06 a minute, by_second, no switch price), so money counts seconds.
type winSetup struct {
	e     *env
	sim   *amisim.Server
	clock *atomic.Int64
	t0    int64
	flat  int64  // the tariff
	users int    // users made so far
	user  string // the user whose calls are placed
	ext   string // its extension
}

const perSecond = money.Micro(1000)

func newWinSetup(t *testing.T, e *env, window int) *winSetup {
	t.Helper()
	amiEnv(t, e)
	e.s.Config.ReservationWindow = window
	e.s.Config.MaxCallTime = 600
	w := &winSetup{e: e, sim: amisim.Start(t, amisim.Config{}), clock: &atomic.Int64{}, t0: 1_700_000_000}
	w.clock.Store(w.t0)
	e.s.Now = w.now
	s := seedCalls(t, e)
	e.amiServer("pbx2", "10.0.0.2", w.sim.Addr(), amisim.DefaultSecret)
	flat := insertID(t, e.s.DB, `INSERT INTO rates (name, bill_type) VALUES ('flat', 'by_second')`)
	execSQL(t, e.s.DB, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES (?, 1, 1, 60000, ?)`,
		flat, s.route1)
	execSQL(t, e.s.DB, `UPDATE rating_version SET version = version + 1`)
	e.s.ratingChanged(context.Background())
	w.flat = flat
	return w
}

// newUser registers the user whose calls are placed next, with a balance, on pbx2.
func (w *winSetup) newUser(balance string) {
	w.users++
	w.user, w.ext = "wally"+strconv.Itoa(w.users), strconv.Itoa(20000+w.users)
	w.e.register(admin(), w.user, 11, "sip_server", "10.0.0.2", "sip_extension", w.ext, "balance", balance)
	w.e.updateUser(w.user, "rates", strconv.FormatInt(w.flat, 10))
}

func (w *winSetup) now() time.Time { return time.Unix(w.clock.Load(), 0) }

// at moves the clock to t0+sec and runs one round of the extender of daemon s.
func (w *winSetup) at(t *testing.T, s *Service, sec int) windowReport {
	t.Helper()
	w.clock.Store(w.t0 + int64(sec))
	rep, err := s.windowRound(context.Background())
	if err != nil {
		t.Fatalf("round at %d s: %v", sec, err)
	}
	return rep
}

func (w *winSetup) hangups() []string {
	var out []string
	for _, a := range w.sim.ActionsNamed("Hangup") {
		out = append(out, a.Get("Channel"))
	}
	return out
}

func (w *winSetup) channelOf(i int) string { return fmt.Sprintf("PJSIP/%s-%08x", w.ext, i) }

// callOf is the call of channel ch among n, -1 when none.
func (w *winSetup) callOf(ch string, n int) int {
	for i := range n {
		if w.channelOf(i) == ch {
			return i
		}
	}
	return -1
}

// prepare answers callPrepare's MaxCallTime for call i (0 when declined) through h.
func (w *winSetup) prepare(t *testing.T, h http.Handler, i int) int {
	t.Helper()
	_, a := raw(h, astKey, "callPrepare", kv("login", w.ext, "destination", "74951234567",
		"uniqueid", w.ext+"-"+strconv.Itoa(i), "channel", w.channelOf(i)))
	f := fields(a)
	if f[0] == "Declined" {
		return 0
	}
	if f[0] != "Allowed" {
		t.Fatalf("callPrepare %d: %q", i, a)
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

func (w *winSetup) finish(t *testing.T, h http.Handler, i, length int) {
	t.Helper()
	_, a := raw(h, astKey, "callFinish", kv("login", w.ext, "destination", "74951234567",
		"uniqueid", w.ext+"-"+strconv.Itoa(i), "length", strconv.Itoa(length)))
	if !strings.HasPrefix(a, "Saved ") {
		t.Fatalf("callFinish %d: %q", i, a)
	}
}

func (w *winSetup) held(t *testing.T) money.Micro {
	t.Helper()
	_, _, h := balanceOf(t, w.e.s.DB, w.user)
	return h
}

// TestWindowCut: two calls share 0.15 (150 s). Each reserves one 60 s window; when the
// windows are due, the older call cannot pay its next window and the younger can pay the
// rest of its grant; the older is hung up through AMI exactly when its 60 s are over,
// and only its channel; the event log says so.
func TestWindowCut(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		w := newWinSetup(t, e, 60)
		w.newUser("0.15")
		for i := 1; i <= 3; i++ {
			w.sim.AddChannel(amisim.Channel{Name: w.channelOf(i)})
		}
		if g := w.prepare(t, e.h, 1); g != 150 {
			t.Fatalf("call 1 granted %d, want 150 (the answer does not change)", g)
		}
		if h := w.held(t); h != 60*perSecond {
			t.Fatalf("held %s, want one window (0.06)", h)
		}
		if g := w.prepare(t, e.h, 2); g != 90 {
			t.Fatalf("call 2 granted %d, want 90", g)
		}
		if rep := w.at(t, e.s, 49); rep.Extended != 0 || len(w.hangups()) != 0 {
			t.Fatalf("at 49 s: %+v %v", rep, w.hangups())
		}
		if rep := w.at(t, e.s, 50); rep.Extended != 1 {
			t.Fatalf("at 50 s: %+v, want call 2 extended to its grant", rep)
		}
		if h := w.held(t); h != 150*perSecond {
			t.Fatalf("held %s, want 0.15", h)
		}
		w.at(t, e.s, 59)
		if h := w.hangups(); len(h) != 0 {
			t.Fatalf("hung up before the covered time was over: %v", h)
		}
		if rep := w.at(t, e.s, 60); rep.Cut != 1 {
			t.Fatalf("at 60 s: %+v", rep)
		}
		if h := w.hangups(); !slices.Equal(h, []string{w.channelOf(1)}) {
			t.Fatalf("hangups %v, want exactly %s", h, w.channelOf(1))
		}
		if ch := w.sim.Channels(); len(ch) != 2 {
			t.Fatalf("channels left %v", ch)
		}
		w.at(t, e.s, 61) // no second hangup
		if h := w.hangups(); len(h) != 1 {
			t.Fatalf("hangups %v", h)
		}
		w.finish(t, e.h, 1, 60)
		w.finish(t, e.h, 2, 90)
		bal, ledger, h := balanceOf(t, e.s.DB, w.user)
		if bal != 0 || ledger != 0 || h != 0 {
			t.Fatalf("balance %s ledger %s held %s, want 0 0 0", bal, ledger, h)
		}
		a := e.ok(e.do(e.web, "getLogs", admin("user", w.user)))
		recs := a.Response.([]any)
		var cut int
		for _, r := range recs {
			m := r.(map[string]any)
			if m["status"] == "CUT" {
				cut++
				if !strings.Contains(fmt.Sprint(m["info"]), w.channelOf(1)) {
					t.Fatalf("cut record %v does not name the channel", m)
				}
			}
		}
		if len(recs) != 3 || cut != 1 {
			t.Fatalf("event log %v, want two calls and one cut", recs)
		}
	})
}

// TestWindowNotCuttable: without a channel, or with windows off, or on a server without
// AMI, a call reserves its whole MaxCallTime as before.
func TestWindowNotCuttable(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		w := newWinSetup(t, e, 60)
		w.newUser("0.5")
		noChannel := func() {
			t.Helper()
			_, a := raw(e.h, astKey, "callPrepare", kv("login", w.ext, "destination", "74951234567", "uniqueid", w.ext+"-7"))
			if !strings.HasPrefix(a, "Allowed 500 ") {
				t.Fatalf("%q", a)
			}
			if h := w.held(t); h != 500*perSecond {
				t.Fatalf("held %s without a channel, want the whole grant", h)
			}
		}
		noChannel()
		// A retried callPrepare of the same call, now with a channel, reserves a window;
		// retried again without, the whole grant, and the daemon no longer extends it.
		if g := w.prepare(t, e.h, 7); g != 500 || w.held(t) != 60*perSecond {
			t.Fatalf("granted %d held %s", g, w.held(t))
		}
		noChannel()
		if rep := w.at(t, e.s, 100); rep.Extended != 0 || rep.Cut != 0 {
			t.Fatalf("a plain reservation was extended or cut: %+v", rep)
		}
		w.finish(t, e.h, 7, 10)
		// A SIP server without AMI cannot cut a call.
		w.e.register(admin(), "nami", 11, "sip_server", "10.0.0.1", "sip_extension", "30001", "balance", "0.5")
		w.e.updateUser("nami", "rates", strconv.FormatInt(w.flat, 10))
		_, a := raw(e.h, astKey, "callPrepare", kv("login", "30001", "destination", "74951234567", "channel", "PJSIP/30001-1"))
		if _, _, h := balanceOf(t, e.s.DB, "nami"); !strings.HasPrefix(a, "Allowed 500 ") || h != 500*perSecond {
			t.Fatalf("no AMI: %q held %s", a, h)
		}
		// Windows off.
		e.s.Config.ReservationWindow = 0
		if g := w.prepare(t, e.h, 8); g != 490 || w.held(t) != 490*perSecond {
			t.Fatalf("windows off: granted %d held %s", g, w.held(t))
		}
	})
}

// winCall is one call of a scenario: it starts at tick start and lasts up to length.
type winCall struct{ start, length int }

// winOutcome is what became of a call: its grant (0: declined), the tick it was hung up
// by the billing (-1: never), and the length it was billed for.
type winOutcome struct{ grant, cutAt, length int }

// runWindows plays calls through the daemon, one tick a second: at each tick the calls
// that end finish, the calls that start are prepared, the extender runs a round, and the
// calls hung up through AMI finish at once. It checks the invariants and answers each
// call's outcome.
func runWindows(t *testing.T, w *winSetup, calls []winCall, ticks int) []winOutcome {
	t.Helper()
	e := w.e
	out := make([]winOutcome, len(calls))
	open := map[int]int{} // call → its end tick
	for tick := 0; tick <= ticks; tick++ {
		w.clock.Store(w.t0 + int64(tick))
		for i, c := range calls {
			if end, ok := open[i]; ok && end == tick {
				w.finish(t, e.h, i, tick-c.start)
				out[i].length = tick - c.start
				delete(open, i)
			}
		}
		for i, c := range calls {
			if c.start == tick {
				out[i] = winOutcome{grant: w.prepare(t, e.h, i), cutAt: -1}
				if out[i].grant > 0 {
					w.sim.AddChannel(amisim.Channel{Name: w.channelOf(i)})
					open[i] = tick + min(c.length, out[i].grant) // Asterisk's L() cuts at the grant
				}
			}
		}
		before := len(w.hangups())
		w.at(t, e.s, tick)
		for _, ch := range w.hangups()[before:] {
			i := w.callOf(ch, len(calls))
			if _, ok := open[i]; !ok {
				t.Fatalf("tick %d: hung up %s, which is not an open call", tick, ch)
			}
			out[i].cutAt = tick
			out[i].length = tick - calls[i].start
			w.finish(t, e.h, i, out[i].length)
			delete(open, i)
		}
	}
	if len(open) != 0 {
		t.Fatalf("calls still open after %d ticks: %v", ticks, open)
	}
	return out
}

// checkMoney: balance == ledger, nothing held, and what the calls cost is at most what
// the account had plus one block (1 s) per cut call.
func (w *winSetup) checkMoney(t *testing.T, start money.Micro, out []winOutcome) {
	t.Helper()
	bal, ledger, h := balanceOf(t, w.e.s.DB, w.user)
	if bal != ledger || h != 0 {
		t.Fatalf("balance %s, ledger %s, held %s", bal, ledger, h)
	}
	cut := 0
	for _, o := range out {
		if o.cutAt >= 0 {
			cut++
		}
	}
	if spent := start - bal; spent > start+money.Micro(cut)*perSecond {
		t.Fatalf("spent %s of %s with %d cut calls", spent, start, cut)
	}
	if bal < -money.Micro(cut)*perSecond {
		t.Fatalf("balance %s below one block per cut call", bal)
	}
}

// TestWindowConcurrentCalls: eight calls of one account at once on a balance for 300 s
// with 30 s windows: every call connects while money lasts, the calls that outlast the
// money are cut, and together they spend at most the balance (plus a block per cut).
func TestWindowConcurrentCalls(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		w := newWinSetup(t, e, 30)
		w.newUser("0.3")
		const n = 8
		grants := make([]int, n)
		var wg sync.WaitGroup
		for i := range n {
			w.sim.AddChannel(amisim.Channel{Name: w.channelOf(i)})
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, a := raw(e.h, astKey, "callPrepare", kv("login", w.ext, "destination", "74951234567",
					"uniqueid", w.ext+"-"+strconv.Itoa(i), "channel", w.channelOf(i)))
				if f := fields(a); f[0] == "Allowed" {
					grants[i], _ = strconv.Atoi(f[1])
				}
			}()
		}
		wg.Wait()
		for i, g := range grants {
			if g < 30 { // at least one window is left for each of the eight
				t.Fatalf("call %d granted %d: %v", i, g, grants)
			}
		}
		// Calls of 40 to 320 s; a call's length is cut at its grant or by the billing.
		out := make([]winOutcome, n)
		open := map[int]int{}
		for i := range n {
			open[i] = min(40+40*i, grants[i])
			out[i] = winOutcome{grant: grants[i], cutAt: -1}
		}
		for tick := 0; len(open) > 0 && tick < 700; tick++ {
			for i, end := range open {
				if end == tick {
					w.finish(t, e.h, i, tick)
					out[i].length = tick
					delete(open, i)
				}
			}
			before := len(w.hangups())
			w.at(t, e.s, tick)
			for _, ch := range w.hangups()[before:] {
				i := w.callOf(ch, n)
				if _, ok := open[i]; !ok {
					t.Fatalf("hung up %s, not open", ch)
				}
				out[i].cutAt, out[i].length = tick, tick
				w.finish(t, e.h, i, tick)
				delete(open, i)
			}
		}
		w.checkMoney(t, 300*perSecond, out)
		cut := 0
		for _, o := range out {
			if o.cutAt >= 0 {
				cut++
			}
		}
		if cut == 0 {
			t.Fatalf("no call was cut: %+v", out)
		}
		if bal, _, _ := balanceOf(t, e.s.DB, w.user); bal >= 30*perSecond {
			t.Fatalf("calls were cut with %s left, a whole window", bal)
		}
	})
}

// modelWindows is the windows' rule written plainly, in seconds of money (the flat
// tariff), for runWindows' scenarios: it answers what runWindows should see.
func modelWindows(balance, window, maxCall int, calls []winCall, ticks int) []winOutcome {
	type open struct {
		i, grant, covered, start, end int
		windowed                      bool
	}
	out := make([]winOutcome, len(calls))
	var live []*open
	held := func() int {
		h := 0
		for _, o := range live {
			h += o.covered
		}
		return h
	}
	end := func(o *open, tick int) {
		out[o.i].length = tick - o.start
		balance -= tick - o.start
		live = slices.DeleteFunc(live, func(x *open) bool { return x == o })
	}
	for tick := 0; tick <= ticks; tick++ {
		for _, o := range slices.Clone(live) {
			if o.end == tick {
				end(o, tick)
			}
		}
		for i, c := range calls {
			if c.start != tick {
				continue
			}
			grant := min(balance-held(), maxCall)
			out[i] = winOutcome{cutAt: -1}
			if grant < 1 {
				continue
			}
			out[i].grant = grant
			o := &open{i: i, grant: grant, covered: min(window, grant), start: tick, end: tick + min(c.length, grant)}
			o.windowed = o.covered < grant
			live = append(live, o)
		}
		var due []*open
		for _, o := range live {
			if o.windowed && o.start+o.covered <= tick+windowLead {
				due = append(due, o)
			}
		}
		slices.SortStableFunc(due, func(a, b *open) int { return (a.start + a.covered) - (b.start + b.covered) })
		var short []*open
		for _, o := range due {
			next := min(o.covered+window, o.grant)
			if balance-held() < next-o.covered {
				short = append(short, o)
				continue
			}
			o.covered = next
			o.windowed = next < o.grant
		}
		for _, o := range short {
			if o.start+o.covered <= tick {
				out[o.i].cutAt = tick
				end(o, tick)
			}
		}
	}
	return out
}

// TestWindowModel: random calls (starts, lengths) on random balances and windows, played
// through the daemon and through modelWindows: the same grants, the same cuts at the same
// ticks, the same lengths billed.
func TestWindowModel(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		w := newWinSetup(t, e, 30)
		cuts := 0
		for seed := range uint64(6) {
			rng := rand.New(rand.NewPCG(seed, 13))
			window := 15 + rng.IntN(4)*15
			balance := 60 + rng.IntN(400)
			calls := make([]winCall, 3+rng.IntN(6))
			for i := range calls {
				calls[i] = winCall{start: rng.IntN(120), length: 5 + rng.IntN(300)}
			}
			e.s.Config.ReservationWindow = window
			w.newUser(money.Micro(int64(balance) * int64(perSecond)).String())
			w.t0 += 100_000 // a fresh timeline; uniqueids are per scenario
			got := runWindows(t, w, calls, 120+600+1)
			want := modelWindows(balance, window, e.s.Config.MaxCallTime, calls, 120+600+1)
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d (balance %d s, window %d s, calls %v):\n got %v\nwant %v", seed, balance, window, calls, got, want)
			}
			bal, _, _ := balanceOf(t, e.s.DB, w.user)
			w.checkMoney(t, bal+money.Micro(spent(got))*perSecond, got)
			for _, o := range got {
				if o.cutAt >= 0 {
					cuts++
				}
			}
		}
		if cuts == 0 {
			t.Fatal("no scenario cut a call: the model test tests nothing")
		}
		t.Logf("%d calls cut", cuts)
	})
}

func spent(out []winOutcome) int {
	n := 0
	for _, o := range out {
		n += o.length
	}
	return n
}

// TestWindowTakeover: two daemons on one database, each with its own connections. The
// daemon that answered callPrepare watches the call; once it stops (dies without giving
// its lease up), the other adopts the call when the lease runs out, extends it, and cuts
// it when the money is gone.
func TestWindowTakeover(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			open := samePool(t, dialect)
			e := newEnv(t, open())
			w := newWinSetup(t, e, 30)
			s2 := New(open(), e.s.Config, slog.New(slog.NewTextHandler(io.Discard, nil)))
			s2.Now = w.now
			t.Cleanup(func() { s2.Close() })
			w.newUser("0.1")
			w.sim.AddChannel(amisim.Channel{Name: w.channelOf(1)})
			w.sim.AddChannel(amisim.Channel{Name: w.channelOf(2)})
			if g := w.prepare(t, e.h, 1); g != 100 {
				t.Fatalf("granted %d", g)
			}
			w.at(t, e.s, 0)
			if rep := w.at(t, s2, 0); rep.Adopted != 0 {
				t.Fatalf("daemon 2 adopted a call of a live daemon: %+v", rep)
			}
			// Daemon 1 runs its last round at 1 s and dies: its lease (5 s) runs out at 6 s.
			w.at(t, e.s, 1)
			if rep := w.at(t, s2, 6); rep.Adopted != 0 {
				t.Fatalf("adopted at 6 s: %+v", rep)
			}
			if rep := w.at(t, s2, 7); rep.Adopted != 1 {
				t.Fatalf("at 7 s: %+v, want the call adopted", rep)
			}
			// A second call, through daemon 2, takes 30 s of what is left: 100 s of money,
			// 30 + 30 held. Call 1 is extended at 20 s (to 60 s: 10 s left); call 2 cannot
			// be (due at 27 s) and is cut at 37 s; call 1 cannot be again (at 50 s) and
			// is cut at 60 s.
			if g := w.prepare(t, s2.Handler(), 2); g != 70 {
				t.Fatalf("call 2 granted %d", g)
			}
			cutAt := map[string]int{}
			for tick := 8; tick <= 70; tick++ {
				before := len(w.hangups())
				w.at(t, s2, tick)
				for _, ch := range w.hangups()[before:] {
					cutAt[ch] = tick
					w.finish(t, s2.Handler(), w.callOf(ch, 3), tick-map[string]int{w.channelOf(1): 0, w.channelOf(2): 7}[ch])
				}
			}
			if cutAt[w.channelOf(1)] != 60 || cutAt[w.channelOf(2)] != 37 || len(cutAt) != 2 {
				t.Fatalf("cut at %v, want call 1 at 60 s and call 2 at 37 s", cutAt)
			}
			bal, ledger, h := balanceOf(t, e.s.DB, w.user)
			if bal != 10*perSecond || ledger != bal || h != 0 {
				t.Fatalf("balance %s ledger %s held %s, want 0.01 left", bal, ledger, h)
			}
		})
	}
}

// BenchmarkWindowRound is one round of the extender on SQLite with n open windowed
// calls (of 16 accounts), every one due: what windows cost per open call. Compare with
// BenchmarkCallPrepare (one call's callPrepare) to see what an extension adds to a call
// per window.
func BenchmarkWindowRound(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			e, s := benchEnv(b)
			e.s.Config.ReservationWindow = 10
			e.s.Config.MaxCallTime = 864_000
			var clock atomic.Int64
			clock.Store(1_700_000_000)
			e.s.Now = func() time.Time { return time.Unix(clock.Load(), 0) }
			if _, err := AddSIPServer(context.Background(), e.s.DB.Q(), SIPServerSpec{Name: "pbx2", Address: "10.0.0.2",
				AMIAddress: "127.0.0.1:1", AMIUser: "u", AMISecret: "s"}); err != nil {
				b.Fatal(err)
			}
			const accounts = 16
			for i := range accounts {
				e.register(admin(), fmt.Sprintf("w%d", i), 11, "sip_server", "10.0.0.2", "sip_extension",
					strconv.Itoa(40000+i), "balance", "100000000")
				e.updateUser(fmt.Sprintf("w%d", i), "rates", strconv.FormatInt(s.base.ID, 10))
			}
			for i := range n {
				ext := strconv.Itoa(40000 + i%accounts)
				if _, a := raw(e.h, astKey, "callPrepare", kv("login", ext, "destination", "74951234567",
					"uniqueid", "w"+strconv.Itoa(i), "channel", "PJSIP/"+ext+"-"+strconv.Itoa(i))); !strings.HasPrefix(a, "Allowed") {
					b.Fatal(a)
				}
			}
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				clock.Add(10) // every window is due again
				rep, err := e.s.windowRound(ctx)
				if err != nil || rep.Extended != n {
					b.Fatalf("%+v %v", rep, err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/call")
		})
	}
}
