package billing

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/narayana/narayanad/apierr"
)

func TestExtensions(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.addServer("sip1", "10.0.0.1")
		e.addServer("sip2", "10.0.0.2")
		e.register(admin(), "reseller", 22, "sip_server", "10.0.0.1", "sip_extension", "20000")
		e.register(user("reseller"), "alice", 11, "sip_server", "10.0.0.1", "sip_extension", "10001", "sip_password", "alicesip")
		e.register(admin(), "bob", 11, "sip_server", "10.0.0.1", "sip_extension", "10002")

		exts := objs(t, e.ok(e.do(e.web, "getExtensions", user("alice"))))
		if len(exts) != 1 || exts[0]["sip_extension"] != "10001" || exts[0]["sip_password"] != "alicesip" ||
			exts[0]["sip_server"] != "10.0.0.1" || exts[0]["sip_realm"] != "sip1" || exts[0]["owner"] != "alice" {
			t.Fatalf("getExtensions: %v", exts)
		}
		if exts := objs(t, e.ok(e.do(e.web, "getExtensions", user("reseller", "all", "true")))); len(exts) != 2 {
			t.Fatalf("reseller all: %v", exts)
		}
		if exts := objs(t, e.ok(e.do(e.web, "getExtensions", user("reseller", "owner", "alice")))); len(exts) != 1 || exts[0]["sip_password"] != "alicesip" {
			t.Fatalf("reseller owner=alice: %v", exts)
		}
		e.fails(e.do(e.web, "getExtensions", user("reseller", "owner", "bob")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getExtensions", user("reseller", "owner", "nobody")), apierr.NotExist, 200)

		// getExtensionInfo and property.
		info := e.ok(e.do(e.web, "getExtensionInfo", user("alice", "sip_extension", "10001")))
		if field(info, "sip_transport") != "udp" || field(info, "sip_pitch_shift") != "-1" || field(info, "sip_reach") != "2" {
			t.Fatalf("getExtensionInfo: %s", info.Body)
		}
		if a := e.ok(e.do(e.web, "getExtensionInfo", user("alice", "property", "sip_callerid"))); a.Response != "10001" {
			t.Fatalf("property: %s", a.Body)
		}
		e.fails(e.do(e.web, "getExtensionInfo", user("alice", "property", "nope")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "getExtensionInfo", user("alice", "sip_extension", "10002")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getExtensionInfo", user("alice", "sip_extension", "55555")), apierr.NotExist, 200)
		// Version 2.3 adds sip_host, sip_options, sip_address.
		req := httptest.NewRequest(http.MethodGet, "/billing/api/2.3/"+e.web+"/getExtensionInfo?"+user("alice").Encode(), nil)
		req.RemoteAddr = "127.0.0.1:1"
		if a := e.ok(e.serve(req)); field(a, "sip_host") != "" || a.Response.(map[string]any)["sip_address"] == nil {
			t.Fatalf("2.3: %s", a.Body)
		}

		// getAvailExtension.
		if a := e.ok(e.do(e.web, "getAvailExtension", user("alice", "own", "true"))); a.Response != "1000101" {
			t.Fatalf("own: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "getAvailExtension", user("alice"))); a.Response != "10000" {
			t.Fatalf("next: %s", a.Body)
		}
		e.fails(e.do(e.web, "getAvailExtension", admin("own", "true")), apierr.NotExist, 200)

		// createExtension: users get XXXXXyy under their own number.
		e.fails(e.do(e.web, "createExtension", user("alice", "sip_extension", "30000")), apierr.WrongExtension, 200)
		e.fails(e.do(e.web, "createExtension", user("alice", "sip_extension", "1000201")), apierr.WrongExtension, 200)
		e.fails(e.do(e.web, "createExtension", user("alice", "sip_extension", "12ab")), apierr.WrongExtension, 200)
		e.fails(e.do(e.web, "createExtension", user("alice", "sip_extension", "1000101", "sip_server", "10.9.9.9")), apierr.SIPServerNotExist, 200)
		e.fails(e.do(e.web, "createExtension", user("alice", "owner", "bob")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "createExtension", user("alice", "sip_callerid", "12\n3")), apierr.InvalidArgument, 400)
		e.ok(e.do(e.web, "createExtension", user("alice")))
		e.ok(e.do(e.web, "createExtension", user("alice", "sip_extension", "1000105", "sip_server", "10.0.0.2", "sip_callerid", "+4915112345",
			"sip_srtp", "true", "sip_password", "pw5")))
		e.fails(e.do(e.web, "createExtension", user("alice", "sip_extension", "1000105")), apierr.CantCreateExtension, 200)
		info = e.ok(e.do(e.web, "getExtensionInfo", user("alice", "sip_extension", "1000105")))
		if field(info, "sip_server") != "10.0.0.2" || field(info, "sip_srtp") != "1" || field(info, "sip_callerid") != "+4915112345" {
			t.Fatalf("created: %s", info.Body)
		}
		// A reseller creates any free number for the users they manage.
		e.ok(e.do(e.web, "createExtension", user("reseller", "owner", "alice", "sip_extension", "30000", "sip_server", "sip1")))
		if exts := objs(t, e.ok(e.do(e.web, "getExtensions", user("alice")))); len(exts) != 4 {
			t.Fatalf("alice's accounts: %v", exts)
		}

		// A server key of level 22 or more creates any number for a user it manages.
		e.addKey("name", "ast", "apikey", "ast-key-0123456", "auth_by", "sip_extension", "source", "*", "accessLevel", "50")
		e.ok(e.do("ast-key-0123456", "createExtension", url.Values{"login": {"10001"}, "sip_extension": {"40000"}}))
		if f := field(e.ok(e.do(e.web, "getExtensionInfo", user("alice", "sip_extension", "40000"))), "owner"); f != "alice" {
			t.Fatalf("server key's account owner %q", f)
		}
		e.ok(e.do("ast-key-0123456", "deleteExtension", url.Values{"login": {"10001"}, "sip_extension": {"40000"}}))

		// updateExtension.
		e.ok(e.do(e.web, "updateExtension", user("alice", "sip_extension", "10001", "sip_transport", "udp,tcp", "sip_reach", "0",
			"sip_max_call_len", "600", "disa_pin", "1234", "sip_redirect", "79001234567", "sip_srtp", "1", "sip_server", "10.0.0.2")))
		info = e.ok(e.do(e.web, "getExtensionInfo", user("alice", "sip_extension", "10001")))
		if field(info, "sip_transport") != "udp,tcp" || field(info, "sip_reach") != "0" || field(info, "sip_max_call_len") != "600" ||
			field(info, "disa_pin") != "1234" || field(info, "sip_server") != "10.0.0.2" || field(info, "sip_srtp") != "1" {
			t.Fatalf("updated: %s", info.Body)
		}
		for _, bad := range [][2]string{{"sip_transport", "sctp"}, {"sip_transport", "tcp,udp"}, {"sip_reach", "5"},
			{"sip_srtp", "2"}, {"sip_force_callback", "3"}, {"disa_pin", "12a"}, {"sip_max_call_len", "-1"},
			{"sip_redirect", "a\r\nb"}, {"sip_password", ""}, {"sip_reach", "x"}} {
			e.fails(e.do(e.web, "updateExtension", user("alice", "sip_extension", "10001", bad[0], bad[1])), apierr.InvalidArgument, 400)
		}
		e.fails(e.do(e.web, "updateExtension", user("alice", "sip_extension", "10001")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "updateExtension", user("alice", "sip_extension", "10001", "sip_server", "nope")), apierr.SIPServerNotExist, 200)
		e.fails(e.do(e.web, "updateExtension", user("alice", "sip_extension", "10002", "sip_reach", "0")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateExtension", user("alice", "sip_extension", "10001", "extension", "40000")), apierr.WrongExtension, 200)
		e.fails(e.do(e.web, "updateExtension", user("reseller", "sip_extension", "30000", "extension", "10002")), apierr.CantCreateExtension, 200)
		e.ok(e.do(e.web, "updateExtension", user("alice", "sip_extension", "1000105", "extension", "1000106")))
		e.fails(e.do(e.web, "updateExtension", user("reseller", "sip_extension", "10001", "extension", "10009")), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "getExtensionInfo", user("alice", "sip_extension", "1000105")), apierr.NotExist, 200)
		if a := e.ok(e.do(e.web, "getInfo", user("alice"))); field(a, "sip_transport") != "udp,tcp" {
			t.Fatalf("getInfo after updateExtension: %s", a.Body)
		}

		// sip_rates_id under switchRates' rule.
		e.ok(e.do(e.web, "addRates", admin("name", "private")))
		e.ok(e.do(e.web, "addRates", admin("name", "public", "is_public", "true")))
		e.fails(e.do(e.web, "updateExtension", user("alice", "sip_extension", "10001", "sip_rates_id", "1")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateExtension", user("alice", "sip_extension", "10001", "sip_rates_id", "9")), apierr.NotExist, 200)
		e.ok(e.do(e.web, "updateExtension", user("alice", "sip_extension", "10001", "sip_rates_id", "2")))
		e.ok(e.do(e.web, "updateExtension", admin("sip_extension", "10001", "sip_rates_id", "1")))
		if f := field(e.ok(e.do(e.web, "getExtensionInfo", user("alice", "sip_extension", "10001"))), "rates_name"); f != "private" {
			t.Fatalf("rates_name %q", f)
		}

		// deleteExtension.
		e.fails(e.do(e.web, "deleteExtension", user("alice")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "deleteExtension", user("alice", "sip_extension", "10001")), apierr.CantDeleteExtension, 200)
		e.fails(e.do(e.web, "deleteExtension", user("alice", "sip_extension", "10002")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "deleteExtension", user("alice", "sip_extension", "1000101")))
		e.ok(e.do(e.web, "deleteExtension", user("alice", "sip_extension", "1000106")))
		e.ok(e.do(e.web, "deleteExtension", user("reseller", "sip_extension", "30000")))
		e.fails(e.do(e.web, "deleteExtension", user("alice", "sip_extension", "10001")), apierr.CantDeleteExtension, 200)
		e.ok(e.do(e.web, "deleteExtension", user("reseller", "sip_extension", "10001")))
		if exts := objs(t, e.ok(e.do(e.web, "getExtensions", user("alice")))); len(exts) != 0 {
			t.Fatalf("after delete: %v", exts)
		}
		e.fails(e.do(e.web, "deleteExtension", user("reseller", "sip_extension", "10001")), apierr.NotExist, 200)
	})
}
