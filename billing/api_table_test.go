package billing

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/keys"
)

// apiCase is one row of a scenario table: who asks what, and the answer expected.
type apiCase struct {
	name   string
	key    string // "" is the client key `web`
	method string
	params url.Values
	code   string // "" expects success
	status int    // 0: 200, or 400 for the argument codes
	want   map[string]string
}

func (c apiCase) run(t *testing.T, e *env) {
	t.Helper()
	key := c.key
	if key == "" {
		key = e.web
	}
	a := e.do(key, c.method, c.params)
	if c.code == "" {
		if !a.Result {
			t.Errorf("%s: %s", c.name, a.Body)
			return
		}
		for f, want := range c.want {
			if got := field(a, f); got != want {
				t.Errorf("%s: %s = %q, want %q", c.name, f, got, want)
			}
		}
		return
	}
	status := c.status
	if status == 0 {
		status = apierr.Status(c.code)
	}
	if a.Result || a.code() != c.code || a.Status != status {
		t.Errorf("%s: want %s (%d), got %d %s", c.name, c.code, status, a.Status, a.Body)
	}
}

// TestMethodTable walks every foundation method through happy paths and bad input of
// each argument type, as one table on both databases.
func TestMethodTable(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if _, err := e.s.DB.Q().Exec(ctx, `INSERT INTO sip_servers (name, address) VALUES ('pbx1', '192.0.2.10')`); err != nil {
			t.Fatal(err)
		}
		e.register(admin(), "corp", 22, "balance", "50")
		e.register(user("corp"), "cust", 11, "balance", "5", "sip_server", "192.0.2.10", "sip_extension", "50001")
		e.ok(e.do(e.web, "addKey", admin("name", "asterisk", "apikey", "asterisk-key-1", "accessLevel", "44", "auth_by", "sip_extension")))
		custAccount := field(e.ok(e.do(e.web, "getInfo", user("cust"))), "account")
		for _, c := range []apiCase{
			{name: "getInfo", method: "getInfo", params: user("cust"), want: map[string]string{"username": "cust", "manager": "corp", "sip_extension": "50001", "balance": "5"}},
			{name: "getInfo by sip_extension key", key: "asterisk-key-1", method: "getInfo", params: url.Values{"login": {"50001"}}, want: map[string]string{"username": "cust"}},
			{name: "getInfo unknown extension", key: "asterisk-key-1", method: "getInfo", params: url.Values{"login": {"59999"}}, code: apierr.AuthFailed},
			{name: "getValue", method: "getValue", params: user("cust", "property", "sip_realm")},
			{name: "getValue missing", method: "getValue", params: user("cust"), code: apierr.MissingArgument},
			{name: "getValue empty", method: "getValue", params: user("cust", "property", ""), code: apierr.MissingArgument},
			{name: "updateUser", method: "updateUser", params: user("cust", "notify_balance", "1", "notify_balance_limit", "2.5")},
			{name: "updateUser int as text", method: "updateUser", params: user("cust", "notify_balance", "one"), code: apierr.InvalidArgument},
			{name: "updateUser fraction for int", method: "updateUser", params: user("cust", "notify_did", "1.5"), code: apierr.InvalidArgument},
			{name: "updateUser num as text", method: "updateUser", params: user("cust", "timezone", "east"), code: apierr.InvalidArgument},
			{name: "updateUser comma decimal", method: "updateUser", params: user("cust", "notify_balance_limit", "2,5"), code: apierr.InvalidArgument},
			{name: "updateUser unknown rates", method: "updateUser", params: user("corp", "user", "cust", "rates", "77"), code: apierr.NotExist},
			{name: "getUsers", method: "getUsers", params: user("corp")},
			{name: "getUsers bad bool", method: "getUsers", params: user("corp", "all", "2"), code: apierr.InvalidArgument},
			{name: "registerUser missing user", method: "registerUser", params: user("corp", "web_password", md5hex("x")), code: apierr.MissingArgument},
			{name: "registerUser missing password", method: "registerUser", params: user("corp", "user", "nopw"), code: apierr.MissingArgument},
			{name: "registerUser bad account", method: "registerUser", params: user("corp", "user", "acc", "web_password", md5hex("x"), "account", "x1"), code: apierr.InvalidArgument},
			{name: "registerUser unknown account", method: "registerUser", params: user("corp", "user", "acc", "web_password", md5hex("x"), "account", "999"), code: apierr.NotExist},
			{name: "registerUser into cust's account", method: "registerUser", params: user("corp", "user", "family", "web_password", md5hex("x"), "account", custAccount)},
			{name: "registerUser bad srtp", method: "registerUser", params: user("corp", "user", "s", "web_password", md5hex("x"), "sip_srtp", "maybe"), code: apierr.InvalidArgument},
			{name: "deleteUser", method: "deleteUser", params: user("corp", "user", "family")},
			{name: "deleteUser missing", method: "deleteUser", params: user("corp"), code: apierr.MissingArgument},
			{name: "updateAccount billing name by its user", method: "updateAccount", params: user("cust", "billing_name", "Cust Ltd")},
			{name: "updateAccount bad refill", method: "updateAccount", params: user("corp", "account", custAccount, "refill_allowed", "5"), code: apierr.InvalidArgument},
			{name: "updateAccount balance by corp", method: "updateAccount", params: user("corp", "account", custAccount, "balance", "7")},
			{name: "updateAccount balance by admin", method: "updateAccount", params: admin("account", custAccount, "balance", "70"), code: apierr.InsufficientAccess},
			{name: "getAccountInfo", method: "getAccountInfo", params: user("corp", "account", custAccount), want: map[string]string{"balance": "7", "billing_name": "Cust Ltd"}},
			{name: "getAccountInfo unknown", method: "getAccountInfo", params: user("corp", "account", "4242"), code: apierr.NotExist},
			{name: "getAccounts", method: "getAccounts", params: user("corp", "all", "true")},
			{name: "deleteAccount missing", method: "deleteAccount", params: user("corp"), code: apierr.MissingArgument},
			{name: "transferMoney", method: "transferMoney", params: user("cust", "destination", "corp", "amount", "1.25")},
			{name: "transferMoney missing amount", method: "transferMoney", params: user("cust", "destination", "corp"), code: apierr.MissingArgument},
			{name: "getCurrencies anonymous", method: "getCurrencies"},
			{name: "getCourse of the user", method: "getCourse", params: user("cust"), want: map[string]string{"currency": "EUR", "eur_course": "1"}},
			{name: "updateCurrency new needs course", method: "updateCurrency", params: admin("currency", "GBP"), code: apierr.MissingArgument},
			{name: "updateCurrency new", method: "updateCurrency", params: admin("currency", "GBP", "eur_course", "0.86", "displayname", "£")},
			{name: "updateCurrency bad code", method: "updateCurrency", params: admin("currency", "POUND", "eur_course", "1"), code: apierr.InvalidArgument},
			{name: "getKeys", method: "getKeys", params: admin()},
			{name: "addKey bad auth_by", method: "addKey", params: admin("name", "k1", "auth_by", "email"), code: apierr.InvalidArgument},
			{name: "addKey bad secure_only", method: "addKey", params: admin("name", "k1", "secure_only", "7"), code: apierr.InvalidArgument},
			{name: "addKey short secret", method: "addKey", params: admin("name", "k1", "apikey", "short"), code: apierr.InvalidArgument},
			{name: "addKey", method: "addKey", params: admin("name", "k1", "apikey", "k1-secret-123")},
			{name: "updateKey nothing", method: "updateKey", params: admin("name", "k1"), code: apierr.MissingArgument},
			{name: "updateKey disable", method: "updateKey", params: admin("name", "k1", "enabled", "0")},
			{name: "getKey", method: "getKey", params: admin("name", "k1"), want: map[string]string{"enabled": "0", "accessLevel": "0"}},
			{name: "revokeKey unknown", method: "revokeKey", params: admin("name", "k9"), code: apierr.NotExist},
			{name: "getBans", method: "getBans", params: user("corp")},
			{name: "banIP missing target", method: "banIP", params: admin("source", "x"), code: apierr.MissingArgument},
			{name: "unbanIP bad id", method: "unbanIP", params: admin("id", "first"), code: apierr.InvalidArgument},
			{name: "updateBanPermanent bad state", method: "updateBanPermanent", params: admin("id", "1", "state", "sometimes"), code: apierr.InvalidArgument},
		} {
			c.run(t, e)
		}
		checkLedger(t, e)
	})
}

