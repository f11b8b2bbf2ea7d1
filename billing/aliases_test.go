package billing

import (
	"fmt"
	"testing"

	"github.com/narayana/narayanad/apierr"
)

// aliasIDs lists the ids of a getAliases answer by alias name.
func aliasIDs(t *testing.T, a answer) map[string]string {
	t.Helper()
	out := map[string]string{}
	list, _ := a.Response.([]any)
	for _, x := range list {
		m := x.(map[string]any)
		out[fmt.Sprint(m["alias"])+"@"+fmt.Sprint(m["owner"])] = fmt.Sprint(m["id"])
	}
	return out
}

func TestAliases(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.addServer("sip1", "10.0.0.1")
		e.register(admin(), "corp", 22, "sip_server", "10.0.0.1", "sip_extension", "20000")
		e.register(user("corp"), "cust", 11, "sip_server", "10.0.0.1", "sip_extension", "10001")
		e.register(admin(), "other", 11, "sip_server", "10.0.0.1", "sip_extension", "10002")

		e.ok(e.do(e.web, "addAlias", user("cust", "alias", "111", "destination", "79010000001")))
		e.ok(e.do(e.web, "addAlias", user("cust", "alias", "112", "destination", "79010000002", "sip_extension", "10001")))
		// The same name again for the same SIP account scope: refused.
		e.fails(e.do(e.web, "addAlias", user("cust", "alias", "111", "destination", "1")), apierr.DataAbort, 200)
		// A manager adds an alias on a customer's SIP account: the customer owns it.
		e.ok(e.do(e.web, "addAlias", user("corp", "alias", "113", "destination", "5", "sip_extension", "10001")))
		// A global alias of the manager reaches the customer through getAliases(all).
		e.ok(e.do(e.web, "addAlias", user("corp", "alias", "0", "destination", "88001234567", "global", "true")))
		// Bad input and strangers' SIP accounts.
		e.fails(e.do(e.web, "addAlias", user("cust", "alias", "1 1", "destination", "5")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addAlias", user("cust", "alias", "9", "destination", "5\r\nX")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "addAlias", user("cust", "alias", "9")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "addAlias", user("cust", "alias", "9", "destination", "5", "sip_extension", "10002")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "addAlias", user("cust", "alias", "9", "destination", "5", "global", "maybe")), apierr.InvalidArgument, 400)

		own := aliasIDs(t, e.ok(e.do(e.web, "getAliases", user("cust"))))
		if len(own) != 3 || own["111@cust"] == "" || own["113@cust"] == "" {
			t.Fatalf("cust's own aliases: %v", own)
		}
		all := aliasIDs(t, e.ok(e.do(e.web, "getAliases", user("cust", "all", "true"))))
		if len(all) != 4 || all["0@corp"] == "" {
			t.Fatalf("cust's aliases with all: %v", all)
		}
		corpAll := aliasIDs(t, e.ok(e.do(e.web, "getAliases", user("corp", "all", "1"))))
		if len(corpAll) != 4 {
			t.Fatalf("corp's aliases with all: %v", corpAll)
		}
		if n := len(aliasIDs(t, e.ok(e.do(e.web, "getAliases", user("other", "all", "1"))))); n != 0 {
			t.Fatalf("other sees %d aliases", n)
		}

		id := own["111@cust"]
		a := e.ok(e.do(e.web, "getAlias", user("cust", "id", id)))
		if field(a, "destination") != "79010000001" || field(a, "owner") != "cust" || field(a, "global") != "0" {
			t.Fatalf("getAlias: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "getAlias", user("corp", "id", id))); field(a, "alias") != "111" {
			t.Fatalf("getAlias by the manager: %s", a.Body)
		}
		// The global alias is readable by the customer but not theirs to change.
		e.ok(e.do(e.web, "getAlias", user("cust", "id", all["0@corp"])))
		e.fails(e.do(e.web, "updateAlias", user("cust", "id", all["0@corp"], "destination", "1")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "deleteAlias", user("cust", "id", all["0@corp"])), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getAlias", user("other", "id", id)), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getAlias", user("other", "id", "99999")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "getAlias", user("other", "id", "x")), apierr.InvalidArgument, 400)

		// updateAlias by id, and by name as in the reference's example.
		e.ok(e.do(e.web, "updateAlias", user("cust", "id", id, "destination", "79010000009")))
		e.ok(e.do(e.web, "updateAlias", user("cust", "alias", "112", "destination", "700")))
		e.ok(e.do(e.web, "updateAlias", user("corp", "id", id, "sip_extension", "10001")))
		if a := e.ok(e.do(e.web, "getAlias", user("cust", "id", id))); field(a, "destination") != "79010000009" || field(a, "sip_extension") != "10001" {
			t.Fatalf("after updateAlias: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "getAlias", user("cust", "id", own["112@cust"]))); field(a, "destination") != "700" {
			t.Fatalf("after updateAlias by name: %s", a.Body)
		}
		// Renaming onto another alias of the same scope is refused; strangers are refused.
		e.fails(e.do(e.web, "updateAlias", user("cust", "id", id, "alias", "112")), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "updateAlias", user("other", "id", id, "destination", "1")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateAlias", user("cust", "id", id, "sip_extension", "10002")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateAlias", user("cust", "destination", "1")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "updateAlias", user("cust", "alias", "404", "destination", "1")), apierr.NotExist, 200)

		e.fails(e.do(e.web, "deleteAlias", user("other", "id", id)), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "deleteAlias", user("corp", "id", id)))
		e.fails(e.do(e.web, "deleteAlias", user("cust", "id", id)), apierr.NotExist, 200)
		if n := len(aliasIDs(t, e.ok(e.do(e.web, "getAliases", user("cust"))))); n != 2 {
			t.Fatalf("%d aliases left", n)
		}
	})
}
