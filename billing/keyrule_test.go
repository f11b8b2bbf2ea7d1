package billing

import (
	"bytes"
	"log/slog"
	"net/url"
	"strings"
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/keys"
)

// TestKeyLevelRule is DECISIONS §3's rule for keys through the router: the master admin
// creates and updates keys of any level; an administrator (33-43) keys up to its own level
// and Asterisk keys (50); nobody else. Keys a caller could not create are not its to see.
func TestKeyLevelRule(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "boss", keys.LevelAdmin)
		e.register(admin(), "boss2", keys.LevelAdmin)
		e.register(admin(), "corp", keys.LevelManager)
		e.register(user("boss"), "cust", 11)
		for _, c := range []struct {
			who   url.Values
			level int
			code  string
		}{
			{admin(), 0, ""}, {admin(), 33, ""}, {admin(), 44, ""}, {admin(), keys.LevelAsterisk, ""},
			{admin(), keys.LevelExclusive, ""}, {admin(), keys.LevelGateway, ""}, {admin(), 99, ""},
			{admin(), 100, apierr.InvalidArgument}, {admin(), -1, apierr.InvalidArgument},
			{user("boss"), 0, ""}, {user("boss"), 11, ""}, {user("boss"), 33, ""}, {user("boss"), keys.LevelAsterisk, ""},
			{user("boss"), 34, apierr.InsufficientAccess}, {user("boss"), 40, apierr.InsufficientAccess},
			{user("boss"), 44, apierr.InsufficientAccess}, {user("boss"), keys.LevelExclusive, apierr.InsufficientAccess},
			{user("boss"), keys.LevelGateway, apierr.InsufficientAccess},
			{user("corp"), 0, apierr.InsufficientAccess}, {user("corp"), 11, apierr.InsufficientAccess},
			{user("cust"), 0, apierr.InsufficientAccess},
		} {
			p := url.Values{}
			for k, v := range c.who {
				p[k] = v
			}
			name := c.who.Get("login") + "-" + itoa(c.level)
			p.Set("name", name)
			p.Set("accessLevel", itoa(c.level))
			a := e.do(e.web, "addKey", p)
			if c.code == "" {
				if !a.Result {
					t.Errorf("%s creating a level-%d key: %s", c.who.Get("login"), c.level, a.Body)
				}
				continue
			}
			if a.Result || a.code() != c.code {
				t.Errorf("%s creating a level-%d key: want %s, got %s", c.who.Get("login"), c.level, c.code, a.Body)
			}
			// A refused key was not written.
			e.fails(e.do(e.web, "getKey", admin("name", name)), apierr.NotExist, 200)
		}

		// updateKey follows the same rule for the level it sets.
		e.ok(e.do(e.web, "updateKey", user("boss", "name", "boss-0", "accessLevel", "50")))
		e.ok(e.do(e.web, "updateKey", user("boss", "name", "boss-0", "accesslevel", "33")))
		e.fails(e.do(e.web, "updateKey", user("boss", "name", "boss-0", "accessLevel", "40")), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "updateKey", user("boss", "name", "boss-0", "accessLevel", "90")), apierr.InsufficientAccess, 200)
		if l := field(e.ok(e.do(e.web, "getKey", admin("name", "boss-0"))), "accessLevel"); l != "33" {
			t.Fatalf("boss-0 after refused updates: level %s", l)
		}
		e.ok(e.do(e.web, "updateKey", admin("name", "boss-0", "accessLevel", "95")))
		e.fails(e.do(e.web, "updateKey", user("corp", "name", "boss-0", "enabled", "0")), apierr.InsufficientAccess, 200)

		// The keys an administrator sees are its own of levels it may create: its Asterisk
		// key among them, not the master admin's, nor one raised above its reach.
		e.ok(e.do(e.web, "getKey", user("boss", "name", "boss-50")))
		e.fails(e.do(e.web, "getKey", user("boss", "name", "boss-0")), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getKey", user("boss", "name", "admin-50")), apierr.DoesNotBelongToYou, 200)
		var names []string
		for _, k := range e.ok(e.do(e.web, "getKeys", user("boss"))).Response.([]any) {
			names = append(names, k.(map[string]any)["name"].(string))
		}
		if strings.Join(names, ",") != "boss-11,boss-33,boss-50" {
			t.Fatalf("boss's keys: %v", names)
		}
		e.ok(e.do(e.web, "updateKey", user("boss", "name", "boss-50", "source", "10.0.0.1, 127.0.0.1")))

		// An Asterisk key acts on the users its owner manages, and on no one else.
		secret := func(name string) string {
			return field(e.ok(e.do(e.web, "getKey", admin("name", name))), "key")
		}
		bossAst, adminAst := secret("boss-50"), secret("admin-50")
		e.ok(e.do(bossAst, "getTextBalance", url.Values{"login": {"cust"}}))
		e.fails(e.do(bossAst, "getTextBalance", url.Values{"login": {"boss2"}}), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(bossAst, "getTextBalance", url.Values{"login": {adminName}}), apierr.DoesNotBelongToYou, 200)
		e.ok(e.do(adminAst, "getTextBalance", url.Values{"login": {"boss2"}}))
		// Through a server key nobody reaches above that key's level: an Asterisk key
		// (acting as its owner, the master admin) does not mint an exclusive one.
		e.fails(e.do(adminAst, "addKey", url.Values{"name": {"minted"}, "accessLevel": {"90"}}), apierr.InsufficientAccess, 200)
		e.ok(e.do(adminAst, "addKey", url.Values{"name": {"minted"}, "accessLevel": {"50"}}))
	})
}

// TestBanIsLogged: a ban is logged at WARN with the address and the key's first
// characters, never the whole key.
func TestBanIsLogged(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		var logs bytes.Buffer
		e.s.Gate.Bans.Log = slog.New(slog.NewTextHandler(&logs, nil))
		const bad = "typo-in-extensions-conf"
		e.fails(e.doFrom("192.0.2.77", bad, "getCurrencies", nil), apierr.Unauthorized, 401)
		line := logs.String()
		if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "address=192.0.2.77") ||
			!strings.Contains(line, "key=typo…") || strings.Contains(line, bad) {
			t.Fatalf("ban log: %q", line)
		}
	})
}
