package billing

import (
	"context"
	"fmt"
	"math/rand"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

func TestUsersAndAccounts(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.addServer("pbx1", "192.0.2.10")
		e.register(admin(), "corp", 22, "balance", "12.50", "sip_server", "192.0.2.10", "sip_extension", "40000", "currency", "USD")
		info := e.ok(e.do(e.web, "getInfo", user("corp")))
		for name, want := range map[string]string{
			"username": "corp", "accesslevel": "22", "balance": "12.5", "currency": "USD", "manager": adminName,
			"sip_extension": "40000", "sip_server": "192.0.2.10", "sip_realm": "pbx1", "active": "1",
			"displaybalance": "13.5", // 12.50 EUR at 1.08 USD
			"sip_extensions": "", "did_numbers": "[]",
		} {
			if got := field(info, name); got != want && !(name == "sip_extensions" && got != "") {
				t.Errorf("getInfo %s = %q, want %q", name, got, want)
			}
		}
		if field(info, "comment") != "" || field(info, "password") != "" {
			t.Errorf("getInfo shows comment or password to a level-22 user: %s", info.Body)
		}
		v := e.ok(e.do(e.web, "getValue", user("corp", "property", "actualbalance")))
		if fmt.Sprint(v.Response) != "12.5" {
			t.Errorf("actualbalance = %v", v.Response)
		}
		e.fails(e.do(e.web, "getValue", user("corp", "property", "nonsense")), apierr.InvalidArgument, 400)
		// Registration errors change nothing.
		e.fails(e.do(e.web, "registerUser", admin("user", "corp", "web_password", md5hex("x"))), apierr.CantCreateAccount, 200)
		e.fails(e.do(e.web, "registerUser", admin("user", "x1", "web_password", "plain")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "registerUser", admin("user", "x2", "web_password", md5hex("x"), "sip_server", "192.0.2.99", "sip_extension", "40001")), apierr.SIPServerNotExist, 200)
		e.fails(e.do(e.web, "registerUser", admin("user", "x3", "web_password", md5hex("x"), "sip_server", "192.0.2.10", "sip_extension", "12")), apierr.WrongExtension, 200)
		e.fails(e.do(e.web, "registerUser", admin("user", "x4", "web_password", md5hex("x"), "sip_server", "192.0.2.10", "sip_extension", "40000")), apierr.CantCreateExtension, 200)
		e.fails(e.do(e.web, "registerUser", admin("user", "x5", "web_password", md5hex("x"), "balance", "-1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "registerUser", admin("user", "bad name!", "web_password", md5hex("x"))), apierr.InvalidArgument, 400)
		for _, n := range []string{"x1", "x2", "x3", "x4", "x5"} {
			e.fails(e.do(e.web, "getInfo", admin("username", n)), apierr.NotExist, 200)
		}
		// A second user in corp's account, then the account cannot be deleted.
		acc := field(info, "account")
		e.register(user("corp"), "staff", 11, "account", acc)
		e.fails(e.do(e.web, "deleteAccount", admin("account", acc)), apierr.AccountHasUsers, 200)
		accs := e.ok(e.do(e.web, "getAccounts", user("corp")))
		if len(accs.Response.([]any)) != 1 {
			t.Errorf("getAccounts: %s", accs.Body)
		}
		ai := e.ok(e.do(e.web, "getAccountInfo", user("corp", "account", acc)))
		if field(ai, "users") != `["corp","staff"]` {
			t.Errorf("account users: %s", field(ai, "users"))
		}
		// updateUser validation and effect.
		e.ok(e.do(e.web, "updateUser", user("corp", "language", "russian", "timezone", "3", "notify_email", "a@b.c")))
		if got := field(e.ok(e.do(e.web, "getInfo", user("corp"))), "language"); got != "russian" {
			t.Errorf("language = %q", got)
		}
		e.fails(e.do(e.web, "updateUser", user("corp", "timezone", "40")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "updateUser", user("corp", "currency", "XXX")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "updateUser", user("corp", "user", "staff", "active", "7")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "updateUser", user("corp")), apierr.MissingArgument, 400)
		// A new password works at once.
		e.ok(e.do(e.web, "updateUser", user("corp", "user", "staff", "web_password", md5hex("newpw"))))
		e.fails(e.do(e.web, "getInfo", user("staff")), apierr.AuthFailed, 200)
		e.ok(e.do(e.web, "getInfo", as("staff", "newpw")))
		// deleteUser; the deleted user's users move to its manager.
		e.register(user("corp"), "sub", 11)
		e.ok(e.do(e.web, "updateUser", admin("user", "staff", "accesslevel", "22")))
		e.ok(e.do(e.web, "deleteUser", admin("user", "staff")))
		e.fails(e.do(e.web, "getInfo", as("staff", "newpw")), apierr.AuthFailed, 200)
		e.fails(e.do(e.web, "deleteUser", admin("user", adminName)), apierr.DataAbort, 200)
		e.fails(e.do(e.web, "deleteUser", admin("user", "ghost")), apierr.NotExist, 200)
		// Currencies.
		c := e.ok(e.do(e.web, "getCourse", url.Values{"currency": {"RUB"}}))
		if field(c, "currency") != "RUB" || field(c, "eur_course") != "98" {
			t.Errorf("getCourse: %s", c.Body)
		}
		e.fails(e.do(e.web, "getCourse", url.Values{"currency": {"XYZ"}}), apierr.NotExist, 200)
		e.ok(e.do(e.web, "updateCurrency", admin("currency", "RUB", "eur_course", "100.5")))
		if field(e.ok(e.do(e.web, "getCourse", url.Values{"currency": {"RUB"}})), "eur_course") != "100.5" {
			t.Error("updateCurrency did not change the course")
		}
	})
}

func TestTransferMoney(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "ann", 11, "balance", "10")
		e.register(admin(), "ben", 11, "balance", "1")
		e.ok(e.do(e.web, "transferMoney", user("ann", "destination", "ben", "amount", "2.5", "comment", "lunch")))
		bal := func(u string) string { return field(e.ok(e.do(e.web, "getInfo", user(u))), "balance") }
		if bal("ann") != "7.5" || bal("ben") != "3.5" {
			t.Fatalf("after transfer: ann %s, ben %s", bal("ann"), bal("ben"))
		}
		// To an account number.
		benAcc := field(e.ok(e.do(e.web, "getInfo", user("ben"))), "account")
		e.ok(e.do(e.web, "transferMoney", user("ann", "destination", benAcc, "amount", "0.5")))
		e.fails(e.do(e.web, "transferMoney", user("ann", "destination", "ben", "amount", "100")), apierr.InsufficientMoney, 200)
		e.fails(e.do(e.web, "transferMoney", user("ann", "destination", "ben", "amount", "-1")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "transferMoney", user("ann", "destination", "ben", "amount", "abc")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "transferMoney", user("ann", "destination", "nobody", "amount", "1")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "transferMoney", user("ann", "destination", "ann", "amount", "1")), apierr.DataAbort, 200)
		// refill_allowed: 0 locks both ways, 1 only receives.
		e.ok(e.do(e.web, "updateAccount", admin("account", benAcc, "refill_allowed", "0")))
		e.fails(e.do(e.web, "transferMoney", user("ann", "destination", "ben", "amount", "1")), apierr.TransactionsLocked, 200)
		e.ok(e.do(e.web, "updateAccount", admin("account", benAcc, "refill_allowed", "1")))
		e.ok(e.do(e.web, "transferMoney", user("ann", "destination", "ben", "amount", "1")))
		e.fails(e.do(e.web, "transferMoney", user("ben", "destination", "ann", "amount", "1")), apierr.TransactionsLimited, 200)
		// Overdraft extends what can be spent; in another currency the amount converts.
		e.ok(e.do(e.web, "updateAccount", admin("username", "ann", "overdraft", "10")))
		e.ok(e.do(e.web, "transferMoney", user("ann", "destination", "ben", "amount", "15")))
		if bal("ann") != "-9" {
			t.Fatalf("ann = %s", bal("ann"))
		}
		// The admin issues money.
		e.ok(e.do(e.web, "transferMoney", admin("destination", "ann", "amount", "100")))
		checkLedger(t, e)
	})
}

