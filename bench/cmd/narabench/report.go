package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

type machine struct {
	CPUs      int
	Model     string
	Go        string
	Kernel    string
	LoadStart string
	Commit    string
}

func readMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), LoadStart: readLoadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.Model = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
	}
	return m
}

func readLoadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

type report struct {
	s         *settings
	started   time.Time
	elapsed   time.Duration
	machine   machine
	loadEnd   string
	backends  []*backendResult
	pgSkipped string
}

// find returns the phase of that name and concurrency.
func find(ps []phase, name string, c int) *phase {
	for i := range ps {
		if ps[i].Name == name && ps[i].Conc == c {
			return &ps[i]
		}
	}
	return nil
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func pct(a, b float64) string {
	if a == 0 || b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*a/b)
}

func dur(d time.Duration) string {
	if d == 0 {
		return "–"
	}
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}

// rows renders one backend's phases as table rows: the figures, then their ratios to the
// floor at the same concurrency (requests a second, p99, daemon CPU) and, for the call
// phases, to the raw write transactions a second.
func (b *backendResult) rows() [][]string {
	var out [][]string
	// Measured level by level; shown phase by phase.
	rank := map[string]int{phFloor: 0, phHealthz: 1, phPrepare: 2, phCycle: 3}
	all := append([]phase{}, b.Phases...)
	sort.SliceStable(all, func(i, j int) bool { return rank[all[i].Name] < rank[all[j].Name] })
	all = append(all, b.Raw...)
	if t := b.Two; t != nil {
		for _, p := range []phase{t.Prepare1, t.Prepare2, t.Cycle1, t.Cycle2} {
			if p.Name != "" {
				all = append(all, p)
			}
		}
	}
	if b.Long != nil {
		all = append(all, b.Long.Phase)
	}
	for _, p := range all {
		fl := find(b.Phases, phFloor, p.Conc)
		raw := find(b.Raw, phRawTx, p.Conc)
		fRate, fP99, fCPU, rRate := 0.0, 0.0, 0.0, 0.0
		if fl != nil {
			fRate, fP99, fCPU = fl.Rate, float64(fl.P99), float64(fl.DaemonCPU)
		}
		if raw != nil {
			rRate = raw.Rate
		}
		vsRaw := "–"
		switch p.Name {
		case phPrepare, phCycle, "long call cycles", phPrepare1, phPrepare2, phCycle1, phCycle2:
			vsRaw = ratio(p.Rate, rRate)
		}
		if p.Name == phRawTx || p.Name == phRawGrp {
			fRate, fP99, fCPU = 0, 0, 0
		}
		failed := fmt.Sprint(p.Failed)
		if p.Failed > 0 && p.Ops+p.Failed > 0 {
			failed += fmt.Sprintf(" (%.1f%%)", 100*float64(p.Failed)/float64(p.Ops+p.Failed))
		}
		server := "–"
		if b.Name == "PostgreSQL" {
			server = dur(p.ServerCPU)
		}
		out = append(out, []string{p.Name, fmt.Sprint(p.Conc), fmt.Sprintf("%.0f", p.Rate), ratio(p.Rate, fRate),
			dur(p.P50), dur(p.P99), dur(p.P999), ratio(float64(p.P99), fP99), dur(p.DaemonCPU),
			ratio(float64(p.DaemonCPU), fCPU), vsRaw, dur(p.GenCPU), server, failed})
	}
	return out
}

var header = []string{"phase", "clients", "ops/s", "÷ floor", "p50", "p99", "p99.9", "p99 ÷ floor",
	"daemon CPU/op", "÷ floor", "÷ raw writes", "loadgen CPU/op", "PostgreSQL CPU/op", "failed"}

