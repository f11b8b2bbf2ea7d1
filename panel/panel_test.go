package panel

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

func md5s(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }

// server is the API and the panel over a fresh database, as serve mounts them.
func server(t *testing.T, d *db.DB) (*httptest.Server, *billing.Service) {
	cfg := billing.DefaultConfig()
	cfg.PasswordCost, cfg.MaintenanceInterval = 4, 0
	if err := billing.Bootstrap(context.Background(), d, cfg, "admin", md5s("adminpw"), "web-key-0123456789"); err != nil {
		t.Fatal(err)
	}
	svc := billing.New(d, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	mux.Handle(Prefix, New(svc, cfg.PanelKey))
	mux.Handle("/", svc.Handler())
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	return ts, svc
}

type browser struct {
	t  *testing.T
	c  *http.Client
	ts *httptest.Server
}

func newBrowser(t *testing.T, ts *httptest.Server) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, ts: ts, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) get(path string) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.Get(b.ts.URL + path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) post(path string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	resp, err := b.c.PostForm(b.ts.URL+path, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func (b *browser) csrf(page string) string {
	b.t.Helper()
	_, body := b.get(page)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no CSRF field on %s", page)
	}
	return m[1]
}

func (b *browser) login(user, pw string) *http.Response {
	b.t.Helper()
	resp, _ := b.post("/panel/login", url.Values{"csrf": {b.csrf("/panel/login")}, "login": {user}, "password": {pw}})
	return resp
}

// TestPanelSecurity: what the browser holds and what the panel refuses.
func TestPanelSecurity(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		ts, _ := server(t, d)
		b := newBrowser(t, ts)
		resp, body := b.get("/panel/login")
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
			t.Fatalf("CSP: %q", csp)
		}
		if strings.Contains(body, "<script>") || strings.Contains(body, " style=") || strings.Contains(body, " onclick") {
			t.Fatal("an inline script or style")
		}
		// Without the CSRF token nothing is posted, the login included.
		if resp, _ := b.post("/panel/login", url.Values{"login": {"admin"}, "password": {"adminpw"}}); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("login without CSRF: %d", resp.StatusCode)
		}
		if resp := b.login("admin", "wrong"); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", resp.StatusCode)
		}
		resp = b.login("admin", "adminpw")
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/panel/home" {
			t.Fatalf("login: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		var access string
		for _, c := range resp.Cookies() {
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/panel/" {
				t.Fatalf("cookie %s: %+v", c.Name, c)
			}
			if c.Name == cookieAccess {
				access = c.Value
			}
			if strings.Contains(c.Value, md5s("adminpw")) {
				t.Fatal("the browser holds the password's md5")
			}
		}
		if len(access) != 64 {
			t.Fatalf("access token cookie: %q", access)
		}
		// The cookie's token is an API session like any other: in a body it works, in a URL it is refused.
		api := ts.URL + "/billing/api/2.2/web-key-0123456789/getInfo"
		if r, _ := http.PostForm(api, url.Values{"token": {access}}); r.StatusCode != 200 {
			t.Fatalf("token in a body: %d", r.StatusCode)
		}
		if r, _ := http.Get(api + "?token=" + access); r.StatusCode != 400 {
			t.Fatalf("token in a URL: %d", r.StatusCode)
		}
		// A page that changes nothing needs no token; an action does.
		if resp, _ := b.get("/panel/users"); resp.StatusCode != 200 {
			t.Fatalf("users: %d", resp.StatusCode)
		}
		csrf := b.csrf("/panel/users")
		reg := url.Values{"_back": {"/panel/users"}, "user": {"carol"}, "new_password": {"carol-pw"}, "accesslevel": {"11"}}
		if resp, _ := b.post("/panel/do/registerUserForm", reg); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("action without CSRF: %d", resp.StatusCode)
		}
		reg.Set("csrf", strings.Repeat("0", len(csrf)))
		if resp, _ := b.post("/panel/do/registerUserForm", reg); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("action with a wrong CSRF token: %d", resp.StatusCode)
		}
		reg.Set("csrf", csrf)
		if resp, _ := b.post("/panel/do/registerUserForm", reg); resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "ok=") {
			t.Fatalf("register: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		// An open redirect is not: _back stays in the panel.
		if resp, _ := b.post("/panel/do/updateUser", url.Values{"csrf": {csrf}, "_back": {"//evil.example/"}, "language": {"english"}}); !strings.HasPrefix(resp.Header.Get("Location"), "/panel/home") {
			t.Fatalf("redirect to %s", resp.Header.Get("Location"))
		}
		// A method no page offers is not reachable through the panel.
		if resp, _ := b.post("/panel/do/deleteUser", url.Values{"csrf": {csrf}, "user": {"carol"}}); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("deleteUser through the panel: %d", resp.StatusCode)
		}
		// The new user logs in with the password the form took (sent as its md5).
		carol := newBrowser(t, ts)
		if resp := carol.login("carol", "carol-pw"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("carol: %d", resp.StatusCode)
		}
		// Her rights are hers: the gate refuses her the administrator's pages.
		if resp, body := carol.get("/panel/users"); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "E_INSUFFICIENT_ACCESS") {
			t.Fatalf("carol on users: %d", resp.StatusCode)
		}
		// A lock ends her session at once.
		b.post("/panel/do/updateUser", url.Values{"csrf": {csrf}, "_back": {"/panel/users"}, "username": {"carol"}, "active": {"-1"}})
		if resp, _ := carol.get("/panel/home"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/panel/login" {
			t.Fatalf("locked carol: %d %s", resp.StatusCode, resp.Header.Get("Location"))
		}
		// Logout ends the session: the old token no longer opens anything.
		b.post("/panel/logout", url.Values{"csrf": {csrf}})
		if r, _ := http.PostForm(api, url.Values{"token": {access}}); r.StatusCode != 200 {
			t.Fatal(r.StatusCode)
		} else if body, _ := io.ReadAll(r.Body); !strings.Contains(string(body), "E_AUTH_FAILED") {
			t.Fatalf("token after logout: %s", body)
		}
		if resp, _ := b.get("/panel/home"); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("home after logout: %d", resp.StatusCode)
		}
	})
}
