package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/narayana/narayanad/bench/loadgen"
	"github.com/narayana/narayanad/db"
)

// backendResult is everything measured on one database.
type backendResult struct {
	Name, DSN string
	Data      *dataset
	Startup   time.Duration // serve to /healthz, the rating snapshot loaded
	RSSStart  int64         // KiB, right after /healthz
	RSSLoaded int64         // KiB, after the first callPrepare
	HWM       int64         // KiB, the daemon's peak resident set
	HasCalls  bool          // callPrepare and callFinish answer
	CallsNote string        // why not, when they do not
	Phases    []phase
	Repeats   string // the runs repeated at the targets' level, when they were
	Raw       []phase
	Money     []moneyResult
	Long      *longRun
	Two       *twoDaemons // PostgreSQL: two daemons on the one database
	LogErrors int
	FirstErr  string
	Err       string // the run stopped here
}

type moneyResult struct {
	When  string
	Check moneyCheck
	Err   string
}

type longRun struct {
	Phase                                   phase
	RSSBefore, RSSQuarter, RSSAfter, RSSMax int64 // KiB
	CallsQuarter                            int64 // calls done when RSSQuarter was read
	GrowthPerCall                           float64
	GrowthWhole                             float64
}

func runBackend(ctx context.Context, s *settings, name, dsn, rawDSN string, long time.Duration, seq *atomic.Int64,
	logf func(string, ...any)) *backendResult {
	b := &backendResult{Name: name, DSN: redact(dsn)}
	lf := func(f string, a ...any) { logf(name+": "+f, a...) }
	if err := b.run(ctx, s, dsn, rawDSN, long, seq, lf); err != nil {
		b.Err = err.Error()
		lf("stopped: %v", err)
	}
	return b
}

func (b *backendResult) run(ctx context.Context, s *settings, dsn, rawDSN string, long time.Duration, seq *atomic.Int64,
	logf func(string, ...any)) error {
	dir := filepath.Join(s.tmp, strings.ToLower(b.Name))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ds, err := buildDataset(ctx, s, dsn, dir, logf)
	if err != nil {
		return err
	}
	b.Data = ds
	d, startup, err := startDaemon(ctx, s.bin, dsn, filepath.Join(dir, "narayanad.log"))
	if err != nil {
		return err
	}
	stopped := false
	defer func() {
		if !stopped {
			d.stop()
		}
	}()
	b.Startup = startup
	b.RSSStart, _, _ = procMem(d.pid)
	logf("daemon ready in %v, RSS %.1f MiB", startup.Round(time.Millisecond), mib(b.RSSStart))

	hdb, err := db.Open(ctx, dsn) // the harness's own connection: checks and clean-up
	if err != nil {
		return err
	}
	defer hdb.Close()
	l := &loader{s: s, d: d, ds: ds, logf: logf, seq: seq, run: time.Now().Unix()}

	q := "login=" + ds.exts[0] + "&destination=" + ds.numbers[0] + "&uniqueid=probe." + b.Name
	okP, ansP := l.probe(ctx, "callPrepare", q)
	okF, ansF := l.probe(ctx, "callFinish", q+"&length=0")
	b.HasCalls = okP && okF && strings.HasPrefix(ansP, "Allowed ") && strings.HasPrefix(ansF, "Saved ")
	switch {
	case !okP || !okF:
		b.CallsNote = "not available yet (the daemon answers E_UNKNOWN_METHOD)"
	case !b.HasCalls:
		b.CallsNote = fmt.Sprintf("probe failed: callPrepare %q, callFinish %q", ansP, ansF)
	}
	b.RSSLoaded, _, _ = procMem(d.pid)
	if b.HasCalls {
		logf("probe: %s | %s; RSS %.1f MiB", ansP, ansF, mib(b.RSSLoaded))
	} else {
		logf("calls: %s", b.CallsNote)
	}

	// Each level's call phases run right after its floor: on a shared machine the cores
	// a run gets drift over a minute, and a ratio should divide figures measured together.
	// At the targets' level (both databases have targets there) the block runs s.reps
	// times and the median run of each phase is kept (medianRuns), so that one slow moment
	// of the machine does not decide them.
	l64 := level64(s.levels)
	for _, c := range s.levels {
		reps := 1
		if c == l64 {
			reps = max(s.reps, 1)
		}
		for rep := range reps {
			b.Phases = append(b.Phases, l.measure(ctx, phFloor, c, s.dur, 0, l.floorOp(), nil))
			if c == l64 && rep == 0 {
				b.Phases = append(b.Phases, l.measure(ctx, phHealthz, c, s.dur/2, 0, l.healthzOp(), nil))
			}
			if !b.HasCalls {
				continue
			}
			for _, ph := range []struct {
				name string
				op   loadgen.Op
			}{{phPrepare, l.prepareOp()}, {phCycle, l.cycleOp()}} {
				b.Phases = append(b.Phases, l.measure(ctx, ph.name, c, s.dur, 0, ph.op, nil))
				if err := clearReservations(ctx, hdb); err != nil {
					return err
				}
			}
		}
	}
	b.Phases, b.Repeats = medianRuns(b.Phases, l64)
	if b.HasCalls {
		b.checkMoney(ctx, hdb, ds, "after the call-cycle runs", logf)
		if strings.HasPrefix(dsn, "postgres") && ctx.Err() == nil {
			b.Two = b.twoDaemons(ctx, s, l, dsn, dir, hdb)
		}
		if long > 0 && ctx.Err() == nil {
			b.Long = b.longRun(ctx, l, s, long)
			b.checkMoney(ctx, hdb, ds, "after the long run", logf)
		}
	}
	_, b.HWM, _ = procMem(d.pid)
	stopped = true
	if err := d.stop(); err != nil {
		logf("daemon stop: %v", err)
	}
	b.LogErrors, b.FirstErr = d.errorLines()
	if b.LogErrors > 0 {
		logf("daemon log: %d ERROR lines, the first: %s", b.LogErrors, b.FirstErr)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	b.Raw, err = rawWrites(ctx, s, rawDSN, logf)
	return err
}

func (b *backendResult) checkMoney(ctx context.Context, hdb *db.DB, ds *dataset, when string, logf func(string, ...any)) {
	m, err := checkMoney(ctx, hdb, ds.initialTotal)
	r := moneyResult{When: when, Check: m}
	if err != nil {
		r.Err = err.Error()
	}
	b.Money = append(b.Money, r)
	logf("money check %s: %s %s", when, m, r.Err)
}

// longRun drives call cycles for a long time and reads the daemon's resident memory
// before it (after a warm-up at the same concurrency), a quarter of the way in, and after.
// The growth a call is taken over the last three quarters, once the heap and the
// connections have settled, and over the whole run.
func (b *backendResult) longRun(ctx context.Context, l *loader, s *settings, dur time.Duration) *longRun {
	lr := &longRun{}
	var calls atomic.Int64
	cycle := l.cycleOp()
	op := func(ctx context.Context, w *loadgen.Worker) error {
		err := cycle(ctx, w)
		if err == nil {
			calls.Add(1)
		}
		return err
	}
	var mu sync.Mutex
	done := make(chan struct{})
	var wg sync.WaitGroup
	before := func() {
		calls.Store(0)
		lr.RSSBefore, _, _ = procMem(l.d.pid)
		lr.RSSMax = lr.RSSBefore
		start := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					rss, _, _ := procMem(l.d.pid)
					mu.Lock()
					lr.RSSMax = max(lr.RSSMax, rss)
					if lr.RSSQuarter == 0 && time.Since(start) >= dur/4 {
						lr.RSSQuarter, lr.CallsQuarter = rss, calls.Load()
					}
					mu.Unlock()
				}
			}
		}()
	}
	lr.Phase = l.measure(ctx, "long call cycles", s.longConc, dur, s.longMax, op, before)
	close(done)
	wg.Wait()
	lr.RSSAfter, _, _ = procMem(l.d.pid)
	lr.RSSMax = max(lr.RSSMax, lr.RSSAfter)
	if n := lr.Phase.Ops; n > 0 {
		lr.GrowthWhole = float64(lr.RSSAfter-lr.RSSBefore) * 1024 / float64(n)
		lr.GrowthPerCall = lr.GrowthWhole
		if lr.RSSQuarter > 0 && n > lr.CallsQuarter {
			lr.GrowthPerCall = float64(lr.RSSAfter-lr.RSSQuarter) * 1024 / float64(n-lr.CallsQuarter)
		}
	}
	l.logf("long run: %d calls, RSS %.1f → %.1f (a quarter in) → %.1f MiB (peak %.1f): %+.1f bytes a call after the first quarter, %+.1f over the whole run",
		lr.Phase.Ops, mib(lr.RSSBefore), mib(lr.RSSQuarter), mib(lr.RSSAfter), mib(lr.RSSMax), lr.GrowthPerCall, lr.GrowthWhole)
	return lr
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

