package billing

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/narayana/narayanad/apierr"
)

func TestTransportAndGate(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		// Envelope, JSON content type, 200.
		a := e.ok(e.do(e.web, "getCurrencies", nil))
		if list, _ := a.Response.([]any); len(list) != 3 {
			t.Fatalf("getCurrencies: %s", a.Body)
		}
		// Version, method, arguments: 400.
		req := httptest.NewRequest("GET", "/billing/api/1.0/"+e.web+"/getCurrencies", nil)
		req.RemoteAddr = "127.0.0.1:1"
		e.fails(e.serve(req), apierr.IncorrectAPIVersion, 400)
		e.fails(e.do(e.web, "noSuchMethod", nil), apierr.UnknownMethod, 400)
		e.fails(e.do(e.web, "getValue", admin()), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "getUsers", admin("all", "maybe")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "getAccountInfo", admin("account", "1.5")), apierr.InvalidArgument, 400)
		// Booleans in any case and spelling.
		for _, b := range []string{"TRUE", "yes", "1", "No", "false", "0"} {
			e.ok(e.do(e.web, "getUsers", admin("all", b)))
		}
		// Wrong password and unknown login: E_AUTH_FAILED; no user for a level-1 method.
		e.fails(e.do(e.web, "getInfo", as(adminName, "wrong")), apierr.AuthFailed, 200)
		e.fails(e.do(e.web, "getInfo", as("nobody", "x")), apierr.AuthFailed, 200)
		e.fails(e.do(e.web, "getInfo", nil), apierr.AuthFailed, 200)
		// Version 2.3 is served too.
		req = httptest.NewRequest("GET", "/billing/api/2.3/"+e.web+"/getInfo?"+admin().Encode(), nil)
		req.RemoteAddr = "127.0.0.1:1"
		e.ok(e.serve(req))
	})
}

func TestPostBodies(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		post := func(ct, body string, query url.Values) answer {
			req := httptest.NewRequest("POST", "/billing/api/2.2/"+e.web+"/getValue?"+query.Encode(), strings.NewReader(body))
			req.Header.Set("Content-Type", ct)
			req.RemoteAddr = "127.0.0.1:1"
			return e.serve(req)
		}
		a := e.ok(post("application/x-www-form-urlencoded", admin("property", "username").Encode(), nil))
		if a.Response != adminName {
			t.Fatalf("form: %s", a.Body)
		}
		js := `{"login":"admin","password":"` + md5hex("adminpw") + `","property":"accesslevel"}`
		a = e.ok(post("application/json", js, nil))
		if a.Response.(interface{ String() string }).String() != "44" {
			t.Fatalf("json: %s", a.Body)
		}
		// A body value overrides the query's.
		a = e.ok(post("application/x-www-form-urlencoded", "property=username", admin("property", "accesslevel")))
		if a.Response != adminName {
			t.Fatalf("override: %s", a.Body)
		}
		var mp strings.Builder
		mp.WriteString("--XX\r\nContent-Disposition: form-data; name=\"property\"\r\n\r\ncurrency\r\n--XX--\r\n")
		a = e.ok(post("multipart/form-data; boundary=XX", mp.String(), admin()))
		if a.Response != "EUR" {
			t.Fatalf("multipart: %s", a.Body)
		}
		e.fails(post("application/json", `{"login":`, nil), apierr.InvalidArgument, 400)
	})
}

