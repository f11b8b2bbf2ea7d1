package billing

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// didList is a list response as objects.
func didList(t *testing.T, a answer) []map[string]any {
	t.Helper()
	raw, ok := a.Response.([]any)
	if !ok {
		t.Fatalf("not a list: %s", a.Body)
	}
	out := make([]map[string]any, len(raw))
	for i, v := range raw {
		out[i], _ = v.(map[string]any)
	}
	return out
}

func didBalance(t *testing.T, e *env, name string) string {
	t.Helper()
	return field(e.ok(e.do(e.web, "getInfo", user(name))), "balance")
}

func TestDIDPoolsAndOrder(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.register(admin(), "corp", 22, "balance", "100") // a reseller pays the balances it gives
		e.register(user("corp"), "cust", 11, "balance", "100")
		for _, c := range []apiCase{
			{name: "addDIDPool", method: "addDIDPool", params: admin("country", "Russia", "area", "Moscow", "cost", "50", "installcost", "10")},
			{name: "addDIDPool no area", method: "addDIDPool", params: admin("country", "Russia"), code: apierr.MissingArgument},
			{name: "addDIDPool bad qty", method: "addDIDPool", params: admin("country", "X", "area", "Y", "qty", "0"), code: apierr.InvalidArgument},
			{name: "addDIDPool qty fraction", method: "addDIDPool", params: admin("country", "X", "area", "Y", "qty", "1.5"), code: apierr.InvalidArgument},
			{name: "addDIDPool bad provider", method: "addDIDPool", params: admin("country", "X", "area", "Y", "provider", "no such"), code: apierr.InvalidArgument},
			{name: "addDIDPool negative cost", method: "addDIDPool", params: admin("country", "X", "area", "Y", "cost", "-1"), code: apierr.InvalidArgument},
			{name: "addDIDPool by corp", method: "addDIDPool", params: user("corp", "country", "X", "area", "Y"), code: apierr.InsufficientAccess},
			{name: "updateDIDPool", method: "updateDIDPool", params: admin("id", "1", "cost", "60", "pass", "secret")},
			{name: "updateDIDPool unknown", method: "updateDIDPool", params: admin("id", "9", "cost", "60"), code: apierr.NotExist},
			{name: "getDIDPoolInfo", method: "getDIDPoolInfo", params: admin("id", "1"),
				want: map[string]string{"country": "Russia", "cost": "60", "installcost": "10", "provider": "local", "quantity": "100", "password": "secret"}},
			{name: "getDIDPoolInfo unknown", method: "getDIDPoolInfo", params: admin("id", "7"), code: apierr.NotExist},
			{name: "addDID stock", method: "addDID", params: admin("did", "+7 495 000-00-01", "pool_id", "1")},
			{name: "addDID stock 2", method: "addDID", params: admin("did", "74950000002", "pool_id", "1")},
			{name: "addDID twice", method: "addDID", params: admin("did", "74950000002"), code: apierr.DataAbort},
			{name: "addDID letters", method: "addDID", params: admin("did", "7495abc"), code: apierr.InvalidArgument},
			{name: "addDID unknown pool", method: "addDID", params: admin("did", "74950000003", "pool_id", "5"), code: apierr.NotExist},
			{name: "addDID bad expiration", method: "addDID", params: admin("did", "74950000003", "expiration", "tomorrow"), code: apierr.InvalidArgument},
			{name: "addDID stock by corp", method: "addDID", params: user("corp", "did", "74950000003"), code: apierr.DoesNotBelongToYou},
			{name: "addDID unknown owner", method: "addDID", params: admin("did", "74950000003", "owner", "nobody"), code: apierr.NotExist},
		} {
			c.run(t, e)
		}
		if got := didList(t, e.ok(e.do(e.web, "getDIDPools", admin()))); len(got) != 1 {
			t.Fatalf("pools: %v", got)
		}
		if got := didList(t, e.ok(e.do(e.web, "getDIDPool", user("cust")))); len(got) != 1 || got[0]["country"] != "Russia" {
			t.Fatalf("countries: %v", got)
		}
		if got := didList(t, e.ok(e.do(e.web, "getDIDPool", user("cust", "country", "Russia")))); len(got) != 1 || got[0]["area"] != "Moscow" {
			t.Fatalf("areas: %v", got)
		}
		nums := didList(t, e.ok(e.do(e.web, "getDIDPool", user("cust", "country", "Russia", "area", "Moscow"))))
		if len(nums) != 2 {
			t.Fatalf("numbers: %v", nums)
		}
		nums = didList(t, e.ok(e.do(e.web, "getDIDPool", user("cust", "country", "Russia", "area", "Moscow", "search_pattern", "0001"))))
		if len(nums) != 1 || nums[0]["did"] != "74950000001" || nums[0]["cost"].(interface{ String() string }).String() != "60" ||
			nums[0]["installcost"].(interface{ String() string }).String() != "10" || nums[0]["pool_id"].(interface{ String() string }).String() != "1" {
			t.Fatalf("search: %v", nums)
		}

		for _, pat := range []string{"%", "_", `\`} {
			if got := didList(t, e.ok(e.do(e.web, "getDIDPool", user("cust", "country", "Russia", "area", "Moscow", "search_pattern", pat)))); len(got) != 0 {
				t.Fatalf("search %q: %v", pat, got)
			}
		}
		// Ordering: 10 installation + 60 first month.
		e.fails(e.do(e.web, "orderDID", user("cust", "pool_id", "1", "did", "74950000009")), apierr.DIDOrderFail, 200)
		e.fails(e.do(e.web, "orderDID", user("cust", "pool_id", "4", "did", "74950000001")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "orderDID", user("cust", "did", "74950000001")), apierr.MissingArgument, 400)
		e.ok(e.do(e.web, "orderDID", user("cust", "pool_id", "1", "did", "74950000001")))
		if b := didBalance(t, e, "cust"); b != "30" {
			t.Fatalf("balance after order: %s", b)
		}
		var kind string
		if err := e.s.DB.Q().Get(ctx, &kind, `SELECT kind FROM ledger WHERE ref = 'did:74950000001' AND amount = -70000000`); err != nil || kind != "did" {
			t.Fatalf("ledger row: %q %v", kind, err)
		}
		e.fails(e.do(e.web, "orderDID", user("cust", "pool_id", "1", "did", "74950000001")), apierr.DIDOrderFail, 200)
		e.fails(e.do(e.web, "orderDID", user("cust", "pool_id", "1", "did", "74950000002")), apierr.InsufficientMoney, 200)
		mine := didList(t, e.ok(e.do(e.web, "getDIDList", user("cust"))))
		if len(mine) != 1 || mine[0]["did"] != "74950000001" || mine[0]["owner"] != "cust" || mine[0]["expiration"] == "" {
			t.Fatalf("getDIDList: %v", mine)
		}
		// Paging and search.
		if got := didList(t, e.ok(e.do(e.web, "getDIDList", user("cust", "search", "0000001")))); len(got) != 1 {
			t.Fatalf("getDIDList search: %v", got)
		}
		if got := didList(t, e.ok(e.do(e.web, "getDIDList", user("cust", "search", "999")))); len(got) != 0 {
			t.Fatalf("getDIDList search for none: %v", got)
		}
		if got := didList(t, e.ok(e.do(e.web, "getDIDList", user("cust", "offset", "1")))); len(got) != 0 {
			t.Fatalf("getDIDList offset past the end: %v", got)
		}
		e.fails(e.do(e.web, "getDIDList", user("cust", "limit", "0")), apierr.InvalidArgument, 400)
		if got := didList(t, e.ok(e.do(e.web, "getDIDPool", user("cust", "country", "Russia", "area", "Moscow")))); len(got) != 1 {
			t.Fatalf("a sold number is still offered: %v", got)
		}
		// Transactions locked: nothing is sold, nothing is charged.
		e.ok(e.do(e.web, "transferMoney", admin("destination", "cust", "amount", "100")))
		if _, err := e.s.DB.Q().Exec(ctx, `UPDATE accounts SET refill_allowed = 0 WHERE id = (SELECT account_id FROM users WHERE username = 'cust')`); err != nil {
			t.Fatal(err)
		}
		e.fails(e.do(e.web, "orderDID", user("cust", "pool_id", "1", "did", "74950000002")), apierr.TransactionsLocked, 200)
		e.fails(e.do(e.web, "renewDID", user("corp", "did", "74950000001")), apierr.TransactionsLocked, 200)
		if _, err := e.s.DB.Q().Exec(ctx, `UPDATE accounts SET refill_allowed = 2`); err != nil {
			t.Fatal(err)
		}
		if b := didBalance(t, e, "cust"); b != "130" {
			t.Fatalf("balance: %s", b)
		}

		// Renewal: the DID's cost (60) from the owner, a month on.
		before := field(e.ok(e.do(e.web, "getDIDInfo", user("corp", "did", "74950000001"))), "expiration")
		e.fails(e.do(e.web, "renewDID", user("cust", "did", "74950000001")), apierr.InsufficientAccess, 200)
		e.ok(e.do(e.web, "renewDID", user("corp", "did", "74950000001")))
		info := e.ok(e.do(e.web, "getDIDInfo", user("corp", "did", "74950000001")))
		b, _ := time.Parse(timeLayout, before)
		a, _ := time.Parse(timeLayout, field(info, "expiration"))
		if !a.Equal(b.AddDate(0, 1, 0)) || field(info, "cost") != "60" || field(info, "owner") != "cust" {
			t.Fatalf("renewed: %s -> %s", before, info.Body)
		}
		if b := didBalance(t, e, "cust"); b != "70" {
			t.Fatalf("balance after renewal: %s", b)
		}
		e.ok(e.do(e.web, "renewDID", user("corp", "did", "74950000001")))
		e.fails(e.do(e.web, "renewDID", user("corp", "did", "74950000001")), apierr.InsufficientMoney, 200)
		if b := didBalance(t, e, "cust"); b != "10" {
			t.Fatalf("balance after a refused renewal: %s", b)
		}
		e.fails(e.do(e.web, "renewDID", admin("did", "74950000002")), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "renewDID", admin("did", "79999999999")), apierr.NotExist, 200)

		// Deleting a pool keeps its numbers.
		e.ok(e.do(e.web, "deleteDIDPool", admin("id", "1")))
		info = e.ok(e.do(e.web, "getDIDInfo", admin("did", "74950000002")))
		if field(info, "pool") != "" {
			t.Fatalf("pool of stock after deleteDIDPool: %s", info.Body)
		}
		e.fails(e.do(e.web, "deleteDIDPool", admin("id", "1")), apierr.NotExist, 200)
		checkLedger(t, e)
	})
}

func TestDIDOwnership(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "corpa", 22)
		e.register(admin(), "corpb", 22)
		e.register(user("corpa"), "custa", 11)
		e.register(user("corpb"), "custb", 11)
		e.ok(e.do(e.web, "addDID", user("corpa", "did", "74951110001", "owner", "custa", "cost", "5", "comment", "office",
			"expiration", "2030-01-31 12:00:00")))
		e.fails(e.do(e.web, "addDID", user("corpa", "did", "74951110002", "owner", "custb")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "addDID", user("custa", "did", "74951110002", "owner", "custa")), apierr.InsufficientAccess, 200)

		info := e.ok(e.do(e.web, "getDIDInfo", user("corpa", "did", "74951110001")))
		for f, want := range map[string]string{"owner": "custa", "comment": "office", "cost": "5", "displaycost": "5",
			"expiration": "2030-01-31 12:00:00", "enabled": "1", "auto_renew": "1", "renew_notify": "0"} {
			if got := field(info, f); got != want {
				t.Errorf("%s = %q, want %q", f, got, want)
			}
		}
		e.fails(e.do(e.web, "getDIDInfo", user("corpb", "did", "74951110001")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getDIDInfo", user("corpb", "did", "70000000000")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "updateDIDState", user("custb", "did", "74951110001", "state", "false")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateDIDState", user("custa", "did", "74951110001", "state", "maybe")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "updateDIDState", user("custa", "did", "74951110001", "parameter", "cost", "state", "1")), apierr.InvalidArgument, 400)
		e.ok(e.do(e.web, "updateDIDState", user("custa", "did", "74951110001", "parameter", "enabled", "state", "false")))
		// An expired number is switched on by paying for it, not by updateDIDState.
		e.ok(e.do(e.web, "addDID", admin("did", "74951110009", "owner", "custa", "expiration", "2020-01-01 00:00:00")))
		e.ok(e.do(e.web, "updateDIDState", user("custa", "did", "74951110009", "parameter", "enabled", "state", "false")))
		e.fails(e.do(e.web, "updateDIDState", user("custa", "did", "74951110009", "parameter", "enabled", "state", "true")), apierr.DataAbort, 200)
		e.ok(e.do(e.web, "renewDID", admin("did", "74951110009")))
		if info := e.ok(e.do(e.web, "getDIDInfo", admin("did", "74951110009"))); field(info, "enabled") != "1" {
			t.Fatalf("renewed DID: %s", info.Body)
		}
		e.ok(e.do(e.web, "deleteDID", admin("did", "74951110009")))
		e.ok(e.do(e.web, "updateDIDState", user("custa", "did", "74951110001", "state", "no")))
		info = e.ok(e.do(e.web, "getDIDInfo", user("corpa", "did", "74951110001")))
		if field(info, "enabled") != "0" || field(info, "auto_renew") != "0" {
			t.Fatalf("after updateDIDState: %s", info.Body)
		}
		// A user's money is given in their currency: 10 USD is 10/1.08 EUR.
		e.ok(e.do(e.web, "updateUser", admin("user", "corpa", "currency", "USD")))
		e.ok(e.do(e.web, "updateDID", user("corpa", "did", "74951110001", "cost", "10.80", "comment", "moved")))
		info = e.ok(e.do(e.web, "getDIDInfo", user("corpa", "did", "74951110001")))
		if field(info, "cost") != "10" || field(info, "displaycost") != "10.8" || field(info, "comment") != "moved" {
			t.Fatalf("after updateDID: %s", info.Body)
		}
		e.fails(e.do(e.web, "updateDID", user("corpa", "did", "74951110001", "owner", "custb")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateDID", user("corpb", "did", "74951110001", "comment", "x")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateDID", user("corpa", "did", "74951110001", "owner", "")), apierr.DoesNotBelongToYou, 200)

		if got := didList(t, e.ok(e.do(e.web, "getDIDList", user("corpa", "own", "false")))); len(got) != 1 {
			t.Fatalf("corpa's DIDs: %v", got)
		}
		if got := didList(t, e.ok(e.do(e.web, "getDIDList", user("corpb", "own", "false")))); len(got) != 0 {
			t.Fatalf("corpb sees %v", got)
		}
		if got := didList(t, e.ok(e.do(e.web, "getDIDList", user("custa")))); len(got) != 1 {
			t.Fatalf("custa's DIDs: %v", got)
		}
		if got := didList(t, e.ok(e.do(e.web, "getDIDList", user("corpa")))); len(got) != 0 {
			t.Fatalf("corpa owns %v", got)
		}
		e.ok(e.do(e.web, "addDID", user("corpa", "did", "74951110003", "owner", "custa", "cost", "1.08")))
		sorted := didList(t, e.ok(e.do(e.web, "getDIDList", user("custa", "sort_by", "cost"))))
		if len(sorted) != 2 || sorted[0]["did"] != "74951110003" {
			t.Fatalf("by cost: %v", sorted)
		}
		sorted = didList(t, e.ok(e.do(e.web, "getDIDList", user("custa", "sort_by", "expiration"))))
		if sorted[0]["did"] != "74951110003" || sorted[1]["expiration"] != "2030-01-31 12:00:00" {
			t.Fatalf("by expiration: %v", sorted)
		}
		e.fails(e.do(e.web, "getDIDList", user("custa", "sort_by", "owner")), apierr.InvalidArgument, 400)

		// DISA access numbers: marked by administrators, listed to anyone.
		e.fails(e.do(e.web, "addDID", user("corpa", "did", "74951110004", "owner", "custa", "disa", "true")), apierr.InsufficientAccess, 200)
		e.ok(e.do(e.web, "addDID", admin("did", "74951119999", "disa", "true", "comment", `DISA\Moscow`)))
		disa := didList(t, e.ok(e.do(e.web, "getDisaDIDList", nil)))
		if len(disa) != 1 || disa[0]["did"] != "74951119999" || disa[0]["comment"] != `DISA\Moscow` {
			t.Fatalf("getDisaDIDList: %v", disa)
		}

		// getDIDCount: a server key of level 50.
		e.addKey("name", "pbx", "apikey", "pbx-key-50", "accessLevel", "50")
		if a := e.ok(e.do("pbx-key-50", "getDIDCount", url.Values{"did": {"+74951110001"}})); fmt.Sprint(a.Response) != "1" {
			t.Fatalf("getDIDCount: %s", a.Body)
		}
		if a := e.ok(e.do("pbx-key-50", "getDIDCount", url.Values{"did": {"1234"}})); fmt.Sprint(a.Response) != "0" {
			t.Fatalf("getDIDCount: %s", a.Body)
		}

		e.fails(e.do(e.web, "deleteDID", user("corpb", "did", "74951110001")), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(e.web, "deleteDID", user("corpa", "did", "74951110001")))
		e.fails(e.do(e.web, "getDIDInfo", user("corpa", "did", "74951110001")), apierr.NotExist, 200)
	})
}

const didProviderScript = `
narayana.handler("did", "acme", function(in_)
  if in_.action == "list" then
    return { { did = "4930111", sms_support = true, arg1 = in_.pool.param1 }, { did = "not a number" } }
  end
  if in_.did == "4930999" then narayana.fail("E_DID_ORDER_FAIL", "sold out") end
  if in_.did == "4930888" then return false end
  return true
end)
`

func TestDIDProviderHandler(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e, _ := scriptEnv(t, d, map[string]string{"did.lua": didProviderScript})
		e.register(admin(), "cust", 11, "balance", "20")
		e.ok(e.do(e.web, "addDIDPool", admin("country", "Germany", "area", "Berlin", "cost", "5", "installcost", "1",
			"provider", "acme", "param1", "p1")))
		e.ok(e.do(e.web, "addDIDPool", admin("country", "Germany", "area", "Hamburg", "provider", "nohandler")))
		nums := didList(t, e.ok(e.do(e.web, "getDIDPool", user("cust", "country", "Germany", "area", "Berlin"))))
		if len(nums) != 1 || nums[0]["did"] != "4930111" || nums[0]["sms_support"] != true || nums[0]["voice_support"] != true ||
			nums[0]["arg1"] != "p1" {
			t.Fatalf("provider numbers: %v", nums)
		}
		if got := didList(t, e.ok(e.do(e.web, "getDIDPool", user("cust", "country", "Germany", "area", "Hamburg")))); len(got) != 0 {
			t.Fatalf("a pool without handler offers %v", got)
		}
		e.ok(e.do(e.web, "orderDID", user("cust", "pool_id", "1", "did", "4930111")))
		e.fails(e.do(e.web, "orderDID", user("cust", "pool_id", "1", "did", "4930111")), apierr.DIDOrderFail, 200)
		e.fails(e.do(e.web, "orderDID", user("cust", "pool_id", "1", "did", "4930999")), apierr.DIDOrderFail, 200)
		e.fails(e.do(e.web, "orderDID", user("cust", "pool_id", "1", "did", "4930888")), apierr.DIDOrderFail, 200)
		e.fails(e.do(e.web, "orderDID", user("cust", "pool_id", "2", "did", "4940111")), apierr.DIDOrderFail, 200)
		if b := didBalance(t, e, "cust"); b != "14" {
			t.Fatalf("balance: %s", b)
		}
		mine := didList(t, e.ok(e.do(e.web, "getDIDList", user("cust"))))
		if len(mine) != 1 || mine[0]["did"] != "4930111" {
			t.Fatalf("ordered: %v", mine)
		}
		checkLedger(t, e)
	})
}

// TestDIDOrderConcurrent: parallel orders never spend more than the user has, and a
// number is sold once.
func TestDIDOrderConcurrent(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "buyer", 11, "balance", "25")
		e.register(admin(), "rival", 11, "balance", "100")
		e.ok(e.do(e.web, "addDIDPool", admin("country", "Spain", "area", "Madrid", "cost", "8", "installcost", "2")))
		for i := 1; i <= 6; i++ {
			e.ok(e.do(e.web, "addDID", admin("did", fmt.Sprintf("3491000000%d", i), "pool_id", "1")))
		}
		type result struct {
			ok   bool
			code string
		}
		results := make(chan result, 6)
		for i := 1; i <= 5; i++ {
			go func(i int) {
				a := e.do(e.web, "orderDID", user("buyer", "pool_id", "1", "did", fmt.Sprintf("3491000000%d", i)))
				results <- result{a.Result, a.code()}
			}(i)
		}
		go func() {
			a := e.do(e.web, "orderDID", user("rival", "pool_id", "1", "did", "34910000001"))
			results <- result{a.Result, a.code()}
		}()
		sold := 0
		for i := 0; i < 6; i++ {
			r := <-results
			switch {
			case r.ok:
				sold++
			case r.code != apierr.InsufficientMoney && r.code != apierr.DIDOrderFail:
				t.Errorf("order: %s", r.code)
			}
		}
		var owners []string
		if err := e.s.DB.Q().Select(context.Background(), &owners, `SELECT u.username FROM dids d JOIN users u ON u.id = d.owner_id`); err != nil {
			t.Fatal(err)
		}
		buyer := 0
		for _, o := range owners {
			if o == "buyer" {
				buyer++
			}
		}
		if len(owners) != sold || buyer > 2 {
			t.Fatalf("sold %d, owners %v", sold, owners)
		}
		if b := didBalance(t, e, "buyer"); b != fmt.Sprint(25-10*buyer) {
			t.Fatalf("buyer has %d numbers and %s left", buyer, b)
		}
		checkLedger(t, e)
	})
}
