package main

import (
	"bufio"
	"context"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
)

// The data set's fixed names and secrets (loopback only).
const (
	adminUser     = "admin"
	adminPassword = "bench-admin"
	webKey        = "bench-web-key-0123456789"
	serverKey     = "bench-asterisk-key-0123456789"
	realm         = "bench"
	userBalance   = 1_000_000_000 // 1,000 EUR in micro-units: never short of a 2-hour reservation
	switchPrice   = 10_000        // 0.01 EUR per billed call
)

// dataset is what the load needs to know of the data: extensions and destination numbers.
type dataset struct {
	exts    []string // one per user
	numbers []string // destinations, each matching some direction code

	initialTotal int64 // the bench users' balances before any call

	initTime     time.Duration
	usersTime    time.Duration
	codesTime    time.Duration // directions load, either way
	codesCommand bool          // loaded by `narayanad import directions` (so codesTime is its import time)
	codesCount   int
	tariffTime   time.Duration
	emptyRSS     int64 // KiB: the daemon's resident memory on the empty database, at /healthz
}

// countryCodes is a spread of 1-, 2- and 3-digit country codes (as in rating's benchmarks).
func countryCodes() []string {
	cc := []string{"1", "7"}
	for _, p := range []int{20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49,
		51, 52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98} {
		cc = append(cc, strconv.Itoa(p))
	}
	for _, p := range []int{21, 22, 23, 24, 25, 26, 29, 35, 37, 38, 42, 50, 59, 67, 68, 69, 85, 88, 96, 97, 99} {
		for d := range 10 {
			cc = append(cc, strconv.Itoa(p*10+d))
		}
	}
	return cc
}

type code struct {
	code string
	dir  int // direction id, 1..directions
}

// genCodes returns n distinct codes (country code + 3-7 digits) spread over the direction
// ids 1..dirs (an operator of a country is one direction, folded into dirs), and numbers
// to call: a code followed by digits up to 11-13 digits.
func genCodes(n, dirs, nNumbers int) ([]code, []string) {
	rng := rand.New(rand.NewSource(1))
	ccs := countryCodes()
	seen := make(map[string]struct{}, n)
	out := make([]code, 0, n)
	buf := make([]byte, 0, 16)
	for len(out) < n {
		ci := rng.Intn(len(ccs))
		cc := ccs[ci]
		buf = append(buf[:0], cc...)
		for range 3 + rng.Intn(5) {
			buf = append(buf, byte('0'+rng.Intn(10)))
		}
		c := string(buf)
		if _, dup := seen[c]; dup {
			continue
		}
		seen[c] = struct{}{}
		op := int(c[len(cc)]-'0')*10 + int(c[len(cc)+1]-'0')
		out = append(out, code{code: c, dir: (ci*100+op)%dirs + 1})
	}
	numbers := make([]string, nNumbers)
	for i := range numbers {
		nb := []byte(out[rng.Intn(len(out))].code)
		for want := 11 + rng.Intn(3); len(nb) < want; {
			nb = append(nb, byte('0'+rng.Intn(10)))
		}
		numbers[i] = string(nb)
	}
	return out, numbers
}

func directionName(id int) string { return "Direction " + strconv.Itoa(id) }

// run runs the daemon binary with args and returns its combined output.
func run(ctx context.Context, bin string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v\n%s", filepath.Base(bin), strings.Join(args[:min(2, len(args))], " "), err, out)
	}
	return string(out), nil
}

// hasImportCommand reports whether the binary has `import directions`.
func hasImportCommand(ctx context.Context, bin string) bool {
	out, _ := exec.CommandContext(ctx, bin, "import", "directions", "--help").CombinedOutput()
	return !strings.Contains(string(out), `unknown command`)
}

