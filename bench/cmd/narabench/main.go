// Command narabench is the end-to-end benchmark behind `make bench`: it creates a data set
// (a million direction codes, a tariff of 20,000 directions × 3 routes, 10,000 users with
// extensions and balances) through the narayanad binary and the db package, starts
// `narayanad serve` on loopback, drives closed-loop HTTP load at fixed concurrencies, and
// reads the daemon's CPU time and resident memory from /proc. Every figure is compared
// with a floor measured in the same run. It runs on SQLite, then on PostgreSQL when a DSN
// is reachable, prints a summary and writes docs/BENCHMARKS.md.
//
// It talks to the daemon only through its binary and its HTTP API, and to the database
// only through package db: it builds while other packages are being changed.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/narayana/narayanad/db"
)

type settings struct {
	bin        string
	quick      bool
	users      int
	codes      int
	directions int
	levels     []int
	warm       time.Duration // connection warm-up before each measured run
	dur        time.Duration // each measured run
	rawDur     time.Duration // each raw write run
	long       time.Duration // the long run of call cycles (memory growth), SQLite
	longPG     time.Duration // the same on PostgreSQL (0: skipped)
	longConc   int
	reps       int
	longMax    int64
	pgDSN      string
	useImport  bool
	sorted     bool   // direction codes in code order (a sorted rate deck) rather than shuffled
	sqliteOpts string // extra DSN options for the SQLite database (experiments)
	out        string
	notes      string
	command    string
	note       string
	keep       bool
	sqlite     bool // run the SQLite block (false: PostgreSQL only)
	tmp        string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := mainErr(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "narabench:", err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, args []string, stdout io.Writer) error {
	s := &settings{}
	fs := flag.NewFlagSet("narabench", flag.ContinueOnError)
	fs.StringVar(&s.bin, "bin", "bin/narayanad", "the narayanad binary")
	fs.BoolVar(&s.quick, "quick", os.Getenv("BENCH_QUICK") == "1", "scaled-down data set and short runs (under a minute)")
	users := fs.Int("users", 0, "users (default 10000; quick 1000)")
	codes := fs.Int("codes", 0, "direction codes (default 1000000; quick 100000)")
	fs.IntVar(&s.directions, "directions", 20000, "directions of the tariff (3 routes each)")
	levels := fs.String("levels", "1,16,64,256", "concurrencies")
	dur := fs.Duration("d", 0, "each measured run (default 4s; quick 1s)")
	long := fs.Duration("long", 0, "the long run of call cycles on SQLite (default 40s; quick 5s)")
	longPG := fs.Duration("long-pg", -1, "the long run on PostgreSQL (default 15s; quick 0: skipped)")
	fs.IntVar(&s.longConc, "long-c", 64, "concurrency of the long run")
	fs.IntVar(&s.reps, "reps", 3, "runs of the floor and the call phases at the targets' level (64 clients); the median is kept")
	fs.Int64Var(&s.longMax, "long-max", 1_000_000, "the long run stops after this many calls")
	pg := os.Getenv("NARAYANA_BENCH_POSTGRES")
	fs.StringVar(&s.pgDSN, "postgres", pg, "PostgreSQL DSN (a fresh schema is created in it); empty or \"off\": SQLite only")
	fs.BoolVar(&s.useImport, "import", true, "load direction codes with `narayanad import directions` when the binary has it")
	fs.BoolVar(&s.sorted, "sorted-codes", false, "load the direction codes in code order instead of shuffled")
	fs.StringVar(&s.sqliteOpts, "sqlite-options", "", "extra SQLite DSN options for the daemon and the raw writes, e.g. _stmt_cache_size=64")
	fs.StringVar(&s.out, "out", "", "write the report (markdown) here, e.g. docs/BENCHMARKS.md")
	fs.StringVar(&s.notes, "notes", "bench/NOTES.md", "hand-written findings appended to the report")
	fs.StringVar(&s.command, "command", "make bench", "the command shown in the report as reproducing it")
	fs.StringVar(&s.note, "note", os.Getenv("BENCH_NOTE"), "a remark on the conditions of this run, shown in the report")
	fs.BoolVar(&s.keep, "keep", false, "keep the temporary directory, logs and databases")
	fs.BoolVar(&s.sqlite, "sqlite", true, "run the SQLite block (false: PostgreSQL only, when working on its path)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s.users, s.codes = pick(*users, 10_000, 1_000, s.quick), pick(*codes, 1_000_000, 100_000, s.quick)
	s.dur = pickD(*dur, 4*time.Second, time.Second, s.quick)
	s.long = pickD(*long, 40*time.Second, 5*time.Second, s.quick)
	s.longPG = 15 * time.Second
	if s.quick {
		s.longPG = 0
	}
	if *longPG >= 0 {
		s.longPG = *longPG
	}
	s.warm = min(s.dur/4, 500*time.Millisecond)
	s.rawDur = s.dur / 2
	for _, f := range strings.Split(*levels, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			return fmt.Errorf("-levels: %q is not a concurrency", f)
		}
		s.levels = append(s.levels, c)
	}
	if _, err := os.Stat(s.bin); err != nil {
		return fmt.Errorf("-bin: %w (make build)", err)
	}
	var err error
	if s.bin, err = filepath.Abs(s.bin); err != nil {
		return err
	}
	if s.tmp, err = os.MkdirTemp("", "narabench-"); err != nil {
		return err
	}
	if !s.keep {
		defer os.RemoveAll(s.tmp)
	}
	started := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stdout, "[%5.1fs] %s\n", time.Since(started).Seconds(), fmt.Sprintf(format, a...))
	}
	rep := &report{s: s, started: started.UTC(), machine: readMachine()}
	mode := "full"
	if s.quick {
		mode = "quick"
	}
	logf("narabench (%s): %d codes, %d directions × 3 routes, %d users; concurrency %v, %v a run; temp %s",
		mode, s.codes, s.directions, s.users, s.levels, s.dur, s.tmp)

	var seq atomic.Int64
	opts := ""
	if s.sqliteOpts != "" {
		opts = "?" + s.sqliteOpts
	}
	if s.sqlite {
		sq := runBackend(ctx, s, "SQLite", "sqlite:"+filepath.Join(s.tmp, "bench.db")+opts, "sqlite:"+filepath.Join(s.tmp, "raw.db")+opts,
			s.long, &seq, logf)
		rep.backends = append(rep.backends, sq)
	}

	switch dsn := strings.TrimSpace(s.pgDSN); {
	case ctx.Err() != nil:
	case dsn == "" || dsn == "off":
		rep.pgSkipped = "no PostgreSQL DSN given (NARAYANA_BENCH_POSTGRES or -postgres)"
		logf("PostgreSQL: skipped: %s", rep.pgSkipped)
	default:
		pgDSN, drop, err := freshSchema(ctx, dsn)
		if err != nil {
			rep.pgSkipped = "not reachable: " + err.Error()
			logf("PostgreSQL: skipped: %s", rep.pgSkipped)
			break
		}
		if s.keep {
			logf("PostgreSQL: kept schema in %s", redact(pgDSN))
		} else {
			defer drop()
		}
		rep.backends = append(rep.backends, runBackend(ctx, s, "PostgreSQL", pgDSN, pgDSN, s.longPG, &seq, logf))
	}
	rep.elapsed = time.Since(started)
	rep.loadEnd = readLoadavg()
	fmt.Fprintln(stdout)
	rep.terminal(stdout)
	if s.out != "" {
		if err := os.WriteFile(s.out, []byte(rep.markdown()), 0o644); err != nil {
			return err
		}
		logf("wrote %s", s.out)
	}
	for _, b := range rep.backends {
		if b.Err != "" {
			return fmt.Errorf("%s: %s", b.Name, b.Err)
		}
	}
	return ctx.Err()
}

func pick(v, full, quick int, q bool) int {
	switch {
	case v > 0:
		return v
	case q:
		return quick
	}
	return full
}

func pickD(v, full, quick time.Duration, q bool) time.Duration {
	switch {
	case v > 0:
		return v
	case q:
		return quick
	}
	return full
}

// freshSchema creates a new schema in the PostgreSQL database at dsn and returns a DSN
// whose search_path is that schema, and a function dropping it.
func freshSchema(ctx context.Context, dsn string) (string, func(), error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	admin, err := db.Open(cctx, dsn)
	if err != nil {
		return "", nil, err
	}
	buf := make([]byte, 4)
	rand.Read(buf)
	schema := "bench_" + hex.EncodeToString(buf)
	if _, err := admin.ExecContext(cctx, `CREATE SCHEMA `+schema); err != nil {
		admin.Close()
		return "", nil, err
	}
	u, err := url.Parse(dsn)
	if err != nil {
		admin.Close()
		return "", nil, err
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String(), func() {
		admin.ExecContext(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
		admin.Close()
	}, nil
}

// redact hides a DSN's password.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxx")
	}
	return u.String()
}
