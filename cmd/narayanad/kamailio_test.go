package main

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/narayana/narayanad/money"
)

// TestKamailio bills calls through a real SIP switch: Kamailio (Debian's 5.6) running the
// shipped contrib/kamailio/kamailio.cfg, SIPp as the callers and as the carrier, and the
// real narayanad binary, all on loopback. The configuration is used as shipped: the test
// gives its addresses and key with kamailio -A.
//
// The tariff costs 0.10 EUR a second, so a few seconds of talk spend a balance.
func TestKamailio(t *testing.T) {
	if testing.Short() {
		t.Skip("starts narayanad, Kamailio and SIPp")
	}
	kamailio, sipp := lookTool("kamailio"), lookTool("sipp")
	if kamailio == "" || sipp == "" {
		t.Skip("kamailio or sipp not found: install Debian's kamailio, kamailio-utils-modules and sip-tester (.ci/run does)")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	dsn := initSQLite(t, bin, dir)
	// The switch as an operator registers it: its SIP server, and its level-50 key that
	// logs users in by SIP account and so answers plain text.
	runOK(t, bin, "sip-server", "add", "--db", dsn, "--name", "kamailio1", "--address", "127.0.0.1")
	out := runOK(t, bin, "key", "add", "--db", dsn, "--name", "kamailio1", "--level", "50", "--auth-by", "sip_extension", "--source", "127.0.0.1")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	key := strings.TrimSpace(lines[len(lines)-1])
	csv := filepath.Join(dir, "directions.csv")
	os.WriteFile(csv, []byte("id,code,direction,min_len,max_len\n1,7,Russia,0,32\n2,79,Russia Mobile,11,11\n"), 0o600)
	runOK(t, bin, "import", "directions", "--db", dsn, csv)

	httpAddr := freeAddr(t)
	daemon := exec.Command(bin, "serve", "--db", dsn, "--listen", httpAddr)
	daemonLog := startProc(t, "narayanad", daemon)
	api := &billingAPI{base: "http://" + httpAddr + "/billing/api/2.2/0123456789abc/", admin: "login=root&password=" + md5sum("pw")}
	waitHealthy(t, httpAddr, daemonLog)
	api.ok(t, "addRoute", "route=carrier&type=sip&sip_server=127.0.0.1")
	api.ok(t, "addRates", "name=retail&bill_type=by_second")
	api.ok(t, "addDirection", "rates=1&direction=2&cost=6&route=1") // 6.00 a minute
	users := map[string]string{"alice": "10", "bob": "0.50", "carol": "0.40", "dave": "10", "erin": "0.50"}
	ext := map[string]string{"alice": "10001", "bob": "10002", "carol": "10003", "dave": "10004", "erin": "10005"}
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		api.ok(t, "registerUser", fmt.Sprintf("user=%s&web_password=%s&sip_server=127.0.0.1&sip_extension=%s&sip_password=Sip-Secret-%s&balance=%s", u, md5sum(u), ext[u], ext[u], users[u]))
		api.ok(t, "updateUser", "username="+u+"&rates=1")
	}

	sipPort, carrierPort := freeUDPPort(t), freeUDPPort(t)
	run := filepath.Join(dir, "kamailio")
	os.Mkdir(run, 0o700)
	kam := exec.Command(kamailio, "-f", "../../contrib/kamailio/kamailio.cfg", "-DD", "-E",
		"-Y", run, "-P", filepath.Join(run, "kamailio.pid"), "-m", "32",
		"-A", fmt.Sprintf("LISTEN=udp:127.0.0.1:%d", sipPort),
		"-A", fmt.Sprintf(`BILLING_URL="http://%s/billing/api/2.2"`, httpAddr),
		"-A", fmt.Sprintf(`BILLING_KEY="%s"`, key),
		"-A", `USERS_NET="127.0.0.0/8"`,
		"-A", fmt.Sprintf(`CARRIER="sip:127.0.0.1:%d"`, carrierPort))
	kamLog := startProc(t, "kamailio", kam)
	waitSIP(t, sipPort, kamLog)

	uasLog := filepath.Join(dir, "uas.log")
	startProc(t, "sipp carrier", exec.Command(sipp, "-sf", "testdata/sipp/uas.xml", "-i", "127.0.0.1",
		"-p", fmt.Sprint(carrierPort), "-nostdin", "-trace_logs", "-log_file", uasLog))
	rig := &sipRig{sipp: sipp, dir: dir, target: fmt.Sprintf("127.0.0.1:%d", sipPort), uasLog: uasLog}

	t.Run("one call billed once", func(t *testing.T) {
		calls := rig.call(t, ext["alice"], "+79161234567", 1, 3000)
		for id, events := range calls {
			if strings.Join(events, ",") != "answered,hungup" {
				t.Fatalf("call %s: %v, want answered and hung up by the caller", id, events)
			}
		}
		logs := api.waitLogs(t, "alice", 1)
		if l := logs[0]; l.Time != 3 || l.Status != "ANSWER" || l.cost(t) != 300_000 {
			t.Fatalf("billed %+v, want 3 s, ANSWER, 0.30", l)
		}
		time.Sleep(500 * time.Millisecond) // a second callFinish would come now
		api.checkLedger(t, "alice", "10", 1)
	})

	t.Run("concurrent calls never overspend", func(t *testing.T) {
		// 5 calls of 3 s at once on 0.50 EUR: 1.50 EUR of talk, 5 s of money.
		calls := rig.call(t, ext["bob"], "+79161234567", 5, 3000)
		answered := 0
		for id, events := range calls {
			switch strings.Join(events, ",") {
			case "answered,hungup":
				answered++
			case "refused 402":
			default:
				t.Errorf("call %s: %v, want answered and hung up, or refused 402", id, events)
			}
		}
		if len(calls) != 5 || answered == 0 {
			t.Fatalf("%d calls, %d answered: %v", len(calls), answered, calls)
		}
		api.waitLogs(t, "bob", answered)
		balance, overdraft := api.checkLedger(t, "bob", "0.50", answered)
		if balance < -overdraft {
			t.Fatalf("bob's balance %v is below -overdraft %v", balance, overdraft)
		}
		t.Logf("%d of 5 concurrent calls answered; balance left %v", answered, balance)
	})

	t.Run("call cut at its grant", func(t *testing.T) {
		// 0.40 EUR: a grant of 4 s; the caller would talk 10 s.
		start := time.Now()
		calls := rig.call(t, ext["carol"], "+79161234567", 1, 10000)
		took := time.Since(start)
		for id, events := range calls {
			if strings.Join(events, ",") != "answered,cut" {
				t.Fatalf("call %s: %v, want answered and then cut by Kamailio", id, events)
			}
		}
		if took >= 10*time.Second {
			t.Fatalf("the call ran %v: not cut at its 4 s grant", took)
		}
		l := api.waitLogs(t, "carol", 1)[0]
		// The dialog timer fires up to 0.7 s early or a little late; the billing bills
		// up to 2 s over the grant as the grant.
		if l.Granted == nil || *l.Granted != 4 || l.Time < 3 || l.Time > 4 {
			t.Fatalf("billed %+v, want a 4 s grant and 3-4 s", l)
		}
		balance, _ := api.checkLedger(t, "carol", "0.40", 1)
		if balance < 0 {
			t.Fatalf("carol's balance %v went below 0", balance)
		}
	})

	t.Run("unanswered call settled at once", func(t *testing.T) {
		// The carrier answers 486 for this number: callFinish with length 0 frees the
		// reservation of all of erin's 0.50, so her next call gets the whole grant.
		calls := rig.call(t, ext["erin"], "+79160000486", 1, 1000)
		for id, events := range calls {
			if strings.Join(events, ",") != "refused 486" {
				t.Fatalf("call %s: %v, want busy", id, events)
			}
		}
		if l := api.waitLogs(t, "erin", 1)[0]; l.Time != 0 || l.Status != "BUSY" || l.cost(t) != 0 {
			t.Fatalf("logged %+v, want 0 s, BUSY, 0", l)
		}
		rig.call(t, ext["erin"], "+79161234567", 1, 1000)
		if l := api.waitLogs(t, "erin", 2)[0]; l.Granted == nil || *l.Granted != 5 || l.Time != 1 {
			t.Fatalf("the next call: %+v, want a 5 s grant and 1 s", l)
		}
		api.checkLedger(t, "erin", "0.50", 2)
	})

	t.Run("unknown SIP account refused", func(t *testing.T) {
		before := rig.invites(t)
		calls := rig.call(t, "19999", "+79161234567", 1, 1000)
		for id, events := range calls {
			if strings.Join(events, ",") != "refused 403" {
				t.Fatalf("call %s: %v, want refused 403 (E_AUTH_FAILED)", id, events)
			}
		}
		if rig.invites(t) != before {
			t.Fatal("the call reached the carrier")
		}
	})

	t.Run("every call refused when the billing is down", func(t *testing.T) {
		before := rig.invites(t)
		daemon.Process.Signal(syscall.SIGTERM)
		daemon.Wait()
		check := func(what string, n int) {
			t.Helper()
			calls := rig.call(t, ext["dave"], "+79161234567", n, 3000)
			for id, events := range calls {
				if strings.Join(events, ",") != "refused 503" {
					t.Errorf("%s: call %s: %v, want refused 503", what, id, events)
				}
			}
			if len(calls) != n {
				t.Errorf("%s: %d calls logged, want %d", what, len(calls), n)
			}
		}
		check("billing stopped", 3)
		// A billing that accepts the connection and never answers: Kamailio gives up
		// after BILLING_TIMEOUT.
		ln, err := net.Listen("tcp", httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		var held []net.Conn
		var mu sync.Mutex
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				held = append(held, c)
				mu.Unlock()
			}
		}()
		check("billing silent", 2)
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
		if after := rig.invites(t); after != before {
			t.Fatalf("%d calls reached the carrier while the billing was down", after-before)
		}
	})
	if t.Failed() {
		t.Logf("kamailio:\n%s\nnarayanad:\n%s", kamLog, daemonLog)
	} else if testing.Verbose() {
		for _, l := range strings.Split(kamLog.String(), "\n") {
			if strings.Contains(l, "billing:") {
				t.Log(l)
			}
		}
	}
}

