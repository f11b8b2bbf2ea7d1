package lua

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// openAPI installs the global table `narayana`.
func (s *state) openAPI() {
	L := s.L
	n := L.NewTable()
	fns := map[string]glua.LGFunction{
		"log":       s.apiLog,
		"request":   s.apiRequest,
		"http_get":  s.apiHTTPGet,
		"http_post": s.apiHTTPPost,
		"call":      s.apiCall,
		"fail":      s.apiFail,
		"method":    s.apiMethod,
		"hook":      s.apiHook,
		"handler":   s.apiHandler,
	}
	for name, fn := range fns {
		n.RawSetString(name, L.NewFunction(fn))
	}
	money := L.NewTable()
	for name, fn := range map[string]glua.LGFunction{
		"parse":  moneyParse,
		"format": moneyFormat,
		"mul":    moneyMul,
		"div":    moneyDiv,
		"round":  moneyRound,
		"add":    moneyAdd,
		"sub":    moneySub,
	} {
		money.RawSetString(name, L.NewFunction(fn))
	}
	money.RawSetString("UNIT", glua.LNumber(microPerUnit))
	n.RawSetString("money", money)
	L.SetGlobal("narayana", n)
}

func where(L *glua.LState) string { return strings.TrimSuffix(L.Where(1), ":") }

// narayana.log(level, msg): level is "debug", "info", "warn" or "error".
func (s *state) apiLog(L *glua.LState) int {
	lvl := slog.LevelInfo
	switch strings.ToLower(L.CheckString(1)) {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
	case "warn", "warning":
		lvl = slog.LevelWarn
	case "error":
		lvl = slog.LevelError
	default:
		L.ArgError(1, "level must be debug, info, warn or error")
	}
	msg := L.ToStringMeta(L.Get(2)).String()
	s.rt.opts.Logger.Log(s.ctx, lvl, msg, "lua", where(L))
	return 0
}

// narayana.request(): the read-only request of the running call.
func (s *state) apiRequest(L *glua.LState) int {
	if s.request == nil {
		L.Push(glua.LNil)
	} else {
		L.Push(s.request)
	}
	return 1
}

// raiseAPI raises error {code=…, message=…, where=…}.
func raiseAPI(L *glua.LState, code, msg string) {
	t := L.NewTable()
	t.RawSetString("code", glua.LString(code))
	t.RawSetString("message", glua.LString(msg))
	t.RawSetString("where", glua.LString(where(L)))
	L.Error(t, 1)
}

// narayana.fail(code, message): stop and answer with an API error.
func (s *state) apiFail(L *glua.LState) int {
	code := L.CheckString(1)
	if !validCode(code) {
		L.ArgError(1, "an API code looks like E_SOMETHING")
	}
	raiseAPI(L, code, L.OptString(2, ""))
	return 0
}

// narayana.call(method, args): call an API method through the embedder's callback.
func (s *state) apiCall(L *glua.LState) int {
	method := L.CheckString(1)
	var args map[string]any
	if L.GetTop() >= 2 && L.Get(2) != glua.LNil {
		v, err := fromLua(L.CheckTable(2))
		if err != nil {
			L.ArgError(2, err.Error())
		}
		switch v := v.(type) {
		case map[string]any:
			args = v
		case []any:
			if len(v) > 0 {
				L.ArgError(2, "arguments must be a table of name = value")
			}
		}
	}
	if args == nil {
		args = map[string]any{}
	}
	if s.registering {
		L.RaiseError("narayana.call cannot be used while scripts load")
	}
	d := depthOf(s.ctx) + 1
	if d > s.rt.opts.MaxDepth {
		raiseAPI(L, CodeDepth, fmt.Sprintf("narayana.call nested deeper than %d", s.rt.opts.MaxDepth))
	}
	cb := s.rt.call.Load()
	if cb == nil || *cb == nil {
		L.RaiseError("narayana.call is not available (no callback configured)")
	}
	res, err := safeCall(*cb, context.WithValue(s.ctx, depthKey{}, d), method, args)
	if err != nil {
		msg := err.Error()
		var e *Error
		if errors.As(err, &e) {
			msg = e.Message
		}
		raiseAPI(L, Code(err), msg)
	}
	lv, err := s.toLua(res, false, 0)
	if err != nil {
		L.RaiseError("narayana.call(%s): answer cannot be converted: %v", method, err)
	}
	L.Push(lv)
	return 1
}

