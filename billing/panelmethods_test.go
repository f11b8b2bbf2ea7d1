package billing

import (
	"encoding/json"
	"strings"
	"testing"
)

// The methods the web panel needed beside the reference's: open calls, a user's calls as
// CSV, a rate deck through the method table.
func TestPanelMethods(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "alice", "10001", "10")
		callUser(t, e, s, "bob", "10002", "10")
		e.register(admin(), "corp", 22)
		if got := e.ast("callPrepare", "10001", "destination", "79161234567", "uniqueid", "a.1"); !strings.HasPrefix(got, "Allowed") {
			t.Fatal(got)
		}
		// getActiveCalls: the open reservation, for administrators only.
		calls := e.ok(e.do(e.web, "getActiveCalls", admin())).Response.([]any)
		if len(calls) != 1 || calls[0].(map[string]any)["username"] != "alice" || calls[0].(map[string]any)["destination"] != "79161234567" {
			t.Fatalf("getActiveCalls: %v", calls)
		}
		e.fails(e.do(e.web, "getActiveCalls", user("corp")), "E_INSUFFICIENT_ACCESS", 200)
		e.fails(e.do(e.web, "hangupCalls", user("corp", "username", "alice")), "E_INSUFFICIENT_ACCESS", 200)
		e.ast("callFinish", "10001", "destination", "79161234567", "uniqueid", "a.1", "length", "60", "status", "ANSWER")
		e.ast("callPrepare", "10002", "destination", "79161234567", "uniqueid", "b.1")
		e.ast("callFinish", "10002", "destination", "79161234567", "uniqueid", "b.1", "length", "30", "status", "ANSWER")
		if calls := e.ok(e.do(e.web, "getActiveCalls", admin())).Response.([]any); len(calls) != 0 {
			t.Fatalf("settled calls still open: %v", calls)
		}

		// exportCalls: alice's own calls only, without debug; the admin's view of hers has it.
		a := e.do(e.web, "exportCalls", user("alice"))
		lines := strings.Split(strings.TrimSpace(a.Body), "\n")
		if a.Status != 200 || len(lines) != 2 || !strings.HasPrefix(lines[0], "id,username,") || !strings.Contains(lines[1], ",alice,10001,") {
			t.Fatalf("exportCalls as alice: %d %q", a.Status, a.Body)
		}
		if strings.HasSuffix(lines[1], ",") == false {
			t.Fatalf("alice sees debug: %q", lines[1])
		}
		a = e.do(e.web, "exportCalls", admin("user", "alice"))
		if l := strings.Split(strings.TrimSpace(a.Body), "\n"); len(l) != 2 || strings.HasSuffix(l[1], ",") {
			t.Fatalf("exportCalls as admin: %q", a.Body)
		}
		e.fails(e.do(e.web, "exportCalls", user("alice", "user", "bob")), "E_DOES_NOT_BELONG_TO_YOU", 200)
		e.fails(e.do(e.web, "exportCalls", user("alice", "from", "yesterday")), "E_INVALID_ARGUMENT", 400)

		// importDeck: administrators, a tariff they manage, and a bad deck changes nothing.
		deck := "prefix;description;rate\n4930;Germany Berlin;0.02\n4989;Germany Munich;0.03\n"
		got := e.ok(e.do(e.web, "importDeck", admin("rates", itoa(int(s.perMinute.ID)), "route", "route1", "deck", deck)))
		if b, _ := json.Marshal(got.Response); string(b) != `{"directions":2,"new_directions":2,"rows":2}` {
			t.Fatalf("importDeck: %s", b)
		}
		rates := e.ok(e.do(e.web, "getRates", admin("id", itoa(int(s.perMinute.ID)), "search", "germany"))).Response.([]any)
		if len(rates) != 2 {
			t.Fatalf("deck not applied: %v", rates)
		}
		e.fails(e.do(e.web, "importDeck", user("corp", "rates", itoa(int(s.perMinute.ID)), "route", "route1", "deck", deck)), "E_INSUFFICIENT_ACCESS", 200)
		bad := "prefix;description;rate\n331;France;0.01\n332;France;0.05\n"
		e.fails(e.do(e.web, "importDeck", admin("rates", itoa(int(s.perMinute.ID)), "route", "route1", "deck", bad)), "E_INVALID_ARGUMENT", 400)
		if rates := e.ok(e.do(e.web, "getRates", admin("id", itoa(int(s.perMinute.ID)), "search", "france"))).Response.([]any); len(rates) != 0 {
			t.Fatalf("a bad deck was applied: %v", rates)
		}
	})
}
