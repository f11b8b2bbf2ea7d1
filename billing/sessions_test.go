package billing

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// post sends a form POST through the router, with an optional Authorization header.
func (e *env) post(key, method string, form url.Values, bearer string) answer {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/billing/api/2.2/"+key+"/"+method, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.RemoteAddr = net.JoinHostPort("127.0.0.1", "40000")
	return e.serve(req)
}

func tok(token string, kv ...string) url.Values {
	v := url.Values{"token": {token}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func TestSessions(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "alice", 11)
		e.register(admin(), "bob", 11)
		login := e.ok(e.post(e.web, "login", user("alice"), ""))
		access, refresh := field(login, "access_token"), field(login, "refresh_token")
		if len(access) != 64 || len(refresh) != 64 || access == refresh || field(login, "username") != "alice" ||
			field(login, "expires_in") != "900" {
			t.Fatalf("login answered %s", login.Body)
		}
		// The token stands in for login and password, in the body or the header.
		if got := field(e.ok(e.post(e.web, "getInfo", tok(access), "")), "username"); got != "alice" {
			t.Fatalf("getInfo by token: %s", got)
		}
		if got := field(e.ok(e.post(e.web, "getInfo", nil, access)), "username"); got != "alice" {
			t.Fatalf("getInfo by bearer: %s", got)
		}
		// Rights are the user's: alice is no manager, and bob is not hers.
		e.fails(e.post(e.web, "getUsers", tok(access), ""), "E_INSUFFICIENT_ACCESS", 200)
		e.fails(e.post(e.web, "getInfo", tok(access, "username", "bob"), ""), "E_DOES_NOT_BELONG_TO_YOU", 200)
		// Never in a URL; a wrong token is a failed login; a token opens no second session.
		e.fails(e.do(e.web, "getInfo", tok(access)), "E_INVALID_ARGUMENT", 400)
		e.fails(e.do(e.web, "refreshToken", url.Values{"refresh_token": {refresh}}), "E_INVALID_ARGUMENT", 400)
		e.fails(e.post(e.web, "getInfo", tok(strings.Repeat("0", 64)), ""), "E_AUTH_FAILED", 200)
		e.fails(e.post(e.web, "getInfo", tok(refresh), ""), "E_AUTH_FAILED", 200)
		e.fails(e.post(e.web, "login", tok(access), ""), "E_INVALID_ARGUMENT", 400)
		e.fails(e.post(e.web, "login", user("alice", "password", md5hex("nope")), ""), "E_AUTH_FAILED", 200)
		// Only the hash is stored.
		var n int
		if err := e.s.DB.Q().Get(context.Background(), &n, `SELECT count(*) FROM sessions WHERE access_hash = ? OR refresh_hash = ?`, access, refresh); err != nil || n != 0 {
			t.Fatalf("a token is stored as it is (%d, %v)", n, err)
		}
		// Another client key does not take the session.
		e.addKey("name", "other", "apikey", "other-web-key-0123")
		e.fails(e.post("other-web-key-0123", "getInfo", tok(access), ""), "E_AUTH_FAILED", 200)

		// Refreshing rotates both tokens.
		ref := e.ok(e.post(e.web, "refreshToken", url.Values{"refresh_token": {refresh}}, ""))
		access2, refresh2 := field(ref, "access_token"), field(ref, "refresh_token")
		e.fails(e.post(e.web, "getInfo", tok(access), ""), "E_AUTH_FAILED", 200)
		e.fails(e.post(e.web, "refreshToken", url.Values{"refresh_token": {refresh}}, ""), "E_AUTH_FAILED", 200)
		e.ok(e.post(e.web, "getInfo", tok(access2), ""))

		// The access token expires; the refresh token renews it until its own end.
		start := time.Now()
		e.s.Now = func() time.Time { return start.Add(16 * time.Minute) }
		e.fails(e.post(e.web, "getInfo", tok(access2), ""), "E_AUTH_FAILED", 200)
		ref = e.ok(e.post(e.web, "refreshToken", url.Values{"refresh_token": {refresh2}}, ""))
		e.ok(e.post(e.web, "getInfo", tok(field(ref, "access_token")), ""))
		e.s.Now = func() time.Time { return start.Add(8 * 24 * time.Hour) }
		e.fails(e.post(e.web, "refreshToken", url.Values{"refresh_token": {field(ref, "refresh_token")}}, ""), "E_AUTH_FAILED", 200)
		e.s.Now = time.Now

		// logout ends the session; all=true ends every one.
		a := field(e.ok(e.post(e.web, "login", user("alice"), "")), "access_token")
		b := field(e.ok(e.post(e.web, "login", user("alice"), "")), "access_token")
		e.ok(e.post(e.web, "logout", tok(a), ""))
		e.fails(e.post(e.web, "getInfo", tok(a), ""), "E_AUTH_FAILED", 200)
		e.ok(e.post(e.web, "getInfo", tok(b), ""))
		e.ok(e.post(e.web, "logout", tok(b, "all", "true"), ""))
		e.fails(e.post(e.web, "getInfo", tok(b), ""), "E_AUTH_FAILED", 200)

		// A password change ends the sessions, whoever makes it.
		a = field(e.ok(e.post(e.web, "login", user("alice"), "")), "access_token")
		e.updateUser("alice", "web_password", md5hex("alicepw"))
		e.fails(e.post(e.web, "getInfo", tok(a), ""), "E_AUTH_FAILED", 200)
		// So does a lock, and unlocking does not bring them back.
		a = field(e.ok(e.post(e.web, "login", user("alice"), "")), "access_token")
		r := field(e.ok(e.post(e.web, "login", user("alice"), "")), "refresh_token")
		e.updateUser("alice", "active", "-1")
		e.fails(e.post(e.web, "getInfo", tok(a), ""), "E_AUTH_FAILED", 200)
		e.fails(e.post(e.web, "login", user("alice"), ""), "E_USER_LOCKED", 200)
		e.updateUser("alice", "active", "1")
		e.fails(e.post(e.web, "refreshToken", url.Values{"refresh_token": {r}}, ""), "E_AUTH_FAILED", 200)
		e.ok(e.post(e.web, "login", user("alice"), ""))
	})
}