func safeCall(cb CallFunc, ctx context.Context, method string, args map[string]any) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = luaErr(ErrLuaException, fmt.Sprintf("narayana.call(%s): callback panicked: %v", method, r))
		}
	}()
	return cb(ctx, method, args)
}

// ---- registration ----

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

func (s *state) mustRegistering(L *glua.LState, what string) {
	if !s.registering {
		L.RaiseError("%s may only be called while the script loads (at its top level)", what)
	}
}

// narayana.method{name=, level=, args={…}, handler=fn, comment=}
func (s *state) apiMethod(L *glua.LState) int {
	s.mustRegistering(L, "narayana.method")
	t := L.CheckTable(1)
	spec := MethodSpec{File: where(L)}
	name, _ := t.RawGetString("name").(glua.LString)
	spec.Name = string(name)
	if !nameRE.MatchString(spec.Name) {
		L.ArgError(1, "name must be an identifier")
	}
	if _, dup := s.methods[spec.Name]; dup {
		L.RaiseError("method %s is registered twice", spec.Name)
	}
	switch lv := t.RawGetString("level").(type) {
	case *glua.LNilType:
	case glua.LNumber:
		if lv < 0 || lv > 100 || float64(lv) != math.Trunc(float64(lv)) {
			L.ArgError(1, "level must be an integer 0..100")
		}
		spec.Level = int(lv)
	default:
		L.ArgError(1, "level must be a number")
	}
	spec.Comment = glua.LVAsString(t.RawGetString("comment"))
	fn, ok := t.RawGetString("handler").(*glua.LFunction)
	if !ok {
		L.ArgError(1, "handler must be a function")
	}
	switch args := t.RawGetString("args").(type) {
	case *glua.LNilType:
	case *glua.LTable:
		seen := map[string]bool{}
		for i := 1; i <= args.Len(); i++ {
			a, ok := args.RawGetInt(i).(*glua.LTable)
			if !ok {
				L.ArgError(1, fmt.Sprintf("args[%d] must be a table", i))
			}
			spec.Args = append(spec.Args, s.argSpec(L, a, i, seen))
		}
	default:
		L.ArgError(1, "args must be a list of tables")
	}
	s.methods[spec.Name] = fn
	s.specs = append(s.specs, spec)
	return 0
}

func (s *state) argSpec(L *glua.LState, a *glua.LTable, i int, seen map[string]bool) ArgSpec {
	bad := func(msg string) { L.ArgError(1, fmt.Sprintf("args[%d]: %s", i, msg)) }
	var as ArgSpec
	as.Name = glua.LVAsString(a.RawGetString("name"))
	if !nameRE.MatchString(as.Name) {
		bad("name must be an identifier")
	}
	if seen[as.Name] {
		bad("duplicate argument " + as.Name)
	}
	seen[as.Name] = true
	as.Type = glua.LVAsString(a.RawGetString("type"))
	if as.Type == "" {
		as.Type = "string"
	}
	if !slices.Contains([]string{"string", "num", "bool", "ustring"}, as.Type) {
		bad("type must be string, num, bool or ustring")
	}
	as.Required = glua.LVAsBool(a.RawGetString("required"))
	switch d := a.RawGetString("default").(type) {
	case *glua.LNilType:
	case glua.LBool:
		as.Default = fmt.Sprint(bool(d))
	default:
		as.Default = glua.LVAsString(d)
	}
	if vals, ok := a.RawGetString("values").(*glua.LTable); ok {
		for j := 1; j <= vals.Len(); j++ {
			as.Values = append(as.Values, glua.LVAsString(vals.RawGetInt(j)))
		}
	}
	if as.Type == "ustring" && len(as.Values) == 0 {
		bad("a ustring needs values={…}")
	}
	if as.Type == "ustring" && as.Default != "" && !slices.Contains(as.Values, as.Default) {
		bad("default is not among values")
	}
	return as
}

