package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// Versions the route accepts (2.3 adds sip_host, sip_options, sip_address).
var Versions = map[string]bool{"2.2": true, "2.3": true}

// maxBody bounds a request body: large enough for updateDirections' JSON lists.
const maxBody = 32 << 20

// Envelope is the JSON answer of every call (DECISIONS §2).
type Envelope struct {
	Result      bool   `json:"result"`
	Response    any    `json:"response"`
	Description string `json:"description,omitempty"`
}

// Raw is a handler's answer that is not an envelope: a WAV from createTTS, a PDF invoice.
type Raw struct {
	ContentType string
	Body        []byte
}

// Handler returns the HTTP handler: the API route, /healthz and /openapi.json.
func (s *Service) Handler() http.Handler {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = func(err error, c echo.Context) {
		status := http.StatusInternalServerError
		var he *echo.HTTPError
		if errors.As(err, &he) {
			status = he.Code
		}
		if status >= 500 {
			s.Log.Error("unhandled", "err", err)
			status = http.StatusOK
		}
		c.JSON(status, Envelope{Response: apierr.UnknownMethod, Description: http.StatusText(status)})
	}
	e.GET("/healthz", func(c echo.Context) error { return c.String(http.StatusOK, "ok") })
	e.GET("/openapi.json", s.serveOpenAPI)
	e.GET("/metrics", echo.WrapHandler(s.serveMetrics()))
	api := func(c echo.Context) error { s.serveAPI(c); return nil }
	e.GET("/billing/api/:version/:apikey/:method", api)
	e.POST("/billing/api/:version/:apikey/:method", api)
	e.POST(StripeWebhookPath, s.stripeWebhook)
	return e
}

// call is one API request on its way through the gate to a handler.
type call struct {
	method string
	key    *keys.Key
	code   string
	status int
	params map[string]string // nil until read
}

// logRequest writes the request line: who asked (the key's name and the login named,
// never a key, password or hash), which call (uniqueid), the answer and the time taken.
// The attributes are built without a map or closure so that the line costs little
// beside the ~1 µs of formatting (the writer is buffered: cmd/narayanad's logWriter).
func (s *Service) logRequest(r *http.Request, cl *call, took time.Duration) {
	if !s.Log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := make([]slog.Attr, 0, 9)
	attrs = append(attrs, slog.String("method", cl.method))
	if cl.key != nil {
		attrs = append(attrs, slog.String("key", cl.key.Name))
	}
	if v := cl.params["login"]; v != "" {
		attrs = append(attrs, slog.String("login", v))
	}
	if v := cl.params["username"]; v != "" {
		attrs = append(attrs, slog.String("username", v))
	}
	if v := cl.params["uniqueid"]; v != "" {
		attrs = append(attrs, slog.String("uniqueid", v))
	}
	attrs = append(attrs, slog.String("remote", r.RemoteAddr), slog.Int("status", cl.status),
		slog.String("code", cl.code), slog.Duration("duration", took))
	s.Log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
}

func (s *Service) serveAPI(c echo.Context) {
	start := time.Now()
	cl := &call{method: c.Param("method")}
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("panic in method", "method", cl.method, "panic", p, "stack", string(debug.Stack()))
			s.answer(c, cl, nil, apierr.New(apierr.UndefinedInstruction, "the method failed"))
		}
		took := time.Since(start)
		label := cl.method
		if s.method(label) == nil {
			label = "unknown" // never a caller's text as a label
		}
		s.metrics.observe(label, cl.code, took)
		s.logRequest(c.Request(), cl, took)
	}()
	resp, err := s.run(c, cl)
	s.answer(c, cl, resp, err)
}

func (s *Service) run(c echo.Context, cl *call) (any, error) {
	ctx := c.Request().Context()
	remote := RemoteAddr(c.Request())
	k, err := s.Gate.Admit(ctx, c.Param("apikey"), remote, c.Request().TLS != nil)
	if err != nil {
		return nil, err
	}
	cl.key = k
	if !Versions[c.Param("version")] {
		return nil, apierr.New(apierr.IncorrectAPIVersion, "API version %q is not served (2.2, 2.3)", c.Param("version"))
	}
	params, err := readParams(c.Request())
	if err != nil {
		return nil, err
	}
	cl.params = params
	if err := sessionToken(c.Request(), params); err != nil {
		return nil, err
	}
	return s.Call(ctx, Call{Method: cl.method, Params: params, Key: k, Version: c.Param("version"), Remote: remote})
}

