// Package panel is the web panel at /panel/: server-rendered pages for customers and
// administrators. It is a client of the method table like any other: every page and every
// action calls billing.(*Service).Call with the session's access token and the client key
// named by the setting panel_key, after the same Gate.Admit as an HTTP request (bans, the
// key's source mask, secure_only). It has no SQL and no access rule of its own: what a user
// may see or do is what the gate and the handlers let that user see or do.
package panel

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/keys"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Prefix is where the panel is mounted.
const Prefix = "/panel/"

// Cookies. All HttpOnly, SameSite=Strict, Path=/panel/, Secure over TLS.
const (
	cookieAccess  = "nara_at"
	cookieRefresh = "nara_rt"
	cookieCSRF    = "nara_csrf"
)

// csp lets in nothing but the panel's own files: no inline script or style, no eval (htmx
// is configured without it), no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Panel serves the web panel.
type Panel struct {
	svc  *billing.Service
	key  string // the client key's name (panel_key)
	log  *slog.Logger
	tmpl *template.Template
	mux  *http.ServeMux
}

// New returns the panel over svc, logging users in through the client key named keyName.
func New(svc *billing.Service, keyName string) *Panel {
	p := &Panel{svc: svc, key: keyName, log: svc.Log, mux: http.NewServeMux()}
	p.tmpl = template.Must(template.New("").Funcs(template.FuncMap{
		"t":    func(s string) string { return s },
		"csrf": func() string { return "" },
	}).ParseFS(templateFS, "templates/*.html"))
	static, _ := fs.Sub(staticFS, "static")
	p.mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", http.FileServerFS(static)))
	p.mux.HandleFunc("GET "+Prefix+"{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix+"home", http.StatusSeeOther)
	})
	p.mux.HandleFunc("GET "+Prefix+"login", p.loginPage)
	p.mux.HandleFunc("POST "+Prefix+"login", p.loginPost)
	p.mux.HandleFunc("POST "+Prefix+"logout", p.page(p.logout))
	p.mux.HandleFunc("POST "+Prefix+"do/{method}", p.page(p.action))
	p.mux.HandleFunc("GET "+Prefix+"calls.csv", p.page(p.callsCSV))
	p.mux.HandleFunc("GET "+Prefix+"invoice.pdf", p.page(p.invoicePDF))
	p.mux.HandleFunc("POST "+Prefix+"topup", p.page(p.topupPost))
	p.mux.HandleFunc("POST "+Prefix+"keys/new", p.page(p.newKey))
	p.mux.HandleFunc("POST "+Prefix+"deck", p.page(p.deck))
	for name, fn := range p.pages() {
		p.mux.HandleFunc("GET "+Prefix+name, p.page(fn))
	}
	return p
}

func (p *Panel) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if !strings.HasPrefix(r.URL.Path, Prefix+"static/") {
		h.Set("Cache-Control", "no-store")
	}
	p.mux.ServeHTTP(w, r)
}

// sess is one request of a logged-in (or logging-in) browser.
type sess struct {
	p      *Panel
	w      http.ResponseWriter
	r      *http.Request
	key    *keys.Key
	remote netip.Addr
	access string
	fresh  string // the refresh token
	csrf   string
	info   map[string]any // getInfo of the user, for the layout
	lang   string
}

// errLogin sends the browser to the login page.
var errLogin = errors.New("panel: log in")

// admit runs the gate's first step for the panel's key, as the HTTP route does for a key
// in the URL: a banned address, or one the key does not allow, gets no page.
func (p *Panel) admit(r *http.Request) (*keys.Key, netip.Addr, error) {
	remote := billing.RemoteAddr(r)
	k, err := p.svc.Gate.Keys.ByName(r.Context(), p.svc.DB.Q(), p.key)
	if err != nil || k.IsServer() {
		return nil, remote, apierr.New(apierr.Unauthorized, "the panel's key %q is not a client key of this billing (setting panel_key)", p.key)
	}
	k, err = p.svc.Gate.Admit(r.Context(), k.APIKey, remote, r.TLS != nil)
	return k, remote, err
}

