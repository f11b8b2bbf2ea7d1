package main

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/narayana/narayanad/bench/loadgen"
	"github.com/narayana/narayanad/db"
)

// Phases of the two-daemon block (PostgreSQL).
const (
	phPrepare1 = "callPrepare, 1 daemon"
	phCycle1   = "call cycle, 1 daemon"
	phPrepare2 = "callPrepare, 2 daemons"
	phCycle2   = "call cycle, 2 daemons"
)

// twoDaemons is the scale-out block: a second `narayanad serve` on the same PostgreSQL,
// the clients split between the two (even workers to the first, odd to the second). To
// divide figures measured together, the same phases run on the first daemon alone just
// before. Daemon CPU per operation is both daemons' CPU over the operations; the money
// is checked after, across both.
type twoDaemons struct {
	Conc                     int
	Prepare1, Cycle1         phase
	Prepare2, Cycle2         phase
	Money                    moneyResult
	SecondStartup            time.Duration
	SecondErrors             int
	SecondFirstErr, Err      string
	PrepareGain, CycleGain   float64 // 2 daemons ÷ 1
	PrepareCPU1, PrepareCPU2 time.Duration
	CycleCPU1, CycleCPU2     time.Duration
	ListenNote               string
}

func (b *backendResult) twoDaemons(ctx context.Context, s *settings, l *loader, dsn, dir string, hdb *db.DB) *twoDaemons {
	t := &twoDaemons{Conc: level64(s.levels)}
	t.Prepare1 = l.measure(ctx, phPrepare1, t.Conc, s.dur, 0, l.prepareOp(), nil)
	if err := clearReservations(ctx, hdb); err != nil {
		t.Err = err.Error()
		return t
	}
	t.Cycle1 = l.measure(ctx, phCycle1, t.Conc, s.dur, 0, l.cycleOp(), nil)
	d2, startup, err := startDaemon(ctx, s.bin, dsn, filepath.Join(dir, "narayanad-2.log"))
	if err != nil {
		t.Err = "second daemon: " + err.Error()
		return t
	}
	t.SecondStartup = startup
	l2 := *l
	l2.d = d2
	both := *l
	both.also = d2
	split := func(a, b loadgen.Op) loadgen.Op {
		return func(ctx context.Context, w *loadgen.Worker) error {
			if w.ID%2 == 0 {
				return a(ctx, w)
			}
			return b(ctx, w)
		}
	}
	t.Prepare2 = both.measure(ctx, phPrepare2, t.Conc, s.dur, 0, split(l.prepareOp(), l2.prepareOp()), nil)
	if err := clearReservations(ctx, hdb); err != nil {
		t.Err = err.Error()
	}
	t.Cycle2 = both.measure(ctx, phCycle2, t.Conc, s.dur, 0, split(l.cycleOp(), l2.cycleOp()), nil)
	if err := clearReservations(ctx, hdb); err != nil && t.Err == "" {
		t.Err = err.Error()
	}
	if err := d2.stop(); err != nil {
		l.logf("second daemon stop: %v", err)
	}
	t.SecondErrors, t.SecondFirstErr = d2.errorLines()
	t.ListenNote = listenNote(d2.logPath)
	m, err := checkMoney(ctx, hdb, l.ds.initialTotal)
	t.Money = moneyResult{When: "after the two-daemon runs", Check: m}
	if err != nil {
		t.Money.Err = err.Error()
	}
	l.logf("money check %s: %s %s", t.Money.When, m, t.Money.Err)
	if t.Prepare1.Rate > 0 {
		t.PrepareGain = t.Prepare2.Rate / t.Prepare1.Rate
	}
	if t.Cycle1.Rate > 0 {
		t.CycleGain = t.Cycle2.Rate / t.Cycle1.Rate
	}
	l.logf("two daemons at %d clients: callPrepare %.2f× one daemon's, call cycle %.2f×", t.Conc, t.PrepareGain, t.CycleGain)
	return t
}

// listenNote says whether the second daemon's log shows it listening for changes.
func listenNote(logPath string) string {
	if n := countLines(logPath, "LISTEN "+db.ChangesChannel); n > 0 {
		return "the second daemon listened for directory and rating changes (LISTEN/NOTIFY) instead of polling"
	}
	return "the second daemon's log shows no LISTEN connection (an older binary polls)"
}

func (t *twoDaemons) facts() []string {
	if t == nil {
		return nil
	}
	f := []string{fmt.Sprintf("two daemons on this PostgreSQL, %d clients split between them, against the first daemon alone just before: callPrepare %.0f/s vs %.0f/s (%.2f×), p99 %s vs %s, daemon CPU %s vs %s a call (both daemons' CPU); call cycle %.0f/s vs %.0f/s (%.2f×), p99 %s vs %s, daemon CPU %s vs %s; %s",
		t.Conc, t.Prepare2.Rate, t.Prepare1.Rate, t.PrepareGain, dur(t.Prepare2.P99), dur(t.Prepare1.P99), dur(t.Prepare2.DaemonCPU), dur(t.Prepare1.DaemonCPU),
		t.Cycle2.Rate, t.Cycle1.Rate, t.CycleGain, dur(t.Cycle2.P99), dur(t.Cycle1.P99), dur(t.Cycle2.DaemonCPU), dur(t.Cycle1.DaemonCPU), t.ListenNote)}
	line := "money check " + t.Money.When + " (both daemons' calls): " + t.Money.Check.String()
	if t.Money.Err != "" {
		line += " (error: " + t.Money.Err + ")"
	}
	f = append(f, line)
	if t.SecondErrors > 0 {
		f = append(f, fmt.Sprintf("second daemon's log: %d ERROR lines; the first: %s", t.SecondErrors, t.SecondFirstErr))
	}
	if t.Err != "" {
		f = append(f, "two daemons: STOPPED: "+t.Err)
	}
	return f
}
