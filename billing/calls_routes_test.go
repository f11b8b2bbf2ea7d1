package billing

import (
	"strings"
	"testing"
)

// TestCallsSkipSMSRoutes: a tariff may price SMS and calls for one direction; a call
// never takes the SMS route, even at a higher priority.
func TestCallsSkipSMSRoutes(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "erin", "10009", "50")
		sms := insertID(t, e.s.DB, `INSERT INTO routes (name, type, prefix, enabled) VALUES ('smsgw', 'sms', 'carrier', 1)`)
		execSQL(t, e.s.DB, `UPDATE rate_entries SET priority = 2 WHERE rates_id = ? AND direction_id = 3`, s.base.ID)
		execSQL(t, e.s.DB, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES (?, 3, 1, 10000, ?)`, s.base.ID, sms)
		execSQL(t, e.s.DB, `UPDATE rating_version SET version = version + 1`)
		e.s.ratingChanged(t.Context())
		line := e.ast("callPrepare", "10009", "destination", "441234567890")
		if f := fields(line); f[0] != "Allowed" || f[6] != "routetwo" {
			t.Fatalf("a call on an SMS route: %q", line)
		}
		if line := e.ast("callPrepare", "10009", "destination", "441234567890", "prior", "2"); !strings.HasPrefix(line, "Declined E_UNROUTABLE") {
			t.Fatalf("second priority: %q", line)
		}
	})
}