func TestKeysBansAndSources(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		// A bad key: 401, and the address is banned (threshold 1): 403 from then on,
		// even with a good key.
		e.fails(e.doFrom("10.1.1.1", "nope-nope-nope", "getCurrencies", nil), apierr.Unauthorized, 401)
		e.fails(e.doFrom("10.1.1.1", e.web, "getCurrencies", nil), apierr.Forbidden, 403)
		bans := e.ok(e.do(e.web, "getBans", admin())).Response.([]any)
		if len(bans) != 1 || bans[0].(map[string]any)["target"] != "10.1.1.1" || bans[0].(map[string]any)["reason"] != "invalid API key" {
			t.Fatalf("bans: %v", bans)
		}
		id := bans[0].(map[string]any)["id"].(interface{ String() string }).String()
		e.ok(e.do(e.web, "unbanIP", admin("id", id)))
		e.ok(e.doFrom("10.1.1.1", e.web, "getCurrencies", nil))
		e.fails(e.do(e.web, "unbanIP", admin("id", id)), apierr.NotExist, 200)

		// A whitelisted address is never banned, and banIP refuses it.
		e.ok(e.do(e.web, "banIP", admin("source", "whitelist", "target", "10.2.2.2", "reason", "office")))
		e.fails(e.doFrom("10.2.2.2", "bad-bad-bad-bad", "getCurrencies", nil), apierr.Unauthorized, 401)
		e.ok(e.doFrom("10.2.2.2", e.web, "getCurrencies", nil))
		e.fails(e.do(e.web, "banIP", admin("source", "sip1", "target", "10.2.2.2")), apierr.TargetWhitelisted, 200)
		e.fails(e.do(e.web, "banIP", admin("source", "sip1", "target", "not-an-ip")), apierr.InvalidArgument, 400)
		e.ok(e.do(e.web, "banIP", admin("source", "sip1", "target", "10.3.3.3", "reason", "scan")))
		e.fails(e.doFrom("10.3.3.3", e.web, "getCurrencies", nil), apierr.Forbidden, 403)
		bans = e.ok(e.do(e.web, "getBans", admin())).Response.([]any)
		last := bans[len(bans)-1].(map[string]any)
		lid := last["id"].(interface{ String() string }).String()
		e.ok(e.do(e.web, "updateBanPermanent", admin("id", lid, "state", "true")))
		e.fails(e.do(e.web, "updateBanPermanent", admin("id", "9999", "state", "true")), apierr.NotExist, 200)

		// Keys: source masks, secure_only, allowed_methods, revocation.
		e.ok(e.do(e.web, "addKey", admin("name", "office", "apikey", "office-key-1234", "source", "192.168.1.*, 10.0.0.0/8, ::1")))
		e.ok(e.doFrom("192.168.1.77", "office-key-1234", "getCurrencies", nil))
		e.ok(e.doFrom("10.200.0.1", "office-key-1234", "getCurrencies", nil))
		e.ok(e.doFrom("::1", "office-key-1234", "getCurrencies", nil))
		e.fails(e.doFrom("192.168.2.1", "office-key-1234", "getCurrencies", nil), apierr.Forbidden, 403)
		e.ok(e.do(e.web, "updateKey", admin("name", "office", "source", "*", "secure_only", "1")))
		e.fails(e.do("office-key-1234", "getCurrencies", nil), apierr.Forbidden, 403)
		e.ok(e.do(e.web, "updateKey", admin("name", "office", "secure_only", "0", "allowed_methods", "getCurrencies")))
		e.ok(e.do("office-key-1234", "getCurrencies", nil))
		e.fails(e.do("office-key-1234", "getCourse", nil), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "updateKey", admin("name", "office", "allowed_methods", "nope")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addKey", admin("name", "x", "source", "300.1.1.1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addKey", admin("name", "office")), apierr.DataAbort, 200)
		k := e.ok(e.do(e.web, "getKey", admin("name", "office")))
		if field(k, "key") != "office-key-1234" || field(k, "source") != "*" {
			t.Fatalf("getKey: %s", k.Body)
		}
		if n := len(e.ok(e.do(e.web, "getKeys", admin())).Response.([]any)); n != 2 {
			t.Fatalf("getKeys: %d keys", n)
		}
		e.ok(e.do(e.web, "revokeKey", admin("name", "office")))
		e.fails(e.doFrom("10.9.9.9", "office-key-1234", "getCurrencies", nil), apierr.Unauthorized, 401)
		e.fails(e.do(e.web, "getKey", admin("name", "nope")), apierr.NotExist, 200)
	})
}

