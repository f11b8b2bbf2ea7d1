package billing

import (
	"context"
	"net/url"
	"testing"

	"github.com/narayana/narayanad/apierr"
)

func (e *env) entryCost(rates, direction, priority int) int64 {
	e.t.Helper()
	var c int64
	if err := e.s.DB.Q().Get(context.Background(), &c, `SELECT cost FROM rate_entries WHERE rates_id = ? AND direction_id = ? AND priority = ?`,
		rates, direction, priority); err != nil {
		e.t.Fatalf("entry %d/%d/%d: %v", rates, direction, priority, err)
	}
	return c
}

func routing(t *testing.T, dir map[string]any) []map[string]any {
	t.Helper()
	raw, _ := dir["routing"].([]any)
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i], _ = x.(map[string]any)
	}
	return out
}

func TestTariffs(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.addServer("sip1", "10.0.0.1")
		e.addDirections([3]string{"7", "1", "Russia"}, [3]string{"79", "2", "Russia Mobile"}, [3]string{"7927", "2", "Russia Mobile"})
		e.register(admin(), "reseller", 22)
		e.register(user("reseller"), "alice", 11, "sip_server", "10.0.0.1", "sip_extension", "10001")
		e.ok(e.do(e.web, "addRoute", admin("route", "r1", "type", "sip", "sip_server", "sip1", "prefix", "out1/")))
		e.ok(e.do(e.web, "addRoute", admin("route", "r2", "type", "sip", "sip_server", "sip1", "prefix", "out2/")))
		e.ok(e.do(e.web, "addRoute", user("reseller", "route", "rr", "type", "sip", "sip_server", "sip1")))

		// addRates: bad input first.
		e.fails(e.do(e.web, "addRates", admin()), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "addRates", admin("name", "x", "bill_type", "nope")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "addRates", admin("name", "x", "multiplier", "0")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addRates", admin("name", "x", "switch_price", "-1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addRates", admin("name", "x", "switch_price", "abc")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addRates", user("alice", "name", "x")), apierr.InsufficientAccess, 200)
		v0 := e.ratingVersion()
		e.ok(e.do(e.web, "addRates", admin("table", "t_base", "name", "base", "is_public", "true", "multiplier", "1.5",
			"switch_price", "0.05", "description", "the base"))) // 1
		e.ok(e.do(e.web, "addRates", admin("name", "opt", "is_option", "true", "is_public", "true"))) // 2
		e.ok(e.do(e.web, "addRates", admin("name", "private", "bill_type", "by_second")))             // 3
		e.ok(e.do(e.web, "addRates", user("reseller", "name", "resold")))                             // 4
		if e.ratingVersion() < v0+4 {
			t.Fatal("addRates did not bump the rating version")
		}
		info := e.ok(e.do(e.web, "getRatesInfo", admin("id", "1")))
		if field(info, "name") != "base" || field(info, "multiplier") != "1.5" || field(info, "switch_price") != "0.05" ||
			field(info, "table name") != "t_base" || field(info, "bill_type") != "byminute" || field(info, "is_public") != "1" ||
			field(info, "owner") != adminName || field(info, "display_switch_price") != "0.05" || field(info, "did_multiplier") != "1" {
			t.Fatalf("getRatesInfo: %s", info.Body)
		}
		e.fails(e.do(e.web, "getRatesInfo", user("reseller", "id", "3")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "getRatesInfo", user("reseller", "id", "1"))) // public
		e.fails(e.do(e.web, "getRatesInfo", admin("id", "99")), apierr.NotExist, 200)

		// updateRates: owner's managers only.
		e.fails(e.do(e.web, "updateRates", user("reseller", "id", "1", "name", "x")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateRates", admin("id", "1")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "updateRates", admin("id", "1", "did_multiplier", "-2")), apierr.InvalidArgument, 400)
		e.ok(e.do(e.web, "updateRates", admin("id", "1", "did_multiplier", "2", "description", "changed")))
		e.ok(e.do(e.web, "updateRates", user("reseller", "id", "4", "name", "resold2")))
		if f := field(e.ok(e.do(e.web, "getRatesInfo", admin("id", "1"))), "did_multiplier"); f != "2" {
			t.Fatalf("did_multiplier %s", f)
		}

		// Entries.
		e.fails(e.do(e.web, "addDirection", admin("rates", "1", "direction", "99", "cost", "0.1", "route", "1")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "addDirection", admin("rates", "1", "direction", "1", "cost", "0.1", "route", "99")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "addDirection", admin("rates", "1", "direction", "1", "cost", "-0.1", "route", "1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addDirection", admin("rates", "1", "direction", "1", "cost", "0.1", "route", "1", "priority", "0")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addDirection", admin("rates", "1", "direction", "1", "cost", "0.1")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "addDirection", user("reseller", "rates", "1", "direction", "1", "cost", "0.1", "route", "3")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "addDirection", admin("rates", "1", "direction", "1", "cost", "0.1", "route", "1")))
		e.ok(e.do(e.web, "addDirection", admin("rates", "1", "direction", "1", "cost", "0.2", "route", "2", "priority", "2")))
		e.ok(e.do(e.web, "addDirection", admin("rates", "1", "direction", "2", "cost", "0.000001", "route", "1")))
		e.fails(e.do(e.web, "addDirection", admin("rates", "1", "direction", "1", "cost", "0.1", "route", "1")), apierr.DataAbort, 200)
		// The call path sees the change at once (ratingChanged after the commit).
		snap, err := e.s.rating(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if tf := snap.Tariffs[1]; tf == nil || tf.Multiplier != 1_500_000 || len(tf.Entries(1)) != 2 || tf.Entries(1)[0].Cost != 100_000 {
			t.Fatalf("rating snapshot: %+v", snap.Tariffs[1])
		}
		e.ok(e.do(e.web, "updateRates", admin("id", "1", "multiplier", "1.5")))
		e.ok(e.do(e.web, "addRoute", admin("route", "r9", "type", "sip", "sip_server", "sip1")))
		if snap, _ := e.s.rating(context.Background()); snap.Routes[4] == nil {
			t.Fatal("a new route did not reach the rating snapshot")
		}
		// A reseller puts system routes and own routes into own tariffs.
		e.ok(e.do(e.web, "addDirection", user("reseller", "rates", "4", "direction", "1", "cost", "0.3", "route", "1")))
		e.ok(e.do(e.web, "addDirection", user("reseller", "rates", "4", "direction", "2", "cost", "0.4", "route", "3")))

		rs := objs(t, e.ok(e.do(e.web, "getRates", admin("id", "1"))))
		if len(rs) != 2 || jstr(rs[0]["id"]) != "1" || rs[0]["1"] != "Russia" || rs[1]["direction"] != "Russia Mobile" {
			t.Fatalf("getRates: %v", rs)
		}
		if rt := routing(t, rs[0]); len(rt) != 2 || jstr(rt[0]["cost"]) != "0.1" || rt[0]["routename"] != "r1" ||
			jstr(rt[1]["priority"]) != "2" || jstr(rt[1]["route"]) != "2" || jstr(rt[0]["displaycost"]) != "0.1" {
			t.Fatalf("getRates routing: %v", rt)
		}
		e.fails(e.do(e.web, "getRates", user("alice", "id", "3")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "getRates", user("alice", "id", "1")))

		// updateDirection and updateDirections.
		e.ok(e.do(e.web, "updateDirection", admin("rates", "1", "direction", "1", "cost", "0.05")))
		if c := e.entryCost(1, 1, 1); c != 50000 {
			t.Fatalf("cost %d", c)
		}
		e.fails(e.do(e.web, "updateDirection", admin("rates", "1", "direction", "1", "prior", "5", "cost", "1")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "updateDirection", admin("rates", "1", "direction", "1", "priority", "2")), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "updateDirection", admin("rates", "1", "direction", "1")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "updateDirection", user("reseller", "rates", "1", "direction", "1", "cost", "1")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "updateDirection", admin("rates", "1", "direction", "1", "prior", "2", "priority", "3", "route", "1")))
		e.entryCost(1, 1, 3)

		e.ok(e.do(e.web, "updateDirections", admin("rates", "1", "directions",
			`[{"direction":1,"cost":"0.07"},{"direction":2,"prior":2,"cost":0.5,"route":2}]`)))
		if e.entryCost(1, 1, 1) != 70000 || e.entryCost(1, 2, 2) != 500000 {
			t.Fatal("updateDirections")
		}
		// One bad element: nothing applied.
		e.fails(e.do(e.web, "updateDirections", admin("rates", "1", "directions",
			`[{"direction":1,"cost":"0.08"},{"direction":99,"cost":1,"route":1}]`)), apierr.NotExist, 200)
		e.fails(e.do(e.web, "updateDirections", admin("rates", "1", "directions", `[{"direction":1,"cost":"x"}]`)), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "updateDirections", admin("rates", "1", "directions", `{"direction":1}`)), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "updateDirections", admin("rates", "1", "directions", `[{"cost":1}]`)), apierr.MissingArgument, 400)
		if e.entryCost(1, 1, 1) != 70000 {
			t.Fatal("a failed updateDirections changed an entry")
		}

		// updateMarkup: exact, half-up per entry.
		e.fails(e.do(e.web, "updateMarkup", admin("rates", "1", "markup", "0")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "updateMarkup", user("reseller", "rates", "1", "markup", "2")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "updateMarkup", admin("rates", "1", "markup", "1.5")))
		if e.entryCost(1, 1, 1) != 105000 || e.entryCost(1, 2, 1) != 2 || e.entryCost(1, 2, 2) != 750000 {
			t.Fatalf("markup: %d %d %d", e.entryCost(1, 1, 1), e.entryCost(1, 2, 1), e.entryCost(1, 2, 2))
		}

		// Costs too large for one SQL product take the exact path, entry by entry.
		e.ok(e.do(e.web, "addDirection", admin("rates", "3", "direction", "1", "cost", "9000000", "route", "1")))
		e.ok(e.do(e.web, "addDirection", admin("rates", "3", "direction", "2", "cost", "0.000003", "route", "1")))
		e.ok(e.do(e.web, "updateMarkup", admin("rates", "3", "markup", "2.5")))
		if e.entryCost(3, 1, 1) != 22_500_000_000_000 || e.entryCost(3, 2, 1) != 8 {
			t.Fatalf("big markup: %d %d", e.entryCost(3, 1, 1), e.entryCost(3, 2, 1))
		}
		e.ok(e.do(e.web, "deleteDirection", admin("rates", "3", "direction", "1")))
		e.ok(e.do(e.web, "deleteDirection", admin("rates", "3", "direction", "2")))

		// deleteDirection.
		e.fails(e.do(e.web, "deleteDirection", admin("rates", "1", "direction", "2", "prior", "7")), apierr.NotExist, 200)
		e.ok(e.do(e.web, "deleteDirection", admin("rates", "1", "direction", "2", "prior", "2")))

		// switchRates: public tariffs for users without allowed_rates.
		e.fails(e.do(e.web, "switchRates", user("alice", "id", "3")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "switchRates", user("alice", "id", "99")), apierr.NotExist, 200)
		e.ok(e.do(e.web, "switchRates", user("alice", "id", "1")))
		e.fails(e.do(e.web, "switchRates", user("alice", "id", "1")), apierr.AlreadyOnThisTariff, 200)
		e.ok(e.do(e.web, "switchRates", user("alice", "id", "1", "sip_extension", "10001")))
		e.fails(e.do(e.web, "switchRates", user("alice", "id", "1", "sip_extension", "10001")), apierr.AlreadyOnThisTariff, 200)
		e.fails(e.do(e.web, "switchRates", user("reseller", "id", "1", "sip_extension", "99999")), apierr.NotExist, 200)
		e.register(admin(), "bob", 11, "sip_server", "10.0.0.1", "sip_extension", "10002")
		e.fails(e.do(e.web, "switchRates", user("alice", "id", "1", "sip_extension", "10002")), apierr.DoesNotBelongToYou, 200)

		// getCurrentRates: the entries times the multiplier.
		cr := objs(t, e.ok(e.do(e.web, "getCurrentRates", user("alice"))))
		if len(cr) != 2 || jstr(routing(t, cr[0])[0]["cost"]) != "0.1575" || jstr(routing(t, cr[0])[0]["displaycost"]) != "0.16" {
			t.Fatalf("getCurrentRates: %v", cr)
		}
		if rub := objs(t, e.ok(e.do(e.web, "getCurrentRates", user("alice", "currency", "RUB")))); jstr(routing(t, rub[0])[0]["displaycost"]) != "15.44" {
			t.Fatalf("getCurrentRates RUB: %v", rub)
		}
		e.fails(e.do(e.web, "getCurrentRates", user("alice", "currency", "XXX")), apierr.InvalidArgument, 400)
		// Anonymous: the default public tariff.
		if anon := objs(t, e.ok(e.do(e.web, "getCurrentRates", nil))); len(anon) != 2 {
			t.Fatalf("anonymous getCurrentRates: %v", anon)
		}

		// Options override the base tariff per direction.
		e.ok(e.do(e.web, "addDirection", admin("rates", "2", "direction", "1", "cost", "0.01", "route", "2")))
		e.fails(e.do(e.web, "switchRates", user("alice", "id", "2")), apierr.MissingArgument, 400)
		e.ok(e.do(e.web, "switchRates", user("alice", "id", "2", "state", "true")))
		e.fails(e.do(e.web, "switchRates", user("alice", "id", "2", "state", "true")), apierr.AlreadyOnThisTariff, 200)
		cr = objs(t, e.ok(e.do(e.web, "getCurrentRates", user("alice"))))
		if rt := routing(t, cr[0]); len(rt) != 1 || jstr(rt[0]["cost"]) != "0.01" || rt[0]["routename"] != "r2" {
			t.Fatalf("option: %v", cr)
		}
		ext := e.ok(e.do(e.web, "getExtensionInfo", user("alice", "sip_extension", "10001")))
		if field(ext, "sip_rates_options") != "2" || field(ext, "sip_rates_id") != "1" || field(ext, "rates_name") != "base" {
			t.Fatalf("extension tariff: %s", ext.Body)
		}

		// allowed_rates opens a private tariff to a user.
		e.ok(e.do(e.web, "updateUser", admin("user", "alice", "allowed_rates", "3")))
		e.ok(e.do(e.web, "switchRates", user("alice", "id", "3", "sip_extension", "10001")))
		e.fails(e.do(e.web, "switchRates", user("alice", "id", "2", "state", "false")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "updateUser", admin("user", "alice", "allowed_rates", "")))
		e.ok(e.do(e.web, "switchRates", user("alice", "id", "2", "state", "false")))

		// getRatesList.
		names := func(a answer) []string {
			var out []string
			for _, r := range objs(t, a) {
				out = append(out, r["name"].(string))
			}
			return out
		}
		if got := names(e.ok(e.do(e.web, "getRatesList", user("alice")))); len(got) != 3 { // base, opt (public), private (on it)
			t.Fatalf("alice's tariffs: %v", got)
		}
		if got := names(e.ok(e.do(e.web, "getRatesList", user("alice", "is_option", "true")))); len(got) != 1 || got[0] != "opt" {
			t.Fatalf("options: %v", got)
		}
		if got := names(e.ok(e.do(e.web, "getRatesList", user("alice", "is_option", "false", "is_public", "true")))); len(got) != 1 || got[0] != "base" {
			t.Fatalf("public tariffs: %v", got)
		}
		if got := names(e.ok(e.do(e.web, "getRatesList", admin()))); len(got) != 3 {
			t.Fatalf("admin's own: %v", got)
		}
		if got := names(e.ok(e.do(e.web, "getRatesList", admin("all", "true")))); len(got) != 4 {
			t.Fatalf("admin all: %v", got)
		}
		e.fails(e.do(e.web, "getRatesList", admin("is_option", "perhaps")), apierr.InvalidArgument, 400)

		// deleteRates refuses a tariff in use.
		e.fails(e.do(e.web, "deleteRates", admin("id", "3")), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "deleteRates", user("reseller", "id", "1")), apierr.DoesNotBelongToYou, 200)

		// copyDirections: the caller's current tariff into one they manage.
		e.fails(e.do(e.web, "copyDirections", user("reseller", "rates", "4")), apierr.NotExist, 200)
		e.ok(e.do(e.web, "switchRates", user("reseller", "id", "1")))
		e.fails(e.do(e.web, "copyDirections", user("reseller", "rates", "3")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "copyDirections", user("reseller", "rates", "4")))
		if e.entryCost(4, 1, 1) != 105000 || e.entryCost(4, 1, 3) != 300000 || e.entryCost(4, 2, 1) != 2 {
			t.Fatal("copyDirections")
		}
		e.ok(e.do(e.web, "deleteRates", user("reseller", "id", "4")))
		var n int
		e.s.DB.Q().Get(context.Background(), &n, `SELECT count(*) FROM rate_entries WHERE rates_id = 4`)
		if n != 0 {
			t.Fatal("deleteRates left entries")
		}
		e.fails(e.do(e.web, "getRatesInfo", admin("id", "4")), apierr.NotExist, 200)
	})
}

