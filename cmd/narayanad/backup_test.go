package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/narayana/narayanad/db"
)

// serveBin starts `narayanad serve` on dsn and waits until it is healthy.
func serveBin(t *testing.T, bin, dsn string) (addr string, stop func()) {
	t.Helper()
	addr = freeAddr(t)
	cmd := exec.Command(bin, "serve", "--db", dsn, "--listen", addr)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, addr, nil)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cmd.Process.Signal(syscall.SIGTERM)
			if err := cmd.Wait(); err != nil {
				t.Errorf("serve after SIGTERM: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return addr, stop
}

// callCycle is one call as the demo's Asterisk bills it: callPrepare then callFinish.
// It answers whether callFinish saved it, and the last answer.
func callCycle(addr, ext, uid string) (bool, string, error) {
	base := "http://" + addr + "/billing/api/2.2/" + demoAsteriskKey
	get := func(q string) (string, error) {
		resp, err := http.Get(base + q)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	a, err := get("/callPrepare?login=" + ext + "&destination=79161234567&uniqueid=" + uid)
	if err != nil || !strings.HasPrefix(a, "Allowed ") {
		return false, a, err
	}
	a, err = get("/callFinish?login=" + ext + "&destination=79161234567&uniqueid=" + uid + "&length=3&status=ANSWER")
	return strings.HasPrefix(a, "Saved "), a, err
}

// TestBackupUnderLoad backs up a SQLite database while the daemon bills calls, restores
// it, and checks the money: every account's balance equals the sum of its ledger, and
// every call acknowledged before the backup began is in the copy. Restore refuses an
// initialised database without --force, and the daemon serves the restored one.
func TestBackupUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	dsn := "sqlite:" + filepath.Join(dir, "live.db")
	if out, err := exec.Command(bin, "demo", "--db", dsn).CombinedOutput(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	addr, stop := serveBin(t, bin, dsn)

	var mu sync.Mutex
	acked := map[string]time.Time{} // uniqueid → when callFinish answered Saved
	var worst, worstDuring time.Duration
	var backupStart, backupEnd time.Time
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, ext := range []string{"10000", "10001", "10002"} {
		wg.Add(1)
		go func(ext string) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				uid := fmt.Sprintf("%s.%d", ext, i)
				t0 := time.Now()
				saved, _, err := callCycle(addr, ext, uid)
				took := time.Since(t0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if saved {
					acked[uid] = time.Now()
				}
				if !backupStart.IsZero() && backupEnd.IsZero() || t0.Before(backupEnd) && time.Now().After(backupStart) {
					worstDuring = max(worstDuring, took)
				} else {
					worst = max(worst, took)
				}
				mu.Unlock()
			}
		}(ext)
	}
	time.Sleep(500 * time.Millisecond)
	file := filepath.Join(dir, "backup.db")
	mu.Lock()
	backupStart = time.Now()
	mu.Unlock()
	out, err := exec.Command(bin, "backup", "--db", dsn, file).CombinedOutput()
	mu.Lock()
	backupEnd = time.Now()
	mu.Unlock()
	if err != nil {
		t.Fatalf("backup: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond)
	close(done)
	wg.Wait()
	stop()
	t.Logf("%s; longest call cycle during the backup %s, otherwise %s", strings.TrimSpace(string(out)), worstDuring, worst)

	var before, after int
	for _, at := range acked {
		if at.Before(backupStart) {
			before++
		} else {
			after++
		}
	}
	if before < 10 || after < 1 {
		t.Fatalf("load too light to test anything: %d calls saved before the backup, %d after", before, after)
	}

	// Restore into a new database, and refuse the live one without --force.
	restored := "sqlite:" + filepath.Join(dir, "restored.db")
	if out, err := exec.Command(bin, "restore", "--db", restored, file).CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "restore", "--db", dsn, file).CombinedOutput(); err == nil || !strings.Contains(string(out), "initialised") {
		t.Fatalf("restore over an initialised database: %v\n%s", err, out)
	}
	checkMoney(t, restored, acked, backupStart)
	liveCalls := countCalls(t, dsn)
	if out, err := exec.Command(bin, "restore", "--db", dsn, "--force", file).CombinedOutput(); err != nil {
		t.Fatalf("restore --force: %v\n%s", err, out)
	}
	if n := countCalls(t, dsn); n >= liveCalls {
		t.Fatalf("restore --force left %d calls (the live database had %d; the backup fewer)", n, liveCalls)
	}
	checkMoney(t, dsn, acked, backupStart)

	// The restored database serves, and bills.
	addr, stop = serveBin(t, bin, restored)
	if saved, a, err := callCycle(addr, "10000", "after-restore"); err != nil || !saved {
		t.Fatalf("a call on the restored database: %v %s", err, a)
	}
	stop()
	checkMoney(t, restored, nil, time.Time{})

	// PostgreSQL is pg_dump's business, and a backup file is checked before use.
	if out, err := exec.Command(bin, "backup", "--db", "postgres://u:secret@127.0.0.1/x", file).CombinedOutput(); err == nil ||
		!strings.Contains(string(out), "pg_dump") || strings.Contains(string(out), "secret") {
		t.Fatalf("backup of a PostgreSQL DSN: %v\n%s", err, out)
	}
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte("not a database"), 0o600)
	if out, err := exec.Command(bin, "restore", "--db", "sqlite:"+filepath.Join(dir, "new.db"), junk).CombinedOutput(); err == nil {
		t.Fatalf("restore of a file that is no database: %s", out)
	}
}

// checkMoney opens dsn and checks that every account's balance is the sum of its ledger
// and that every call saved before by is in the call log.
func checkMoney(t *testing.T, dsn string, acked map[string]time.Time, by time.Time) {
	t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var bad []struct {
		ID      int64 `db:"id"`
		Balance int64 `db:"balance"`
		Ledger  int64 `db:"ledger"`
	}
	if err := d.SelectContext(ctx, &bad, `SELECT a.id, a.balance, COALESCE((SELECT SUM(amount) FROM ledger l WHERE l.account_id = a.id), 0) AS ledger
		FROM accounts a WHERE a.balance <> COALESCE((SELECT SUM(amount) FROM ledger l WHERE l.account_id = a.id), 0)`); err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("%s: balances that are not the sum of their ledger: %+v", dsn, bad)
	}
	var uids []string
	if err := d.SelectContext(ctx, &uids, `SELECT uniqueid FROM call_log WHERE uniqueid IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, u := range uids {
		have[u] = true
	}
	for uid, at := range acked {
		if at.Before(by) && !have[uid] {
			t.Fatalf("%s: call %s, saved before the backup began, is missing", dsn, uid)
		}
	}
}

func countCalls(t *testing.T, dsn string) int {
	t.Helper()
	d, err := db.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var n int
	if err := d.GetContext(context.Background(), &n, `SELECT COUNT(*) FROM call_log`); err != nil {
		t.Fatal(err)
	}
	return n
}
