package billing

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/asterisk/amisim"
)

// amiEnv is an env whose AMI connections are closed when the test ends, with a short
// AMI timeout so failures come quickly.
func amiEnv(t *testing.T, e *env) {
	e.s.Config.AsteriskTimeout = 500 * time.Millisecond
	t.Cleanup(func() { e.s.Close() })
}

// amiServer registers a SIP server whose manager interface is at amiAddr.
func (e *env) amiServer(name, address, amiAddr, secret string) {
	e.t.Helper()
	if _, err := AddSIPServer(context.Background(), e.s.DB.Q(), SIPServerSpec{Name: name, Address: address,
		AMIAddress: amiAddr, AMIUser: amisim.DefaultUsername, AMISecret: secret}); err != nil {
		e.t.Fatal(err)
	}
}

// serverKey adds a server key of the given level owned by the admin.
func (e *env) serverKey(name, key string, level int) {
	e.t.Helper()
	e.addKey("name", name, "apikey", key, "accessLevel", itoa(level))
}

func TestCreateCallback(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		sim := amisim.Start(t, amisim.Config{})
		e.amiServer("pbx1", "10.0.0.1", sim.Addr(), amisim.DefaultSecret)
		e.register(admin(), "alice", 11, "sip_server", "10.0.0.1", "sip_extension", "10001")
		e.register(admin(), "nosip", 11)

		a := e.ok(e.do(e.web, "createCallback", user("alice", "destination1", "79010000001", "destination2", "79020000002", "epitch", "3")))
		if a.Response != true {
			t.Fatalf("createCallback: %s", a.Body)
		}
		orig := sim.ActionsNamed("Originate")
		if len(orig) != 1 {
			t.Fatalf("originates: %v", orig)
		}
		o := orig[0]
		for k, want := range map[string]string{"Channel": "Local/79010000001@callback", "Context": "callback",
			"Exten": "79020000002", "Priority": "1", "CallerID": "10001", "Variable": "EPITCH=3"} {
			if got := o.Get(k); got != want {
				t.Errorf("Originate %s = %q, want %q", k, got, want)
			}
		}
		// A caller ID given wins over the profile's.
		e.ok(e.do(e.web, "createCallback", user("alice", "destination1", "100", "destination2", "200", "callerid", `"Desk" <555>`)))
		if o := sim.ActionsNamed("Originate")[1]; o.Get("CallerID") != `"Desk" <555>` || o.Get("Variable") != "" {
			t.Fatalf("callerid: %v", o)
		}

		// Busy and congestion: E_INITIATE_ASTERISK_CALL_FAIL with the reason.
		sim.SetOriginateOutcome("79030000003", amisim.Busy)
		a = e.do(e.web, "createCallback", user("alice", "destination1", "79030000003", "destination2", "200"))
		e.fails(a, apierr.InitiateCallFail, 200)
		if a.Description != "busy" {
			t.Fatalf("busy description: %s", a.Body)
		}
		sim.SetOriginateOutcome("79040000004", amisim.Congestion)
		e.fails(e.do(e.web, "createCallback", user("alice", "destination1", "79040000004", "destination2", "200")), apierr.InitiateCallFail, 200)

		// Bad values never reach Asterisk.
		n := len(sim.ActionsNamed("Originate"))
		for _, bad := range [][]string{
			{"destination1", "100", "destination2", "200\r\nAction: Hangup"},
			{"destination1", "100", "destination2", "200", "callerid", "x\ny"},
			{"destination1", "100@other", "destination2", "200"},
			{"destination1", "SIP/100&SIP/200", "destination2", "200"},
			{"destination1", "100", "destination2", "200", "epitch", "7"},
			{"destination1", "100", "destination2", "200", "epitch", "x"},
		} {
			e.fails(e.do(e.web, "createCallback", user("alice", bad...)), apierr.InvalidArgument, 400)
		}
		e.fails(e.do(e.web, "createCallback", user("alice", "destination1", "100")), apierr.MissingArgument, 400)
		if len(sim.ActionsNamed("Originate")) != n {
			t.Fatal("a bad value was sent to Asterisk")
		}
		e.fails(e.do(e.web, "createCallback", user("nosip", "destination1", "100", "destination2", "200")), apierr.NotExist, 200)
	})
}