func TestServerKeysAndPlainAnswers(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "corp", 22)
		e.register(admin(), "corp2", 22)
		e.register(user("corp"), "cust", 11)
		// A server key of corp's, authorising by username: acts on corp's users only.
		e.ok(e.do(e.web, "addKey", admin("username", "corp", "name", "corpsrv", "apikey", "corp-server-key", "accessLevel", "22")))
		a := e.ok(e.do("corp-server-key", "getValue", url.Values{"login": {"cust"}, "property": {"username"}}))
		if a.Response != "cust" {
			t.Fatalf("server key: %s", a.Body)
		}
		e.fails(e.do("corp-server-key", "getValue", url.Values{"login": {"corp2"}, "property": {"username"}}), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do("corp-server-key", "getValue", url.Values{"login": {"ghost"}, "property": {"username"}}), apierr.AuthFailed, 200)
		// A corporate manager creates no keys at all (TestKeyLevelRule has the whole rule).
		e.fails(e.do(e.web, "addKey", user("corp", "name", "big", "accessLevel", "0")), apierr.InsufficientAccess, 200)
		// An exclusive key (90) acts on anyone; plain answers for auth_by id/sip_extension.
		e.ok(e.do(e.web, "addKey", admin("name", "excl", "apikey", "exclusive-key-1", "accessLevel", "44")))
		e.ok(e.do(e.web, "addKey", admin("name", "plain", "apikey", "plain-key-12345", "accessLevel", "44", "auth_by", "id")))
		req := httptest.NewRequest("GET", "/billing/api/2.2/plain-key-12345/getValue?login=1&property=username", nil)
		req.RemoteAddr = "127.0.0.1:1"
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Body.String() != adminName || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
			t.Fatalf("plain: %q %q", rec.Body.String(), rec.Header().Get("Content-Type"))
		}
		req = httptest.NewRequest("GET", "/billing/api/2.2/plain-key-12345/getValue?login=1", nil)
		req.RemoteAddr = "127.0.0.1:1"
		rec = httptest.NewRecorder()
		e.h.ServeHTTP(rec, req)
		if rec.Body.String() != apierr.MissingArgument || rec.Code != http.StatusBadRequest {
			t.Fatalf("plain error: %d %q", rec.Code, rec.Body.String())
		}
		// Static authorization: a client key with a default user ignores login/password.
		e.ok(e.do(e.web, "addKey", admin("name", "static", "apikey", "static-key-1234", "default_user", "cust")))
		a = e.ok(e.do("static-key-1234", "getValue", url.Values{"property": {"username"}, "login": {"admin"}, "password": {"x"}}))
		if a.Response != "cust" {
			t.Fatalf("static: %s", a.Body)
		}
	})
}

func TestLockedUserAndOnBehalf(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "corp", 22)
		e.register(user("corp"), "cust", 11)
		e.register(admin(), "other", 11)
		a := e.ok(e.do(e.web, "getValue", user("corp", "username", "cust", "property", "username")))
		if a.Response != "cust" {
			t.Fatal(a.Body)
		}
		e.fails(e.do(e.web, "getValue", user("corp", "username", "other", "property", "username")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getValue", user("corp", "username", "ghost", "property", "username")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "getValue", user("cust", "username", "corp", "property", "username")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "updateUser", user("corp", "user", "cust", "active", "-1")))
		e.fails(e.do(e.web, "getInfo", user("cust")), apierr.UserLocked, 200)
		// A locked user may still read the anonymous methods.
		e.ok(e.do(e.web, "getCurrencies", user("cust")))
	})
}

func TestSecureOnlyOverTLS(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.ok(e.do(e.web, "addKey", admin("name", "tls", "apikey", "tls-only-key-1", "secure_only", "1")))
		srv := httptest.NewTLSServer(e.h)
		defer srv.Close()
		resp, err := srv.Client().Get(srv.URL + "/billing/api/2.2/tls-only-key-1/getCurrencies")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("over TLS: %d", resp.StatusCode)
		}
		plain := httptest.NewServer(e.h)
		defer plain.Close()
		resp, err = http.Get(plain.URL + "/billing/api/2.2/tls-only-key-1/getCurrencies")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Fatalf("plain HTTP: %d", resp.StatusCode)
		}
	})
}
