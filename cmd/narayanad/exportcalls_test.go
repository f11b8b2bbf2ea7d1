package main

import (
	"context"
	"encoding/csv"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// TestExportCallsCommand: calls billed through the API come out of `export calls` as CSV,
// one row a call in the date range, on both databases.
func TestExportCallsCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildBinary(t, t.TempDir())
	deck, err := filepath.Abs("../../testdata/decks/carrier.csv")
	if err != nil {
		t.Fatal(err)
	}
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			dsn := dbtest.DSN(t, dialect)
			for _, args := range [][]string{
				{"init", "--db", dsn, "--admin-user", "root", "--admin-password", "pw", "--api-key", "0123456789abc"},
				{"sip-server", "add", "--db", dsn, "--name", "pbx", "--address", "192.0.2.1"},
				{"key", "add", "--db", dsn, "--name", "pbx", "--level", "50", "--auth-by", "sip_extension", "--key", "asteriskkey0001"},
			} {
				if _, e, err := binRun(bin, args...); err != nil {
					t.Fatal(args, err, e)
				}
			}
			api := apiAs(t, dsn)
			api("addRoute", "route", "carrier-a", "type", "sip", "sip_server", "192.0.2.1")
			api("addRates", "name", "retail")
			if _, e, err := binRun(bin, "import", "deck", "--db", dsn, "--rates", "1", "--route", "carrier-a", deck); err != nil {
				t.Fatal(err, e)
			}
			api("registerUser", "user", "alice", "web_password", md5hex("alicepw"), "sip_server", "192.0.2.1", "sip_extension", "10001", "balance", "50")
			api("updateUser", "user", "alice", "rates", "1", "timezone", "2")

			// Three calls as Asterisk makes them.
			d, err := db.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			s := billing.New(d, billing.DefaultConfig(), nil)
			ast, err := s.Gate.Keys.Lookup(ctx, "asteriskkey0001")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range [][]string{{"4915112345678", "120"}, {"79161234567", "61"}, {"4930123456", "0"}} {
				v, err := s.Call(ctx, billing.Call{Method: "callFinish", Key: ast, Version: "2.2", Remote: netip.MustParseAddr("192.0.2.1"),
					Params: map[string]string{"login": "10001", "destination": c[0], "length": c[1], "status": "ANSWER"}})
				if err != nil || !strings.HasPrefix(v.(string), "Saved ") {
					t.Fatalf("callFinish: %v %v", v, err)
				}
			}

			out, errs, err := binRun(bin, "export", "calls", "--db", dsn, "--from", "2000-01-01", "--to", "2100-12-31")
			if err != nil {
				t.Fatal(err, errs)
			}
			recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
			if err != nil || len(recs) != 4 {
				t.Fatalf("export calls: %v\n%s", err, out)
			}
			if strings.Join(recs[0], ",") != strings.Join(billing.CallsHeader, ",") {
				t.Fatalf("header %v", recs[0])
			}
			// Germany - Mobile is 0.0395 a minute, billed by the minute: 2 minutes.
			if r := recs[1]; r[1] != "alice" || r[4] != "4915112345678" || r[5] != "Germany-Mobile" || r[7] != "120" || r[10] != "0.079" || r[12] != "EUR" {
				t.Fatalf("first call: %v", r)
			}
			// An empty range writes the header alone; bad dates and missing flags fail.
			if out, _, err := binRun(bin, "export", "calls", "--db", dsn, "--from", "2000-01-01", "--to", "2000-01-31"); err != nil || strings.Count(out, "\n") != 1 {
				t.Fatalf("empty range: %v %q", err, out)
			}
			if _, errs, err := binRun(bin, "export", "calls", "--db", dsn, "--from", "01/02/2026", "--to", "2026-02-01"); err == nil || !strings.Contains(errs, "is not a date") {
				t.Fatalf("bad date: %v %q", err, errs)
			}
			_, _, err = binRun(bin, "export", "calls", "--db", dsn, "--from", "2026-01-01")
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
				t.Fatalf("no --to: %v, want exit 2", err)
			}
		})
	}
}