func TestCloseChannels(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		sim := amisim.Start(t, amisim.Config{})
		e.amiServer("pbx1", "10.0.0.1", sim.Addr(), amisim.DefaultSecret)
		e.register(admin(), "alice", 11, "sip_server", "10.0.0.1", "sip_extension", "10001")
		e.register(admin(), "bob", 11, "sip_server", "10.0.0.1", "sip_extension", "1000101")
		e.serverKey("pbx", "pbx-server-key-50", 50)
		for _, name := range []string{"SIP/10001-00000001", "PJSIP/10001-00000002", "SIP/1000101-00000003",
			"SIP/1000-00000004", "Local/10001@callback-00000005;1", "SIP/trunk-10001-00000006"} {
			sim.AddChannel(amisim.Channel{Name: name})
		}
		e.ok(e.do("pbx-server-key-50", "closeChannels", url.Values{"login": {"alice"}}))
		var left []string
		for _, ch := range sim.Channels() {
			left = append(left, ch.Name)
		}
		want := []string{"SIP/1000101-00000003", "SIP/1000-00000004", "Local/10001@callback-00000005;1", "SIP/trunk-10001-00000006"}
		if !slices.Equal(left, want) {
			t.Fatalf("channels left: %v", left)
		}
		for _, h := range sim.ActionsNamed("Hangup") {
			if strings.HasPrefix(h.Get("Channel"), "/") {
				t.Fatalf("regex hangup sent: %v", h)
			}
		}
		// Nothing left of alice's: still true.
		e.ok(e.do("pbx-server-key-50", "closeChannels", url.Values{"login": {"alice"}}))
		// A dropped connection mid-list is an AMI failure; the next call reconnects.
		sim.DropNextList()
		e.fails(e.do("pbx-server-key-50", "closeChannels", url.Values{"login": {"bob"}}), apierr.AsteriskQueryError, 200)
		waitOK(t, func() bool {
			return e.do("pbx-server-key-50", "closeChannels", url.Values{"login": {"bob"}}).Result
		})
		if len(sim.Channels()) != 3 {
			t.Fatalf("bob's channel stays: %v", sim.Channels())
		}
	})
}

// waitOK retries f for a few seconds (the AMI client reconnects with backoff).
func waitOK(t *testing.T, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatal("no success before the deadline")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestAsteriskRequest(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		sim := amisim.Start(t, amisim.Config{})
		sim.SetCommand("dialplan reload", "Dialplan reloaded.\n")
		e.amiServer("pbx1", "10.0.0.1", sim.Addr(), amisim.DefaultSecret)
		e.register(admin(), "corp", 22, "sip_server", "10.0.0.1", "sip_extension", "20000")

		a := e.ok(e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.1", "destination", "peers", "process", "peers", "params", "; core restart now")))
		if s, _ := a.Response.(string); !strings.Contains(s, "100/100") {
			t.Fatalf("peers: %s", a.Body)
		}
		// The user's own server when asterisk is not given; the name works too.
		e.ok(e.do(e.web, "asteriskRequest", user("corp", "destination", "sipreload", "process", "sipreload")))
		e.ok(e.do(e.web, "asteriskRequest", admin("asterisk", "pbx1", "destination", "dialplanreload")))
		// Not on the allow-list, not an operation, or an unknown server.
		e.fails(e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.1", "destination", "version")), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.1", "destination", "core show version")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.1", "destination", "peers", "process", "module unload x")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.1", "destination", "peers\r\n")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "asteriskRequest", admin("asterisk", "10.9.9.9", "destination", "peers")), apierr.SIPServerNotExist, 200)
		e.s.Config.AsteriskAllow = append(e.s.Config.AsteriskAllow, "version")
		a = e.ok(e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.1", "destination", "version")))
		if s, _ := a.Response.(string); !strings.HasPrefix(s, "Asterisk 20") {
			t.Fatalf("version: %s", a.Body)
		}
		// Only fixed commands were sent.
		var sent []string
		for _, c := range sim.ActionsNamed("Command") {
			sent = append(sent, c.Get("Command"))
		}
		if want := []string{"sip show peers", "sip reload", "dialplan reload", "core show version"}; !slices.Equal(sent, want) {
			t.Fatalf("commands: %q", sent)
		}
		// A failing CLI command: E_ASTERISK_QUERY_ERROR with Asterisk's text.
		legacy := amisim.Start(t, amisim.Config{LegacyCommand: true})
		e.amiServer("pbx13", "10.0.0.13", legacy.Addr(), amisim.DefaultSecret)
		a = e.ok(e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.13", "destination", "peers")))
		if s, _ := a.Response.(string); !strings.Contains(s, "sip peers") {
			t.Fatalf("legacy peers: %s", a.Body)
		}
	})
}

