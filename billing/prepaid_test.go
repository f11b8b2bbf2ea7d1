package billing

import (
	"context"
	"net/url"
	"regexp"
	"sync"
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// checkCodeMoney: the money in codes is the money the ledger moved into them, so
// prepaid ledger rows plus the codes' balances sum to zero.
func checkCodeMoney(t *testing.T, e *env) {
	t.Helper()
	checkLedger(t, e)
	var ledger, codes money.Micro
	ctx := context.Background()
	if err := e.s.DB.Q().Get(ctx, &ledger, `SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE kind = 'prepaid'`); err != nil {
		t.Fatal(err)
	}
	if err := e.s.DB.Q().Get(ctx, &codes, `SELECT COALESCE(SUM(balance), 0) FROM prepaid_codes`); err != nil {
		t.Fatal(err)
	}
	if ledger+codes != 0 {
		t.Errorf("prepaid ledger %s + codes %s != 0", ledger, codes)
	}
}

var codePattern = regexp.MustCompile(`^[0-9]{16}$`)

func TestPrepaidCodes(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.addServer("sip1", "10.0.0.1")
		e.register(admin(), "corp", 22, "balance", "50")
		e.register(user("corp"), "cust", 11, "sip_server", "10.0.0.1", "sip_extension", "10001")
		e.register(admin(), "other", 11, "balance", "3")
		balance := func(name string) string { return field(e.ok(e.do(e.web, "getInfo", user(name))), "balance") }
		create := func(by url.Values) string {
			t.Helper()
			code, _ := e.ok(e.do(e.web, "createPrepaidCode", by)).Response.(string)
			if !codePattern.MatchString(code) {
				t.Fatalf("code %q", code)
			}
			return code
		}

		// The code's money leaves the creator's account.
		code := create(user("corp", "balance", "10"))
		if b := balance("corp"); b != "40" {
			t.Fatalf("corp after createPrepaidCode: %s", b)
		}
		list := e.ok(e.do(e.web, "getPrepaidCodes", user("corp"))).Response.([]any)
		c := list[0].(map[string]any)
		if len(list) != 1 || c["code"] != code || tstr(c["balance"]) != "10" || tstr(c["access_level"]) != "10" ||
			c["owner"] != "corp" || c["activated_to"] != "" || c["created"] == "" {
			t.Fatalf("getPrepaidCodes: %v", list)
		}
		// Part, then the rest; the first activation binds the code to its activator.
		e.ok(e.do(e.web, "activatePrepaidCode", user("cust", "code", code, "amount", "4")))
		if b := balance("cust"); b != "4" {
			t.Fatalf("cust after activating 4: %s", b)
		}
		e.fails(e.do(e.web, "activatePrepaidCode", user("other", "code", code)), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "activatePrepaidCode", user("cust", "code", code, "amount", "6.01")), apierr.CodeHasNoBalance, 200)
		e.fails(e.do(e.web, "activatePrepaidCode", user("cust", "code", code, "amount", "-1")), apierr.InvalidArgument, 400)
		e.ok(e.do(e.web, "activatePrepaidCode", user("cust", "code", code, "amount", "0")))
		if b := balance("cust"); b != "10" {
			t.Fatalf("cust after activating the rest: %s", b)
		}
		e.fails(e.do(e.web, "activatePrepaidCode", user("cust", "code", code)), apierr.CodeHasNoBalance, 200)
		e.fails(e.do(e.web, "activatePrepaidCode", user("cust", "code", "0000000000000000")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "activatePrepaidCode", user("cust", "code", code[:15])), apierr.NotExist, 200)
		e.fails(e.do(e.web, "activatePrepaidCode", user("cust")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "deletePrepaidCode", user("corp", "code", code)), apierr.DataAbort, 200)
		if list := e.ok(e.do(e.web, "getPrepaidCodes", user("corp"))).Response.([]any); list[0].(map[string]any)["activated_to"] != "cust" {
			t.Fatalf("activated_to: %v", list)
		}

		// Affordability: users pay for their codes, administrators issue money.
		e.fails(e.do(e.web, "createPrepaidCode", user("corp", "balance", "40.01")), apierr.InsufficientMoney, 200)
		e.fails(e.do(e.web, "createPrepaidCode", user("corp", "balance", "-1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "createPrepaidCode", user("corp", "balance", "ten")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "createPrepaidCode", user("corp", "accesslevel", "33")), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "createPrepaidCode", user("corp", "accesslevel", "12")), apierr.InvalidArgument, 400)
		big := create(admin("balance", "1000"))
		if b := balance(adminName); b != "-1000" {
			t.Fatalf("admin after issuing a code: %s", b)
		}

		// target: only that user (by name or SIP account) may activate.
		gift := create(user("corp", "balance", "1", "target", "10001"))
		e.fails(e.do(e.web, "activatePrepaidCode", user("other", "code", gift)), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "activatePrepaidCode", user("cust", "code", gift)))

		// refill_allowed: 0 locks activation and funding; 1 allows anonymous refills.
		custAccount := field(e.ok(e.do(e.web, "getInfo", user("cust"))), "account")
		corpAccount := field(e.ok(e.do(e.web, "getInfo", user("corp"))), "account")
		two := create(user("corp", "balance", "2", "target", "cust"))
		e.ok(e.do(e.web, "updateAccount", user("corp", "account", custAccount, "refill_allowed", "0")))
		e.fails(e.do(e.web, "activatePrepaidCode", user("cust", "code", two)), apierr.TransactionsLocked, 200)
		e.ok(e.do(e.web, "updateAccount", user("corp", "account", custAccount, "refill_allowed", "1")))
		e.ok(e.do(e.web, "activatePrepaidCode", user("cust", "code", two)))
		e.fails(e.do(e.web, "createPrepaidCode", user("cust", "balance", "1", "target", "other")), apierr.TransactionsLimited, 200)
		e.ok(e.do(e.web, "updateAccount", user("corp", "account", custAccount, "refill_allowed", "2")))
		if b := balance("cust"); b != "13" {
			t.Fatalf("cust after three codes: %s", b)
		}
		e.ok(e.do(e.web, "updateAccount", admin("account", corpAccount, "refill_allowed", "0")))
		e.fails(e.do(e.web, "createPrepaidCode", user("corp", "balance", "1")), apierr.TransactionsLocked, 200)
		e.ok(e.do(e.web, "updateAccount", admin("account", corpAccount, "refill_allowed", "2")))

		// Invites: a user below 22 needs one for a code that can register somebody.
		e.fails(e.do(e.web, "createPrepaidCode", user("cust")), apierr.InviteLimitReached, 200)
		create(user("cust", "balance", "1", "target", "other")) // a gift to an existing user
		e.ok(e.do(e.web, "updateUser", user("corp", "user", "cust", "invites", "1")))
		invite := create(user("cust", "accesslevel", "11", "balance", "2"))
		e.fails(e.do(e.web, "createPrepaidCode", user("cust")), apierr.InviteLimitReached, 200)
		if v := field(e.ok(e.do(e.web, "getInfo", user("cust"))), "invites"); v != "0" {
			t.Fatalf("invites left: %s", v)
		}

		// Codes are listed to their creators only, and to administrators with all.
		if n := len(e.ok(e.do(e.web, "getPrepaidCodes", user("cust", "all", "true"))).Response.([]any)); n != 2 {
			t.Fatalf("cust lists %d codes", n)
		}
		if n := len(e.ok(e.do(e.web, "getPrepaidCodes", user("corp", "all", "true", "active", "true"))).Response.([]any)); n != 0 {
			t.Fatalf("corp lists %d unused codes", n)
		}
		if n := tstr(e.ok(e.do(e.web, "getPrepaidCodes", admin("all", "true", "count", "true"))).Response); n != "6" {
			t.Fatalf("admin counts %s codes", n)
		}
		if n := tstr(e.ok(e.do(e.web, "getPrepaidCodes", admin("count", "true"))).Response); n != "1" {
			t.Fatalf("admin counts %s own codes", n)
		}

		// Deleting an unused code returns its money; only its creator's managers may.
		e.fails(e.do(e.web, "deletePrepaidCode", user("other", "code", big)), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "deletePrepaidCode", user("corp", "code", "1234")), apierr.NotExist, 200)
		e.ok(e.do(e.web, "deletePrepaidCode", admin("code", big)))
		if b := balance(adminName); b != "0" {
			t.Fatalf("admin after deleting the code: %s", b)
		}
		e.fails(e.do(e.web, "activatePrepaidCode", user("cust", "code", big)), apierr.NotExist, 200)

		// registerByCode: a check, then the registration with the code's level and money.
		e.ok(e.do(e.web, "registerByCode", url.Values{"code": {invite}, "user": {"newbie"}}))
		e.fails(e.do(e.web, "getInfo", user("newbie")), apierr.AuthFailed, 200)
		e.fails(e.do(e.web, "registerByCode", url.Values{"code": {invite}, "user": {"corp"}}), apierr.CantCreateAccount, 200)
		e.fails(e.do(e.web, "registerByCode", url.Values{"code": {invite}, "register": {"true"}, "user": {"newbie"}}), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "registerByCode", url.Values{"code": {invite}, "register": {"true"}, "user": {"newbie"},
			"web_password": {"plain"}}), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "registerByCode", url.Values{"code": {"9999999999999999"}}), apierr.NotExist, 200)
		e.ok(e.do(e.web, "registerByCode", url.Values{"code": {invite}, "register": {"true"}, "user": {"newbie"},
			"web_password": {md5hex("newbiepw")}, "language": {"nenglish"}}))
		info := e.ok(e.do(e.web, "getInfo", user("newbie")))
		if field(info, "balance") != "2" || field(info, "manager") != "cust" || field(info, "accesslevel") != "11" ||
			field(info, "language") != "nenglish" {
			t.Fatalf("newbie: %s", info.Body)
		}
		e.fails(e.do(e.web, "registerByCode", url.Values{"code": {invite}, "register": {"true"}, "user": {"newbie2"},
			"web_password": {md5hex("x")}}), apierr.DataAbort, 200)

		// registerRequest: one code per signature, no creator, level 10.
		req := tstr(e.ok(e.do(e.web, "registerRequest", url.Values{"signature": {"test"}})).Response)
		if !codePattern.MatchString(req) {
			t.Fatalf("registerRequest: %q", req)
		}
		if again := tstr(e.ok(e.do(e.web, "registerRequest", url.Values{"signature": {"test"}})).Response); again != req {
			t.Fatalf("same signature, another code: %s, %s", req, again)
		}
		e.fails(e.do(e.web, "registerRequest", nil), apierr.MissingArgument, 400)
		e.ok(e.do(e.web, "registerByCode", url.Values{"code": {req}, "register": {"true"}, "user": {"selfmade"},
			"web_password": {md5hex("selfmadepw")}}))
		info = e.ok(e.do(e.web, "getInfo", user("selfmade")))
		if field(info, "manager") != "" || field(info, "accesslevel") != "10" || field(info, "balance") != "0" {
			t.Fatalf("selfmade: %s", info.Body)
		}
		checkCodeMoney(t, e)
	})
}

