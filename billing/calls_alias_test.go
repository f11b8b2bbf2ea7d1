package billing

import (
	"strings"
	"testing"
)

// TestCallAliases: a dialled alias is replaced by what it stands for, in callPrepare and
// callFinish alike: the user's alias for the SIP account first, then the user's own, then
// a manager's global alias; a change to aliases is seen by the next call.
func TestCallAliases(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "fred", "10011", "50")
		e.ok(e.do(e.web, "addAlias", admin("alias", "*9", "destination", "441234567890", "global", "true")))
		e.ok(e.do(e.web, "addAlias", user("fred", "alias", "111", "destination", "+74951234567")))
		dest := func(dialled string) string {
			line := e.ast("callPrepare", "10011", "destination", dialled)
			if f := fields(line); len(f) > 2 && f[0] == "Allowed" {
				return f[2]
			}
			return line
		}
		if got := dest("111"); got != "74951234567" {
			t.Fatalf("own alias: %q", got)
		}
		if got := dest("*9"); got != "441234567890" {
			t.Fatalf("the admin's global alias: %q", got)
		}
		e.ok(e.do(e.web, "addAlias", user("fred", "alias", "111", "destination", "4420123456", "sip_extension", "10011")))
		if got := dest("111"); got != "4420123456" {
			t.Fatalf("the SIP account's alias first: %q", got)
		}
		fin := e.ast("callFinish", "10011", "destination", "111", "uniqueid", "a1", "length", "10", "status", "ANSWER")
		if !strings.Contains(fin, "[10011/4420123456]") {
			t.Fatalf("callFinish on the alias: %q", fin)
		}
		checkLedger(t, e)
	})
}