// TestCustomIdentity: a key whose auth_by is a configured custom identity carries its
// default_user as a request variable and logs users in by username.
func TestCustomIdentity(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.s.Gate.CustomIdentities = map[string]bool{"paymentmethod": true}
		e.register(admin(), "payer", 11)
		e.ok(e.do(e.web, "addKey", admin("name", "pay", "apikey", "payment-key-123", "auth_by", "paymentmethod", "default_user", "pscb")))
		a := e.ok(e.do("payment-key-123", "getValue", user("payer", "property", "username")))
		if a.Response != "payer" {
			t.Fatalf("custom identity login: %s", a.Body)
		}
		k, err := e.s.Gate.Keys.Lookup(context.Background(), "payment-key-123")
		if err != nil {
			t.Fatal(err)
		}
		c, err := e.s.Gate.Authorize(context.Background(), k, keysRequest("getValue", 1, "payer", md5hex("payerpw")))
		if err != nil || c.Identity["paymentmethod"] != "pscb" {
			t.Fatalf("identity: %v %v", c, err)
		}
	})
}

func keysRequest(method string, level int, login, password string) keys.Request {
	return keys.Request{Method: method, Level: level, Login: login, Password: password}
}

// TestUndeclaredArgumentPanics: a handler reading an argument its method does not
// declare (a typo such as "uniqeid") fails loudly under test instead of reading "".
func TestUndeclaredArgumentPanics(t *testing.T) {
	m := method("typo", 0, func(r *Request) (any, error) { return r.Str("uniqeid"), nil }, "uniqueid:string")
	r := &Request{Method: &m, args: map[string]string{"uniqueid": "1.2"}}
	defer func() {
		if p := recover(); p == nil || !strings.Contains(fmt.Sprint(p), `"uniqeid"`) {
			t.Fatalf("reading an undeclared argument: %v", p)
		}
	}()
	m.Handler(r)
}
