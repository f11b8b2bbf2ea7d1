package billing

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/narayana/narayanad/apierr"
)

// addServer registers a SIP server as `narayanad sip-server add` does.
func (e *env) addServer(name, address string) {
	e.t.Helper()
	if _, err := AddSIPServer(context.Background(), e.s.DB.Q(), SIPServerSpec{Name: name, Address: address}); err != nil {
		e.t.Fatal(err)
	}
}

// addDirections inserts rows of the directions table: code, id, name.
func (e *env) addDirections(rows ...[3]string) {
	e.t.Helper()
	for _, r := range rows {
		if _, err := e.s.DB.Q().Exec(context.Background(), `INSERT INTO directions (code, id, name) VALUES (?, ?, ?)`, r[0], r[1], r[2]); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) ratingVersion() int64 {
	e.t.Helper()
	var v int64
	if err := e.s.DB.Q().Get(context.Background(), &v, `SELECT version FROM rating_version WHERE id = 1`); err != nil {
		e.t.Fatal(err)
	}
	return v
}

// list is a response as a list of objects.
func objs(t *testing.T, a answer) []map[string]any {
	t.Helper()
	raw, _ := a.Response.([]any)
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i], _ = x.(map[string]any)
	}
	if a.Response != nil && raw == nil {
		t.Fatalf("not a list: %s", a.Body)
	}
	return out
}