func (b *backendResult) facts() []string {
	var f []string
	if b.Data != nil {
		how := "batched SQL through package db (the binary has no `import directions` yet)"
		if b.Data.codesCommand {
			how = "`narayanad import directions` from a CSV"
		}
		f = append(f, fmt.Sprintf("data set: %d direction codes loaded in %s by %s; tariff %s; %d users with extensions and balances %s; `init` + `sip-server add` %s",
			b.Data.codesCount, dur(b.Data.codesTime), how, dur(b.Data.tariffTime), len(b.Data.exts), dur(b.Data.usersTime), dur(b.Data.initTime)))
	}
	if b.Startup > 0 {
		floor := ""
		if b.Data != nil && b.Data.emptyRSS > 0 {
			floor = fmt.Sprintf(" (%s the empty database's %.1f MiB)", ratio(float64(b.RSSLoaded), float64(b.Data.emptyRSS))+"×", mib(b.Data.emptyRSS))
		}
		loaded := ""
		if b.HasCalls {
			loaded = " (rating snapshot loaded)"
		}
		f = append(f, fmt.Sprintf("daemon start to /healthz%s: %s; resident memory %.1f MiB at ready, %.1f MiB after the first call%s, peak %.1f MiB",
			loaded, dur(b.Startup), mib(b.RSSStart), mib(b.RSSLoaded), floor, mib(b.HWM)))
	}
	if !b.HasCalls && b.CallsNote != "" {
		f = append(f, "callPrepare / callFinish: "+b.CallsNote)
	}
	if b.Repeats != "" {
		f = append(f, b.Repeats)
	}
	for _, m := range b.Money {
		line := "money check " + m.When + ": " + m.Check.String()
		if m.Err != "" {
			line += " (error: " + m.Err + ")"
		}
		f = append(f, line)
	}
	if lr := b.Long; lr != nil {
		f = append(f, fmt.Sprintf("long run: %d call cycles at %d clients in %s; resident memory %.1f MiB before, %.1f MiB a quarter in, %.1f MiB after (peak %.1f): %+.1f bytes a call over the last three quarters, %+.1f over the whole run",
			lr.Phase.Ops, lr.Phase.Conc, dur(lr.Phase.Elapsed), mib(lr.RSSBefore), mib(lr.RSSQuarter), mib(lr.RSSAfter), mib(lr.RSSMax),
			lr.GrowthPerCall, lr.GrowthWhole))
	}
	f = append(f, b.Two.facts()...)
	if b.LogErrors > 0 {
		f = append(f, fmt.Sprintf("daemon log: %d ERROR lines; the first: %s", b.LogErrors, b.FirstErr))
	}
	if b.Err != "" {
		f = append(f, "STOPPED: "+b.Err)
	}
	return f
}

// target is one line of the issue's targets, checked on SQLite at 64 clients.
type target struct {
	what, goal, peer, got, verdict string
}

// at64 is the backend named name and its floor, callPrepare and call cycle phases at the
// targets' level (nil when it did not run).
func (r *report) at64(name string) (b *backendResult, floor, prepare, cycle *phase) {
	i := slices.IndexFunc(r.backends, func(b *backendResult) bool { return b.Name == name })
	if i < 0 {
		return nil, nil, nil, nil
	}
	b, c := r.backends[i], level64(r.s.levels)
	return b, find(b.Phases, phFloor, c), find(b.Phases, phPrepare, c), find(b.Phases, phCycle, c)
}

