package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// cli runs narayanad's run with args and answers its exit status, stdout and stderr, as
// main would give them.
func cli(t *testing.T, args ...string) (status int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	status = exitStatus(run(context.Background(), args, &out, &errb), &errb)
	return status, out.String(), errb.String()
}

// TestHelp: every command and group answers --help and -h with its usage on stdout and
// status 0; an unknown flag or subcommand gives status 2 with the usage on stderr.
func TestHelp(t *testing.T) {
	type ask struct {
		args  []string
		usage string // what stdout must start with
	}
	var asks []ask
	for _, h := range []string{"--help", "-h", "help"} {
		asks = append(asks, ask{[]string{h}, about})
	}
	groups := map[string]bool{}
	for _, c := range commands {
		for _, h := range []string{"--help", "-h"} {
			asks = append(asks, ask{append(strings.Fields(c.name), h), "Usage: narayanad " + c.name + " "})
		}
		if g, _, ok := strings.Cut(c.name, " "); ok && !groups[g] {
			groups[g] = true
			for _, h := range []string{"--help", "-h"} {
				asks = append(asks, ask{[]string{g, h}, "Usage: narayanad " + g + " SUBCOMMAND"})
			}
		}
	}
	for _, a := range asks {
		status, out, errs := cli(t, a.args...)
		if status != 0 || !strings.HasPrefix(out, a.usage) || errs != "" {
			t.Errorf("%q: status %d, stdout %q, stderr %q", a.args, status, out, errs)
		}
	}

	for _, c := range commands {
		args := append(strings.Fields(c.name), "--no-such-flag")
		status, out, errs := cli(t, args...)
		if status != 2 || out != "" || !strings.Contains(errs, "flag provided but not defined: -no-such-flag") ||
			!strings.Contains(errs, "Usage: narayanad "+c.name+" ") {
			t.Errorf("%q: status %d, stdout %q, stderr %q", args, status, out, errs)
		}
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"import"}, {"import", "--db"}, {"import", "tariffs"},
		{"sip-server", "remove"}, {"init", "--db", "sqlite:x.db"}, {"import", "directions"}, {"version", "extra"}} {
		status, out, errs := cli(t, args...)
		if status != 2 || out != "" || !strings.Contains(errs, "Usage: narayanad") {
			t.Errorf("%q: status %d, stdout %q, stderr %q", args, status, out, errs)
		}
	}
}

// TestHelpReads: flag names are printed as typed (--name) with the kind of value they
// take, and the default DSN shows without its password.
func TestHelpReads(t *testing.T) {
	t.Setenv("NARAYANA_DB", "postgres://narayana:s3cret@db.example/narayana")
	_, out, _ := cli(t, "init", "--help")
	for _, want := range []string{
		"Usage: narayanad init --db DSN --admin-user U --admin-password P --api-key K",
		"  --admin-password TEXT\n        the master admin's password\n",
		"  --api-key TEXT\n        the secret of the client key web\n",
		"(default postgres://narayana:xxxxx@db.example/narayana)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("init --help lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "s3cret") {
		t.Errorf("init --help shows the password:\n%s", out)
	}
	if _, out, _ := cli(t, "import", "rates", "-h"); !strings.Contains(out, "  --replace\n") || !strings.Contains(out, "  --rates N\n") {
		t.Errorf("import rates -h:\n%s", out)
	}
	if _, out, _ := cli(t, "config", "sample"); !strings.Contains(out, "\n#max_call_time = 7200\n") {
		t.Errorf("config sample:\n%s", out)
	}
}

// TestInitCreatesTheFolder: init on a SQLite file in a missing folder creates the folder
// (0750); the other commands name the missing folder instead of creating it.
func TestInitCreatesTheFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing", "dir")
	dsn := "sqlite:" + filepath.Join(dir, "x.db")
	if status, _, errs := cli(t, "migrate", "--db", dsn); status != 1 || !strings.Contains(errs, dir) {
		t.Fatalf("migrate on a missing folder: %d %s", status, errs)
	}
	if status, _, errs := cli(t, "init", "--db", dsn, "--admin-user", "root", "--admin-password", "pw", "--api-key", "0123456789abc"); status != 0 {
		t.Fatalf("init: %d %s", status, errs)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o750 {
		t.Fatalf("the folder: %v %v", st.Mode(), err)
	}
}

// TestInitHidesThePassword: init on PostgreSQL names the database without its password.
func TestInitHidesThePassword(t *testing.T) {
	dsn := dbtest.DSN(t, db.Postgres)
	status, out, errs := cli(t, "init", "--db", dsn, "--admin-user", "root", "--admin-password", "pw", "--api-key", "0123456789abc")
	if status != 0 || !strings.Contains(out, "initialised "+db.Redact(dsn)) || !strings.Contains(out, ":xxxxx@") {
		t.Fatalf("init: %d %q %q", status, out, errs)
	}
}

// TestInitUnknownCurrency: a currency the database would not have stops init with the
// file, line and setting, before anything is created.
func TestInitUnknownCurrency(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "n.conf")
	os.WriteFile(conf, []byte("# the system currency\ncurrency = XYZ\n"), 0o600)
	dsn := "sqlite:" + filepath.Join(dir, "n.db")
	init := []string{"init", "--db", dsn, "--admin-user", "root", "--admin-password", "pw", "--api-key", "0123456789abc"}
	status, _, errs := cli(t, append(init, "--config", conf)...)
	if status != 1 || !strings.Contains(errs, conf+":2: setting currency: the database has no currency XYZ") {
		t.Fatalf("init with currency XYZ: %d %s", status, errs)
	}
	if status, _, errs := cli(t, init...); status != 0 {
		t.Fatalf("init after the refusal: %d %s", status, errs)
	}
	// serve checks against the database's currencies table.
	if status, _, errs := cli(t, "serve", "--db", dsn, "--config", conf, "--listen", "127.0.0.1:0"); status != 1 ||
		!strings.Contains(errs, conf+":2: setting currency: the database has no currency XYZ (it has EUR, RUB, USD)") {
		t.Fatalf("serve with currency XYZ: %d %s", status, errs)
	}
}