func jstr(v any) string {
	switch x := v.(type) {
	case json.Number:
		return x.String()
	case string:
		return x
	case nil:
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestRoutes(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.addServer("sip1", "10.0.0.1")
		e.register(admin(), "reseller", 22)
		e.register(user("reseller"), "alice", 11)
		e.register(admin(), "other", 22)

		// Bad input changes nothing.
		e.fails(e.do(e.web, "addRoute", admin("route", "r", "type", "sip")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "addRoute", admin("route", "r", "type", "sip", "sip_server", "10.9.9.9")), apierr.SIPServerNotExist, 200)
		e.fails(e.do(e.web, "addRoute", admin("route", "r", "type", "fax", "sip_server", "10.0.0.1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addRoute", admin("route", "r", "type", "sip", "sip_server", "10.0.0.1", "callerid", "5")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addRoute", admin("route", "r\nx", "type", "sip", "sip_server", "10.0.0.1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addRoute", user("alice", "route", "r", "type", "sip", "sip_server", "10.0.0.1")), apierr.InsufficientAccess, 200)
		if n := len(objs(t, e.ok(e.do(e.web, "getRoutes", admin())))); n != 0 {
			t.Fatalf("routes after bad input: %d", n)
		}

		v0 := e.ratingVersion()
		e.ok(e.do(e.web, "addRoute", admin("route", "sysroute", "type", "sip", "sip_server", "sip1", "prefix", "outline1/",
			"user", "trunk", "pass", "s3cret", "callerid", "99")))
		if e.ratingVersion() <= v0 {
			t.Fatal("addRoute did not bump the rating version")
		}
		e.ok(e.do(e.web, "addRoute", user("reseller", "route", "mine", "type", "sms", "prefix", "smshandler", "pass", "rpass")))
		e.ok(e.do(e.web, "addRoute", user("other", "route", "theirs", "type", "sip", "sip_server", "10.0.0.1")))

		// The reseller sees the system route (no credentials) and their own (with them).
		rs := objs(t, e.ok(e.do(e.web, "getRoutes", user("reseller"))))
		if len(rs) != 2 || rs[0]["route"] != "sysroute" || rs[0]["pass"] != nil || rs[1]["route"] != "mine" || rs[1]["pass"] != "rpass" {
			t.Fatalf("reseller routes: %v", rs)
		}
		if jstr(rs[0]["cli"]) != "99" || rs[0]["prefix"] != "outline1/" || rs[0]["owner"] != adminName || rs[0]["type"] != "sip" {
			t.Fatalf("route fields: %v", rs[0])
		}
		if rs := objs(t, e.ok(e.do(e.web, "getRoutes", user("reseller", "type", "sms")))); len(rs) != 1 || rs[0]["route"] != "mine" {
			t.Fatalf("sms routes: %v", rs)
		}
		if rs := objs(t, e.ok(e.do(e.web, "getRoutes", user("reseller", "type", "default")))); len(rs) != 1 {
			t.Fatalf("default routes: %v", rs)
		}
		e.fails(e.do(e.web, "getRoutes", user("reseller", "type", "fax")), apierr.InvalidArgument, 400)
		// The admin: own routes without all, everyone's with all; credentials everywhere.
		if rs := objs(t, e.ok(e.do(e.web, "getRoutes", admin()))); len(rs) != 1 || rs[0]["pass"] != "s3cret" {
			t.Fatalf("admin routes: %v", rs)
		}
		if rs := objs(t, e.ok(e.do(e.web, "getRoutes", admin("all", "true")))); len(rs) != 3 {
			t.Fatalf("admin all routes: %v", rs)
		}

		// getRouteInfo: system routes for all, others' for their managers only.
		ri := e.ok(e.do(e.web, "getRouteInfo", user("reseller", "id", "1")))
		if field(ri, "route") != "sysroute" || field(ri, "pass") != "" {
			t.Fatalf("getRouteInfo: %s", ri.Body)
		}
		e.fails(e.do(e.web, "getRouteInfo", user("reseller", "id", "3")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getRouteInfo", user("reseller", "id", "99")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "getRouteInfo", user("reseller")), apierr.MissingArgument, 400)

		// updateRoute and updateRouteState: only the route's managers.
		e.fails(e.do(e.web, "updateRoute", user("reseller", "id", "1", "route", "x")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateRoute", user("reseller", "id", "3", "route", "x")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateRoute", user("reseller", "id", "2")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "updateRoute", user("reseller", "id", "2", "sip_server", "nope")), apierr.SIPServerNotExist, 200)
		e.ok(e.do(e.web, "updateRoute", user("reseller", "id", "2", "route", "renamed", "host", "gw.example", "callerid", "1")))
		ri = e.ok(e.do(e.web, "getRouteInfo", user("reseller", "id", "2")))
		if field(ri, "route") != "renamed" || field(ri, "host") != "gw.example" || field(ri, "cli") != "1" {
			t.Fatalf("after updateRoute: %s", ri.Body)
		}
		v1 := e.ratingVersion()
		e.ok(e.do(e.web, "updateRouteState", admin("id", "1", "state", "false")))
		if field(e.ok(e.do(e.web, "getRouteInfo", admin("id", "1"))), "enabled") != "0" || e.ratingVersion() <= v1 {
			t.Fatal("updateRouteState")
		}
		e.fails(e.do(e.web, "updateRouteState", user("reseller", "id", "1", "state", "true")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateRouteState", admin("id", "1", "state", "maybe")), apierr.InvalidArgument, 400)

		// deleteRoute refuses while a tariff entry uses the route.
		e.addDirections([3]string{"7", "1", "Russia"})
		e.ok(e.do(e.web, "addRates", user("reseller", "name", "t")))
		e.ok(e.do(e.web, "addDirection", user("reseller", "rates", "1", "direction", "1", "cost", "0.1", "route", "2")))
		e.fails(e.do(e.web, "deleteRoute", user("reseller", "id", "2")), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "deleteRoute", user("reseller", "id", "1")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "deleteDirection", user("reseller", "rates", "1", "direction", "1")))
		e.ok(e.do(e.web, "deleteRoute", user("reseller", "id", "2")))
		e.fails(e.do(e.web, "getRouteInfo", user("reseller", "id", "2")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "deleteRoute", user("reseller", "id", "2")), apierr.NotExist, 200)
	})
}