func TestAsteriskUnreachable(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		dead := ln.Addr().String()
		ln.Close()
		e.amiServer("gone", "10.0.0.2", dead, amisim.DefaultSecret)
		e.amiServer("noami", "10.0.0.3", "", "")
		sim := amisim.Start(t, amisim.Config{})
		e.amiServer("wrongpw", "10.0.0.4", sim.Addr(), "not-the-secret")
		silent := amisim.Start(t, amisim.Config{})
		e.amiServer("silent", "10.0.0.5", silent.Addr(), amisim.DefaultSecret)

		start := time.Now()
		a := e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.2", "destination", "peers"))
		e.fails(a, apierr.AsteriskQueryError, 200)
		if !strings.Contains(a.Description, "unreachable") {
			t.Fatalf("description: %s", a.Body)
		}
		e.fails(e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.3", "destination", "peers")), apierr.AsteriskQueryError, 200)
		a = e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.4", "destination", "peers"))
		e.fails(a, apierr.AsteriskQueryError, 200)
		if !strings.Contains(a.Description, "Authentication failed") {
			t.Fatalf("bad login description: %s", a.Body)
		}
		silent.SetSilent(true)
		e.fails(e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.5", "destination", "peers")), apierr.AsteriskQueryError, 200)
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("failures took %s", d)
		}
		// The daemon stays healthy and reconnects by itself.
		e.ok(e.do(e.web, "getCurrencies", nil))
		silent.SetSilent(false)
		silent.DropConnections()
		waitOK(t, func() bool {
			return e.do(e.web, "asteriskRequest", admin("asterisk", "10.0.0.5", "destination", "peers")).Result
		})
	})
}