// TestPrepaidCodeRace: users racing to activate one code get its money once.
func TestPrepaidCodeRace(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		names := []string{"r1", "r2", "r3", "r4"}
		for _, n := range names {
			e.register(admin(), n, 11)
		}
		for round := 0; round < 3; round++ {
			code, _ := e.ok(e.do(e.web, "createPrepaidCode", admin("balance", "5"))).Response.(string)
			codes := make(chan string, len(names))
			var wg sync.WaitGroup
			for _, n := range names {
				wg.Add(1)
				go func() {
					defer wg.Done()
					a := e.do(e.web, "activatePrepaidCode", user(n, "code", code))
					if a.Result {
						codes <- "OK"
					} else {
						codes <- a.code()
					}
				}()
			}
			wg.Wait()
			close(codes)
			won := 0
			for c := range codes {
				switch c {
				case "OK":
					won++
				case apierr.DoesNotBelongToYou, apierr.CodeHasNoBalance:
				default:
					t.Errorf("round %d: %s", round, c)
				}
			}
			if won != 1 {
				t.Fatalf("round %d: %d activations won", round, won)
			}
		}
		total := money.Micro(0)
		for _, n := range names {
			b, _ := money.Parse(field(e.ok(e.do(e.web, "getInfo", user(n))), "balance"))
			total += b
		}
		if total != 15*money.One {
			t.Fatalf("the racers got %s in all, want 15", total)
		}
		checkCodeMoney(t, e)
	})
}
