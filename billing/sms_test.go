package billing

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/asterisk/amisim"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
	"github.com/narayana/narayanad/money"
)

// carrierScript is a carrier "acme" that accepts messages (but refuses one number), a
// carrier "broken" whose script fails, the "sip" handler and a GSM provider "modem".
const carrierScript = `
narayana.handler("sms", "acme", function(m)
  if m.method == "send" then
    if m.to == "79990000000" then narayana.fail("E_CARRIER_ERROR", "rejected by acme") end
    return {id = "acme-" .. m.to}
  elseif m.method == "voice" then
    return "v-" .. m.to
  elseif m.method == "hlr" then
    return "OK,999881111111111,999,888,000000"
  elseif m.method == "notify" then
    return "n-" .. m.to .. "-" .. m.iccid
  elseif m.method == "receive" then
    return {from = m.params.sender, to = m.params.number}
  elseif m.method == "report" then
    return {id = m.params.msgid, status = m.params.stat}
  end
end)
narayana.handler("sms", "broken", function(m) error("boom") end)
narayana.handler("sms", "sip", function(m) return m.to == "40000" and m.from == "40001" end)
narayana.handler("gsm", "modem", function(p)
  if p.action == "fail" then narayana.fail("E_DATA_ABORT", "modem says no") end
  return {action = p.action, x = p.params.x}
end)
`

