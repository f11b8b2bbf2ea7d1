package billing

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/narayana/narayanad/apierr"
)

func TestCallCompanions(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "alice", "10001", "10")
		callUser(t, e, s, "bob", "10002", "1")

		// resolveDirection(0): no user needed.
		for _, c := range []struct{ sel, want string }{{"", "Russia Mobile"}, {"direction", "Russia Mobile"}, {"id", "2"}, {"code", "79"}} {
			a := e.ok(e.do(e.web, "resolveDirection", kv("number", "+7 927 187-12-34", "select", c.sel)))
			if got := strings.Trim(a.Body[strings.Index(a.Body, `"response":`)+11:strings.LastIndex(a.Body, "}")], `"`); got != c.want {
				t.Fatalf("select %q: %s", c.sel, a.Body)
			}
		}
		e.fails(e.do(e.web, "resolveDirection", kv("number", "5550000")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "resolveDirection", kv("number", "79271871234", "select", "name")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "resolveDirection", nil), apierr.MissingArgument, 400)

		// resolveCallerid(0): the user's extension's caller ID; anonymous is E_AUTH_FAILED.
		execSQL(t, e.s.DB, `UPDATE extensions SET callerid = '4930111' WHERE extension = '10001'`)
		if a := e.ok(e.do(e.web, "resolveCallerid", user("alice"))); a.Response != "4930111" {
			t.Fatalf("resolveCallerid: %s", a.Body)
		}
		e.fails(e.do(e.web, "resolveCallerid", nil), apierr.AuthFailed, 200)
		if a := e.ast("resolveCallerid", "10001"); a != "4930111" {
			t.Fatalf("resolveCallerid plain: %q", a)
		}

		// getTextBalance(50).
		for _, c := range []struct {
			args []string
			want string
		}{
			{nil, "digits/10&euros&digits/0&cents"},
			{[]string{"balance", "1234.51"}, "digits/1&digits/thousand&digits/2&digits/hundred&digits/30&digits/4&euros&digits/50&digits/1&cents"},
			{[]string{"balance", "1.01", "currency", "usd"}, "digits/1&dollar&digits/1&cent"},
			{[]string{"balance", "-0.5"}, "digits/minus&digits/0&euros&digits/50&cents"},
		} {
			if a := e.ast("getTextBalance", "10001", c.args...); a != c.want {
				t.Fatalf("getTextBalance %v: %q want %q", c.args, a, c.want)
			}
		}
		execSQL(t, e.s.DB, `UPDATE extensions SET language = 'ru' WHERE extension = '10001'`)
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"balance", "21.02", "currency", "RUB"}, "digits/20&digits/1&rubl&digits/2f&kopeyki"},
			{[]string{"balance", "2512", "currency", "RUB"}, "digits/2f&digits/thousands-i&digits/500&digits/12&rubley&digits/0&kopeek"},
			{[]string{"balance", "11.11", "currency", "EUR"}, "digits/11&euro&digits/11&centov"},
		} {
			if a := e.ast("getTextBalance", "10001", c.args...); a != c.want {
				t.Fatalf("getTextBalance ru %v: %q want %q", c.args, a, c.want)
			}
		}
		if a := e.ast("getTextBalance", "10001", "currency", "XXX"); a != apierr.NotExist {
			t.Fatalf("unknown currency: %q", a)
		}

		// authorizeCall(50): extension + PIN, or a trusted caller ID.
		execSQL(t, e.s.DB, `UPDATE extensions SET disa_pin = '6666', disa_trusted_cli = '79010000001, +79010000002' WHERE extension = '10001'`)
		for _, c := range []struct{ cid, auth, want string }{
			{"", "100016666", "10001"},
			{"", "100016667", "Declined E_AUTH_FAILED"},
			{"", "10001", "Declined E_AUTH_FAILED"},
			{"79010000002", "", "10001"},
			{"7901000000", "", "Declined E_AUTH_FAILED"},
			{"", "", "Declined E_AUTH_FAILED"},
		} {
			_, a := raw(e.h, astKey, "authorizeCall", kv("callerid", c.cid, "auth", c.auth))
			if a != c.want {
				t.Fatalf("authorizeCall %q %q: %q", c.cid, c.auth, a)
			}
		}
		e.updateUser("alice", "active", "-1")
		if _, a := raw(e.h, astKey, "authorizeCall", kv("auth", "100016666")); a != "Declined E_USER_LOCKED" {
			t.Fatalf("locked: %q", a)
		}
		e.updateUser("alice", "active", "1")

		// authorizeRealm(50).
		good := md5hex(astKey + "10.0.0.1" + "pbx1")
		for _, c := range []struct{ src, auth, want string }{
			{"10.0.0.1", good, "true"}, {"10.0.0.1", strings.ToUpper(good), "true"},
			{"10.0.0.1", md5hex("x"), "false"}, {"10.0.0.2", good, "false"},
		} {
			if _, a := raw(e.h, astKey, "authorizeRealm", kv("source", c.src, "auth", c.auth)); a != c.want {
				t.Fatalf("authorizeRealm %s: %q", c.src, a)
			}
		}

		// getLogs(1) and getStats(1) after a few calls.
		e.ast("callPrepare", "10001", "destination", "79010000001", "uniqueid", "l1")
		e.ast("callFinish", "10001", "destination", "79010000001", "uniqueid", "l1", "length", "90", "status", "ANSWER")
		e.ast("callFinish", "10001", "destination", "10002", "length", "0", "status", "NOANSWER")
		e.ast("callFinish", "10001", "destination", "4420777", "length", "30", "status", "ANSWER")
		a := e.ok(e.do(e.web, "getLogs", user("alice", "resolve_info", "true")))
		logs, _ := a.Response.([]any)
		if len(logs) != 3 {
			t.Fatalf("getLogs: %s", a.Body)
		}
		first := logs[2].(map[string]any)
		if first["direction"] != "RussiaMobile" || first["route"] != "route1" || first["time"].(json.Number).String() != "90" ||
			first["cost"].(json.Number).String() != "0.35" || first["displaycurrency"] != "EUR" || first["sip_extension"] != "10001" ||
			first["debug"] != "" {
			t.Fatalf("getLogs record: %v", first)
		}
		if internal := logs[1].(map[string]any); internal["info"] != "bob" || internal["direction"] != "Internal" {
			t.Fatalf("resolve_info: %v", internal)
		}
		if a := e.ok(e.do(e.web, "getLogs", user("alice", "only_completed", "yes", "limit", "1"))); len(a.Response.([]any)) != 1 {
			t.Fatalf("limit: %s", a.Body)
		}
		e.fails(e.do(e.web, "getLogs", user("bob", "user", "alice")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getLogs", user("alice", "limit", "0")), apierr.InvalidArgument, 400)
		a = e.ok(e.do(e.web, "getLogs", admin("user", "alice")))
		if rec := a.Response.([]any)[2].(map[string]any); !strings.Contains(rec["debug"].(string), "tariff=") {
			t.Fatalf("admin debug: %v", rec)
		}

		a = e.ok(e.do(e.web, "getStats", user("alice", "financials", "true", "statistic", "true")))
		fin := a.Response.(map[string]any)["financials"].(map[string]any)
		if fin["call_cost"].(json.Number).String() != "0.4" || fin["total_cost"].(json.Number).String() != "0.4" { // London: free but switch 0.05
			t.Fatalf("financials: %s", a.Body)
		}
		st := a.Response.(map[string]any)["stat"].(map[string]any)
		if st["total_calls"].(json.Number).String() != "3" || st["success_calls"].(json.Number).String() != "2" ||
			st["calls_duration"].(json.Number).String() != "120" || st["success_calls_percent"].(json.Number).String() != "66.67" {
			t.Fatalf("stat: %s", a.Body)
		}
		fc := a.Response.(map[string]any)["forecast"].(map[string]any)
		// 0.40 spent today: 0.40 a day; 9.60 lasts 24 days; 30 days need 2.40 more.
		if fc["forecast"].(json.Number).String() != "24" || fc["recommend"].(json.Number).String() != "2.4" {
			t.Fatalf("forecast: %s", a.Body)
		}
		e.fails(e.do(e.web, "getStats", user("alice", "date1", "yesterday")), apierr.InvalidArgument, 400)
		a = e.ok(e.do(e.web, "getStats", user("alice", "financials", "1", "date1", "2000-01-01", "date2", "2000-01-31")))
		if a.Response.(map[string]any)["financials"].(map[string]any)["total_cost"].(json.Number).String() != "0" {
			t.Fatalf("empty period: %s", a.Body)
		}

		// deleteLogs(1): the caller's own, or a managed user's.
		e.fails(e.do(e.web, "deleteLogs", user("bob", "user", "alice")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "deleteLogs", user("alice")))
		if a := e.ok(e.do(e.web, "getLogs", user("alice"))); len(a.Response.([]any)) != 0 {
			t.Fatalf("after deleteLogs: %s", a.Body)
		}
		bal, led, _ := balanceOf(t, e.s.DB, "alice")
		if bal != led {
			t.Fatalf("balance %s ledger %s", bal, led)
		}
	})
}