// lookTool finds a program in PATH or in /usr/sbin (where Debian puts kamailio, and which
// a non-root PATH lacks).
func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/" + name); err == nil {
		return "/usr/sbin/" + name
	}
	return ""
}

func runOK(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("narayanad %v: %v\n%s", args, err, stderr)
	}
	return string(out)
}

func md5sum(s string) string {
	h := md5.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

// startProc starts cmd in its own process group and ends the whole group when the test
// ends, failed or not: Kamailio's children outlive a main process killed alone.
func startProc(t *testing.T, name string, cmd *exec.Cmd) *syncBuffer {
	t.Helper()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	pgid := cmd.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(-pgid, syscall.SIGTERM)
		time.Sleep(200 * time.Millisecond)
		syscall.Kill(-pgid, syscall.SIGKILL)
		cmd.Wait()
	})
	return out
}

// waitSIP waits until Kamailio answers an OPTIONS on its port (with 405: it takes only
// INVITEs out of dialogs).
func waitSIP(t *testing.T, port int, logs *syncBuffer) {
	t.Helper()
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().String()
	msg := "OPTIONS sip:ping@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP " + local + ";branch=z9hG4bK-ping\r\n" +
		"From: <sip:ping@" + local + ">;tag=1\r\nTo: <sip:ping@127.0.0.1>\r\nCall-ID: ping-" + local + "\r\n" +
		"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	buf := make([]byte, 2048)
	for i := 0; i < 100; i++ {
		c.Write([]byte(msg))
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, err := c.Read(buf); err == nil && strings.HasPrefix(string(buf[:n]), "SIP/2.0 ") {
			return
		}
		time.Sleep(100 * time.Millisecond) // a refused port answers at once
	}
	t.Fatalf("kamailio never answered on port %d:\n%s", port, logs)
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// sipRig places calls through Kamailio with SIPp.
type sipRig struct {
	sipp, dir, target, uasLog string
	n                         int
}

// call places n simultaneous calls from the SIP account caller to dest, each
// talking holdMs unless cut, and returns what each call logged, by Call-ID.
func (r *sipRig) call(t *testing.T, caller, dest string, n, holdMs int) map[string][]string {
	t.Helper()
	r.n++
	scenario, err := os.ReadFile("testdata/sipp/uac.xml")
	if err != nil {
		t.Fatal(err)
	}
	uac := filepath.Join(r.dir, fmt.Sprintf("uac%d.xml", r.n))
	os.WriteFile(uac, bytes.ReplaceAll(scenario, []byte("HOLD_MS"), []byte(fmt.Sprint(holdMs))), 0o600)
	logFile := filepath.Join(r.dir, fmt.Sprintf("uac%d.log", r.n))
	cmd := exec.Command(r.sipp, "-sf", uac, "-i", "127.0.0.1", "-p", fmt.Sprint(freeUDPPort(t)),
		"-key", "caller", caller, "-s", dest, "-m", fmt.Sprint(n), "-l", fmt.Sprint(n), "-r", "100",
		"-nostdin", "-timeout", "30s", "-timeout_error", "-trace_logs", "-log_file", logFile, r.target)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(40 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		t.Fatalf("sipp did not finish")
	}
	if err != nil {
		t.Errorf("sipp: %v (a call went off its scenario)\n%s", err, tail(out.String(), 3000))
	}
	calls := map[string][]string{}
	f, err := os.Open(logFile)
	if err != nil {
		t.Fatalf("sipp's log: %v\n%s", err, tail(out.String(), 3000))
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		id, event, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if ok {
			calls[id] = append(calls[id], event)
		}
	}
	return calls
}

// invites counts the calls that reached the carrier.
func (r *sipRig) invites(t *testing.T) int {
	b, _ := os.ReadFile(r.uasLog)
	return strings.Count(string(b), " invite")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// billingAPI calls the API as the master admin with the web key.
type billingAPI struct{ base, admin string }

func (a *billingAPI) get(t *testing.T, method, args string) json.RawMessage {
	t.Helper()
	resp, err := http.Get(a.base + method + "?" + a.admin + "&" + args)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var env struct {
		Result   bool            `json:"result"`
		Response json.RawMessage `json:"response"`
	}
	if err := json.Unmarshal(body, &env); err != nil || !env.Result {
		t.Fatalf("%s?%s: %s", method, args, body)
	}
	return env.Response
}

func (a *billingAPI) ok(t *testing.T, method, args string) {
	t.Helper()
	a.get(t, method, args)
}

type callRecord struct {
	Time    int         `json:"time"`
	Cost    json.Number `json:"cost"`
	Status  string      `json:"status"`
	Granted *int        `json:"granted"`
}

func (c callRecord) cost(t *testing.T) money.Micro {
	m, err := money.Parse(c.Cost.String())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitLogs waits until the user's event log holds n calls (callFinish of a call cut by
// Kamailio's timer may come just after the caller saw the BYE) and returns them.
func (a *billingAPI) waitLogs(t *testing.T, user string, n int) []callRecord {
	t.Helper()
	var logs []callRecord
	for i := 0; i < 100; i++ {
		logs = nil
		dec := json.NewDecoder(bytes.NewReader(a.get(t, "getLogs", "user="+user)))
		dec.UseNumber()
		if err := dec.Decode(&logs); err != nil {
			t.Fatal(err)
		}
		if len(logs) >= n {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(logs) != n {
		t.Fatalf("%s has %d calls in the log, want %d: %+v", user, len(logs), n, logs)
	}
	return logs
}

// checkLedger: the user's calls are in the log n times, and the balance is the initial
// balance less their costs. It returns the balance and the overdraft.
func (a *billingAPI) checkLedger(t *testing.T, user, initial string, n int) (balance, overdraft money.Micro) {
	t.Helper()
	logs := a.waitLogs(t, user, n)
	want, _ := money.Parse(initial)
	for _, l := range logs {
		want -= l.cost(t)
	}
	var info struct {
		Balance   json.Number `json:"balance"`
		Overdraft json.Number `json:"overdraft"`
	}
	dec := json.NewDecoder(bytes.NewReader(a.get(t, "getInfo", "username="+url.QueryEscape(user))))
	dec.UseNumber()
	if err := dec.Decode(&info); err != nil {
		t.Fatal(err)
	}
	balance, _ = money.Parse(info.Balance.String())
	overdraft, _ = money.Parse(info.Overdraft.String())
	if balance != want {
		t.Fatalf("%s's balance %v, want %s less the calls' costs = %v", user, balance, initial, want)
	}
	return balance, overdraft
}
