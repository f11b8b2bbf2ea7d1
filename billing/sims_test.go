package billing

import (
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

func TestSIMCards(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "corp", 22)
		e.register(user("corp"), "alice", 11)
		e.register(admin(), "bob", 11)
		e.register(admin(), "sysop", 33)
		d := e.s.DB
		execSQL(t, d, `INSERT INTO extensions (extension, user_id) VALUES ('40000', (SELECT id FROM users WHERE username = 'alice'))`)
		execSQL(t, d, `INSERT INTO extensions (extension, user_id) VALUES ('40001', (SELECT id FROM users WHERE username = 'bob'))`)

		// Administrators add and delete cards.
		e.ok(e.do(e.web, "addSIM", admin("provider", "test", "msisdn", "+7 900 111", "iccid", "89372", "puk1", "1111", "puk2", "2222")))
		e.ok(e.do(e.web, "addSIM", user("sysop", "iccid", "89373", "puk1", "3333", "puk2", "4444")))
		e.fails(e.do(e.web, "addSIM", admin("iccid", "89372", "puk1", "1111", "puk2", "2222")), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "addSIM", admin("iccid", "8937x", "puk1", "1111", "puk2", "2222")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addSIM", admin("iccid", "89374", "puk1", "11", "puk2", "2222")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addSIM", admin("iccid", "89374", "puk1", "1111")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "addSIM", admin("iccid", "89374", "puk1", "1111", "puk2", "2222", "provider", "a/b")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addSIM", user("corp", "iccid", "89374", "puk1", "1111", "puk2", "2222")), apierr.InsufficientAccess, 200)

		// An unbound card is the administrators'.
		a := e.ok(e.do(e.web, "getSIMInfo", admin("iccid", "89372")))
		if field(a, "msisdn") != "7900111" || field(a, "owner") != "" || field(a, "enabled") != "0" || field(a, "puk1") != "1111" ||
			field(a, "provider") != "test" {
			t.Fatalf("getSIMInfo: %s", a.Body)
		}
		e.fails(e.do(e.web, "getSIMInfo", user("alice", "iccid", "89372")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getSIMInfo", admin("iccid", "1")), apierr.NotExist, 200)
		if a := e.ok(e.do(e.web, "getSIMList", user("alice"))); len(a.Response.([]any)) != 0 {
			t.Fatalf("alice's list before binding: %s", a.Body)
		}

		// Binding needs both PUK codes.
		e.fails(e.do(e.web, "bindSIM", user("alice", "iccid", "89372", "puk1", "1111", "puk2", "2223")), apierr.AuthFailed, 200)
		e.fails(e.do(e.web, "bindSIM", user("alice", "iccid", "89372", "puk1", "2222", "puk2", "1111")), apierr.AuthFailed, 200)
		e.fails(e.do(e.web, "bindSIM", user("alice", "iccid", "89372", "puk1", "1111")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "bindSIM", user("alice", "iccid", "99999", "puk1", "1111", "puk2", "2222")), apierr.NotExist, 200)
		e.ok(e.do(e.web, "bindSIM", user("alice", "iccid", "89372", "puk1", "1111", "puk2", "2222")))
		e.ok(e.do(e.web, "bindSIM", user("alice", "iccid", "89372", "puk1", "1111", "puk2", "2222"))) // again: hers already
		e.fails(e.do(e.web, "bindSIM", user("bob", "iccid", "89372", "puk1", "1111", "puk2", "2222")), apierr.DoesNotBelongToYou, 200)
		a = e.ok(e.do(e.web, "getSIMInfo", user("alice", "iccid", "89372")))
		if field(a, "owner") != "alice" || field(a, "enabled") != "1" {
			t.Fatalf("after bindSIM: %s", a.Body)
		}
		e.ok(e.do(e.web, "getSIMInfo", user("corp", "iccid", "89372"))) // her manager
		e.fails(e.do(e.web, "getSIMInfo", user("bob", "iccid", "89372")), apierr.DoesNotBelongToYou, 200)

		// Lists: mine, the ones I manage, all or only enabled ones.
		if a := e.ok(e.do(e.web, "getSIMList", user("alice"))); len(a.Response.([]any)) != 1 {
			t.Fatalf("alice's list: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "getSIMList", user("bob"))); len(a.Response.([]any)) != 0 {
			t.Fatalf("bob's list: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "getSIMList", admin())); len(a.Response.([]any)) != 2 {
			t.Fatalf("admin's list: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "getSIMList", admin("all", "false"))); len(a.Response.([]any)) != 1 {
			t.Fatalf("admin's enabled list: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "getSIMList", admin("own", "true"))); len(a.Response.([]any)) != 0 {
			t.Fatalf("admin's own list: %s", a.Body)
		}

		// The owner updates the card; owner and PUK changes need more.
		e.ok(e.do(e.web, "updateSIM", user("alice", "iccid", "89372", "sip_extension", "40000", "callback_cid", "+7 495 000",
			"directsms", "1", "enabled", "0")))
		a = e.ok(e.do(e.web, "getSIMInfo", user("alice", "iccid", "89372")))
		if field(a, "sip_extension") != "40000" || field(a, "callback_cid") != "7495000" || field(a, "allow_direct_sms") != "1" ||
			field(a, "enabled") != "0" {
			t.Fatalf("after updateSIM: %s", a.Body)
		}
		e.fails(e.do(e.web, "updateSIM", user("alice", "iccid", "89372", "sip_extension", "40001")), apierr.WrongExtension, 200)
		e.fails(e.do(e.web, "updateSIM", user("alice", "iccid", "89372", "sip_extension", "49999")), apierr.WrongExtension, 200)
		e.fails(e.do(e.web, "updateSIM", user("alice", "iccid", "89372", "enabled", "2")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "updateSIM", user("alice", "iccid", "89372", "callback_cid", "abc")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "updateSIM", user("alice", "iccid", "89372", "owner", "bob")), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "updateSIM", user("alice", "iccid", "89372", "puk1", "9999")), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "updateSIM", user("bob", "iccid", "89372", "enabled", "1")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateSIM", user("corp", "iccid", "89372", "owner", "bob")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateSIM", user("corp", "iccid", "89372", "puk1", "9999")), apierr.InsufficientAccess, 200)
		// The admin gives it to bob: the SIP account is alice's, so it is cleared.
		e.ok(e.do(e.web, "updateSIM", admin("iccid", "89372", "owner", "bob", "puk1", "9999")))
		a = e.ok(e.do(e.web, "getSIMInfo", user("bob", "iccid", "89372")))
		if field(a, "owner") != "bob" || field(a, "sip_extension") != "" || field(a, "puk1") != "9999" {
			t.Fatalf("after giving the card: %s", a.Body)
		}
		e.fails(e.do(e.web, "getSIMInfo", user("alice", "iccid", "89372")), apierr.DoesNotBelongToYou, 200)

		// Unbinding releases it: bound again with its (new) PUK codes.
		e.fails(e.do(e.web, "unbindSIM", user("alice", "iccid", "89372")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "unbindSIM", user("bob", "iccid", "89372")))
		a = e.ok(e.do(e.web, "getSIMInfo", admin("iccid", "89372")))
		if field(a, "owner") != "" || field(a, "enabled") != "0" {
			t.Fatalf("after unbindSIM: %s", a.Body)
		}
		e.fails(e.do(e.web, "unbindSIM", user("bob", "iccid", "89372")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "bindSIM", user("alice", "iccid", "89372", "puk1", "9999", "puk2", "2222")))

		// Deleting.
		e.fails(e.do(e.web, "deleteSIM", user("corp", "iccid", "89372")), apierr.InsufficientAccess, 200)
		e.ok(e.do(e.web, "deleteSIM", admin("iccid", "89372")))
		e.fails(e.do(e.web, "deleteSIM", admin("iccid", "89372")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "getSIMInfo", user("alice", "iccid", "89372")), apierr.NotExist, 200)
	})
}

func TestNotifySIM(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e, _ := scriptEnv(t, d, map[string]string{"carrier.lua": carrierScript})
		e.register(admin(), "alice", 11)
		e.serverKey("notify", "notify-key-0123456789", 50)
		k := "notify-key-0123456789"
		e.ok(e.do(e.web, "addSIM", admin("provider", "acme", "msisdn", "79001112233", "iccid", "89372", "puk1", "1111", "puk2", "2222")))
		e.ok(e.do(e.web, "addSIM", admin("provider", "acme", "iccid", "89373", "puk1", "1111", "puk2", "2222")))
		e.ok(e.do(e.web, "addSIM", admin("provider", "nobody", "msisdn", "79001112234", "iccid", "89374", "puk1", "1111", "puk2", "2222")))

		if a := e.ok(e.do(k, "notifySIM", kv("sim", "89372", "from", "111", "text", "hello world"))); a.Response != true {
			t.Fatalf("notifySIM: %s", a.Body)
		}
		var ext string
		if err := d.Q().Get(t.Context(), &ext, `SELECT external_id FROM sms WHERE dest = '79001112233' AND type = 'out'`); err != nil ||
			ext != "n-79001112233-89372" {
			t.Fatalf("stored notification: %q %v", ext, err)
		}
		e.fails(e.do(k, "notifySIM", kv("sim", "89373", "from", "111", "text", "x")), apierr.InvalidSMSTo, 200)
		e.fails(e.do(k, "notifySIM", kv("sim", "89374", "from", "111", "text", "x")), apierr.CarrierError, 200)
		e.fails(e.do(k, "notifySIM", kv("sim", "89372", "from", "!", "text", "x")), apierr.InvalidSMSFrom, 200)
		e.fails(e.do(k, "notifySIM", kv("sim", "1", "from", "111", "text", "x")), apierr.NotExist, 200)
		// A card bound to a user is notified by those who manage that user.
		e.ok(e.do(e.web, "bindSIM", user("alice", "iccid", "89372", "puk1", "1111", "puk2", "2222")))
		e.fails(e.do(k, "notifySIM", kv("login", "alice", "sim", "89373", "from", "111", "text", "x")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(k, "notifySIM", kv("login", "alice", "sim", "89372", "from", "111", "text", "x")))
		e.fails(e.do(e.web, "notifySIM", user("alice", "sim", "89372", "from", "111", "text", "x")), apierr.InsufficientAccess, 200)
	})
}
