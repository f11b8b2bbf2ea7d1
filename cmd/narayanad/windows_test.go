package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/asterisk/amisim"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
	"github.com/narayana/narayanad/money"
)

// TestWindowWatcherKilled kills -9 the daemon watching a windowed call, on PostgreSQL,
// with the real binary: two daemons serve one database with reservation_window 20; a
// call with a channel is prepared on daemon A, which then dies without giving its lease
// up. Daemon B adopts the call once A's lease (5 s) has run out and, as a second call of
// the same account has taken the rest of the money, cannot extend it: it hangs exactly
// that channel up through AMI when the 20 s paid for are over.
//
// The account has 0.30 EUR at 0.01 a second: call 1 gets a grant of 30 s and reserves
// its first window (20 s, 0.20); call 2, which cannot be cut (no channel), reserves the
// other 0.10 whole.
func TestWindowWatcherKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a call's 20 s window to run out on two daemons (about 25 s)")
	}
	const (
		window  = 20
		channel = "PJSIP/10001-00000001"
	)
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	dsn := dbtest.DSN(t, db.Postgres)
	runOK(t, bin, "init", "--db", dsn, "--admin-user", "root", "--admin-password", "pw", "--api-key", "0123456789abc")
	sim := amisim.Start(t, amisim.Config{})
	sim.AddChannel(amisim.Channel{Name: channel})
	runOK(t, bin, "sip-server", "add", "--db", dsn, "--name", "pbx1", "--address", "127.0.0.1",
		"--ami", sim.Addr(), "--ami-user", amisim.DefaultUsername, "--ami-secret", amisim.DefaultSecret)
	out := runOK(t, bin, "key", "add", "--db", dsn, "--name", "pbx1", "--level", "50", "--auth-by", "sip_extension", "--source", "127.0.0.1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	astKey := strings.TrimSpace(lines[len(lines)-1])
	csv := dir + "/directions.csv"
	if err := os.WriteFile(csv, []byte("id,code,direction,min_len,max_len\n1,7,Russia,0,32\n2,79,Russia Mobile,11,11\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runOK(t, bin, "import", "directions", "--db", dsn, csv)

	t.Setenv("NARAYANA_RESERVATION_WINDOW", strconv.Itoa(window))
	// Each daemon is killed and waited for when the test ends (a second Wait only errs).
	serve := func() (string, *exec.Cmd, *syncBuffer) {
		addr := freeAddr(t)
		cmd, logs := startServe(t, bin, "--db", dsn, "--listen", addr)
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		return addr, cmd, logs
	}
	addrA, daemonA, logsA := serve()
	addrB, _, logsB := serve()
	defer func() {
		if t.Failed() {
			t.Logf("daemon A:\n%s\ndaemon B:\n%s", logsA, logsB)
		}
	}()

	admin := &billingAPI{base: "http://" + addrB + "/billing/api/2.2/0123456789abc/", admin: "login=root&password=" + md5sum("pw")}
	admin.ok(t, "addRoute", "route=carrier-a&type=sip&sip_server=127.0.0.1&prefix=trunk1/")
	admin.ok(t, "addRates", "name=retail&bill_type=by_second")
	admin.ok(t, "addDirection", "rates=1&direction=2&cost=0.60&route=1") // 0.01 a second
	admin.ok(t, "registerUser", "user=alice&web_password="+md5sum("alice-pw")+
		"&sip_server=127.0.0.1&sip_extension=10001&sip_password=Sip-Secret-1&balance=0.30")
	admin.ok(t, "updateUser", "username=alice&rates=1")

	// asterisk asks daemon addr as the Asterisk's CURL() does, and answers the plain text.
	asterisk := func(addr, method, query string) string {
		t.Helper()
		resp, err := http.Get("http://" + addr + "/billing/api/2.2/" + astKey + "/" + method +
			"?login=10001&destination=%2B79161234567&" + query)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	granted := func(answer string) int {
		t.Helper()
		f := strings.Fields(answer)
		if len(f) < 2 || f[0] != "Allowed" {
			t.Fatalf("callPrepare: %q, want Allowed", answer)
		}
		n, _ := strconv.Atoi(f[1])
		return n
	}

	start := time.Now()
	if g := granted(asterisk(addrA, "callPrepare", "uniqueid=win.1&channel="+url.QueryEscape(channel))); g != 30 {
		t.Fatalf("call 1 granted %d s, want 30", g)
	}
	// The covered time is counted from callPrepare in whole seconds of the daemon's clock:
	// it ends no earlier than this.
	paidUntil := time.Unix(start.Unix(), 0).Add(window * time.Second)
	daemonA.Process.Kill() // SIGKILL: no lease given up, nothing flushed
	if err := daemonA.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("daemon A after kill -9: %v", err)
	}
	if g := granted(asterisk(addrB, "callPrepare", "uniqueid=win.2")); g != 10 {
		t.Fatalf("call 2 granted %d s, want the 10 s left", g)
	}

	// The Hangup: not before the 20 s paid for are over, and within a few seconds after.
	var hungAt time.Time
	for time.Now().Before(paidUntil.Add(5 * time.Second)) {
		if len(sim.ActionsNamed("Hangup")) > 0 {
			hungAt = time.Now()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if hungAt.IsZero() {
		t.Fatalf("no Hangup %v after callPrepare; AMI actions: %v", time.Since(start).Round(time.Millisecond), sim.Actions())
	}
	t.Logf("call 1 hung up %v after callPrepare (paid for until %v)", hungAt.Sub(start).Round(time.Millisecond),
		paidUntil.Sub(start).Round(time.Millisecond))
	if hungAt.Before(paidUntil) {
		t.Fatalf("hung up %v before the time paid for ran out", paidUntil.Sub(hungAt))
	}
	if !strings.Contains(logsB.String(), "adopted the calls of a daemon whose lease ran out") {
		t.Fatal("daemon B did not log adopting daemon A's call")
	}

	// As the Asterisk would: call 2 ended at its grant (L()), call 1 when it was hung up.
	length := int(hungAt.Sub(start).Round(time.Second) / time.Second)
	for _, f := range []struct{ query, want string }{
		{"uniqueid=win.2&status=ANSWER&length=10", "Saved "},
		{fmt.Sprintf("uniqueid=win.1&status=ANSWER&length=%d", length), "Saved "},
	} {
		if a := asterisk(addrB, "callFinish", f.query); !strings.HasPrefix(a, f.want) {
			t.Fatalf("callFinish %s: %q", f.query, a)
		}
	}
	// A second Hangup would come within a round or two.
	time.Sleep(2 * time.Second)
	hangups := sim.ActionsNamed("Hangup")
	if len(hangups) != 1 || hangups[0].Get("Channel") != channel {
		t.Fatalf("AMI Hangups %v, want exactly one of %s", hangups, channel)
	}

	// The event log: both calls and the record of the cut (its granted is not a number,
	// so not callRecord); the balance is 0.30 less their costs, and every balance is the
	// sum of its ledger.
	var logs []struct {
		Status string      `json:"status"`
		Cost   json.Number `json:"cost"`
	}
	dec := json.NewDecoder(bytes.NewReader(admin.get(t, "getLogs", "user=alice")))
	dec.UseNumber()
	if err := dec.Decode(&logs); err != nil {
		t.Fatal(err)
	}
	var billed money.Micro
	var statuses []string
	for _, l := range logs {
		c, err := money.Parse(l.Cost.String())
		if err != nil {
			t.Fatal(err)
		}
		billed += c
		statuses = append(statuses, l.Status)
	}
	slices.Sort(statuses)
	if strings.Join(statuses, ",") != "ANSWER,ANSWER,CUT" {
		t.Fatalf("event log %+v, want the two calls and one CUT record", logs)
	}
	var info struct {
		Balance   json.Number `json:"balance"`
		Overdraft json.Number `json:"overdraft"`
	}
	dec = json.NewDecoder(bytes.NewReader(admin.get(t, "getInfo", "username=alice")))
	dec.UseNumber()
	if err := dec.Decode(&info); err != nil {
		t.Fatal(err)
	}
	balance, _ := money.Parse(info.Balance.String())
	overdraft, _ := money.Parse(info.Overdraft.String())
	const initial = money.Micro(300_000)
	if balance != initial-billed {
		t.Fatalf("balance %v, want 0.30 less the %v billed", balance, billed)
	}
	checkMoney(t, dsn, nil, time.Time{})
	const block = 10_000 // one second at 0.01
	if billed > initial+overdraft+block {
		t.Fatalf("billed %v on 0.30 with overdraft %v: more than one block over", billed, overdraft)
	}
	t.Logf("billed %v for %d s + 10 s; balance %v", billed, length, balance)
}