// smsSeed: directions 79 (Russia Mobile, id 2), 44 (UK, id 3), 33 (France, id 6), 7
// (Russia, id 1); routes acme (sms), broken (sms), ghost (sms, no handler), voice (sip);
// tariff "sms" (×1.5): 79 0.10 via acme; 44 0.20 via broken then 0.30 via acme; 33 0.10
// via ghost; 7 0.10 via voice (no SMS route).
func smsSeed(t *testing.T, e *env) int64 {
	t.Helper()
	d := e.s.DB
	for _, dir := range []struct {
		code, name string
		id         int
	}{{"79", "Russia Mobile", 2}, {"44", "United Kingdom", 3}, {"33", "France", 6}, {"7", "Russia", 1}} {
		execSQL(t, d, `INSERT INTO directions (code, id, name) VALUES (?, ?, ?)`, dir.code, dir.id, dir.name)
	}
	acme := insertID(t, d, `INSERT INTO routes (name, type, prefix) VALUES ('Acme SMS', 'sms', 'acme')`)
	broken := insertID(t, d, `INSERT INTO routes (name, type, prefix) VALUES ('Broken SMS', 'sms', 'broken')`)
	ghost := insertID(t, d, `INSERT INTO routes (name, type, prefix) VALUES ('Ghost', 'sms', 'nohandler')`)
	voice := insertID(t, d, `INSERT INTO routes (name, type, prefix) VALUES ('Voice', 'sip', 'acme')`)
	tariff := insertID(t, d, `INSERT INTO rates (name, bill_type, multiplier) VALUES ('sms', 'byminute', 1500000)`)
	for _, en := range []struct {
		dir, prior int
		cost       money.Micro
		route      int64
	}{{2, 1, 100_000, acme}, {3, 1, 200_000, broken}, {3, 2, 300_000, acme}, {6, 1, 100_000, ghost}, {1, 1, 100_000, voice}} {
		execSQL(t, d, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES (?, ?, ?, ?, ?)`,
			tariff, en.dir, en.prior, en.cost, en.route)
	}
	execSQL(t, d, `UPDATE rating_version SET version = version + 1`)
	e.s.ratingChanged(context.Background())
	return tariff
}

func smsUser(t *testing.T, e *env, tariff int64, name, balance string) {
	t.Helper()
	e.register(admin(), name, 11, "balance", balance)
	e.updateUser(name, "rates", strconv.FormatInt(tariff, 10))
}

func balance(t *testing.T, e *env, name string) money.Micro {
	t.Helper()
	b, _, _ := balanceOf(t, e.s.DB, name)
	return b
}

func TestSendSMS(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e, _ := scriptEnv(t, d, map[string]string{"carrier.lua": carrierScript})
		tariff := smsSeed(t, e)
		smsUser(t, e, tariff, "alice", "1")
		smsUser(t, e, tariff, "bob", "1")
		smsUser(t, e, tariff, "carol", "0.1")

		// Accepted: charged 0.10 × 1.5, stored with the carrier's id.
		a := e.ok(e.do(e.web, "sendSMS", user("alice", "to", "+7 901-000-00-01", "text", "Hello World!", "callerid", "79000000000")))
		id := a.Response.(interface{ String() string }).String()
		if got := balance(t, e, "alice"); got != 850_000 {
			t.Fatalf("balance after an SMS: %s", got)
		}
		var row struct {
			Dest   string `db:"dest"`
			Src    string `db:"src"`
			Ext    string `db:"external_id"`
			Type   string `db:"type"`
			Status int    `db:"status"`
		}
		if err := d.Q().Get(context.Background(), &row, `SELECT dest, src, external_id, type, status FROM sms WHERE id = ?`, id); err != nil {
			t.Fatal(err)
		}
		if row.Dest != "79010000001" || row.Src != "79000000000" || row.Ext != "acme-79010000001" || row.Type != "out" || row.Status != 0 {
			t.Fatalf("stored SMS: %+v", row)
		}
		var kind string
		if err := d.Q().Get(context.Background(), &kind, `SELECT kind FROM ledger WHERE ref = ?`, "sms:"+id); err != nil || kind != KindSMS {
			t.Fatalf("ledger row: %q %v", kind, err)
		}

		// Delivery: sent, then the carrier's report, seen by the sender only.
		if a := e.ok(e.do(e.web, "deliveryReport", user("alice", "id", id))); a.Response != "SMS Sent" {
			t.Fatalf("deliveryReport: %s", a.Body)
		}
		e.ok(e.do(e.web, "receiveDeliveryReport", kv("id", "acme-79010000001", "status", "DELIVERED")))
		if a := e.ok(e.do(e.web, "deliveryReport", user("alice", "id", id))); a.Response != "SMS Deliv" {
			t.Fatalf("deliveryReport after the report: %s", a.Body)
		}
		e.fails(e.do(e.web, "deliveryReport", user("bob", "id", id)), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "deliveryReport", user("alice", "id", "99999")), apierr.NotExist, 200)
		// A carrier with its own field names, through msg_handler.
		e.ok(e.do(e.web, "receiveDeliveryReport", kv("msg_handler", "acme", "msgid", "acme-79010000001", "stat", "UNDELIV")))
		if a := e.ok(e.do(e.web, "deliveryReport", user("alice", "id", id))); a.Response != "SMS Undeliv" {
			t.Fatalf("deliveryReport after an UNDELIV: %s", a.Body)
		}
		e.fails(e.do(e.web, "receiveDeliveryReport", kv("id", "acme-79010000001", "status", "MAYBE")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "receiveDeliveryReport", kv("id", "nope", "status", "DELIVRD")), apierr.NotExist, 200)

		// Failover: the broken carrier fails, acme takes it at its own price (0.30 × 1.5).
		e.ok(e.do(e.web, "sendSMS", user("alice", "to", "447700900000", "text", "hi", "callerid", "Narayana")))
		if got := balance(t, e, "alice"); got != 400_000 {
			t.Fatalf("balance after failover: %s", got)
		}

		// Refusals change nothing.
		for _, c := range []struct {
			params []string
			code   string
			status int
		}{
			{[]string{"to", "abc", "text", "x", "callerid", "123456"}, apierr.InvalidSMSTo, 200},
			{[]string{"to", "12", "text", "x", "callerid", "123456"}, apierr.InvalidSMSTo, 200},
			{[]string{"to", "79010000001", "text", "x", "callerid", "no!"}, apierr.InvalidSMSFrom, 200},
			{[]string{"to", "79010000001", "text", "x", "callerid", "ToolongSender"}, apierr.InvalidSMSFrom, 200},
			{[]string{"to", "79010000001", "text", "x"}, apierr.InvalidSMSFrom, 200}, // no caller ID in the profile
			{[]string{"to", "79990000000", "text", "x", "callerid", "123456"}, apierr.CarrierError, 200},
			{[]string{"to", "33100000000", "text", "x", "callerid", "123456"}, apierr.CarrierError, 200}, // no handler
			{[]string{"to", "74950000000", "text", "x", "callerid", "123456"}, apierr.Unroutable, 200},   // no SMS route
			{[]string{"to", "5550000000", "text", "x", "callerid", "123456"}, apierr.Unroutable, 200},    // no direction
			{[]string{"to", "79010000001", "callerid", "123456"}, apierr.MissingArgument, 400},
			{[]string{"text", "x", "callerid", "123456"}, apierr.MissingArgument, 400},
		} {
			e.fails(e.do(e.web, "sendSMS", user("alice", c.params...)), c.code, c.status)
		}
		if got := balance(t, e, "alice"); got != 400_000 {
			t.Fatalf("balance after refusals: %s", got)
		}
		e.fails(e.do(e.web, "sendSMS", user("carol", "to", "79010000001", "text", "x", "callerid", "123456")), apierr.InsufficientMoney, 200)
		e.fails(e.do(e.web, "sendSMS", kv("to", "79010000001", "text", "x")), apierr.AuthFailed, 200)
		// The caller ID from the profile.
		execSQL(t, d, `INSERT INTO extensions (extension, user_id, callerid) VALUES ('40001', (SELECT id FROM users WHERE username = 'bob'), '79001112233')`)
		a = e.ok(e.do(e.web, "sendSMS", user("bob", "to", "79010000002", "text", "from my profile")))
		var src string
		if err := d.Q().Get(context.Background(), &src, `SELECT src FROM sms WHERE id = ?`, a.Response.(interface{ String() string }).String()); err != nil || src != "79001112233" {
			t.Fatalf("profile caller ID: %q %v", src, err)
		}

		// Voice messages: the same routes and price, their own ledger kind.
		a = e.ok(e.do(e.web, "sendVoiceMessage", user("alice", "to", "79010000003", "text", "hello, world", "callerid", "79000000000")))
		if got := balance(t, e, "alice"); got != 250_000 {
			t.Fatalf("balance after a voice message: %s", got)
		}
		if a := e.ok(e.do(e.web, "deliveryReport", user("alice", "id", a.Response.(interface{ String() string }).String()))); a.Response != "SMS Sent" {
			t.Fatalf("voice deliveryReport: %s", a.Body)
		}

		// HLR: the carrier's answer, not charged.
		if a := e.ok(e.do(e.web, "sendHLR", user("alice", "to", "79010000001"))); a.Response != "OK,999881111111111,999,888,000000" {
			t.Fatalf("sendHLR: %s", a.Body)
		}
		e.fails(e.do(e.web, "sendHLR", user("alice", "to", "33100000000")), apierr.CarrierError, 200)
		e.fails(e.do(e.web, "sendHLR", user("alice", "to", "x")), apierr.InvalidSMSTo, 200)
		if got := balance(t, e, "alice"); got != 250_000 {
			t.Fatalf("balance after HLR: %s", got)
		}

		// SIP messages to a SIP account of this system.
		execSQL(t, d, `INSERT INTO extensions (extension, user_id) VALUES ('40000', (SELECT id FROM users WHERE username = 'alice'))`)
		if a := e.ok(e.do(e.web, "sendSIPMessage", user("bob", "to", "40000", "text", "hello world"))); a.Response != true {
			t.Fatalf("sendSIPMessage: %s", a.Body)
		}
		e.fails(e.do(e.web, "sendSIPMessage", user("bob", "to", "49999", "text", "x")), apierr.InvalidSMSTo, 200)
		e.fails(e.do(e.web, "sendSIPMessage", user("carol", "to", "40000", "text", "x")), apierr.InvalidSMSFrom, 200)
		e.fails(e.do(e.web, "sendSIPMessage", user("bob", "to", "40000", "text", "x", "callerid", "123456")), apierr.CarrierError, 200)

		// GSM provider.
		a = e.ok(e.do(e.web, "gsmRequest", kv("provider", "modem", "action", "status", "x", "1")))
		if field(a, "action") != "status" || field(a, "x") != "1" {
			t.Fatalf("gsmRequest: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "gsmRequest", kv("provider", "modem"))); field(a, "action") != "Default" {
			t.Fatalf("gsmRequest default action: %s", a.Body)
		}
		e.fails(e.do(e.web, "gsmRequest", kv("provider", "modem", "action", "fail")), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "gsmRequest", kv("provider", "nobody")), apierr.CarrierError, 200)
		e.fails(e.do(e.web, "gsmRequest", kv("provider", "../x")), apierr.CarrierError, 200)
		checkLedger(t, e)
	})
}

// Without scripts there is no carrier: nothing is sent and nothing charged.
func TestSMSWithoutCarriers(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		tariff := smsSeed(t, e)
		smsUser(t, e, tariff, "alice", "1")
		e.fails(e.do(e.web, "sendSMS", user("alice", "to", "79010000001", "text", "x", "callerid", "123456")), apierr.CarrierError, 200)
		e.fails(e.do(e.web, "sendVoiceMessage", user("alice", "to", "79010000001", "text", "x", "callerid", "123456")), apierr.CarrierError, 200)
		e.fails(e.do(e.web, "sendHLR", user("alice", "to", "79010000001")), apierr.CarrierError, 200)
		e.fails(e.do(e.web, "gsmRequest", kv("provider", "modem")), apierr.CarrierError, 200)
		if got := balance(t, e, "alice"); got != money.One {
			t.Fatalf("balance: %s", got)
		}
		var n int
		if err := e.s.DB.Q().Get(context.Background(), &n, `SELECT COUNT(*) FROM sms`); err != nil || n != 0 {
			t.Fatalf("stored: %d %v", n, err)
		}
		checkLedger(t, e)
	})
}

func TestReceiveSMS(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "alice", 11)
		e.register(admin(), "bob", 11)
		d := e.s.DB
		execSQL(t, d, `INSERT INTO dids (did, owner_id) VALUES ('78005555550', (SELECT id FROM users WHERE username = 'alice'))`)
		execSQL(t, d, `INSERT INTO dids (did, owner_id) VALUES ('78005555551', (SELECT id FROM users WHERE username = 'alice'))`)
		execSQL(t, d, `INSERT INTO dids (did, owner_id) VALUES ('78005555552', NULL)`)
		e.serverKey("gateway", "gateway-key-0123456789", 95)
		gw := "gateway-key-0123456789"

		e.ok(e.do(e.web, "receiveSMS", kv("from", "18005555550", "to", "+7 800 555-55-50", "text", "Hello world")))
		e.ok(e.do(e.web, "receiveSMS", kv("from", "Bank", "to", "78005555551", "text", "second")))
		e.fails(e.do(e.web, "receiveSMS", kv("from", "1", "to", "78005555552", "text", "x")), apierr.InvalidSMSTo, 200)
		e.fails(e.do(e.web, "receiveSMS", kv("from", "1", "to", "79990000000", "text", "x")), apierr.InvalidSMSTo, 200)
		e.fails(e.do(e.web, "receiveSMS", kv("to", "78005555550", "text", "x")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "receiveSMS", kv("from", "1", "to", "78005555550", "msg_handler", "acme")), apierr.CarrierError, 200)

		a := e.ok(e.do(gw, "getSMS", kv("status", "0")))
		list, _ := a.Response.([]any)
		if len(list) != 2 {
			t.Fatalf("getSMS: %s", a.Body)
		}
		first, _ := list[0].(map[string]any)
		if first["src"] != "18005555550" || first["dest"] != "78005555550" || first["msg"] != "Hello world" ||
			first["type"] != "in" || first["user"] != "alice" || first["date"] == "" {
			t.Fatalf("getSMS first: %v", first)
		}
		e.fails(e.do(e.web, "getSMS", user("alice")), apierr.InsufficientAccess, 200)

		// readSMS marks the user's messages: only on the DID given, then all.
		e.ok(e.do(e.web, "readSMS", user("bob")))
		e.ok(e.do(e.web, "readSMS", user("alice", "did", "78005555551", "status", "0")))
		if a := e.ok(e.do(gw, "getSMS", kv("status", "0"))); len(a.Response.([]any)) != 1 {
			t.Fatalf("after readSMS on one DID: %s", a.Body)
		}
		e.ok(e.do(e.web, "readSMS", user("alice")))
		if a := e.ok(e.do(gw, "getSMS", kv("status", "0"))); len(a.Response.([]any)) != 0 {
			t.Fatalf("after readSMS: %s", a.Body)
		}
		e.fails(e.do(e.web, "readSMS", user("alice", "status", "0.5")), apierr.InvalidArgument, 400)

		// setDeliveryReport by the gateway.
		id := first["id"].(interface{ String() string }).String()
		e.ok(e.do(gw, "setDeliveryReport", kv("id", id, "status", "0")))
		if a := e.ok(e.do(gw, "getSMS", kv("status", "0"))); len(a.Response.([]any)) != 1 {
			t.Fatalf("after setDeliveryReport: %s", a.Body)
		}
		e.fails(e.do(gw, "setDeliveryReport", kv("id", id, "status", "5")), apierr.InvalidArgument, 400)
		e.fails(e.do(gw, "setDeliveryReport", kv("id", "99999", "status", "1")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "setDeliveryReport", user("alice", "id", id, "status", "1")), apierr.InsufficientAccess, 200)
		// A received message has no delivery report.
		e.fails(e.do(e.web, "deliveryReport", user("alice", "id", id)), apierr.NotExist, 200)
	})
}

func TestMsgCallback(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		sim := amisim.Start(t, amisim.Config{})
		e.amiServer("pbx1", "10.0.0.1", sim.Addr(), amisim.DefaultSecret)
		e.register(admin(), "alice", 11, "sip_server", "10.0.0.1", "sip_extension", "40000")
		e.ok(e.do(e.web, "updateExtension", user("alice", "sip_extension", "40000", "disa_pin", "1111", "sip_callerid", "74950001122")))
		e.register(admin(), "bob", 11, "sip_server", "10.0.0.1", "sip_extension", "40001")

		// Refusals: no callback is started.
		for _, c := range []struct {
			text, code string
			status     int
		}{
			{"40000 1112 7499999999 7911111111", apierr.AuthFailed, 200},
			{"49999 1111 7499999999 7911111111", apierr.AuthFailed, 200},
			{"40001 1111 7499999999 7911111111", apierr.AuthFailed, 200}, // no PIN set
			{"40000 1111", apierr.InvalidArgument, 400},
			{"40000 1111 1 2 3 4", apierr.InvalidArgument, 400},
			{"40000 1111 7499999999 79111@other", apierr.InvalidArgument, 400},
			{"40000 1111 abc 7499999999 7911111111", apierr.InvalidArgument, 400},
		} {
			e.fails(e.do(e.web, "msgCallback", kv("msisdn", "78005555550", "to", "18005555550", "text", c.text)), c.code, c.status)
		}
		if n := len(sim.ActionsNamed("Originate")); n != 0 {
			t.Fatalf("originates after refusals: %d", n)
		}

		// Two destinations; then caller ID and two destinations; then one destination,
		// the first leg calling back the phone the SMS came from.
		for _, c := range []struct{ text, channel, exten, cid string }{
			{"40000 1111 7499999999 7911111111", "Local/7499999999@callback", "7911111111", "74950001122"},
			{"40000 1111 74951234567 7499999999 7911111111", "Local/7499999999@callback", "7911111111", "74951234567"},
			{"40000 1111 7911111111", "Local/78005555550@callback", "7911111111", "74950001122"},
		} {
			if a := e.ok(e.do(e.web, "msgCallback", kv("msisdn", "+78005555550", "to", "18005555550", "text", c.text))); a.Response != true {
				t.Fatalf("msgCallback %q: %s", c.text, a.Body)
			}
			orig := sim.ActionsNamed("Originate")
			o := orig[len(orig)-1]
			if o.Get("Channel") != c.channel || o.Get("Exten") != c.exten || o.Get("CallerID") != c.cid {
				t.Fatalf("msgCallback %q: Originate %v", c.text, o)
			}
		}
		// A locked owner gets no callback.
		e.ok(e.do(e.web, "updateUser", admin("username", "alice", "active", "-1")))
		e.fails(e.do(e.web, "msgCallback", kv("msisdn", "78005555550", "text", "40000 1111 7499999999 7911111111")), apierr.UserLocked, 200)

		// Guessing: after five wrong PINs even the right one is refused for a while.
		for range pinMaxFails {
			e.fails(e.do(e.web, "msgCallback", kv("msisdn", "78005555550", "text", "40000 0000 7499999999 7911111111")), apierr.AuthFailed, 200)
		}
		e.ok(e.do(e.web, "updateUser", admin("username", "alice", "active", "1")))
		e.fails(e.do(e.web, "msgCallback", kv("msisdn", "78005555550", "text", "40000 1111 7499999999 7911111111")), apierr.AuthFailed, 200)
	})
}

func TestPinGuardWindow(t *testing.T) {
	g := &pinGuard{fails: map[string][]time.Time{}}
	t0 := time.Unix(1_000_000, 0)
	for i := range pinMaxFails {
		if g.blocked("x", t0) {
			t.Fatalf("blocked after %d failures", i)
		}
		g.fail("x", t0.Add(time.Duration(i)*time.Second))
	}
	if !g.blocked("x", t0.Add(time.Minute)) || g.blocked("y", t0) {
		t.Fatal("want x blocked, y not")
	}
	if g.blocked("x", t0.Add(pinWindow+time.Duration(pinMaxFails)*time.Second)) {
		t.Fatal("still blocked after the window")
	}
	if len(g.fails) != 0 {
		t.Fatalf("expired failures kept: %v", g.fails)
	}
	g.fail("x", t0)
	g.reset("x")
	if len(g.fails) != 0 {
		t.Fatal("reset kept failures")
	}
}
