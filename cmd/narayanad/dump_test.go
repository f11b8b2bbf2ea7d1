package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// TestDumpLoadBetweenDialects moves an installation that has billed calls from SQLite to
// PostgreSQL and back through the binary (dump, load): every table arrives with the same
// rows, every balance equals its ledger, and the daemon serves and bills calls on the
// moved database (so the identity counters are past the loaded ids). Load refuses a
// database that holds data, a damaged or truncated dump, and a dump of another schema.
func TestDumpLoadBetweenDialects(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	lite := "sqlite:" + filepath.Join(dir, "live.db")
	if out, err := exec.Command(bin, "demo", "--db", lite).CombinedOutput(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	bill := func(dsn, tag string, n int) {
		t.Helper()
		addr, stop := serveBin(t, bin, dsn)
		for i := range n {
			ext := []string{"10000", "10001", "10002"}[i%3]
			if saved, a, err := callCycle(addr, ext, fmt.Sprintf("%s.%d", tag, i)); err != nil || !saved {
				t.Fatalf("%s: call %d: %v %q", dsn, i, err, a)
			}
		}
		stop()
		checkMoney(t, dsn, nil, time.Time{})
	}
	bill(lite, "lite", 12)

	dump1 := filepath.Join(dir, "one.ndump")
	if out, err := exec.Command(bin, "dump", "--db", lite, dump1).CombinedOutput(); err != nil || !strings.Contains(string(out), "ledger") {
		t.Fatalf("dump: %v\n%s", err, out)
	}
	if fi, err := os.Stat(dump1); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the dump holds secrets and should be 0600: %v %v", fi.Mode(), err)
	}

	pg := dbtest.DSN(t, db.Postgres)
	out, err := exec.Command(bin, "load", "--db", pg, dump1).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "every balance equals its ledger") {
		t.Fatalf("load into PostgreSQL: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "narayana:narayana@") {
		t.Fatalf("load printed the DSN's password: %s", out)
	}
	sameRows(t, readDump(t, dump1), readDump(t, dumpOf(t, bin, pg, filepath.Join(dir, "pg.ndump"))))

	// A database that holds data is refused, even with --force once it has ledger rows,
	// and is left as it was.
	calls := countCalls(t, pg)
	for _, args := range [][]string{{"load", "--db", pg, dump1}, {"load", "--db", pg, "--force", dump1}} {
		if out, err := exec.Command(bin, args...).CombinedOutput(); err == nil || !strings.Contains(string(out), "not empty") {
			t.Fatalf("%v over a database with data: %v\n%s", args, err, out)
		}
	}
	if countCalls(t, pg) != calls {
		t.Fatal("a refused load changed the database")
	}

	// The moved database serves and bills; new rows take new ids.
	bill(pg, "pg", 12)
	if countCalls(t, pg) != calls+12 {
		t.Fatalf("calls on PostgreSQL: %d, want %d", countCalls(t, pg), calls+12)
	}

	// And back: PostgreSQL to a SQLite database that `init` made (--force replaces it).
	dump2 := dumpOf(t, bin, pg, filepath.Join(dir, "two.ndump"))
	back := initSQLite(t, bin, dir)
	if out, err := exec.Command(bin, "load", "--db", back, dump2).CombinedOutput(); err == nil || !strings.Contains(string(out), "--force") {
		t.Fatalf("load over an initialised database without --force: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "load", "--db", back, "--force", dump2).CombinedOutput(); err != nil {
		t.Fatalf("load --force into SQLite: %v\n%s", err, out)
	}
	sameRows(t, readDump(t, dump2), readDump(t, dumpOf(t, bin, back, filepath.Join(dir, "back.ndump"))))
	bill(back, "back", 6)
	if n := countCalls(t, back); n != calls+18 {
		t.Fatalf("calls after the round trip: %d, want %d", n, calls+18)
	}

	// Damaged dumps change nothing: not gzip, truncated, another schema version.
	empty := "sqlite:" + filepath.Join(dir, "empty.db")
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, []byte("not a dump"), 0o600)
	raw, _ := os.ReadFile(dump2)
	short := filepath.Join(dir, "short")
	os.WriteFile(short, truncatedDump(t, raw), 0o600)
	other := filepath.Join(dir, "other")
	os.WriteFile(other, rewriteHeader(t, raw, func(h *db.DumpHeader) { h.Schema++ }), 0o600)
	for file, want := range map[string]string{junk: "not a narayanad dump", short: "truncated", other: "newer than this binary"} {
		out, err := exec.Command(bin, "load", "--db", empty, file).CombinedOutput()
		if err == nil || !strings.Contains(string(out), want) {
			t.Fatalf("load %s: %v\n%s", filepath.Base(file), err, out)
		}
		if out, err := exec.Command(bin, "key", "list", "--db", empty).CombinedOutput(); err == nil || !strings.Contains(string(out), "no narayanad schema") {
			t.Fatalf("a failed load left a schema behind: %v\n%s", err, out)
		}
	}

	// A ledger row that names no account fails the check after the load (PostgreSQL's
	// ledger has no foreign key: sql/postgres/025).
	orphan := filepath.Join(dir, "orphan")
	os.WriteFile(orphan, withOrphanLedgerRow(t, raw), 0o600)
	if out, err := exec.Command(bin, "load", "--db", dbtest.DSN(t, db.Postgres), orphan).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "1 ledger rows name no account") {
		t.Fatalf("load of a ledger row without its account: %v\n%s", err, out)
	}
}

