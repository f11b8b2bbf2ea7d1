package billing

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
)

func TestDIDRulePatterns(t *testing.T) {
	for _, c := range []struct {
		pattern, number string
		want            bool
	}{
		{"", "74951112233", true},
		{"%", "", true},
		{"74951112233", "74951112233", true},
		{"74951112233", "749511122334", false},
		{"7495%", "74951112233", true},
		{"7495%", "74991112233", false},
		{"%33", "74951112233", true},
		{"_7495XXXXXXX", "74951112233", true},
		{"_7495XXXXXXX", "7495111223", false},
		{"_7495XXXXXXX", "7495111223a", false},
		{"_N.", "2", false},
		{"_N.", "21", true},
		{"_Z!", "1", true},
		{"_[1-3]X", "35", true},
		{"_[1-3]X", "45", false},
		{"_[135]", "3", true},
		{"_7.", "7.5", true},
		{"7.5", "7x5", false},
	} {
		re, err := compilePattern(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		if got := re.MatchString(c.number); got != c.want {
			t.Errorf("%q ~ %q = %v, want %v", c.pattern, c.number, got, c.want)
		}
	}
	for _, bad := range []string{"_[12", "_[]", "_[a-z]"} {
		if _, err := compilePattern(bad); apierr.Code(err) != apierr.InvalidArgument {
			t.Errorf("%q: %v", bad, err)
		}
	}
	for _, c := range []struct {
		cond, status, input, want string
		ok                        bool
	}{
		{"", "", "", "", true},
		{"", "BUSY", "", "", true},
		{"SUCCESS", "ANSWER", "", "", true},
		{"SUCCESS", "", "", "", false},
		{"UNSUCCESS", "NOANSWER", "", "", true},
		{"UNSUCCESS", "ANSWER", "", "", false},
		{"UNSUCCESS", "", "", "", false},
		{"BUSY", "486", "", "", true},
		{"NOANSWER", "NOANSWER", "", "", true},
		{"NOANSWER", "BUSY", "", "", false},
		{"UNAVAIL", "CHANUNAVAIL", "", "", true},
		{"UNAVAIL", "503", "", "", true},
		{"UNAVAIL", "486", "", "", false},
		{"INPUT", "99INPUT", "1", "1", true},
		{"INPUT", "99INPUT", "2", "1", false},
		{"INPUT", "99INPUT", "42", "_4X", true},
		{"INPUT", "BUSY", "1", "1", false},
	} {
		if got := conditionHolds(c.cond, c.status, c.input, c.want); got != c.ok {
			t.Errorf("condition %q status %q input %q/%q = %v", c.cond, c.status, c.input, c.want, got)
		}
	}
}

func TestDIDRules(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.addServer("pbx1", "192.0.2.10")
		e.register(admin(), "corp", 22)
		e.register(user("corp"), "cust", 11, "sip_server", "192.0.2.10", "sip_extension", "50001")
		e.register(admin(), "other", 11)
		e.ok(e.do(e.web, "addDID", admin("did", "74950000001", "owner", "cust")))
		e.ok(e.do(e.web, "addDID", admin("did", "74950000002", "owner", "other")))
		for _, k := range []struct{ key, authBy string }{{"pbx-json", "username"}, {"pbx-plain", "sip_extension"}} {
			e.addKey("name", k.key, "apikey", k.key, "accessLevel", "50", "auth_by", k.authBy)
		}
		did := func(kv ...string) url.Values { return user("cust", append([]string{"did", "74950000001"}, kv...)...) }
		for _, c := range []apiCase{
			{name: "number", method: "addDIDRule", params: did("source", "number", "pattern", "_7495XXXXXXX", "action", "call", "timeout", "20", "position", "end")},
			{name: "anonymous", method: "addDIDRule", params: did("source", "anonymous", "policy", "REJECT", "position", "end")},
			{name: "no answer", method: "addDIDRule", params: did("condition", "noanswer", "action", "voicemail", "position", "end")},
			{name: "input", method: "addDIDRule", params: did("condition", "INPUT", "input", "1", "action", "call", "destination", "74951234567",
				"sms_action", "forward", "sms_destination", "79001112233", "position", "end")},
			{name: "greeting first", method: "addDIDRule", params: did("source", "any", "action", "playfile", "destination", "greeting")},
			{name: "bad action", method: "addDIDRule", params: did("action", "dance"), code: apierr.InvalidArgument},
			{name: "bad sms action", method: "addDIDRule", params: did("sms_action", "fax"), code: apierr.InvalidArgument},
			{name: "bad source", method: "addDIDRule", params: did("source", "weather"), code: apierr.InvalidArgument},
			{name: "bad time", method: "addDIDRule", params: did("source", "time", "pattern", "9-18"), code: apierr.InvalidArgument},
			{name: "bad day", method: "addDIDRule", params: did("source", "time", "pattern", "mon-fry"), code: apierr.InvalidArgument},
			{name: "bad pattern", method: "addDIDRule", params: did("source", "number", "pattern", "_[12"), code: apierr.InvalidArgument},
			{name: "bad policy", method: "addDIDRule", params: did("policy", "DROP"), code: apierr.InvalidArgument},
			{name: "bad condition", method: "addDIDRule", params: did("condition", "SOMETIMES"), code: apierr.InvalidArgument},
			{name: "bad position", method: "addDIDRule", params: did("position", "middle"), code: apierr.InvalidArgument},
			{name: "bad timeout", method: "addDIDRule", params: did("timeout", "soon"), code: apierr.InvalidArgument},
			{name: "space", method: "addDIDRule", params: did("destination", "a b"), code: apierr.InvalidArgument},
			{name: "not yours", method: "addDIDRule", params: user("cust", "did", "74950000002"), code: apierr.DoesNotBelongToYou},
			{name: "unknown DID", method: "addDIDRule", params: user("cust", "did", "70000000000"), code: apierr.NotExist},
			{name: "no DID", method: "addDIDRule", params: user("cust"), code: apierr.MissingArgument},
			{name: "rules of another", method: "getDIDRules", params: user("cust", "did", "74950000002"), code: apierr.DoesNotBelongToYou},
			{name: "unknown rule", method: "getDIDRules", params: did("rule", "9"), code: apierr.NotExist},
			{name: "resolve by a user", method: "resolveDIDRule", params: did(), code: apierr.InsufficientAccess},
		} {
			c.run(t, e)
		}
		rules := didList(t, e.ok(e.do(e.web, "getDIDRules", did())))
		if len(rules) != 5 || rules[0]["action"] != "playfile" || rules[1]["pattern"] != "_7495XXXXXXX" ||
			rules[3]["condition"] != "NOANSWER" || rules[4]["rule"].(interface{ String() string }).String() != "5" {
			t.Fatalf("rules: %v", rules)
		}
		if one := didList(t, e.ok(e.do(e.web, "getDIDRules", did("rule", "3")))); len(one) != 1 || one[0]["policy"] != "REJECT" {
			t.Fatalf("rule 3: %v", one)
		}
		// corp manages cust, so corp sees cust's rules too.
		if got := didList(t, e.ok(e.do(e.web, "getDIDRules", user("corp", "did", "74950000001")))); len(got) != 5 {
			t.Fatalf("corp sees %d rules", len(got))
		}

		resolve := func(key string, kv ...string) string {
			t.Helper()
			p := url.Values{"did": {"74950000001"}}
			for i := 0; i+1 < len(kv); i += 2 {
				p.Set(kv[i], kv[i+1])
			}
			a := e.do(key, "resolveDIDRule", p)
			if key == "pbx-plain" {
				return a.Body
			}
			s, _ := a.Response.(string)
			return s
		}
		for _, c := range []struct {
			kv   []string
			want string
		}{
			{[]string{"callerid", "74951112233"}, "OK ACCEPT 50001 playfile pbx1 greeting TRANSIT 30  "},
			{[]string{"rule", "2", "callerid", "+7 495 111-22-33", "status", "ANSWER"}, "OK ACCEPT 50001 call pbx1 50001 TRANSIT 20  "},
			{[]string{"rule", "2", "callerid", ""}, "SKIP 3"},
			{[]string{"rule", "3", "callerid", "anonymous"}, "OK REJECT 50001  pbx1  TRANSIT 30  "},
			{[]string{"rule", "2", "callerid", "79001234567", "status", "NOANSWER"}, "SKIP 4"},
			{[]string{"rule", "4", "callerid", "79001234567", "status", "NOANSWER"}, "OK ACCEPT 50001 voicemail pbx1 50001 TRANSIT 30  "},
			{[]string{"rule", "5", "callerid", "79001234567", "status", "99INPUT", "input", "1"},
				"OK ACCEPT 50001 call pbx1 74951234567 TRANSIT 30 forward 79001112233"},
			{[]string{"rule", "5", "callerid", "79001234567", "status", "99INPUT", "input", "2"}, "FIN"},
			{[]string{"rule", "6"}, "FIN"},
		} {
			for _, key := range []string{"pbx-json", "pbx-plain"} {
				if got := resolve(key, c.kv...); got != c.want {
					t.Errorf("%s %v: %q, want %q", key, c.kv, got, c.want)
				}
			}
		}
		e.fails(e.do("pbx-json", "resolveDIDRule", url.Values{"did": {"70000000000"}}), apierr.NotExist, 200)
		e.fails(e.do("pbx-json", "resolveDIDRule", url.Values{"did": {"74950000001"}, "rule": {"0"}}), apierr.InvalidArgument, 400)
		e.ok(e.do(e.web, "updateDIDState", did("parameter", "enabled", "state", "false")))
		if got := resolve("pbx-json"); got != "FIN" {
			t.Errorf("disabled DID: %q", got)
		}
		e.ok(e.do(e.web, "updateDIDState", did("parameter", "enabled", "state", "true")))

		// A time rule in front: the owner's timezone decides; every day but today never holds.
		notToday := []string{}
		for d, n := range []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"} {
			if time.Weekday(d) != time.Now().UTC().Add(3*time.Hour).Weekday() {
				notToday = append(notToday, n)
			}
		}
		e.ok(e.do(e.web, "updateUser", user("corp", "user", "cust", "timezone", "3")))
		e.ok(e.do(e.web, "addDIDRule", did("source", "time", "pattern", strings.Join(notToday, ","), "action", "hangup")))
		if got := resolve("pbx-json", "callerid", "74951112233"); got != "SKIP 2" {
			t.Errorf("a time rule for other days: %q", got)
		}
		e.ok(e.do(e.web, "updateDIDRule", did("rule", "1", "pattern", "mon-sun/00:00-00:00")))
		if got := resolve("pbx-json", "callerid", "74951112233"); got != "OK ACCEPT 50001 hangup pbx1  TRANSIT 30  " {
			t.Errorf("a time rule for every day: %q", got)
		}
		e.ok(e.do(e.web, "deleteDIDRule", did("rule", "1")))

		// Moving and changing.
		e.ok(e.do(e.web, "updateDIDRule", did("rule", "5", "pos", "1", "timeout", "15", "server", "pbx2")))
		rules = didList(t, e.ok(e.do(e.web, "getDIDRules", did())))
		if rules[0]["condition"] != "INPUT" || rules[0]["server"] != "pbx2" || rules[1]["action"] != "playfile" || rules[4]["condition"] != "NOANSWER" {
			t.Fatalf("after the move: %v", rules)
		}
		e.ok(e.do(e.web, "updateDIDRule", did("rule", "2", "pos", "5")))
		rules = didList(t, e.ok(e.do(e.web, "getDIDRules", did())))
		if rules[4]["action"] != "playfile" || rules[1]["pattern"] != "_7495XXXXXXX" {
			t.Fatalf("after the move down: %v", rules)
		}
		e.fails(e.do(e.web, "updateDIDRule", did("rule", "1", "pos", "6")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "updateDIDRule", did("rule", "9", "timeout", "1")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "updateDIDRule", did("rule", "1", "action", "dance")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "updateDIDRule", did("pos", "1")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "updateDIDRule", did("rule", "2", "source", "time")), apierr.InvalidArgument, 400)

		// Deleting by number and by pattern; numbers stay 1..n.
		e.fails(e.do(e.web, "deleteDIDRule", did("rule", "-1")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "deleteDIDRule", did("rule", "7")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "deleteDIDRule", user("other", "did", "74950000001", "rule", "1")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "deleteDIDRule", did("rule", "-1", "pattern", "_7495XXXXXXX")))
		e.ok(e.do(e.web, "deleteDIDRule", did("rule", "1")))
		rules = didList(t, e.ok(e.do(e.web, "getDIDRules", did())))
		if len(rules) != 3 || rules[0]["policy"] != "REJECT" || rules[2]["rule"].(interface{ String() string }).String() != "3" {
			t.Fatalf("after deletes: %v", rules)
		}

		// The lists of actions and filters.
		acts := e.ok(e.do(e.web, "getDIDActions", user("cust")))
		if v, _ := acts.Response.(map[string]any)["voice"].(map[string]any); v["playfile"] != "beep" {
			t.Fatalf("getDIDActions: %s", acts.Body)
		}
		if got := e.ok(e.do(e.web, "getFilters", user("cust", "sources", "true"))).Response.([]any); len(got) != 4 {
			t.Fatalf("sources: %v", got)
		}
		if got := e.ok(e.do(e.web, "getFilters", user("cust", "resolver", "number"))).Response.(map[string]any); len(got) != 1 || got["number"] == nil {
			t.Fatalf("number patterns: %v", got)
		}
		if got := e.ok(e.do(e.web, "getFilters", user("cust"))).Response.(map[string]any); len(got) != 4 {
			t.Fatalf("filters: %v", got)
		}
		e.fails(e.do(e.web, "getFilters", user("cust", "resolver", "weather")), apierr.NotExist, 200)

		// Rules go with their DID.
		e.ok(e.do(e.web, "deleteDID", admin("did", "74950000001")))
		var n int
		if err := e.s.DB.Q().Get(ctx, &n, `SELECT COUNT(*) FROM did_rules`); err != nil || n != 0 {
			t.Fatalf("rules left: %d %v", n, err)
		}
	})
}