func (p *Panel) begin(w http.ResponseWriter, r *http.Request) (*sess, error) {
	k, remote, err := p.admit(r)
	if err != nil {
		return nil, err
	}
	s := &sess{p: p, w: w, r: r, key: k, remote: remote, lang: "english"}
	if c, err := r.Cookie(cookieAccess); err == nil {
		s.access = c.Value
	}
	if c, err := r.Cookie(cookieRefresh); err == nil {
		s.fresh = c.Value
	}
	if c, err := r.Cookie(cookieCSRF); err == nil {
		s.csrf = c.Value
	}
	return s, nil
}

// checkCSRF compares the form's (or htmx's header's) token with the session's cookie.
func (s *sess) checkCSRF() error {
	got := s.r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = s.r.PostFormValue("csrf")
	}
	if s.csrf == "" || subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) != 1 {
		return apierr.New(apierr.Forbidden, "the form has expired: reload the page and try again")
	}
	return nil
}

func (s *sess) setCookie(name, value string, maxAge int) {
	http.SetCookie(s.w, &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge, HttpOnly: true,
		Secure: s.r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

func (s *sess) setTokens(resp any) {
	m := toMap(resp)
	s.access, s.fresh = str(m["access_token"]), str(m["refresh_token"])
	life := 7 * 24 * 3600
	if n, ok := m["refresh_expires_in"].(json.Number); ok {
		if v, err := n.Int64(); err == nil {
			life = int(v)
		}
	}
	s.setCookie(cookieAccess, s.access, life)
	s.setCookie(cookieRefresh, s.fresh, life)
}

func (s *sess) clearTokens() {
	s.access, s.fresh = "", ""
	s.setCookie(cookieAccess, "", -1)
	s.setCookie(cookieRefresh, "", -1)
}

// raw calls a method as the session's user; an expired access token is refreshed once.
func (s *sess) raw(method string, params map[string]string) (any, error) {
	if s.access == "" {
		return nil, errLogin
	}
	do := func() (any, error) {
		in := make(map[string]string, len(params)+1)
		for k, v := range params {
			in[k] = v
		}
		in["token"] = s.access
		return s.p.svc.Call(s.r.Context(), billing.Call{Method: method, Params: in, Key: s.key, Version: "2.3", Remote: s.remote})
	}
	resp, err := do()
	if apierr.Code(err) != apierr.AuthFailed {
		return resp, err
	}
	if s.fresh == "" {
		return nil, errLogin
	}
	t, rerr := s.p.svc.Call(s.r.Context(), billing.Call{Method: "refreshToken", Key: s.key, Version: "2.3", Remote: s.remote,
		Params: map[string]string{"refresh_token": s.fresh}})
	if rerr != nil {
		s.clearTokens()
		return nil, errLogin
	}
	s.setTokens(t)
	return do()
}

// call is raw with the answer as JSON shows it (maps, slices, json.Number), for the pages.
func (s *sess) call(method string, kv ...string) (any, error) {
	params := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			params[kv[i]] = kv[i+1]
		}
	}
	resp, err := s.raw(method, params)
	if err != nil {
		return nil, err
	}
	return toJSON(resp), nil
}

func toJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var out any
	dec.Decode(&out)
	return out
}

// page wraps a page or action: the gate's admission, the session, CSRF on POST, the
// layout's user data, and the error page.
func (p *Panel) page(fn func(s *sess) (*view, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, err := p.begin(w, r)
		if err != nil {
			p.fail(w, r, nil, err)
			return
		}
		if r.Method == http.MethodPost {
			if err := s.checkCSRF(); err != nil {
				p.fail(w, r, s, err)
				return
			}
		}
		if s.access == "" && s.fresh == "" {
			http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
			return
		}
		info, err := s.call("getInfo")
		if err != nil {
			p.fail(w, r, s, err)
			return
		}
		s.info = toMap(info)
		if str(s.info["language"]) == "russian" {
			s.lang = "russian"
		}
		v, err := fn(s)
		if err != nil {
			p.fail(w, r, s, err)
			return
		}
		if v == nil { // the handler wrote the answer (a redirect, a download)
			return
		}
		s.render(http.StatusOK, v)
	}
}

