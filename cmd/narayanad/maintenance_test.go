package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// TestMaintenanceCommand: `narayanad maintenance` (the real binary) runs the periodic work
// once and exits 0; while another runner holds the schedule it says so, does nothing and
// exits 0; without smtp_host it says once that mail is off.
func TestMaintenanceCommand(t *testing.T) {
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			dsn := dbtest.DSN(t, dialect)
			if out, err := exec.Command(bin, "init", "--db", dsn, "--admin-user", "root", "--admin-password", "pw",
				"--api-key", "0123456789abc").CombinedOutput(); err != nil {
				t.Fatalf("init: %v\n%s", err, out)
			}
			runIt := func() (string, string) {
				t.Helper()
				cmd := exec.Command(bin, "maintenance", "--db", dsn)
				var errb strings.Builder
				cmd.Stderr = &errb
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("maintenance: %v\n%s%s", err, out, errb.String())
				}
				return string(out), errb.String()
			}
			out, logs := runIt()
			if !strings.HasPrefix(out, "maintenance done: 0 reservations released") ||
				strings.Count(logs, "mail is off") != 1 || !strings.Contains(logs, "msg=maintenance ") {
				t.Fatalf("first run:\n%s\n%s", out, logs)
			}
			if strings.Contains(out+logs, "password") {
				t.Fatalf("output shows a password:\n%s%s", out, logs)
			}
			// A daemon that died mid-run still holds the schedule until its lease runs out.
			d, err := db.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			if _, err := d.Q().Exec(context.Background(), `UPDATE maintenance SET holder = 'pbx-host:42:abcdef', lease_until = ?`,
				time.Now().Add(time.Minute).Unix()); err != nil {
				t.Fatal(err)
			}
			if out, _ := runIt(); out != "maintenance skipped: pbx-host:42:abcdef is running it\n" {
				t.Fatalf("while held: %q", out)
			}
			if _, err := d.Q().Exec(context.Background(), `UPDATE maintenance SET lease_until = ?`, time.Now().Add(-time.Second).Unix()); err != nil {
				t.Fatal(err)
			}
			if out, _ := runIt(); !strings.HasPrefix(out, "maintenance done:") {
				t.Fatalf("after the lease ran out: %q", out)
			}
		})
	}
}