func TestDIDTimePatterns(t *testing.T) {
	// 2026-11-23 is a Monday.
	at := func(s string) time.Time { v, _ := time.Parse(timeLayout, s); return v }
	for _, c := range []struct {
		pattern, when string
		want          bool
	}{
		{"", "2026-11-23 03:00:00", true},
		{"mon-fri/09:00-18:00", "2026-11-23 09:00:00", true},
		{"mon-fri/09:00-18:00", "2026-11-23 18:00:00", false},
		{"mon-fri/09:00-18:00", "2026-11-22 10:00:00", false},
		{"sat,sun", "2026-11-22 10:00:00", true},
		{"sat,sun", "2026-11-23 10:00:00", false},
		{"fri-mon", "2026-11-23 10:00:00", true},
		{"fri-mon", "2026-11-24 10:00:00", false},
		{"22:00-06:00", "2026-11-23 23:30:00", true},
		{"22:00-06:00", "2026-11-23 05:59:00", true},
		{"22:00-06:00", "2026-11-23 06:00:00", false},
		{"fri/22:00-06:00", "2026-11-22 05:00:00", false},
		{"sat/22:00-06:00", "2026-11-22 05:00:00", true},
		{"MON/00:00-24:00", "2026-11-23 23:59:00", true},
	} {
		tp, err := parseTimePattern(c.pattern)
		if err != nil {
			t.Fatalf("%q: %v", c.pattern, err)
		}
		if got := tp.holds(at(c.when)); got != c.want {
			t.Errorf("%q at %s = %v, want %v", c.pattern, c.when, got, c.want)
		}
	}
	for _, bad := range []string{"9-18", "mon-fry", "25:00-26:00", "09:00", "mon/", "/09:00-10:00x", "09:60-10:00"} {
		if _, err := parseTimePattern(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