// Call is one method call on its way to a handler, from whichever face it came: the HTTP
// route, a script's narayana.call, the command line.
type Call struct {
	Method string
	Params map[string]string // arguments as a query string carries them, login and password included
	Key    *keys.Key         // the key the request was admitted with (Gate.Admit)
	// Caller is set when who asks is already known (a script calling on behalf of the
	// request it serves); login, password and username in Params are then ignored.
	Caller  *keys.Caller
	Version string
	Remote  netip.Addr
}

// Call is the one path from a request to its handler: the method table, the gate's
// rules (keys.Gate.Authorize, or keys.Permit for a caller already known), argument
// binding, the handler.
func (s *Service) Call(ctx context.Context, in Call) (any, error) {
	resp, err := s.call(ctx, in)
	s.metrics.countCall(in.Method, resp, err)
	return resp, err
}

func (s *Service) call(ctx context.Context, in Call) (any, error) {
	m := s.method(in.Method)
	if m == nil {
		return nil, apierr.New(apierr.UnknownMethod, "no method %q", in.Method)
	}
	rule := keys.Request{Method: m.Name, Level: m.Level, AllowLocked: m.AllowLocked}
	caller := in.Caller
	if caller == nil {
		rule.Login, rule.Password, rule.OnBehalf = in.Params["login"], in.Params["password"], in.Params["username"]
		rule.Token = in.Params["token"]
		var err error
		if caller, err = s.Gate.Authorize(ctx, in.Key, rule); err != nil {
			return nil, err
		}
		if rule.Token != "" { // a credential: no handler or script sees it
			params := make(map[string]string, len(in.Params))
			for k, v := range in.Params {
				params[k] = v
			}
			delete(params, "token")
			in.Params = params
		}
	} else {
		if err := keys.Permit(caller, rule); err != nil {
			return nil, err
		}
		params := make(map[string]string, len(in.Params))
		for k, v := range in.Params {
			params[k] = v
		}
		delete(params, "login") // the caller stays the same
		delete(params, "password")
		delete(params, "username")
		in.Params = params
	}
	args, err := m.bind(in.Params)
	if err != nil {
		return nil, err
	}
	r := &Request{ctx: ctx, S: s, Caller: caller, Method: m, Version: in.Version, args: args, Remote: in.Remote}
	return m.Handler(r)
}

// sessionToken takes a session's access token from `Authorization: Bearer` when the body
// has none, and refuses a token or refresh token in the URL: URLs end up in access logs,
// proxies' logs and browser history, so a token there would outlive its secrecy.
func sessionToken(r *http.Request, params map[string]string) error {
	q := r.URL.Query()
	if q.Has("token") || q.Has("refresh_token") {
		return apierr.New(apierr.InvalidArgument, "a session token never travels in a URL: send it in a POST body or as Authorization: Bearer")
	}
	if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && params["token"] == "" {
		params["token"] = strings.TrimSpace(bearer)
	}
	return nil
}

// answer writes the envelope (or the plain text that Asterisk's CURL() reads, or a Raw body).
func (s *Service) answer(c echo.Context, cl *call, resp any, err error) {
	if cl.status != 0 {
		return // already answered (a panic after a write)
	}
	env := Envelope{Result: true, Response: resp}
	if err != nil {
		code := apierr.Code(err)
		var ae *apierr.Error
		if errors.As(err, &ae) {
			env.Description = ae.Message
		} else {
			// Unexpected: log it in full, show the client only the code.
			s.Log.Error("method failed", "method", cl.method, "err", err)
			env.Description = "internal error"
		}
		env = Envelope{Result: false, Response: code, Description: env.Description}
	}
	if env.Result && env.Response == nil {
		env.Response = true
	}
	cl.code, _ = env.Response.(string)
	if env.Result {
		cl.code = "OK"
	}
	cl.status = apierr.Status(cl.code)
	if raw, ok := resp.(Raw); ok && err == nil {
		c.Blob(http.StatusOK, raw.ContentType, raw.Body)
		cl.status = http.StatusOK
		return
	}
	if cl.key != nil && s.plainAnswer(cl.key) {
		c.String(cl.status, plainText(env.Response))
		return
	}
	c.JSON(cl.status, env)
}

