package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// TestKeyAndBansCommands: `key add|list|revoke` and `bans list|unban|whitelist` through
// run, beside a daemon (the real router) on the same database that sees what they do.
func TestKeyAndBansCommands(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testKeyAndBans(t, dbtest.DSN(t, dialect)) })
	}
}

func testKeyAndBans(t *testing.T, dsn string) {
	ctx := context.Background()
	var out, errb bytes.Buffer
	cli := func(args ...string) error {
		out.Reset()
		errb.Reset()
		return run(ctx, args, &out, &errb)
	}
	must := func(args ...string) string {
		t.Helper()
		if err := cli(args...); err != nil {
			t.Fatalf("%v: %v %s", args, err, errb.String())
		}
		return out.String()
	}
	const webKey = "0123456789abc"
	must("init", "--db", dsn, "--admin-user", "root", "--admin-password", "pw", "--api-key", webKey)

	// The daemon, with caches short enough to watch them expire.
	d, err := db.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := billing.New(d, billing.DefaultConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	s.Gate.Keys.TTL, s.Gate.Bans.TTL = 100*time.Millisecond, 100*time.Millisecond
	h := s.Handler()
	call := func(from, key, method, query string) (int, string) {
		t.Helper()
		req := httptest.NewRequest("GET", "/billing/api/2.2/"+key+"/"+method+"?"+query, nil)
		req.RemoteAddr = from + ":5060"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var env struct{ Response any }
		json.Unmarshal(rec.Body.Bytes(), &env)
		r, _ := env.Response.(string)
		return rec.Code, r
	}
	// alice, registered by the master admin through the web key.
	auth := "login=root&password=" + md5hex("pw")
	if code, r := call("192.0.2.1", webKey, "registerUser", auth+"&user=alice&web_password="+md5hex("a")); code != 200 || strings.HasPrefix(r, "E_") {
		t.Fatalf("registerUser: %d %s", code, r)
	}

	// key add: the secret alone on the last line; the key works at once for a user the
	// master admin manages, at level 50.
	lines := strings.Split(strings.TrimSpace(must("key", "add", "--db", dsn, "--name", "pbx1", "--level", "50", "--source", "192.0.2.0/24")), "\n")
	secret := lines[len(lines)-1]
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(secret) {
		t.Fatalf("key add printed %q", out.String())
	}
	if code, r := call("192.0.2.10", secret, "getTextBalance", "login=alice"); code != 200 || strings.HasPrefix(r, "E_") {
		t.Fatalf("level-50 key: %d %s", code, r)
	}
	// A chosen secret and owner; the secret is printed as given.
	if got := must("key", "add", "--db", dsn, "--name", "ops", "--level", "90", "--owner", "root", "--auth-by", "id", "--key", "ops-secret-0123"); !strings.HasSuffix(got, "\nops-secret-0123\n") {
		t.Fatalf("key add --key: %q", got)
	}

	// Bad input: a clear error, non-zero exit, nothing written.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "x", "--level", "50", "--auth-by", "email"}, "auth_by"},
		{[]string{"--name", "x", "--level", "50", "--source", "300.1.1.1"}, "source"},
		{[]string{"--name", "x", "--level", "100"}, "0 to 99"},
		{[]string{"--name", "x", "--level", "-3"}, "0 to 99"},
		{[]string{"--name", "pbx1", "--level", "50"}, "exists"},
		{[]string{"--name", "x", "--level", "50", "--owner", "ghost"}, "ghost"},
		{[]string{"--name", "x", "--level", "50", "--key", "short"}, "apikey"},
		{[]string{"--name", "x"}, "--level"},
		{[]string{"--level", "1"}, "--name"},
	} {
		err := cli(append([]string{"key", "add", "--db", dsn}, c.args...)...)
		if err == nil || !strings.Contains(err.Error()+errb.String(), c.want) { // usage errors are on stderr
			t.Errorf("key add %v: %v, want an error about %s", c.args, err, c.want)
		}
	}

	// key list: one key a line, never a secret in full.
	list := must("key", "list", "--db", dsn)
	if n := strings.Count(list, "\n"); n != 4 { // the header, web, ops, pbx1
		t.Fatalf("key list:\n%s", list)
	}
	if !regexp.MustCompile(`(?m)^pbx1\s+50\s+username\s+192\.0\.2\.0/24\s+yes\s+`+secret[:4]+`…$`).MatchString(list) ||
		!regexp.MustCompile(`(?m)^web\s+0\s+username\s+\*\s+yes\s+0123…$`).MatchString(list) {
		t.Fatalf("key list:\n%s", list)
	}
	for _, full := range []string{secret, webKey, "ops-secret-0123"} {
		if strings.Contains(list, full) {
			t.Fatalf("key list shows a secret in full:\n%s", list)
		}
	}

	// key revoke: the running daemon refuses the key once its cache expires (401), and
	// that bad key bans the address.
	must("key", "revoke", "--db", dsn, "--name", "pbx1")
	if err := cli("key", "revoke", "--db", dsn, "--name", "nope"); err == nil {
		t.Fatal("revoked an unknown key")
	}
	if !regexp.MustCompile(`(?m)^pbx1\s+50\s+.*revoked`).MatchString(must("key", "list", "--db", dsn)) {
		t.Fatalf("key list after revoke:\n%s", out.String())
	}
	time.Sleep(150 * time.Millisecond)
	if code, r := call("192.0.2.10", secret, "getTextBalance", "login=alice"); code != 401 || r != "E_UNAUTHORIZED" {
		t.Fatalf("revoked key: %d %s", code, r)
	}
	if code, _ := call("192.0.2.10", webKey, "getCurrencies", ""); code != 403 {
		t.Fatalf("banned address with a good key: %d", code)
	}

	// bans list, unban: the address gets through again.
	if !regexp.MustCompile(`(?m)^\d+\s+192\.0\.2\.10\s+narayanad\s+no\s+\S+ \S+\s+invalid API key$`).MatchString(must("bans", "list", "--db", dsn)) {
		t.Fatalf("bans list:\n%s", out.String())
	}
	must("bans", "unban", "--db", dsn, "192.0.2.10")
	if err := cli("bans", "unban", "--db", dsn, "192.0.2.10"); err == nil || !strings.Contains(err.Error(), "not banned") {
		t.Fatalf("unban twice: %v", err)
	}
	time.Sleep(150 * time.Millisecond)
	if code, _ := call("192.0.2.10", webKey, "getCurrencies", ""); code != 200 {
		t.Fatalf("unbanned address: %d", code)
	}

	// bans whitelist: a bad key from there is refused but bans nothing.
	must("bans", "whitelist", "--db", dsn, "192.0.2.10")
	if got := must("bans", "whitelist", "--db", dsn, "192.0.2.10"); !strings.Contains(got, "already") {
		t.Fatalf("whitelist twice: %q", got)
	}
	time.Sleep(150 * time.Millisecond)
	if code, _ := call("192.0.2.10", secret, "getCurrencies", ""); code != 401 {
		t.Fatalf("revoked key from a whitelisted address: %d", code)
	}
	if code, _ := call("192.0.2.10", webKey, "getCurrencies", ""); code != 200 {
		t.Fatalf("whitelisted address after a bad key: %d", code)
	}
	if !regexp.MustCompile(`(?m)^\d+\s+192\.0\.2\.10\s+whitelist\s`).MatchString(must("bans", "list", "--db", dsn)) {
		t.Fatalf("bans list:\n%s", out.String())
	}
	for _, args := range [][]string{{"bans", "unban", "--db", dsn, "not-an-ip"}, {"bans", "unban", "--db", dsn}, {"bans", "block"}, {"key", "drop"}} {
		if err := cli(args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
