package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/narayana/narayanad/db"
)

// pgBin is where Debian keeps PostgreSQL 15's server binaries.
const pgBin = "/usr/lib/postgresql/15/bin"

// pgCluster is a PostgreSQL cluster of this machine's binaries, run by this test on a
// loopback port as the postgres user (the server refuses to run as root).
type pgCluster struct {
	t    *testing.T
	dir  string // data directory
	sock string
	port int
	cred *syscall.Credential
}

func (c *pgCluster) cmd(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(pgBin, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	cmd.Dir = c.sock
	return cmd
}

func (c *pgCluster) run(name string, args ...string) {
	c.t.Helper()
	if out, err := c.cmd(name, args...).CombinedOutput(); err != nil {
		c.t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// ctl runs pg_ctl on the cluster (start, stop, restart, promote), waiting for it.
func (c *pgCluster) ctl(action string, extra ...string) {
	c.t.Helper()
	args := append([]string{action, "-w", "-D", c.dir, "-l", c.dir + ".log",
		"-o", fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1", c.port, c.sock)}, extra...)
	c.run("pg_ctl", args...)
}

// waitStreaming waits until a standby streams from the cluster.
func (c *pgCluster) waitStreaming() {
	c.t.Helper()
	ctx := context.Background()
	d, err := db.Open(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port))
	if err != nil {
		c.t.Fatal(err)
	}
	defer d.Close()
	for range 300 {
		var n int
		if err := d.Q().Get(ctx, &n, `SELECT COUNT(*) FROM pg_stat_replication WHERE state = 'streaming'`); err == nil && n > 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.t.Fatal("the standby does not stream")
}

func freePortNum(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestPostgresFailover runs call cycles through the daemon (the real binary) on a DSN
// naming a primary and its streaming replica with target_session_attrs=read-write. Under
// load the primary restarts, then it is stopped and the replica promoted: the daemon
// carries on against the new primary within seconds, every acknowledged callFinish is
// charged exactly once (one that failed is sent again, and charges once), and every
// balance equals its ledger.
func TestPostgresFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two PostgreSQL clusters (about 30 s)")
	}
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		t.Skipf("no PostgreSQL server binaries in %s (apt-get install postgresql-15)", pgBin)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root and there is no postgres user to run the server as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	base, err := os.MkdirTemp("", "narayana-failover-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	if cred != nil {
		os.Chown(base, int(cred.Uid), int(cred.Gid))
	}
	primary := &pgCluster{t: t, dir: filepath.Join(base, "primary"), sock: base, port: freePortNum(t), cred: cred}
	replica := &pgCluster{t: t, dir: filepath.Join(base, "replica"), sock: base, port: freePortNum(t), cred: cred}
	primary.run("initdb", "-D", primary.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	primary.ctl("start")
	defer primary.cmd("pg_ctl", "stop", "-D", primary.dir, "-m", "immediate").Run()
	primary.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.port), "-U", "postgres",
		"-D", replica.dir, "-R", "-X", "stream", "--no-sync")
	replica.ctl("start")
	defer replica.cmd("pg_ctl", "stop", "-D", replica.dir, "-m", "immediate").Run()

	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write",
		primary.port, replica.port)
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	if out, err := exec.Command(bin, "demo", "--db", dsn).CombinedOutput(); err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	addr := freeAddr(t)
	daemon := exec.Command(bin, "serve", "--db", dsn, "--listen", addr)
	var logs syncBuffer
	daemon.Stdout, daemon.Stderr = io.Discard, &logs
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		daemon.Process.Signal(syscall.SIGTERM)
		daemon.Wait()
	}()
	waitHealthy(t, addr, &logs)

	// Call cycles from four workers until stop; each finish that was not answered
	// "Saved" is kept to be sent again at the end.
	api := "http://" + addr + "/billing/api/2.2/" + demoAsteriskKey + "/"
	get := func(method, query string) string {
		c := http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get(api + method + "?" + query)
		if err != nil {
			return "error: " + err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	type finish struct{ query, answer string }
	var (
		mu          sync.Mutex
		acked       = map[string]string{} // uniqueid → its Saved line
		unacked     []finish
		resent      int          // finishes answered only when sent again
		lastOK      atomic.Int64 // unix nanoseconds of the last Saved answer
		lastRefusal atomic.Value
		stop        = make(chan struct{})
		wg          sync.WaitGroup
		sequence    atomic.Int64
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ext := []string{"10000", "10001"}[w%2]
			for {
				select {
				case <-stop:
					return
				default:
				}
				uid := fmt.Sprintf("fo.%d", sequence.Add(1))
				q := "login=" + ext + "&destination=79161234567&uniqueid=" + uid
				// Like an Asterisk whose request failed, a worker asks again with the same
				// uniqueid (a callPrepare replaces its own reservation, a callFinish charges
				// once) until it gets an answer line or the test stops.
				again := func(method, q string, answered ...string) (string, bool) {
					for n := 0; ; n++ {
						a := get(method, q)
						for _, p := range answered {
							if strings.Contains(a, p) {
								return a, n > 0
							}
						}
						select {
						case <-stop:
							return a, n > 0
						case <-time.After(50 * time.Millisecond):
						}
					}
				}
				if a, _ := again("callPrepare", q, "Allowed ", "Declined "); !strings.Contains(a, "Allowed ") {
					lastRefusal.Store(a)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				// Short calls: the demo users' balances (20 and 100 EUR) last the test.
				fq := q + "&status=ANSWER&length=" + strconv.Itoa(1+int(sequence.Load()%2))
				a, retried := again("callFinish", fq, "Saved ")
				mu.Lock()
				switch {
				case !strings.Contains(a, "Saved "):
					unacked = append(unacked, finish{fq, a})
				default:
					acked[uid] = a
					lastOK.Store(time.Now().UnixNano())
					if retried {
						resent++
					}
				}
				mu.Unlock()
			}
		}()
	}
	// carriesOn waits until calls are saved again after now, and says how long it took.
	carriesOn := func(what string) {
		t.Helper()
		from := time.Now()
		for time.Since(from) < 30*time.Second {
			if lastOK.Load() > from.UnixNano() {
				t.Logf("%s: calls saved again after %v", what, time.Since(from).Round(10*time.Millisecond))
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s: no call saved for 30 s (last callPrepare refused: %v)\n%s", what, lastRefusal.Load(), logs.String())
	}
	carriesOn("start")
	time.Sleep(time.Second)
	primary.ctl("restart", "-m", "fast")
	carriesOn("primary restarted")
	time.Sleep(time.Second)
	// A switchover: once the standby streams again (it reconnects a few seconds after the
	// restart), a fast shutdown sends it all WAL before it ends, so nothing acknowledged is
	// lost; then the standby is promoted.
	primary.waitStreaming()
	primary.ctl("stop", "-m", "fast")
	replica.ctl("promote")
	carriesOn("replica promoted")
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()

	// Finishes that got no Saved line are sent again: each charges once.
	for _, f := range unacked {
		a := get("callFinish", f.query)
		if !strings.Contains(a, "Saved ") {
			t.Fatalf("callFinish again after %q: %q", f.answer, a)
		}
		uid := f.query[strings.Index(f.query, "uniqueid=")+len("uniqueid="):]
		uid, _, _ = strings.Cut(uid, "&")
		acked[uid] = a
	}
	t.Logf("%d calls saved, %d of them sent again after an error", len(acked), resent+len(unacked))

	ctx := context.Background()
	d, err := db.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var rows []struct {
		UniqueID string `db:"uniqueid"`
		N        int    `db:"n"`
	}
	if err := d.Q().Select(ctx, &rows, `SELECT uniqueid, COUNT(*) AS n FROM call_log WHERE uniqueid LIKE 'fo.%' GROUP BY uniqueid`); err != nil {
		t.Fatal(err)
	}
	logged := map[string]int{}
	for _, r := range rows {
		logged[r.UniqueID] = r.N
	}
	for uid := range acked {
		if logged[uid] != 1 {
			t.Errorf("call %s acknowledged, logged %d times", uid, logged[uid])
		}
	}
	var differ int
	if err := d.Q().Get(ctx, &differ, `SELECT COUNT(*) FROM accounts a
		WHERE a.balance <> COALESCE((SELECT SUM(l.amount) FROM ledger l WHERE l.account_id = a.id), 0)`); err != nil {
		t.Fatal(err)
	}
	var charged, ledger int64
	// What the callers paid and what the demo's reseller, which has a tariff of its own,
	// paid for their calls (DECISIONS §5).
	if err := d.Q().Get(ctx, &charged, `SELECT COALESCE(SUM(cost), 0) + (SELECT COALESCE(SUM(r.bought), 0) FROM resale r
		JOIN call_log c ON c.id = r.call_id WHERE c.uniqueid LIKE 'fo.%') FROM call_log WHERE uniqueid LIKE 'fo.%'`); err != nil {
		t.Fatal(err)
	}
	if err := d.Q().Get(ctx, &ledger, `SELECT COALESCE(-SUM(amount), 0) FROM ledger WHERE kind = 'call'`); err != nil {
		t.Fatal(err)
	}
	if differ != 0 || charged != ledger || charged == 0 {
		t.Fatalf("%d accounts differ from their ledger; calls cost %d, ledger call rows %d", differ, charged, ledger)
	}
}

// waitHealthy waits for the daemon's /healthz.
