package billing

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
)

// kannelProgram finds one of Kannel's programs (Debian: bearerbox and smsbox in
// /usr/sbin from `kannel`, fakesmsc in /usr/lib/kannel/test from `kannel-extras`).
func kannelProgram(t *testing.T, name string, dirs ...string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range dirs {
		if p := filepath.Join(d, name); fileExists(p) {
			return p
		}
	}
	t.Skipf("Kannel's %s is not installed (.ci/run installs the Debian packages kannel and kannel-extras): the Kannel test cannot run", name)
	return ""
}

func fileExists(p string) bool { st, err := os.Stat(p); return err == nil && !st.IsDir() }

// loopbackPorts reserves n free ports on 127.0.0.1 (closed again for Kannel to take).
func loopbackPorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// kannel is a running bearerbox + smsbox with a fakesmsc connected to it.
type kannel struct {
	sendURL string
	phone   io.Writer   // fakesmsc's input: "FROM TO text TEXT" lines are messages from phones
	out     *syncBuffer // fakesmsc's log: "got message N: <FROM TO text TEXT>" for each sent one
}

// startKannel writes a configuration into a temporary folder, starts Kannel's boxes
// and fakesmsc on loopback ports and stops them when the test ends. getURL is the
// sms-service's get-url (inbound messages).
func startKannel(t *testing.T, getURL string) *kannel {
	t.Helper()
	bearerbox := kannelProgram(t, "bearerbox", "/usr/sbin")
	smsbox := kannelProgram(t, "smsbox", "/usr/sbin")
	fakesmsc := kannelProgram(t, "fakesmsc", "/usr/lib/kannel/test")
	dir := t.TempDir()
	p := loopbackPorts(t, 4)
	admin, boxes, fake, sendsms := p[0], p[1], p[2], p[3]
	conf := fmt.Sprintf(`group = core
admin-port = %[1]d
admin-password = test
admin-interface = 127.0.0.1
smsbox-port = %[2]d
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = %[3]s/bearerbox.log
log-level = 1
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = fake
port = %[4]d
our-host = 127.0.0.1
connect-allow-ip = 127.0.0.1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = %[2]d
sendsms-port = %[5]d
sendsms-interface = 127.0.0.1
log-file = %[3]s/smsbox.log
log-level = 1

group = sendsms-user
username = narayana
password = kannelpw
max-messages = 10
concatenation = true

group = sms-service
keyword = default
catch-all = true
max-messages = 0
get-url = "%[6]s"
`, admin, boxes, dir, fake, sendsms, getURL)
	cfg := filepath.Join(dir, "kannel.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	start := func(out io.Writer, stdin *io.WriteCloser, prog string, args ...string) {
		cmd := exec.Command(prog, args...)
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = out, out
		if stdin != nil {
			var err error
			if *stdin, err = cmd.StdinPipe(); err != nil {
				t.Fatal(err)
			}
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", prog, err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
	}
	logs := func() string {
		var b strings.Builder
		for _, f := range []string{"bearerbox.log", "smsbox.log"} {
			x, _ := os.ReadFile(filepath.Join(dir, f))
			fmt.Fprintf(&b, "--- %s\n%s", f, x)
		}
		return b.String()
	}
	listening := func(port int) bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	}
	start(io.Discard, nil, bearerbox, cfg)
	waitFor(t, "bearerbox listens", logs, func() bool { return listening(boxes) && listening(fake) })
	k := &kannel{sendURL: fmt.Sprintf("http://127.0.0.1:%d/cgi-bin/sendsms", sendsms), out: &syncBuffer{}}
	var phone io.WriteCloser
	start(k.out, &phone, fakesmsc, "-H", "127.0.0.1", "-r", fmt.Sprint(fake), "-i", "0.01")
	k.phone = phone
	start(io.Discard, nil, smsbox, cfg)
	waitFor(t, "smsbox listens", logs, func() bool { return listening(sendsms) })
	return k
}

// waitFor polls cond (things happening in other processes) with a generous bound;
// on failure it shows what diag returns.
func waitFor(t *testing.T, what string, diag func() string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("never happened: %s\n%s", what, diag())
}

