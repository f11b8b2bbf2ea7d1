package billing

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// TestCallHooksThroughRouter: the scripts' callPrepare hook rewrites the number, chooses
// the route or declines, and callFinish rates the call the same way.
func TestCallHooksThroughRouter(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e, dir := scriptEnv(t, d, map[string]string{"hooks.lua": `-- replaced below`})
		s := seedCalls(t, e)
		callUser(t, e, s, "alice", "20001", "10")
		hooks := fmt.Sprintf(`
narayana.hook("callPrepare", function(call)
  if call.destination == "112" then return { destination = "74951234567" } end
  if call.destination == "900" then return { decline = "E_UNROUTABLE" } end
  if string.sub(call.destination, 1, 2) == "79" then return { route = %d } end
end)
narayana.method{ name = "added", handler = function() return "new" end }
`, s.route2)
		if err := os.WriteFile(filepath.Join(dir, "hooks.lua"), []byte(hooks), 0o644); err != nil {
			t.Fatal(err)
		}
		// A method added by a reload is callable at once (polled every second).
		waitOK(t, func() bool { return e.do(e.web, "added", nil).Response == "new" })

		line := e.ast("callPrepare", "20001", "destination", "112", "uniqueid", "u1")
		if f := fields(line); f[0] != "Allowed" || f[2] != "74951234567" || f[4] != "Russia" {
			t.Fatalf("rewritten call: %q", line)
		}
		fin := e.ast("callFinish", "20001", "destination", "112", "uniqueid", "u1", "length", "60", "status", "ANSWER")
		// Russia 0.10/min by the second, 60 s, plus switch price 0.05.
		if !strings.Contains(fin, "[20001/74951234567]") || !strings.Contains(fin, " 60 0.15 EUR ") {
			t.Fatalf("finish of the rewritten call: %q", fin)
		}
		if line := e.ast("callPrepare", "20001", "destination", "900"); line != "Declined "+apierr.Unroutable {
			t.Fatalf("declined by the hook: %q", line)
		}
		// The hook picks route two (priority 2, 0.30/min) for a mobile number at prior 1.
		line = e.ast("callPrepare", "20001", "destination", "79001234567", "uniqueid", "u2")
		if f := fields(line); f[0] != "Allowed" || f[6] != "routetwo" {
			t.Fatalf("route chosen by the hook: %q", line)
		}
		fin = e.ast("callFinish", "20001", "destination", "79001234567", "uniqueid", "u2", "length", "60", "status", "ANSWER")
		if !strings.Contains(fin, "via [routetwo] 60 0.35 EUR") {
			t.Fatalf("finish on the hook's route: %q", fin)
		}
		checkLedger(t, e)
	})
}