func (s *Service) plainAnswer(k *keys.Key) bool {
	for _, a := range s.Config.PlainAnswer {
		if a == k.AuthBy {
			return true
		}
	}
	return false
}

// plainText renders a response as the plain answer's body.
func plainText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int, int64, int32:
		return fmt.Sprint(x)
	case money.Micro:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return apierr.UndefinedInstruction
	}
	return string(b)
}

// RemoteAddr is the address a request came from, as the gate checks it (an IPv4 address
// mapped into IPv6 is unmapped).
func RemoteAddr(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// readParams merges the query string with a POST body (form, multipart or a JSON object);
// a body value overrides a query value of the same name.
func readParams(r *http.Request) (map[string]string, error) {
	params := map[string]string{}
	for k, vs := range r.URL.Query() {
		params[k] = vs[len(vs)-1]
	}
	if r.Method != http.MethodPost || r.Body == nil {
		return params, nil
	}
	r.Body = http.MaxBytesReader(nil, r.Body, maxBody)
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	bad := func(err error) error {
		return apierr.New(apierr.InvalidArgument, "unreadable request body: %v", err)
	}
	switch ct {
	case "application/json":
		var body map[string]json.RawMessage
		dec := json.NewDecoder(r.Body)
		if err := dec.Decode(&body); err != nil && err != io.EOF {
			return nil, bad(err)
		}
		for k, raw := range body {
			params[k] = jsonScalar(raw)
		}
	case "multipart/form-data":
		if err := r.ParseMultipartForm(maxBody); err != nil {
			return nil, bad(err)
		}
		for k, vs := range r.MultipartForm.Value {
			params[k] = vs[len(vs)-1]
		}
	case "application/x-www-form-urlencoded", "":
		if err := r.ParseForm(); err != nil {
			return nil, bad(err)
		}
		for k, vs := range r.PostForm {
			params[k] = vs[len(vs)-1]
		}
	}
	return params, nil
}

// jsonScalar turns a JSON value into the string a query parameter would carry: strings
// unquoted, numbers and booleans as written, objects and arrays as JSON text.
func jsonScalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	t := strings.TrimSpace(string(raw))
	if t == "null" {
		return ""
	}
	return t
}

// Request is one call as a handler sees it.
type Request struct {
	ctx     context.Context
	S       *Service
	Caller  *keys.Caller
	Method  *Method
	Version string
	Remote  netip.Addr
	args    map[string]string

	user, actor *User
}

// Context is the request's context.
func (r *Request) Context() context.Context { return r.ctx }

// Has reports whether the argument was given (or has a default).
func (r *Request) Has(name string) bool { _, ok := r.arg(name); return ok }

// Str is a string argument ("" when absent).
func (r *Request) Str(name string) string { v, _ := r.arg(name); return v }

// Int is a whole-number argument, already validated by binding (0 when absent).
func (r *Request) Int(name string) int64 { v, _ := parseInt(r.Str(name)); return v }

// Money is a num argument as exact micro-units (0 when absent).
func (r *Request) Money(name string) money.Micro { v, _ := money.Parse(r.Str(name)); return v }

// Bool is a bool argument (false when absent).
func (r *Request) Bool(name string) bool { v, _ := parseBool(r.Str(name)); return v }

// strictArgs makes reading an argument the method does not declare panic: a typo such as
// "uniqeid" would otherwise read "" in silence. The package's tests turn it on; in the
// daemon the check costs nothing.
var strictArgs = false

func (r *Request) arg(name string) (string, bool) {
	if strictArgs && !r.Method.declares(name) {
		panic(fmt.Sprintf("billing: %s reads argument %q, which its declaration lacks", r.Method.Name, name))
	}
	v, ok := r.args[name]
	return v, ok
}