// fail answers an error: the login page when the session is gone, else the error page.
func (p *Panel) fail(w http.ResponseWriter, r *http.Request, s *sess, err error) {
	if errors.Is(err, errLogin) {
		if s != nil {
			s.clearTokens()
		}
		http.Redirect(w, r, Prefix+"login", http.StatusSeeOther)
		return
	}
	status := apierr.Status(apierr.Code(err))
	var ae *apierr.Error
	msg := "internal error"
	if errors.As(err, &ae) {
		msg = apierr.Code(err) + ": " + ae.Message
	} else {
		p.log.Error("panel", "path", r.URL.Path, "err", err)
		status = http.StatusInternalServerError
	}
	if status == http.StatusOK { // the API's refusals answer 200 inside an envelope; a page says it in its status
		status = http.StatusBadRequest
		switch apierr.Code(err) {
		case apierr.InsufficientAccess, apierr.DoesNotBelongToYou, apierr.UserLocked:
			status = http.StatusForbidden
		case apierr.NotExist:
			status = http.StatusNotFound
		}
	}
	if s == nil {
		s = &sess{p: p, w: w, r: r, lang: "english"}
	}
	s.render(status, &view{Title: "Error", Error: msg})
}

func (s *sess) render(status int, v *view) {
	v.Lang, v.CSRF = s.lang, s.csrf
	if s.info != nil {
		v.User = str(s.info["username"])
		v.Level = num(s.info["accesslevel"])
		v.Balance = str(s.info["displaybalance"]) + " " + str(s.info["displaycurrency"])
	}
	if v.Flash == "" && s.r.URL.Query().Get("ok") != "" {
		v.Flash = "Done."
	}
	if v.Error == "" {
		v.Error = s.r.URL.Query().Get("err")
	}
	v.Nav = nav(v.Level)
	t, err := s.p.tmpl.Clone()
	if err == nil {
		lang := s.lang
		t.Funcs(template.FuncMap{"t": func(x string) string { return translate(lang, x) }, "csrf": func() string { return s.csrf }})
		var b bytes.Buffer
		if err = t.ExecuteTemplate(&b, "page", v); err == nil {
			s.w.Header().Set("Content-Type", "text/html; charset=utf-8")
			s.w.WriteHeader(status)
			s.w.Write(b.Bytes())
			return
		}
	}
	s.p.log.Error("panel: template", "err", err)
	http.Error(s.w, "internal error", http.StatusInternalServerError)
}

// newCSRF starts a CSRF token for a browser that has none (the login form).
func (s *sess) newCSRF() {
	var b [24]byte
	rand.Read(b[:])
	s.csrf = hex.EncodeToString(b[:])
	s.setCookie(cookieCSRF, s.csrf, 0)
}

func (p *Panel) loginPage(w http.ResponseWriter, r *http.Request) {
	s, err := p.begin(w, r)
	if err != nil {
		p.fail(w, r, nil, err)
		return
	}
	if s.csrf == "" {
		s.newCSRF()
	}
	s.render(http.StatusOK, loginView(""))
}

// loginPost turns the password into its md5 (the API's wire form) here, on the server, and
// opens a session: the browser keeps only the session's tokens, in HttpOnly cookies.
func (p *Panel) loginPost(w http.ResponseWriter, r *http.Request) {
	s, err := p.begin(w, r)
	if err != nil {
		p.fail(w, r, nil, err)
		return
	}
	if err := s.checkCSRF(); err != nil {
		s.newCSRF()
		s.render(http.StatusForbidden, loginView("The form has expired: try again."))
		return
	}
	resp, err := p.svc.Call(r.Context(), billing.Call{Method: "login", Key: s.key, Version: "2.3", Remote: s.remote,
		Params: map[string]string{"login": r.PostFormValue("login"), "password": md5hex(r.PostFormValue("password"))}})
	if err != nil {
		msg := "Wrong login or password."
		if apierr.Code(err) == apierr.UserLocked {
			msg = "This user is locked."
		}
		s.render(http.StatusUnauthorized, loginView(msg))
		return
	}
	s.setTokens(resp)
	s.newCSRF() // a new session, a new CSRF token
	http.Redirect(w, r, Prefix+"home", http.StatusSeeOther)
}