// checkLedger: every account's balance equals the sum of its ledger rows, and every
// ledger row records the balance it left.
func checkLedger(t *testing.T, e *env) {
	t.Helper()
	var bad []struct {
		ID      int64       `db:"id"`
		Balance money.Micro `db:"balance"`
		Sum     money.Micro `db:"total"`
	}
	err := e.s.DB.Q().Select(context.Background(), &bad, `SELECT a.id, a.balance, COALESCE(SUM(l.amount), 0) AS total
		FROM accounts a LEFT JOIN ledger l ON l.account_id = a.id GROUP BY a.id, a.balance
		HAVING a.balance <> COALESCE(SUM(l.amount), 0)`)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bad {
		t.Errorf("account %d: balance %s, ledger sum %s", b.ID, b.Balance, b.Sum)
	}
	// And each ledger row's balance is the account's balance right after it.
	var wrong int
	err = e.s.DB.Q().Get(context.Background(), &wrong, `SELECT COUNT(*) FROM ledger l
		WHERE l.balance <> (SELECT SUM(m.amount) FROM ledger m WHERE m.account_id = l.account_id AND m.id <= l.id)`)
	if err != nil {
		t.Fatal(err)
	}
	if wrong > 0 {
		t.Errorf("%d ledger rows whose balance is not the running sum of their account's", wrong)
	}
}

