package billing

import (
	"testing"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// TestRouteBalanceHandler: getRoutes?update=true asks a route's Lua route_balance handler
// for the carrier's balance and stores it; a failing handler keeps the stored one.
func TestRouteBalanceHandler(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e, _ := scriptEnv(t, d, map[string]string{"balance.lua": `
narayana.handler("route_balance", "carrier", function(q)
  if q.username ~= "acme" then error("bad login") end
  return "12.50"
end)
narayana.handler("route_balance", "broken", function(q) error("site down") end)
`})
		e.addServer("pbx1", "10.0.0.1")
		e.ok(e.do(e.web, "addRoute", admin("route", "good", "type", "sip", "sip_server", "10.0.0.1", "prefix", "out1/",
			"balance_handler", "carrier", "balance_username", "acme")))
		e.ok(e.do(e.web, "addRoute", admin("route", "bad", "type", "sip", "sip_server", "10.0.0.1", "prefix", "out2/",
			"balance_handler", "broken")))
		balances := func(update string) map[string]string {
			out := map[string]string{}
			for _, v := range e.ok(e.do(e.web, "getRoutes", admin("update", update))).Response.([]any) {
				m := v.(map[string]any)
				out[m["route"].(string)] = field(answer{Response: m}, "balance")
			}
			return out
		}
		if b := balances("false"); b["good"] != "0" {
			t.Fatalf("before update: %v", b)
		}
		if b := balances("true"); b["good"] != "12.5" || b["bad"] != "0" {
			t.Fatalf("after update: %v", b)
		}
		if b := balances("false"); b["good"] != "12.5" {
			t.Fatalf("stored: %v", b)
		}
	})
}