func TestBillTypesAndDirections(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "reseller", 22)
		bts := objs(t, e.ok(e.do(e.web, "getBillTypes", user("reseller"))))
		if len(bts) != 2 || bts[0]["type"] != "by_second" || jstr(bts[1]["step"]) != "60" {
			t.Fatalf("getBillTypes: %v", bts)
		}
		e.fails(e.do(e.web, "getBillType", user("reseller", "bill_type", "by_second")), apierr.InsufficientAccess, 200)
		bt := e.ok(e.do(e.web, "getBillType", admin("bill_type", "byminute")))
		if field(bt, "type") != "byminute" || field(bt, "step") != "60" || field(bt, "free_threshold") != "0" {
			t.Fatalf("getBillType: %s", bt.Body)
		}
		e.fails(e.do(e.web, "getBillType", admin("bill_type", "nope")), apierr.NotExist, 200)

		e.fails(e.do(e.web, "addBillType", admin("bill_type", "custom")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "addBillType", admin("bill_type", "custom", "step", "0")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addBillType", admin("bill_type", "custom", "step", "10", "free_threshold", "-1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addBillType", admin("bill_type", "bad name", "step", "10")), apierr.InvalidArgument, 400)
		v := e.ratingVersion()
		e.ok(e.do(e.web, "addBillType", admin("bill_type", "custom", "free_threshold", "36", "step", "10")))
		if e.ratingVersion() <= v {
			t.Fatal("addBillType did not bump the rating version")
		}
		e.fails(e.do(e.web, "addBillType", admin("bill_type", "custom", "step", "10")), apierr.DataAbort, 200)
		e.ok(e.do(e.web, "updateBillType", admin("bill_type", "custom", "free_threshold", "0")))
		if bt := e.ok(e.do(e.web, "getBillType", admin("bill_type", "custom"))); field(bt, "free_threshold") != "0" || field(bt, "step") != "10" {
			t.Fatalf("after updateBillType: %s", bt.Body)
		}
		e.fails(e.do(e.web, "updateBillType", admin("bill_type", "byminute", "step", "30")), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "updateBillType", admin("bill_type", "nope", "step", "30")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "updateBillType", admin("bill_type", "custom")), apierr.MissingArgument, 400)

		e.ok(e.do(e.web, "addRates", admin("name", "t", "bill_type", "custom")))
		e.fails(e.do(e.web, "deleteBillType", admin("bill_type", "custom")), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "deleteBillType", admin("bill_type", "by_second")), apierr.DataAbort, 200)
		e.ok(e.do(e.web, "updateRates", admin("id", "1", "bill_type", "by_second")))
		e.ok(e.do(e.web, "deleteBillType", admin("bill_type", "custom")))
		e.fails(e.do(e.web, "deleteBillType", admin("bill_type", "custom")), apierr.NotExist, 200)

		// getDirections (level 0).
		if ds := objs(t, e.ok(e.do(e.web, "getDirections", nil))); len(ds) != 0 {
			t.Fatalf("no directions: %v", ds)
		}
		e.addDirections([3]string{"7", "1", "Russia"}, [3]string{"79", "2", "Russia Mobile"}, [3]string{"7927", "2", "Russia Mobile"})
		ds := objs(t, e.ok(e.do(e.web, "getDirections", nil)))
		if len(ds) != 2 || ds[1]["code"] != "79" || ds[1]["direction"] != "Russia Mobile" || jstr(ds[1]["max_len"]) != "32" {
			t.Fatalf("getDirections: %v", ds)
		}
		if ds := objs(t, e.ok(e.do(e.web, "getDirections", url.Values{"distinct": {"false"}}))); len(ds) != 3 {
			t.Fatalf("getDirections distinct=false: %v", ds)
		}
	})
}