func TestFlushBans(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		sim := amisim.Start(t, amisim.Config{})
		sim.SetCommand(flushBansCLI, "")
		e.amiServer("pbx1", "10.0.0.1", sim.Addr(), amisim.DefaultSecret)
		e.amiServer("pbx2", "10.0.0.2", "", "")
		e.register(admin(), "corp", 22, "sip_server", "10.0.0.1", "sip_extension", "20000")
		ctx := context.Background()
		for _, b := range []struct {
			source, target string
			permanent      int
		}{
			{"pbx1", "10.1.1.1", 0}, {"10.0.0.1", "10.1.1.2", 0}, {"pbx1", "10.1.1.3", 1},
			{"pbx2", "10.1.1.4", 0}, {"narayanad", "10.1.1.5", 0}, {"whitelist", "10.1.1.6", 0},
			{"pbx2", "10.1.1.7", 1},
		} {
			if _, err := e.s.DB.Q().Exec(ctx, `INSERT INTO bans (source, target, reason, permanent, created_at) VALUES (?, ?, 'x', ?, 1)`,
				b.source, b.target, b.permanent); err != nil {
				t.Fatal(err)
			}
		}
		e.s.Gate.Bans.Invalidate()
		targets := func() []string {
			var out []string
			if err := e.s.DB.Q().Select(ctx, &out, `SELECT target FROM bans ORDER BY target`); err != nil {
				t.Fatal(err)
			}
			return out
		}
		e.fails(e.doFrom("10.1.1.1", e.web, "getCurrencies", nil), apierr.Forbidden, 403)

		e.ok(e.do(e.web, "flushBans", user("corp")))
		if got, want := targets(), []string{"10.1.1.3", "10.1.1.4", "10.1.1.5", "10.1.1.6", "10.1.1.7"}; !slices.Equal(got, want) {
			t.Fatalf("after flushBans: %v", got)
		}
		if c := sim.ActionsNamed("Command"); len(c) != 1 || c[0].Get("Command") != flushBansCLI {
			t.Fatalf("server told: %v", c)
		}
		e.ok(e.doFrom("10.1.1.1", e.web, "getCurrencies", nil))

		// A server key named after the realm flushes that server's bans.
		e.serverKey("pbx2", "pbx2-server-key", 22)
		e.ok(e.do("pbx2-server-key", "flushBans", nil))
		if got, want := targets(), []string{"10.1.1.3", "10.1.1.5", "10.1.1.6", "10.1.1.7"}; !slices.Equal(got, want) {
			t.Fatalf("after pbx2's flushBans: %v", got)
		}
		// A user without a SIP server has none to flush.
		e.register(admin(), "nosip", 22)
		e.fails(e.do(e.web, "flushBans", user("nosip")), apierr.SIPServerNotExist, 200)

		e.fails(e.do(e.web, "flushAllBans", user("corp")), apierr.InsufficientAccess, 200)
		e.ok(e.do(e.web, "flushAllBans", admin()))
		if got, want := targets(), []string{"10.1.1.3", "10.1.1.6", "10.1.1.7"}; !slices.Equal(got, want) {
			t.Fatalf("after flushAllBans: %v", got)
		}
		if c := sim.ActionsNamed("Command"); len(c) != 2 {
			t.Fatalf("servers told: %v", c)
		}
		e.fails(e.doFrom("10.1.1.3", e.web, "getCurrencies", nil), apierr.Forbidden, 403)
	})
}

