package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// apiAs runs API methods in-process as the master admin root/pw that `init` made, through
// billing.Service.Call (the gate and the method table, as over HTTP).
func apiAs(t *testing.T, dsn string) func(method string, kv ...string) any {
	ctx := context.Background()
	d, err := db.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	s := billing.New(d, billing.DefaultConfig(), nil)
	web, err := s.Gate.Keys.Lookup(ctx, "0123456789abc")
	if err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum([]byte("pw"))
	return func(method string, kv ...string) any {
		t.Helper()
		params := map[string]string{"login": "root", "password": hex.EncodeToString(sum[:])}
		for i := 0; i+1 < len(kv); i += 2 {
			params[kv[i]] = kv[i+1]
		}
		v, err := s.Call(ctx, billing.Call{Method: method, Params: params, Key: web, Version: "2.2", Remote: netip.MustParseAddr("127.0.0.1")})
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return v
	}
}

// binRun runs the binary and returns its stdout, stderr and error.
func binRun(bin string, args ...string) (string, string, error) {
	var out, errb strings.Builder
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// TestImportDeckCommand: `import deck` applies the sample carrier deck through the binary
// on both databases; a bad deck names its line and applies nothing; `export directions`
// writes the directions back.
func TestImportDeckCommand(t *testing.T) {
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
			dsn := dbtest.DSN(t, dialect)
			dir := t.TempDir()
			if _, e, err := binRun(bin, "init", "--db", dsn, "--admin-user", "root", "--admin-password", "pw", "--api-key", "0123456789abc"); err != nil {
				t.Fatal(err, e)
			}
			if _, e, err := binRun(bin, "sip-server", "add", "--db", dsn, "--name", "pbx", "--address", "192.0.2.1"); err != nil {
				t.Fatal(err, e)
			}
			api := apiAs(t, dsn)
			api("addRoute", "route", "carrier-a", "type", "sip", "sip_server", "192.0.2.1")
			api("addRates", "name", "retail")

			out, errs, err := binRun(bin, "import", "deck", "--db", dsn, "--rates", "1", "--route", "carrier-a", deck)
			if err != nil {
				t.Fatal(err, errs)
			}
			if !strings.Contains(out, "imported 395 prefixes of 31 directions (31 new) into tariff 1") || errs != "" {
				t.Fatalf("stdout %q, stderr %q (no progress bar off a terminal)", out, errs)
			}
			if got := len(api("getRates", "id", "1").([]map[string]any)); got != 31 {
				t.Fatalf("getRates: %d directions", got)
			}

			// A bad row: exit 1, the file and line, nothing applied.
			bad := filepath.Join(dir, "bad.csv")
			os.WriteFile(bad, []byte("Prefix;Destination;Rate\n1;Tollfree;0\n44;United Kingdom - Fixed;0,0061\n447;UK Mobile;0,01,5\n"), 0o600)
			_, errs, err = binRun(bin, "import", "deck", "--db", dsn, "--rates", "1", "--route", "carrier-a", bad)
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(errs, "bad.csv:4:") || !strings.Contains(errs, "nothing imported") {
				t.Fatalf("bad deck: %v %q", err, errs)
			}
			// Usage errors exit 2.
			for _, args := range [][]string{{"--rates", "1", deck}, {"--route", "carrier-a", deck}, {"--rates", "1", "--route", "carrier-a"},
				{"--rates", "1", "--route", "carrier-a", "--priority", "0", deck}} {
				_, _, err := binRun(bin, append([]string{"import", "deck", "--db", dsn}, args...)...)
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
					t.Fatalf("%v: %v, want exit 2", args, err)
				}
			}
			if _, errs, err := binRun(bin, "import", "deck", "--db", dsn, "--rates", "1", "--route", "nowhere", deck); err == nil || !strings.Contains(errs, `no route "nowhere"`) {
				t.Fatalf("unknown route: %v %q", err, errs)
			}

			out, errs, err = binRun(bin, "export", "directions", "--db", dsn)
			if err != nil {
				t.Fatal(err, errs)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if len(lines) != 396 || lines[0] != "id,code,direction,min_len,max_len" || !strings.Contains(out, "\n31,1,United States,0,32\n") {
				t.Fatalf("export directions: %d lines, %.200q", len(lines), out)
			}
			if strings.Contains(out, "Tollfree") {
				t.Fatal("the bad deck's first row was applied")
			}
		})
	}
}

// TestImportProgressOnTerminal: on a terminal (a pseudo-terminal from util-linux's
// script(1)) an import draws its progress bar on stderr.
func TestImportProgressOnTerminal(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("no script(1) to give the binary a terminal")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	dsn := initSQLite(t, bin, dir)
	var csv strings.Builder
	csv.WriteString("id,code,direction,min_len,max_len\n")
	for i := range 20000 {
		fmt.Fprintf(&csv, "1,4%d,Zone,,\n", i)
	}
	file := filepath.Join(dir, "d.csv")
	if err := os.WriteFile(file, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(script, "-qec", bin+" import directions --db "+dsn+" "+file, "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "import directions") || !strings.Contains(string(out), "%") || !strings.Contains(string(out), "imported 20000 directions") {
		t.Fatalf("no progress bar on a terminal: %q", out)
	}
}