// narayana.hook(name, fn)
func (s *state) apiHook(L *glua.LState) int {
	s.mustRegistering(L, "narayana.hook")
	name := L.CheckString(1)
	fn := L.CheckFunction(2)
	if !slices.Contains(HookNames, name) {
		L.ArgError(1, "hook must be one of "+strings.Join(HookNames, ", "))
	}
	if _, dup := s.hooks[name]; dup {
		L.RaiseError("hook %s is registered twice", name)
	}
	s.hooks[name] = fn
	return 0
}

// narayana.handler(kind, name, fn)
func (s *state) apiHandler(L *glua.LState) int {
	s.mustRegistering(L, "narayana.handler")
	kind := L.CheckString(1)
	name := L.CheckString(2)
	fn := L.CheckFunction(3)
	if !slices.Contains(HandlerKinds, kind) {
		L.ArgError(1, "kind must be one of "+strings.Join(HandlerKinds, ", "))
	}
	if !nameRE.MatchString(name) {
		L.ArgError(2, "name must be an identifier")
	}
	if s.handlers[kind] == nil {
		s.handlers[kind] = map[string]*glua.LFunction{}
	}
	if _, dup := s.handlers[kind][name]; dup {
		L.RaiseError("%s handler %s is registered twice", kind, name)
	}
	s.handlers[kind][name] = fn
	return 0
}

// ---- money ----

func checkMicro(L *glua.LState, n int) int64 {
	f := float64(L.CheckNumber(n))
	if f != math.Trunc(f) || math.Abs(f) > maxExact {
		L.ArgError(n, "not an integer amount of micro-units")
	}
	return int64(f)
}

func pushMicro(L *glua.LState, v int64, err error) int {
	if err != nil {
		L.RaiseError("money: %v", err)
	}
	if v > maxExact || v < -maxExact {
		L.RaiseError("money: %v", errMoneyRange)
	}
	L.Push(glua.LNumber(v))
	return 1
}

// narayana.money.parse("1.25") → 1250000
func moneyParse(L *glua.LState) int {
	v, err := parseMoney(L.CheckString(1))
	return pushMicro(L, v, err)
}

// narayana.money.format(micro [, decimals=2]) → "1.25"
func moneyFormat(L *glua.LState) int {
	v := checkMicro(L, 1)
	d := L.OptInt(2, 2)
	if d < 0 || d > 6 {
		L.ArgError(2, "decimals must be 0..6")
	}
	L.Push(glua.LString(formatMoney(v, d)))
	return 1
}

// narayana.money.mul(micro, factor_micro) → micro × factor, half-up
func moneyMul(L *glua.LState) int {
	v, err := mulMoney(checkMicro(L, 1), checkMicro(L, 2))
	return pushMicro(L, v, err)
}

// narayana.money.div(micro, divisor_micro) → micro ÷ divisor, half-up
func moneyDiv(L *glua.LState) int {
	v, err := divMoney(checkMicro(L, 1), checkMicro(L, 2))
	return pushMicro(L, v, err)
}

// narayana.money.round(micro, decimals) → micro rounded to decimals, half-up
func moneyRound(L *glua.LState) int {
	d := L.CheckInt(2)
	if d < 0 || d > 6 {
		L.ArgError(2, "decimals must be 0..6")
	}
	return pushMicro(L, roundMoney(checkMicro(L, 1), d), nil)
}