// sendSMS through a route whose prefix is `kannel` goes out through a real Kannel
// (bearerbox + smsbox + fakesmsc): charged once, its delivery report comes back
// through dlr-url and receiveDeliveryReport, and a phone's message to a DID comes in
// through the sms-service's get-url and receiveSMS.
func TestKannel(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		d := e.s.DB
		daemon := httptest.NewServer(e.h)
		defer daemon.Close()
		e.addKey("name", "kannel", "apikey", "kannel-key-0123456789abcdef", "accessLevel", "95")
		api := daemon.URL + "/billing/api/2.2/kannel-key-0123456789abcdef/"
		k := startKannel(t, api+"receiveSMS?msg_handler=kannel&from=%p&to=%P&text=%a")
		e.s.Config.KannelSendURL = k.sendURL
		e.s.Config.KannelUser, e.s.Config.KannelPassword = "narayana", "kannelpw"
		e.s.Config.KannelDLRURL = api

		execSQL(t, d, `INSERT INTO directions (code, id, name) VALUES ('79', 2, 'Russia Mobile')`)
		route := insertID(t, d, `INSERT INTO routes (name, type, prefix) VALUES ('Kannel', 'sms', 'kannel')`)
		tariff := insertID(t, d, `INSERT INTO rates (name, bill_type, multiplier) VALUES ('sms', 'byminute', 1000000)`)
		execSQL(t, d, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES (?, 2, 1, 100000, ?)`, tariff, route)
		execSQL(t, d, `UPDATE rating_version SET version = version + 1`)
		e.s.ratingChanged(context.Background())
		smsUser(t, e, tariff, "alice", "1")
		execSQL(t, d, `INSERT INTO dids (did, owner_id) VALUES ('78005555550', (SELECT id FROM users WHERE username = 'alice'))`)

		a := e.ok(e.do(e.web, "sendSMS", user("alice", "to", "+7 901 000-00-01", "text", "Hello from Narayana", "callerid", "79000000000")))
		id := a.Response.(interface{ String() string }).String()
		waitFor(t, "the message reaches the SMSC", k.out.String, func() bool {
			return strings.Contains(k.out.String(), "<79000000000 79010000001 text Hello from Narayana>")
		})
		report := func() string {
			a := e.ok(e.do(e.web, "deliveryReport", user("alice", "id", id)))
			s, _ := a.Response.(string)
			return s
		}
		// Kannel reports "accepted by the SMSC" (8) and "delivered" (1) in either order,
		// often before sendSMS has stored the message (receiveDeliveryReport waits for it).
		waitFor(t, "the delivery report", report, func() bool { return report() == "SMS Deliv" })
		// A late "accepted" report never undoes a final one.
		ext := ""
		e.s.DB.Q().Get(context.Background(), &ext, `SELECT external_id FROM sms WHERE id = ?`, id)
		for _, st := range []string{"1", "8"} {
			a := e.do("kannel-key-0123456789abcdef", "receiveDeliveryReport", kv("msg_handler", "kannel", "id", ext, "status", st))
			if !a.Result {
				t.Fatalf("report %s: %s", st, a.Body)
			}
		}
		if got := report(); got != "SMS Deliv" {
			t.Fatalf("delivered, then accepted: %s", got)
		}
		if got := balance(t, e, "alice"); got != 900_000 {
			t.Fatalf("balance after one SMS: %s", got)
		}

		// A phone writes to alice's DID.
		fmt.Fprintln(k.phone, "79020000002 78005555550 text Hi there")
		inbox := func() string {
			var rows []smsRow
			d.Q().Select(context.Background(), &rows, smsSelect+` WHERE m.type = 'in'`)
			return fmt.Sprintf("%+v", rows)
		}
		waitFor(t, "the phone's message is stored", inbox, func() bool {
			var n int
			d.Q().Get(context.Background(), &n, `SELECT COUNT(*) FROM sms WHERE type = 'in' AND src = '79020000002'
				AND dest = '78005555550' AND msg = 'Hi there' AND user_id = (SELECT id FROM users WHERE username = 'alice')`)
			return n == 1
		})

		// Kannel refuses (a wrong password): E_CARRIER_ERROR, nothing charged or stored.
		e.s.Config.KannelPassword = "wrong"
		a = e.do(e.web, "sendSMS", user("alice", "to", "79010000001", "text", "x", "callerid", "79000000000"))
		e.fails(a, apierr.CarrierError, 200)
		if !strings.Contains(a.Description, "kannel refused") {
			t.Fatalf("refusal: %s", a.Body)
		}
		// A report type Kannel does not send.
		e.fails(e.do(e.web, "receiveDeliveryReport", kv("msg_handler", "kannel", "id", "x", "status", "3")), apierr.InvalidArgument, 400)
		if got := balance(t, e, "alice"); got != 900_000 {
			t.Fatalf("balance: %s", got)
		}
		var out int
		if err := d.Q().Get(context.Background(), &out, `SELECT COUNT(*) FROM sms WHERE type = 'out'`); err != nil || out != 1 {
			t.Fatalf("sent messages stored: %d %v", out, err)
		}
		checkLedger(t, e)
	})
}