func (r *report) targets() []target {
	b, fl, pr, cy := r.at64("SQLite")
	if b == nil {
		return nil
	}
	na := func(t target, why string) target { t.got, t.verdict = "–", why; return t }
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**missed**"
	}
	var ts []target
	add := func(t target, p *phase, val func(*phase) (string, bool)) {
		if p == nil || p.Ops == 0 {
			ts = append(ts, na(t, "not available yet"))
			return
		}
		got, ok := val(p)
		t.got, t.verdict = got, verdict(ok)
		ts = append(ts, t)
	}
	add(target{what: "callPrepare a second", goal: "≥ 20,000", peer: "≈ 6,800"}, pr,
		func(p *phase) (string, bool) { return fmt.Sprintf("%.0f", p.Rate), p.Rate >= 20000 })
	add(target{what: "callPrepare ÷ floor requests/s", goal: "≥ 50%"}, pr, func(p *phase) (string, bool) {
		if fl == nil || fl.Rate == 0 {
			return "–", false
		}
		return pct(p.Rate, fl.Rate), p.Rate >= fl.Rate/2
	})
	add(target{what: "callPrepare p99", goal: "< 5 ms", peer: "≈ 21 ms"}, pr,
		func(p *phase) (string, bool) { return dur(p.P99), p.P99 < 5*time.Millisecond })
	add(target{what: "daemon CPU per callPrepare", goal: "< 60 µs", peer: "≈ 230 µs"}, pr,
		func(p *phase) (string, bool) { return dur(p.DaemonCPU), p.DaemonCPU < 60*time.Microsecond })
	add(target{what: "call cycles a second", goal: "≥ 8,000", peer: "≈ 1,900 CDRs/s (p99 ≈ 110 ms)"}, cy,
		func(p *phase) (string, bool) { return fmt.Sprintf("%.0f", p.Rate), p.Rate >= 8000 })
	add(target{what: "call cycles ÷ floor requests/s", goal: "≥ 25%"}, cy, func(p *phase) (string, bool) {
		if fl == nil || fl.Rate == 0 {
			return "–", false
		}
		return pct(p.Rate, fl.Rate), p.Rate >= fl.Rate/4
	})
	mem := target{what: "resident memory growth a call", goal: "< 1 KiB (over 10⁶ calls)", peer: "≈ 25 KiB a CDR"}
	if lr := b.Long; lr != nil && lr.Phase.Ops > 0 {
		mem.got = fmt.Sprintf("%+.0f bytes (last ¾ of %d calls)", lr.GrowthPerCall, lr.Phase.Ops)
		mem.verdict = verdict(lr.GrowthPerCall < 1024)
		if lr.Phase.Ops < 1_000_000 {
			mem.verdict += " (shorter run)"
		}
		ts = append(ts, mem)
	} else {
		ts = append(ts, na(mem, "not available yet"))
	}
	imp := target{what: "import of the million-row CSV", goal: "< 20 s"}
	switch {
	case b.Data == nil:
		ts = append(ts, na(imp, "–"))
	case !b.Data.codesCommand:
		ts = append(ts, na(imp, "not measured: no `import directions` command yet"))
	default:
		imp.got = fmt.Sprintf("%s for %d rows", dur(b.Data.codesTime), b.Data.codesCount)
		imp.verdict = verdict(b.Data.codesTime < 20*time.Second)
		if b.Data.codesCount < 1_000_000 {
			imp.verdict += " (scaled data set)"
		}
		ts = append(ts, imp)
	}
	rss := target{what: "resident memory with a million prefixes", goal: "< 250 MB"}
	if b.Data != nil && b.RSSLoaded > 0 && b.HasCalls {
		bytes := float64(b.RSSLoaded) * 1024
		rss.got = fmt.Sprintf("%.0f MB with %d codes", bytes/1e6, b.Data.codesCount)
		if b.Data.emptyRSS > 0 {
			rss.got += fmt.Sprintf(" (empty: %.0f MB)", float64(b.Data.emptyRSS)*1024/1e6)
		}
		rss.verdict = verdict(bytes < 250e6)
		if b.Data.codesCount < 1_000_000 {
			rss.verdict += " (scaled data set)"
		}
		ts = append(ts, rss)
	} else {
		ts = append(ts, na(rss, "not available yet (no rating in the daemon)"))
	}
	return ts
}

// targetSet is one issue's targets, for the reports.
type targetSet struct {
	issue int
	what  string
	ts    []target
}

// targetSets are the targets of the backends that ran.
func (r *report) targetSets() []targetSet {
	var out []targetSet
	for _, set := range []targetSet{{4, "SQLite", r.targets()}, {12, "PostgreSQL, one daemon", r.pgTargets()}} {
		if len(set.ts) > 0 {
			out = append(out, set)
		}
	}
	return out
}

