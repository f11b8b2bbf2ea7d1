package billing

import (
	"net/url"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/keys"
)

// TestRegisterRequestLimit: one address creates only register_per_hour invite codes; the
// same signature asked again gets its code back without counting.
func TestRegisterRequestLimit(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.s.registrations = keys.Limiter{Max: 2, Window: time.Hour}
		first := e.ok(e.doFrom("10.5.5.5", e.web, "registerRequest", url.Values{"signature": {"a"}})).Response
		e.ok(e.doFrom("10.5.5.5", e.web, "registerRequest", url.Values{"signature": {"b"}}))
		if again := e.ok(e.doFrom("10.5.5.5", e.web, "registerRequest", url.Values{"signature": {"a"}})).Response; again != first {
			t.Fatalf("the same signature got another code: %v, %v", again, first)
		}
		e.fails(e.doFrom("10.5.5.5", e.web, "registerRequest", url.Values{"signature": {"c"}}), apierr.InviteLimitReached, 200)
		e.ok(e.doFrom("10.6.6.6", e.web, "registerRequest", url.Values{"signature": {"c"}}))
	})
}
