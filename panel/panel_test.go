package panel

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

func md5s(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }

// server is the API and the panel over a fresh database, as serve mounts them.
func server(t *testing.T, d *db.DB, opts ...func(*billing.Config)) (*httptest.Server, *billing.Service) {
	cfg := billing.DefaultConfig()
	cfg.PasswordCost, cfg.MaintenanceInterval = 4, 0
	for _, o := range opts {
		o(&cfg)
	}
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

// TestPanelBankTransfer: a customer's bank top-up shows what createInvoice answers; the
// administrator's "Mark paid" (payInvoice) credits it once, and only with the CSRF token.
func TestPanelBankTransfer(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		ts, _ := server(t, d, func(c *billing.Config) { c.OperatorBank = "Test Bank\\nIBAN DE00 1234 5678" })
		admin := newBrowser(t, ts)
		admin.login("admin", "adminpw")
		csrf := admin.csrf("/panel/users")
		admin.post("/panel/do/registerUserForm", url.Values{"csrf": {csrf}, "_back": {"/panel/users"}, "user": {"carol"},
			"new_password": {"carol-pw"}, "accesslevel": {"11"}})
		carol := newBrowser(t, ts)
		carol.login("carol", "carol-pw")
		if _, body := carol.get("/panel/topup"); !strings.Contains(body, `<option value="bank" selected>Bank transfer</option>`) {
			t.Fatalf("the top-up page does not offer the bank: %s", body)
		}
		before := balance(t, carol)
		form := url.Values{"payment_method": {"bank"}, "payment_amount": {"10"}}
		if resp, _ := carol.post("/panel/topup", form); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("top-up without CSRF: %d", resp.StatusCode)
		}
		form.Set("csrf", carol.csrf("/panel/topup"))
		resp, body := carol.post("/panel/topup", form)
		inv := regexp.MustCompile(`<dt>Invoice</dt><dd>(\d+)</dd>`).FindStringSubmatch(body)
		if resp.StatusCode != 200 || inv == nil || !strings.Contains(body, "Test Bank, IBAN DE00 1234 5678") ||
			!strings.Contains(body, "Invoice "+inv[1]) || !strings.Contains(body, `href="/panel/invoice.pdf?id=`+inv[1]+`"`) {
			t.Fatalf("the bank top-up: %d %s", resp.StatusCode, body)
		}
		if resp, pdf := carol.get("/panel/invoice.pdf?id=" + inv[1]); resp.StatusCode != 200 || !strings.HasPrefix(pdf, "%PDF") {
			t.Fatalf("the invoice's PDF: %d", resp.StatusCode)
		}
		// The administrator sees it waiting and confirms it; a second confirmation changes nothing.
		if _, body := admin.get("/panel/banktransfers"); !strings.Contains(body, "<td>carol</td>") || !strings.Contains(body, ">Mark paid</button>") {
			t.Fatalf("the bank transfers page: %s", body)
		}
		pay := url.Values{"_back": {"/panel/banktransfers"}, "invoice": {inv[1]}, "reference": {"STMT-1"}}
		if resp, _ := admin.post("/panel/do/payInvoice", pay); resp.StatusCode != http.StatusForbidden {
			t.Fatalf("payInvoice without CSRF: %d", resp.StatusCode)
		}
		if got := balance(t, carol); got != before {
			t.Fatalf("balance before the confirmation: %d cents, was %d", got, before)
		}
		pay.Set("csrf", csrf)
		for range 2 {
			if resp, _ := admin.post("/panel/do/payInvoice", pay); !strings.Contains(resp.Header.Get("Location"), "ok=payInvoice") {
				t.Fatalf("payInvoice: %d %s", resp.StatusCode, resp.Header.Get("Location"))
			}
		}
		if got, want := balance(t, carol), before+1000; got != want {
			t.Fatalf("balance after the confirmation: %d cents, want %d", got, want)
		}
		if _, body := admin.get("/panel/banktransfers"); strings.Contains(body, ">Mark paid</button>") || !strings.Contains(body, "STMT-1") {
			t.Fatalf("the bank transfers page after the confirmation: %s", body)
		}
		// Carol cannot confirm her own transfer: the gate refuses her payInvoice.
		if resp, _ := carol.post("/panel/do/payInvoice", url.Values{"csrf": {form.Get("csrf")}, "_back": {"/panel/topup"}, "invoice": {inv[1]}}); !strings.Contains(resp.Header.Get("Location"), "E_INSUFFICIENT_ACCESS") {
			t.Fatalf("carol's payInvoice: %s", resp.Header.Get("Location"))
		}
	})
}

var balanceField = regexp.MustCompile(`<b id="balance">([0-9.-]+) `)

// balance is the balance the panel's header shows, in cents.
func balance(t *testing.T, b *browser) int64 {
	t.Helper()
	_, body := b.get("/panel/home")
	m := balanceField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no balance on the page: %s", body)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return int64(math.Round(f * 100))
}