func TestUpdateDialplan(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		sim := amisim.Start(t, amisim.Config{})
		sim.SetCommand("dialplan reload", "Dialplan reloaded.\n")
		e.amiServer("pbx1", "10.0.0.1", sim.Addr(), amisim.DefaultSecret)
		files := map[string]string{
			"/dp/v1.conf":  "; version: 0082R20170626_205\n[default]\nexten => _X.,1,NoOp()\n",
			"/dp/v2.conf":  "; version: 0083R20170701_001\n[default]\nexten => _X.,1,Hangup()\n",
			"/ui/ui.conf":  "[interface]\nversion = 0.12.4\n",
			"/dp/bin.conf": "\x00\x01binary",
		}
		web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, ok := files[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			io.WriteString(w, body)
		}))
		defer web.Close()
		tilde := func(path string) string { return strings.ReplaceAll(web.URL+path, "/", "~") }
		version := func() (dp, ui string) {
			e.t.Helper()
			row := struct {
				DP string `db:"dialplan_version"`
				UI string `db:"interface_version"`
			}{}
			if err := e.s.DB.Q().Get(context.Background(), &row, `SELECT dialplan_version, interface_version FROM sip_servers WHERE name = 'pbx1'`); err != nil {
				t.Fatal(err)
			}
			return row.DP, row.UI
		}

		if a := e.ok(e.do(e.web, "updateDialplan", admin("asterisk", "10.0.0.1", "url", tilde("/dp/v1.conf")))); a.Response != "OK 0082R20170626_205" {
			t.Fatalf("v1: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "updateDialplan", admin("asterisk", "10.0.0.1", "url", tilde("/dp/v2.conf")))); a.Response != "OK 0083R20170701_001" {
			t.Fatalf("v2: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "updateInterface", admin("asterisk", "pbx1", "url", tilde("/ui/ui.conf")))); a.Response != "OK 0.12.4" {
			t.Fatalf("interface: %s", a.Body)
		}
		if dp, ui := version(); dp != "0083R20170701_001" || ui != "0.12.4" {
			t.Fatalf("versions: %s %s", dp, ui)
		}
		if a := e.ok(e.do(e.web, "restoreDialplan", admin("asterisk", "10.0.0.1"))); a.Response != "OK 0082R20170626_205" {
			t.Fatalf("restore: %s", a.Body)
		}
		if dp, _ := version(); dp != "0082R20170626_205" {
			t.Fatalf("restored version: %s", dp)
		}
		e.fails(e.do(e.web, "restoreDialplan", admin("asterisk", "10.0.0.1")), apierr.NotExist, 200)
		if n := len(sim.ActionsNamed("Command")); n != 4 {
			t.Fatalf("reloads: %d", n)
		}

		e.fails(e.do(e.web, "updateDialplan", admin("asterisk", "10.0.0.1", "url", tilde("/dp/none.conf"))), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "updateDialplan", admin("asterisk", "10.0.0.1", "url", tilde("/dp/bin.conf"))), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "updateDialplan", admin("asterisk", "10.0.0.1", "url", "ftp:~~host~x")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "updateDialplan", admin("asterisk", "10.9.9.9", "url", tilde("/dp/v1.conf"))), apierr.SIPServerNotExist, 200)
		e.register(admin(), "corp", 22)
		e.fails(e.do(e.web, "updateDialplan", user("corp", "url", tilde("/dp/v1.conf"))), apierr.InsufficientAccess, 200)
		// An unreachable Asterisk stores nothing.
		sim.SetSilent(true)
		e.fails(e.do(e.web, "updateDialplan", admin("asterisk", "10.0.0.1", "url", tilde("/dp/v2.conf"))), apierr.AsteriskQueryError, 200)
		if dp, _ := version(); dp != "0082R20170626_205" {
			t.Fatalf("version after a failed update: %s", dp)
		}
	})
}

// Callbacks in parallel share one AMI connection and each gets its own outcome.
func TestCreateCallbackConcurrent(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		sim := amisim.Start(t, amisim.Config{OriginateDelay: 200 * time.Millisecond})
		sim.SetOriginateOutcome("500", amisim.Busy)
		e.amiServer("pbx1", "10.0.0.1", sim.Addr(), amisim.DefaultSecret)
		e.register(admin(), "alice", 11, "sip_server", "10.0.0.1", "sip_extension", "10001")
		dests := []string{"100", "500", "101", "102", "500", "103"}
		codes := make([]string, len(dests))
		done := make(chan struct{})
		for i, d := range dests {
			go func() {
				defer func() { done <- struct{}{} }()
				req := httptest.NewRequest(http.MethodGet, "/billing/api/2.2/"+e.web+"/createCallback?"+
					user("alice", "destination1", d, "destination2", "200").Encode(), nil)
				req.RemoteAddr = "127.0.0.1:1"
				rec := httptest.NewRecorder()
				e.h.ServeHTTP(rec, req)
				codes[i] = rec.Body.String()
			}()
		}
		for range dests {
			<-done
		}
		for i, d := range dests {
			want := `"response":true`
			if d == "500" {
				want = `"response":"E_INITIATE_ASTERISK_CALL_FAIL","description":"busy"`
			}
			if !strings.Contains(codes[i], want) {
				t.Errorf("%s: %s", d, codes[i])
			}
		}
		if n := sim.Connections(); n != 1 {
			t.Fatalf("connections: %d", n)
		}
	})
}