// level64 is the concurrency the targets are stated at, or the nearest measured one.
// medianRuns keeps, of each phase measured more than once at c clients, the run with the
// median rate (in the place of the first), and describes all of them.
func medianRuns(ps []phase, c int) ([]phase, string) {
	runs := map[string][]phase{}
	var names []string
	for _, p := range ps {
		if p.Conc == c {
			if runs[p.Name] == nil {
				names = append(names, p.Name)
			}
			runs[p.Name] = append(runs[p.Name], p)
		}
	}
	var out []phase
	var notes []string
	kept := map[string]bool{}
	for _, p := range ps {
		rs := runs[p.Name]
		if p.Conc != c || len(rs) < 2 {
			out = append(out, p)
			continue
		}
		if kept[p.Name] {
			continue
		}
		kept[p.Name] = true
		sorted := append([]phase{}, rs...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].Rate < sorted[j].Rate })
		out = append(out, sorted[len(sorted)/2])
	}
	for _, n := range names {
		rs := runs[n]
		if len(rs) < 2 {
			continue
		}
		var rates []string
		for _, r := range rs {
			rates = append(rates, fmt.Sprintf("%.0f/s (%s CPU)", r.Rate, dur(r.DaemonCPU)))
		}
		notes = append(notes, n+" "+strings.Join(rates, ", "))
	}
	if len(notes) == 0 {
		return out, ""
	}
	return out, fmt.Sprintf("at %d clients each phase below ran %d times, one after the other, and the tables show its median run: %s",
		c, len(runs[names[0]]), strings.Join(notes, "; "))
}

func level64(levels []int) int {
	best := levels[0]
	for _, c := range levels {
		if abs(c-64) < abs(best-64) {
			best = c
		}
	}
	return best
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