// withOrphanLedgerRow adds to a dump a ledger row of amount 0 for an account it does
// not hold, and counts it in the end line.
func withOrphanLedgerRow(t *testing.T, raw []byte) []byte {
	t.Helper()
	var out []string
	var cols []string
	added := false
	for _, line := range gunzipLines(t, raw) {
		if strings.HasPrefix(line, `{"end"`) { // its row count too
			var end struct {
				End  bool           `json:"end"`
				Rows map[string]int `json:"rows"`
			}
			json.Unmarshal([]byte(line), &end)
			end.Rows["ledger"]++
			b, _ := json.Marshal(end)
			line = string(b)
		}
		out = append(out, line)
		if strings.HasPrefix(line, "{") {
			var tl struct {
				Table   string   `json:"table"`
				Columns []string `json:"columns"`
			}
			json.Unmarshal([]byte(line), &tl)
			cols = nil
			if tl.Table == "ledger" {
				cols = tl.Columns
			}
			continue
		}
		if cols == nil || added {
			continue
		}
		var row []json.RawMessage
		if err := json.Unmarshal([]byte(line), &row); err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			switch c {
			case "id", "account_id":
				row[i] = json.RawMessage("999999")
			case "amount", "balance":
				row[i] = json.RawMessage("0")
			}
		}
		b, _ := json.Marshal(row)
		out, added = append(out, string(b)), true
	}
	if !added {
		t.Fatal("the dump holds no ledger row")
	}
	return gzipLines(out)
}

func dumpOf(t *testing.T, bin, dsn, file string) string {
	t.Helper()
	if out, err := exec.Command(bin, "dump", "--db", dsn, file).CombinedOutput(); err != nil {
		t.Fatalf("dump %s: %v\n%s", dsn, err, out)
	}
	return file
}

// readDump reads a dump's rows by table, each row as its JSON text, keyed by the
// column names so that the dialects' column order does not matter.
func readDump(t *testing.T, file string) map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<24)
	out := map[string][]string{}
	var table string
	var cols []string
	for sc.Scan() {
		line := sc.Bytes()
		if line[0] == '{' {
			var tl struct {
				Table   string   `json:"table"`
				Columns []string `json:"columns"`
			}
			json.Unmarshal(line, &tl)
			table, cols = tl.Table, tl.Columns
			continue
		}
		var row []json.RawMessage
		if err := json.Unmarshal(line, &row); err != nil {
			t.Fatal(err)
		}
		m := map[string]json.RawMessage{}
		for i, c := range cols {
			m[c] = row[i]
		}
		b, _ := json.Marshal(m) // keys sorted
		out[table] = append(out[table], string(b))
	}
	for _, rows := range out {
		sort.Strings(rows) // the dialects collate text keys differently
	}
	return out
}

// sameRows compares two dumps table by table, but for the version counters that a
// load moves on purpose.
func sameRows(t *testing.T, a, b map[string][]string) {
	t.Helper()
	if len(a) == 0 || len(a["ledger"]) == 0 || len(a["call_log"]) == 0 {
		t.Fatalf("nothing to compare: %d tables, %d ledger rows", len(a), len(a["ledger"]))
	}
	for _, m := range []map[string][]string{a, b} {
		delete(m, "directory_version")
		delete(m, "rating_version")
	}
	if len(a) != len(b) {
		t.Fatalf("%d tables, then %d", len(a), len(b))
	}
	for table, rows := range a {
		if strings.Join(rows, "\n") != strings.Join(b[table], "\n") {
			t.Fatalf("table %s differs after the move: %d rows, then %d\n%v\n%v", table, len(rows), len(b[table]), rows, b[table])
		}
	}
}

func truncatedDump(t *testing.T, raw []byte) []byte {
	t.Helper()
	lines := gunzipLines(t, raw)
	return gzipLines(lines[:len(lines)/2])
}

func rewriteHeader(t *testing.T, raw []byte, fn func(*db.DumpHeader)) []byte {
	t.Helper()
	lines := gunzipLines(t, raw)
	var h db.DumpHeader
	json.Unmarshal([]byte(lines[0]), &h)
	fn(&h)
	b, _ := json.Marshal(h)
	lines[0] = string(b)
	return gzipLines(lines)
}

func gunzipLines(t *testing.T, raw []byte) []string {
	t.Helper()
	zr, err := gzip.NewReader(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	return lines
}

func gzipLines(lines []string) []byte {
	var b strings.Builder
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(strings.Join(lines, "\n") + "\n"))
	zw.Close()
	return []byte(b.String())
}
