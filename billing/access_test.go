package billing

import (
	"fmt"
	"net/url"
	"testing"

	"github.com/narayana/narayanad/apierr"
)

// TestAccessMatrix is generated from the method table: every method called one level
// below its requirement answers E_INSUFFICIENT_ACCESS (or E_AUTH_FAILED when there is no
// user at all), through a server key of that level and through a user of the highest
// level below it.
func TestAccessMatrix(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		userLevels := []int{10, 11, 22, 25, 33, 44}
		for _, l := range userLevels {
			e.register(admin(), fmt.Sprintf("user%d", l), l)
		}
		keyFor := map[int]string{}
		for _, m := range e.s.Methods.Sorted() {
			l := m.Level - 1
			if l < 1 || keyFor[l] != "" {
				continue
			}
			keyFor[l] = fmt.Sprintf("server-key-level-%d", l)
			e.serverKey(keyFor[l], keyFor[l], l)
		}
		for _, m := range e.s.Methods.Sorted() {
			if m.Level == 0 {
				continue
			}
			if m.Level == 1 {
				e.fails(e.do(e.web, m.Name, nil), apierr.AuthFailed, 200)
				continue
			}
			a := e.do(keyFor[m.Level-1], m.Name, url.Values{"login": {adminName}})
			if a.code() != apierr.InsufficientAccess {
				t.Errorf("%s(%d) with a level-%d server key: %s", m.Name, m.Level, m.Level-1, a.Body)
			}
			below := 0
			for _, l := range userLevels {
				if l < m.Level {
					below = l
				}
			}
			if below > 0 {
				name := fmt.Sprintf("user%d", below)
				if a := e.do(e.web, m.Name, user(name)); a.code() != apierr.InsufficientAccess {
					t.Errorf("%s(%d) as a level-%d user: %s", m.Name, m.Level, below, a.Body)
				}
			}
		}
	})
}

// TestOwnership: a corporate user neither sees nor changes another corporate user's
// users, accounts or keys.
func TestOwnership(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "corpa", 22)
		e.register(admin(), "corpb", 22)
		e.register(user("corpa"), "custa", 11)
		e.register(user("corpb"), "custb", 11)
		e.ok(e.do(e.web, "addKey", admin("username", "corpb", "name", "bkey", "accessLevel", "0")))

		users := e.ok(e.do(e.web, "getUsers", user("corpa", "all", "true"))).Response.([]any)
		if len(users) != 1 || users[0].(map[string]any)["username"] != "custa" {
			t.Fatalf("corpa sees %v", users)
		}
		accountB := field(e.ok(e.do(e.web, "getInfo", user("custb"))), "account")
		accountA := field(e.ok(e.do(e.web, "getInfo", user("custa"))), "account")

		e.fails(e.do(e.web, "getInfo", user("corpa", "username", "custb")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateUser", user("corpa", "user", "custb", "active", "0")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "deleteUser", user("corpa", "user", "custb")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getAccountInfo", user("corpa", "account", accountB)), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateAccount", user("corpa", "account", accountB, "overdraft", "100")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "deleteAccount", user("corpa", "account", accountB)), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "updateUser", user("corpa", "user", "custa", "account", accountB)), apierr.DoesNotBelongToYou, 200)
		for _, a := range e.ok(e.do(e.web, "getAccounts", user("corpa", "all", "true"))).Response.([]any) {
			if n := fmt.Sprint(a.(map[string]any)["account"]); n == accountB {
				t.Fatalf("corpa sees account %s", n)
			}
		}
		// corpa manages custa: sees and changes them.
		e.ok(e.do(e.web, "getAccountInfo", user("corpa", "account", accountA)))
		e.ok(e.do(e.web, "updateAccount", user("corpa", "account", accountA, "overdraft", "5")))
		e.ok(e.do(e.web, "updateUser", user("corpa", "user", "custa", "active", "0")))
		// A user cannot change their own administrative fields, nor raise themself.
		e.fails(e.do(e.web, "updateUser", user("custa", "active", "1")), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "updateUser", user("corpa", "accesslevel", "33")), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "updateAccount", user("custb", "overdraft", "1000")), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "registerUser", user("corpa", "user", "boss", "web_password", md5hex("x"), "accesslevel", "33")), apierr.InsufficientAccess, 200)
	})
}