func (p *Panel) logout(s *sess) (*view, error) {
	s.raw("logout", nil)
	s.clearTokens()
	s.setCookie(cookieCSRF, "", -1)
	http.Redirect(s.w, s.r, Prefix+"login", http.StatusSeeOther)
	return nil, nil
}

// allowed are the methods the panel's forms post to /panel/do/{method}. It is the list of
// what the pages offer, not an access rule: the gate decides whether this user may.
var allowed = map[string]bool{
	"updateUser": true, "transferMoney": true, "registerUser": true, "createExtension": true,
	"updateExtension": true, "deleteExtension": true, "orderDID": true, "renewDID": true, "switchRates": true,
	"createInvoice": true, "activatePrepaidCode": true, "createTicket": true, "updateTicket": true,
	"addRates": true, "updateMarkup": true, "copyDirections": true, "addRoute": true, "addBillType": true,
	"addDID": true, "addDIDPool": true, "revokeKey": true, "unbanIP": true, "banIP": true, "hangupCalls": true,
	"updateAccount": true, "addNews": true, "doMaintenance": true, "payInvoice": true,
	// Forms with a password: the panel sends its md5, as the API wants it.
	"updateUserPassword": true, "registerUserForm": true,
}

// action runs one method with the form's fields and goes back to the page it came from.
func (p *Panel) action(s *sess) (*view, error) {
	method := s.r.PathValue("method")
	if !allowed[method] {
		return nil, apierr.New(apierr.UnknownMethod, "the panel offers no %s", method)
	}
	params := map[string]string{}
	for k, vs := range s.r.PostForm {
		switch k {
		case "csrf", "_back", "login", "password", "token", "refresh_token":
			continue
		}
		if v := strings.TrimSpace(vs[len(vs)-1]); v != "" {
			params[k] = v
		}
	}
	back := localPath(s.r.PostFormValue("_back"))
	pw, withPassword := params["new_password"]
	if withPassword {
		delete(params, "new_password")
		params["web_password"] = md5hex(pw)
	}
	switch method {
	case "updateUserPassword":
		method = "updateUser"
	case "registerUserForm":
		method = "registerUser"
	}
	_, err := s.raw(method, params)
	if err == nil && method == "updateUser" && withPassword && params["username"] == "" {
		// The user's own password: that ends the session (keys/sessions.go), so open the
		// next one with the new password.
		if resp, lerr := p.svc.Call(s.r.Context(), billing.Call{Method: "login", Key: s.key, Version: "2.3", Remote: s.remote,
			Params: map[string]string{"login": str(s.info["username"]), "password": md5hex(pw)}}); lerr == nil {
			s.setTokens(resp)
		}
	}
	if errors.Is(err, errLogin) {
		return nil, err
	}
	q := url.Values{}
	if err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) {
			q.Set("err", apierr.Code(err)+": "+ae.Message)
		} else {
			p.log.Error("panel", "method", method, "err", err)
			q.Set("err", "internal error")
		}
	} else {
		q.Set("ok", method)
	}
	http.Redirect(s.w, s.r, back+sep(back)+q.Encode(), http.StatusSeeOther)
	return nil, nil
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func sep(u string) string {
	if strings.Contains(u, "?") {
		return "&"
	}
	return "?"
}

// localPath keeps a redirect inside the panel.
func localPath(p string) string {
	if !strings.HasPrefix(p, Prefix) || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "\\\r\n") {
		return Prefix + "home"
	}
	if i := strings.Index(p, "?"); i >= 0 { // drop an earlier ok= / err=
		q, _ := url.ParseQuery(p[i+1:])
		q.Del("ok")
		q.Del("err")
		p = p[:i]
		if len(q) > 0 {
			p += "?" + q.Encode()
		}
	}
	return p
}

// download answers a file a method made (billing.Raw).
func (s *sess) download(resp any, name string) (*view, error) {
	raw, ok := resp.(billing.Raw)
	if !ok {
		return nil, apierr.New(apierr.UndefinedInstruction, "no file in the answer")
	}
	s.w.Header().Set("Content-Type", raw.ContentType)
	s.w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	s.w.Write(raw.Body)
	return nil, nil
}