func moneyAdd(L *glua.LState) int { return pushMicro(L, checkMicro(L, 1)+checkMicro(L, 2), nil) }
func moneySub(L *glua.LState) int { return pushMicro(L, checkMicro(L, 1)-checkMicro(L, 2), nil) }

// ---- http ----

func (s *state) hostAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, a := range s.rt.opts.HTTPAllow {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == host {
			return true
		}
		if strings.HasPrefix(a, "*.") && strings.HasSuffix(host, a[1:]) {
			return true
		}
	}
	return false
}

func (s *state) checkURL(L *glua.LState, raw string) *url.URL {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		L.ArgError(1, "want an http or https URL")
	}
	if !s.hostAllowed(u.Hostname()) {
		L.RaiseError("http: host %q is not in the allow-list", u.Hostname())
	}
	return u
}

func (s *state) client() *http.Client {
	c := http.Client{}
	if s.rt.opts.HTTPClient != nil {
		c = *s.rt.opts.HTTPClient
	}
	prev := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if !s.hostAllowed(req.URL.Hostname()) {
			return fmt.Errorf("redirect to %q: host not in the allow-list", req.URL.Hostname())
		}
		if len(via) >= 5 {
			return errors.New("too many redirects")
		}
		if prev != nil {
			return prev(req, via)
		}
		return nil
	}
	return &c
}

// narayana.http_get(url [, headers]) → body, status, headers  |  nil, error text
func (s *state) apiHTTPGet(L *glua.LState) int {
	u := s.checkURL(L, L.CheckString(1))
	req, err := http.NewRequestWithContext(s.ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		L.RaiseError("http_get: %v", err)
	}
	s.setHeaders(L, req, L.Get(2))
	return s.doHTTP(L, req)
}

// narayana.http_post(url, body [, content_type | headers]) → body, status, headers  |  nil, error
func (s *state) apiHTTPPost(L *glua.LState) int {
	u := s.checkURL(L, L.CheckString(1))
	body := L.OptString(2, "")
	req, err := http.NewRequestWithContext(s.ctx, http.MethodPost, u.String(), strings.NewReader(body))
	if err != nil {
		L.RaiseError("http_post: %v", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if ct, ok := L.Get(3).(glua.LString); ok {
		req.Header.Set("Content-Type", string(ct))
	} else {
		s.setHeaders(L, req, L.Get(3))
	}
	return s.doHTTP(L, req)
}

func (s *state) setHeaders(L *glua.LState, req *http.Request, h glua.LValue) {
	t, ok := h.(*glua.LTable)
	if !ok {
		return
	}
	t.ForEach(func(k, v glua.LValue) {
		ks, vs := glua.LVAsString(k), glua.LVAsString(v)
		if strings.ContainsAny(ks+vs, "\r\n") {
			L.RaiseError("http: header with a line break")
		}
		req.Header.Set(ks, vs)
	})
}

func (s *state) doHTTP(L *glua.LState, req *http.Request) int {
	req.Header.Set("User-Agent", "narayanad-lua")
	resp, err := s.client().Do(req)
	if err != nil {
		if s.ctx.Err() != nil {
			L.RaiseError("http: %v", s.ctx.Err())
		}
		L.Push(glua.LNil)
		L.Push(glua.LString(err.Error()))
		return 2
	}
	defer resp.Body.Close()
	max := s.rt.opts.HTTPMaxBody
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		L.Push(glua.LNil)
		L.Push(glua.LString(err.Error()))
		return 2
	}
	if int64(len(b)) > max {
		L.Push(glua.LNil)
		L.Push(glua.LString(fmt.Sprintf("response body larger than %d bytes", max)))
		return 2
	}
	s.charge(L, int64(len(b)), "http response")
	hdr := L.NewTable()
	for k, v := range resp.Header {
		hdr.RawSetString(strings.ToLower(k), glua.LString(strings.Join(v, ", ")))
	}
	L.Push(glua.LString(b))
	L.Push(glua.LNumber(resp.StatusCode))
	L.Push(hdr)
	return 3
}