// TestLedgerInvariant runs a random sequence of money operations and then checks every
// balance against the sum of its ledger; failed operations must change nothing. Besides
// transfers and balance changes it has a reseller giving, raising and lowering its users'
// balances (and registering new ones), deletes of users and of their accounts, calls, and
// finishes of calls that were never prepared. After every granted call the account's
// reservations fit in its balance + overdraft: no call is granted money another holds.
func TestLedgerInvariant(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		rng := rand.New(rand.NewSource(7))
		amount := func() string { return fmt.Sprintf("%d.%06d", rng.Intn(8), rng.Intn(1_000_000)) }
		e.register(admin(), "corp", 22, "balance", "60") // a reseller pays the balances it gives
		// corp also buys its users' calls, at a tariff of its own billed 30/6 (an initial
		// block): every call is charged at two levels.
		e.ok(e.do(e.web, "addBillType", admin("bill_type", "b30", "step", "6", "first_step", "30")))
		e.ok(e.do(e.web, "addRates", admin("name", "wholesale", "bill_type", "b30", "switch_price", "0.01")))
		var wholesale int64
		if err := e.s.DB.Q().Get(context.Background(), &wholesale, `SELECT id FROM rates WHERE name = 'wholesale'`); err != nil {
			t.Fatal(err)
		}
		e.ok(e.do(e.web, "addDirection", admin("rates", fmt.Sprint(wholesale), "direction", "2", "cost", "0.12", "route", fmt.Sprint(s.route1))))
		e.updateUser("corp", "rates", fmt.Sprint(wholesale))
		var names []string
		exts := map[string]string{}
		serial := 0
		// newUser: corp registers a user with a SIP account and a balance it pays for.
		newUser := func() {
			serial++
			name, ext := fmt.Sprintf("u%d", serial), fmt.Sprintf("%05d", 20000+serial)
			balance := "0" // some accounts stay empty, and can be deleted with their user
			if rng.Intn(4) > 0 {
				balance = fmt.Sprintf("%d.%02d", rng.Intn(20), rng.Intn(100))
			}
			a := e.do(e.web, "registerUser", user("corp", "user", name, "web_password", md5hex(name+"pw"), "accesslevel", "11",
				"balance", balance, "sip_server", "10.0.0.1", "sip_extension", ext))
			if !a.Result {
				if a.code() != apierr.InsufficientMoney {
					t.Fatalf("registerUser: %s", a.Body)
				}
				return
			}
			e.ok(e.do(e.web, "updateUser", admin("user", name, "rates", fmt.Sprint(s.base.ID))))
			names, exts[name] = append(names, name), ext
		}
		for len(names) < 4 {
			newUser()
		}
		type call struct{ user, uid string }
		var open []call
		pick := func() string { return names[rng.Intn(len(names))] }
		const dest = "79010000001"
		for i := 0; i < 200; i++ {
			if len(names) < 2 {
				e.ok(e.do(e.web, "transferMoney", admin("destination", "corp", "amount", "20")))
				newUser()
				continue
			}
			a, b := pick(), pick()
			switch rng.Intn(10) {
			case 0, 1:
				e.do(e.web, "transferMoney", user(a, "destination", b, "amount", amount()))
			case 2: // the reseller raises or lowers a balance, out of or into its own account
				e.do(e.web, "updateAccount", user("corp", "username", a, "balance", amount()))
			case 3:
				e.do(e.web, "updateAccount", user("corp", "username", a, "overdraft", amount()))
			case 4: // the administrator issues money, to a user or to the reseller
				e.do(e.web, "transferMoney", admin("destination", b, "amount", amount()))
				e.do(e.web, "transferMoney", admin("destination", "corp", "amount", amount()))
			case 5:
				newUser()
			case 6: // delete a user, then try its account: kept while it has money or history
				acc := field(e.ok(e.do(e.web, "getInfo", user(a))), "account")
				e.ok(e.do(e.web, "deleteUser", user("corp", "user", a)))
				if d := e.do(e.web, "deleteAccount", user("corp", "account", acc)); !d.Result && d.code() != apierr.DataAbort {
					t.Fatalf("deleteAccount: %s", d.Body)
				}
				names = slices.DeleteFunc(names, func(n string) bool { return n == a })
				open = slices.DeleteFunc(open, func(c call) bool { return c.user == a })
			case 7:
				uid := fmt.Sprintf("call%d", i)
				if ans := e.ast("callPrepare", exts[a], "destination", dest, "uniqueid", uid); strings.HasPrefix(ans, "Allowed ") {
					open = append(open, call{a, uid})
					bal, _, held := balanceOf(t, e.s.DB, a)
					var overdraft money.Micro
					if err := e.s.DB.Q().Get(context.Background(), &overdraft, `SELECT a.overdraft FROM accounts a
						JOIN users u ON u.account_id = a.id WHERE u.username = ?`, a); err != nil {
						t.Fatal(err)
					}
					if held > bal+overdraft {
						t.Fatalf("op %d: %s holds %s, more than balance %s + overdraft %s", i, a, held, bal, overdraft)
					}
					if bal, _, held := balanceOf(t, e.s.DB, "corp"); held > bal { // corp has no overdraft
						t.Fatalf("op %d: the reseller holds %s, more than its balance %s", i, held, bal)
					}
				}
			case 8: // finish an open call within its grant
				if len(open) == 0 {
					continue
				}
				k := rng.Intn(len(open))
				c := open[k]
				open = slices.Delete(open, k, k+1)
				var own money.Micro
				if err := e.s.DB.Q().Get(context.Background(), &own, `SELECT amount FROM reservations WHERE uniqueid = ? AND level = 0`, c.uid); err != nil {
					t.Fatal(err)
				}
				_, _, before := balanceOf(t, e.s.DB, c.user)
				e.ast("callFinish", exts[c.user], "destination", dest, "length", itoa(rng.Intn(120)), "uniqueid", c.uid)
				if _, _, after := balanceOf(t, e.s.DB, c.user); after != before-own {
					t.Fatalf("op %d: finishing %s released %s, want its own %s", i, c.uid, before-after, own)
				}
			case 9: // finish a call never prepared: it is charged and releases nothing
				_, _, before := balanceOf(t, e.s.DB, a)
				e.ast("callFinish", exts[a], "destination", dest, "length", itoa(1+rng.Intn(120)),
					"uniqueid", fmt.Sprintf("unprepared%d", i))
				if _, _, after := balanceOf(t, e.s.DB, a); after != before {
					t.Fatalf("op %d: an unprepared callFinish of %s released %s of other calls' reservations", i, a, before-after)
				}
			}
		}
		for _, c := range open {
			e.ast("callFinish", exts[c.user], "destination", dest, "length", "1", "uniqueid", c.uid)
		}
		var held int
		if err := e.s.DB.Q().Get(context.Background(), &held, `SELECT count(*) FROM reservations`); err != nil {
			t.Fatal(err)
		}
		if held != 0 {
			t.Errorf("%d reservations left after every call finished", held)
		}
		// What corp bought its users' calls for is what its account was charged for them,
		// and what it sold them for what they were charged.
		var bought, charged, sold, paid money.Micro
		q := e.s.DB.Q()
		ctx := context.Background()
		if err := q.Get(ctx, &bought, `SELECT COALESCE(SUM(bought), 0) FROM resale`); err != nil {
			t.Fatal(err)
		}
		if err := q.Get(ctx, &charged, `SELECT COALESCE(-SUM(l.amount), 0) FROM ledger l JOIN users u ON u.account_id = l.account_id
			WHERE u.username = 'corp' AND l.kind = 'call'`); err != nil {
			t.Fatal(err)
		}
		if err := q.Get(ctx, &sold, `SELECT COALESCE(SUM(sold), 0) FROM resale`); err != nil {
			t.Fatal(err)
		}
		if err := q.Get(ctx, &paid, `SELECT COALESCE(-SUM(l.amount), 0) FROM ledger l WHERE l.kind = 'call'
			AND l.ref IN (SELECT 'call:' || CAST(call_id AS TEXT) FROM resale) AND l.account_id <> (SELECT account_id FROM users WHERE username = 'corp')`); err != nil {
			t.Fatal(err)
		}
		if bought == 0 || bought != charged || sold != paid {
			t.Errorf("resale: bought %s, corp charged %s; sold %s, users paid %s", bought, charged, sold, paid)
		}
		checkLedger(t, e)
	})
}
