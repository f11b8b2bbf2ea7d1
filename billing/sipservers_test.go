package billing

import (
	"context"
	"strings"
	"testing"

	"github.com/narayana/narayanad/apierr"
)

func TestAddSIPServer(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		q := e.s.DB.Q()
		spec := SIPServerSpec{Name: "pbx", Address: "192.0.2.1", DNS: "pbx.example", AMIAddress: "192.0.2.1:5038", AMIUser: "ami", AMISecret: "s"}
		id, err := AddSIPServer(ctx, q, spec)
		if err != nil || id == 0 {
			t.Fatalf("add: %d, %v", id, err)
		}
		// The API finds it by its address (the sip_server argument) and by its name.
		for _, key := range []string{"192.0.2.1", "pbx"} {
			s, err := sipServer(ctx, q, key)
			if err != nil || s.ID != id || s.Name != "pbx" || s.DNS != "pbx.example" || s.AMIAddress != "192.0.2.1:5038" || s.AMISecret != "s" {
				t.Fatalf("sipServer(%s): %+v, %v", key, s, err)
			}
		}

		// Bad input and duplicates are refused with a code and a description, and add nothing.
		for _, c := range []struct {
			spec      SIPServerSpec
			code, say string
		}{
			{SIPServerSpec{Name: " ", Address: "192.0.2.2"}, apierr.MissingArgument, "name"},
			{SIPServerSpec{Name: "x", Address: "nope"}, apierr.InvalidArgument, `"nope" is not an IP address`},
			{SIPServerSpec{Name: "x", Address: ""}, apierr.InvalidArgument, "address"},
			{SIPServerSpec{Name: "x", Address: "192.0.2.2", AMIAddress: "192.0.2.2"}, apierr.InvalidArgument, "HOST:PORT"},
			{SIPServerSpec{Name: "pbx", Address: "192.0.2.2"}, apierr.DataAbort, `"pbx" at 192.0.2.1 exists`},
			{SIPServerSpec{Name: "other", Address: "192.0.2.1"}, apierr.DataAbort, `"pbx" at 192.0.2.1 exists`},
		} {
			_, err := AddSIPServer(ctx, q, c.spec)
			if apierr.Code(err) != c.code || !strings.Contains(err.Error(), c.say) {
				t.Errorf("%+v: %v, want %s (%s)", c.spec, err, c.code, c.say)
			}
		}
		if n := e.count(`SELECT count(*) FROM sip_servers`); n != 1 {
			t.Fatalf("%d servers after refusals", n)
		}
		// An IPv6 address and no AMI are fine.
		if _, err := AddSIPServer(ctx, q, SIPServerSpec{Name: "v6", Address: "2001:db8::1"}); err != nil {
			t.Fatal(err)
		}
	})
}