// pgTargets are issue 12's targets, checked on PostgreSQL at 64 clients with one daemon.
func (r *report) pgTargets() []target {
	b, fl, pr, cy := r.at64("PostgreSQL")
	if b == nil {
		return nil
	}
	var ts []target
	add := func(t target, p *phase, val func(p, fl *phase) (string, bool)) {
		if p == nil || p.Ops == 0 || fl == nil || fl.Rate == 0 {
			t.got, t.verdict = "–", "not available"
		} else {
			got, ok := val(p, fl)
			t.got, t.verdict = got, map[bool]string{true: "met", false: "**missed**"}[ok]
		}
		ts = append(ts, t)
	}
	add(target{what: "callPrepare ÷ floor requests/s", goal: "≥ 50%"}, pr,
		func(p, fl *phase) (string, bool) { return pct(p.Rate, fl.Rate), p.Rate >= fl.Rate/2 })
	add(target{what: "call cycles ÷ floor requests/s", goal: "≥ 25%"}, cy,
		func(p, fl *phase) (string, bool) { return pct(p.Rate, fl.Rate), p.Rate >= fl.Rate/4 })
	add(target{what: "callPrepare p99 ÷ floor's p99", goal: "≤ 3×"}, pr, func(p, fl *phase) (string, bool) {
		return fmt.Sprintf("%.2f× (%s)", float64(p.P99)/float64(fl.P99), dur(p.P99)), p.P99 <= 3*fl.P99
	})
	add(target{what: "callPrepare a second", goal: "≥ 13,600 (2 × the peer's)", peer: "≈ 6,800"}, pr,
		func(p, fl *phase) (string, bool) { return fmt.Sprintf("%.0f", p.Rate), p.Rate >= 13600 })
	return ts
}

func (r *report) mode() string {
	if r.s.quick {
		return "quick (BENCH_QUICK=1: scaled-down data set, short runs)"
	}
	return "full"
}

func (r *report) terminal(w io.Writer) {
	fmt.Fprintf(w, "narabench %s — %d × %s, %s, load average %s at start, %s at end; %s in all\n", r.mode(), r.machine.CPUs,
		r.machine.Model, r.machine.Go, r.machine.LoadStart, r.loadEnd, r.elapsed.Round(time.Second))
	for _, b := range r.backends {
		fmt.Fprintf(w, "\n== %s\n", b.Name)
		for _, f := range b.facts() {
			fmt.Fprintln(w, "  "+f)
		}
		rows := append([][]string{header}, b.rows()...)
		widths := make([]int, len(header))
		for _, row := range rows {
			for i, c := range row {
				widths[i] = max(widths[i], len([]rune(c)))
			}
		}
		for _, row := range rows {
			var sb strings.Builder
			for i, c := range row {
				pad := widths[i] - len([]rune(c))
				if i == 0 {
					sb.WriteString(c + strings.Repeat(" ", pad))
				} else {
					sb.WriteString("  " + strings.Repeat(" ", pad) + c)
				}
			}
			fmt.Fprintln(w, strings.TrimRight(sb.String(), " "))
		}
	}
	if r.pgSkipped != "" {
		fmt.Fprintf(w, "\n== PostgreSQL: skipped: %s\n", r.pgSkipped)
	}
	for _, set := range r.targetSets() {
		fmt.Fprintf(w, "\nTargets (%s, %d clients):\n", set.what, level64(r.s.levels))
		for _, t := range set.ts {
			fmt.Fprintf(w, "  %-42s %-26s %-32s %s\n", t.what, t.goal, t.got, t.verdict)
		}
	}
}

func mdRow(cells []string) string {
	return "| " + strings.Join(cells, " | ") + " |\n"
}