// buildDataset creates the database behind dsn through the binary (init, sip-server add,
// import directions when it exists) and direct SQL through the db package for the rest.
func buildDataset(ctx context.Context, s *settings, dsn, dir string, logf func(string, ...any)) (*dataset, error) {
	ds := &dataset{}
	t0 := time.Now()
	if _, err := run(ctx, s.bin, "init", "--db", dsn, "--admin-user", adminUser, "--admin-password", adminPassword,
		"--api-key", webKey); err != nil {
		return nil, err
	}
	if _, err := run(ctx, s.bin, "sip-server", "add", "--db", dsn, "--name", realm, "--address", "127.0.0.1"); err != nil {
		return nil, err
	}
	ds.initTime = time.Since(t0)

	// The memory floor: the same daemon on the freshly initialised, empty database.
	if d, _, err := startDaemon(ctx, s.bin, dsn, filepath.Join(dir, "narayanad-empty.log")); err == nil {
		ds.emptyRSS, _, _ = procMem(d.pid)
		d.stop()
		logf("empty daemon: RSS %.1f MiB", mib(ds.emptyRSS))
	} else {
		logf("empty daemon: %v", err)
	}

	d, err := db.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer d.Close()

	t0 = time.Now()
	codes, numbers := genCodes(s.codes, s.directions, 1<<16)
	if s.sorted {
		slices.SortFunc(codes, func(a, b code) int { return strings.Compare(a.code, b.code) })
	}
	ds.numbers, ds.codesCount = numbers, len(codes)
	logf("generated %d codes in %v", len(codes), time.Since(t0).Round(time.Millisecond))

	if s.useImport && hasImportCommand(ctx, s.bin) {
		csv := filepath.Join(dir, "directions.csv")
		if err := writeCSV(csv, codes); err != nil {
			return nil, err
		}
		t0 = time.Now()
		if out, err := run(ctx, s.bin, "import", "directions", "--db", dsn, csv); err != nil {
			return nil, err
		} else if out = strings.TrimSpace(out); out != "" {
			logf("import: %s", lastLine(out))
		}
		ds.codesTime, ds.codesCommand = time.Since(t0), true
		os.Remove(csv)
	} else {
		t0 = time.Now()
		err := d.InTx(ctx, func(tx *db.Tx) error {
			return insertRows(ctx, tx, `INSERT INTO directions (code, id, name, min_len, max_len) VALUES `, 5, len(codes),
				func(i int, a []any) {
					a[0], a[1], a[2], a[3], a[4] = codes[i].code, codes[i].dir, directionName(codes[i].dir), 8, 15
				})
		})
		if err != nil {
			return nil, fmt.Errorf("directions: %w", err)
		}
		ds.codesTime = time.Since(t0)
	}
	codes = nil
	logf("%d direction codes loaded in %v (%s)", ds.codesCount, ds.codesTime.Round(time.Millisecond),
		map[bool]string{true: "narayanad import directions", false: "batched SQL"}[ds.codesCommand])

	t0 = time.Now()
	var admin, server, tariff int64
	if err := d.Q().Get(ctx, &admin, `SELECT id FROM users WHERE username = ?`, adminUser); err != nil {
		return nil, err
	}
	if err := d.Q().Get(ctx, &server, `SELECT id FROM sip_servers WHERE name = ?`, realm); err != nil {
		return nil, err
	}
	err = d.InTx(ctx, func(tx *db.Tx) error {
		var routes []int64
		for i, name := range []string{"carrier-a", "carrier-b", "carrier-c"} {
			id, err := tx.Insert(ctx, `INSERT INTO routes (name, server_id, prefix, host, owner_id) VALUES (?, ?, ?, ?, ?)`,
				name, server, strconv.Itoa(i+1)+"#", "192.0.2."+strconv.Itoa(i+1), admin)
			if err != nil {
				return err
			}
			routes = append(routes, id)
		}
		var err error
		tariff, err = tx.Insert(ctx, `INSERT INTO rates (name, bill_type, switch_price, description, owner_id)
			VALUES ('bench', 'by_second', ?, 'benchmark tariff', ?)`, switchPrice, admin)
		if err != nil {
			return err
		}
		n := s.directions * len(routes)
		err = insertRows(ctx, tx, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES `, 5, n,
			func(i int, a []any) {
				dir, prio := i/len(routes)+1, i%len(routes)+1
				cost := 5_000 + (dir*7919)%195_000 + (prio-1)*2_000 // 0.005-0.2 EUR a minute
				a[0], a[1], a[2], a[3], a[4] = tariff, dir, prio, cost, routes[prio-1]
			})
		if err != nil {
			return err
		}
		return billing.BumpRatingVersion(ctx, tx)
	})
	if err != nil {
		return nil, fmt.Errorf("tariff: %w", err)
	}
	ds.tariffTime = time.Since(t0)

	t0 = time.Now()
	if err := createUsers(ctx, d, s.users, admin, server, tariff, ds); err != nil {
		return nil, fmt.Errorf("users: %w", err)
	}
	ds.usersTime = time.Since(t0)
	logf("tariff (%d directions × 3 routes) in %v, %d users with extensions in %v", s.directions,
		ds.tariffTime.Round(time.Millisecond), s.users, ds.usersTime.Round(time.Millisecond))
	return ds, nil
}

func createUsers(ctx context.Context, d *db.DB, n int, admin, server, tariff int64, ds *dataset) error {
	now := time.Now().Unix()
	name := func(i int) string { return fmt.Sprintf("bench%06d", i) }
	ds.exts = make([]string, n)
	for i := range n {
		ds.exts[i] = strconv.Itoa(200000 + i)
	}
	return d.InTx(ctx, func(tx *db.Tx) error {
		err := insertRows(ctx, tx, `INSERT INTO accounts (owner_id, balance, billing_name, created_at) VALUES `, 4, n,
			func(i int, a []any) { a[0], a[1], a[2], a[3] = admin, userBalance, name(i), now })
		if err != nil {
			return err
		}
		var accs []struct {
			ID   int64  `db:"id"`
			Name string `db:"billing_name"`
		}
		if err := tx.Select(ctx, &accs, `SELECT id, billing_name FROM accounts WHERE billing_name LIKE 'bench%'`); err != nil {
			return err
		}
		acc := make(map[string]int64, n)
		for _, a := range accs {
			acc[a.Name] = a.ID
		}
		err = insertRows(ctx, tx, `INSERT INTO ledger (account_id, amount, balance, kind, comment, created_at) VALUES `, 6, n,
			func(i int, a []any) {
				a[0], a[1], a[2], a[3], a[4], a[5] = acc[name(i)], userBalance, userBalance, "initial", "bench", now
			})
		if err != nil {
			return err
		}
		// Nobody logs in with a password: a server key names users by extension.
		err = insertRows(ctx, tx, `INSERT INTO users (username, password_hash, manager_id, accesslevel, active, account_id,
			currency, rates_id, created_at) VALUES `, 9, n,
			func(i int, a []any) {
				a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8] = name(i), "!", admin, 11, 1, acc[name(i)], "EUR", tariff, now
			})
		if err != nil {
			return err
		}
		var users []struct {
			ID   int64  `db:"id"`
			Name string `db:"username"`
		}
		if err := tx.Select(ctx, &users, `SELECT id, username FROM users WHERE username LIKE 'bench%'`); err != nil {
			return err
		}
		uid := make(map[string]int64, n)
		for _, u := range users {
			uid[u.Name] = u.ID
		}
		err = insertRows(ctx, tx, `INSERT INTO extensions (extension, user_id, server_id, password, callerid, updated_at) VALUES `, 6, n,
			func(i int, a []any) {
				a[0], a[1], a[2], a[3], a[4], a[5] = ds.exts[i], uid[name(i)], server, "secret"+ds.exts[i], ds.exts[i], now
			})
		if err != nil {
			return err
		}
		ds.initialTotal = int64(n) * userBalance
		// The Asterisk's key: named after its realm, naming users by SIP extension, level 50
		// (callPrepare, callFinish), owned by the master admin who manages everyone.
		_, err = billing.CreateKey(ctx, tx, billing.KeySpec{Name: realm, APIKey: serverKey, AuthBy: "sip_extension",
			Source: "127.0.0.1", Level: keys.LevelAsterisk, Owner: adminUser}, nil)
		return err
	})
}

// insertRows inserts n rows with multi-row INSERTs of up to 1,000 rows; fill sets row i's
// cols values.
func insertRows(ctx context.Context, tx *db.Tx, head string, cols, n int, fill func(i int, a []any)) error {
	const batch = 1000
	ph := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	args := make([]any, 0, batch*cols)
	row := make([]any, cols)
	var sb strings.Builder
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		sb.Reset()
		sb.WriteString(head)
		args = args[:0]
		for i := start; i < end; i++ {
			if i > start {
				sb.WriteString(", ")
			}
			sb.WriteString(ph)
			fill(i, row)
			args = append(args, row...)
		}
		if _, err := tx.Exec(ctx, sb.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

func writeCSV(path string, codes []code) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	w.WriteString("id,code,direction,min_len,max_len\n")
	for _, c := range codes {
		fmt.Fprintf(w, "%d,%s,%s,8,15\n", c.dir, c.code, directionName(c.dir))
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexAny(s, "\r\n"); i >= 0 {
		return s[i+1:]
	}
	return s
}