func (r *report) markdown() string {
	var sb strings.Builder
	m := r.machine
	sb.WriteString("# Benchmarks\n\n")
	sb.WriteString("<!-- Generated by bench/cmd/narabench (`make bench`); edit bench/NOTES.md, not this file. -->\n\n")
	fmt.Fprintf(&sb, "Measured %s, %s mode, in %s.\n\n", r.started.Format("2006-01-02 15:04 UTC"), r.mode(), r.elapsed.Round(time.Second))
	sb.WriteString("## Machine and command\n\n")
	fmt.Fprintf(&sb, "- %d CPUs (`nproc`), %s; Linux %s; %s; commit %s\n", m.CPUs, m.Model, m.Kernel, m.Go, m.Commit)
	fmt.Fprintf(&sb, "- load average (1, 5, 15 min) %s at the start, %s at the end; the load generator, the daemon and the database share the cores\n",
		m.LoadStart, r.loadEnd)
	if r.s.note != "" {
		fmt.Fprintf(&sb, "- %s\n", r.s.note)
	}
	fmt.Fprintf(&sb, "- reproduce: `%s`\n", r.s.command)
	fmt.Fprintf(&sb, "- data set: %d direction codes (country code + 3-7 digits, %s) over a tariff of %d directions × 3 routes (per-second billing, a switch price), %d users with one SIP extension and 1,000 EUR each; concurrency %v, %s a measured run after a %s warm-up\n\n",
		r.s.codes, map[bool]string{false: "shuffled", true: "sorted by code"}[r.s.sorted], r.s.directions, r.s.users, r.s.levels, dur(r.s.dur), dur(r.s.warm))

	sb.WriteString("## How to read the tables\n\n")
	sb.WriteString("- **floor (getCurrencies)**: the same daemon answering a level-0 method with no user through the whole API path (key gate, method table, binding, envelope) and one read of a three-row table; the API has no method that touches nothing. **healthz** is the bare HTTP server, for scale.\n")
	sb.WriteString("- **callPrepare**: the Asterisk's server key (`auth_by` sip_extension, level 50), a random user and a random destination, a fresh `uniqueid`; every answer must be `Allowed …`. Reservations left open are deleted between runs.\n")
	sb.WriteString("- **call cycle**: callPrepare then callFinish (length 0-600 s, 10% unanswered) of the same call; ops/s are calls a second, so two requests each.\n")
	sb.WriteString("- **raw write tx**: the database alone, opened by package db with the daemon's own DSN settings, from the benchmark process: one transaction updating a balance and inserting a ledger-like row. callPrepare takes one write transaction, a call cycle two. **raw writes, group commit**: the same moves handed to one writer goroutine that commits whatever has queued (up to 256) in one transaction, at the targets' concurrency.\n")
	sb.WriteString("- **÷ floor** columns are the phase's figure divided by the floor's at the same number of clients; **÷ raw writes** divides by the raw write transactions a second.\n")
	sb.WriteString("- **daemon CPU/op**: utime + stime from /proc/PID/stat over the run, divided by the operations (10 ms ticks). **loadgen CPU/op**: the benchmark process's own, which shares the cores. **PostgreSQL CPU/op**: the same for every process named postgres on the machine (its backends, WAL writer and checkpointer, and any other user's of that server), so an upper bound on what the server spent.\n\n")

	for _, b := range r.backends {
		fmt.Fprintf(&sb, "## %s\n\n", b.Name)
		for _, f := range b.facts() {
			fmt.Fprintf(&sb, "- %s\n", f)
		}
		sb.WriteString("\n")
		sb.WriteString(mdRow(header))
		seps := make([]string, len(header))
		for i := range seps {
			seps[i] = "---:"
		}
		seps[0] = "---"
		sb.WriteString(mdRow(seps))
		for _, row := range b.rows() {
			sb.WriteString(mdRow(row))
		}
		sb.WriteString("\n")
	}
	if r.pgSkipped != "" {
		fmt.Fprintf(&sb, "## PostgreSQL\n\nSkipped: %s.\n\n", r.pgSkipped)
	}

	for _, set := range r.targetSets() {
		fmt.Fprintf(&sb, "## Targets (issue %d), %s at %d clients\n\n", set.issue, set.what, level64(r.s.levels))
		sb.WriteString("The peer is the best-known open-source Go real-time charging engine, measured by its authors on the same kind of 2-core machine with its load generator sharing the cores.\n\n")
		sb.WriteString(mdRow([]string{"target", "goal", "peer", "measured", "verdict"}))
		sb.WriteString(mdRow([]string{"---", "---", "---", "---", "---"}))
		for _, t := range set.ts {
			peer := t.peer
			if peer == "" {
				peer = "–"
			}
			sb.WriteString(mdRow([]string{t.what, t.goal, peer, t.got, t.verdict}))
		}
		sb.WriteString("\n")
	}
	if notes, err := os.ReadFile(r.s.notes); err == nil {
		sb.WriteString(strings.TrimSpace(string(notes)) + "\n")
	}
	return sb.String()
}
