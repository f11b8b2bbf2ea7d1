package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/lua"
	"github.com/narayana/narayanad/money"
)

// scriptMethods declares the methods whose handlers are in this file: the reference's "Call
// processing".
func (s *Service) scriptMethods() []Method {
	return []Method{
		method("createTTS", 50, s.createTTS, "text:string!", "lang:string").
			Doc("turn text into speech", "a WAV audio stream (not an envelope)"),
	}
}

// startScripts loads the Lua extensions of scripts_dir (none when it is empty), wires
// narayana.call to the method table and declares the script methods beside the
// built-in ones. A failing set of scripts stops the start-up with its error.
func (s *Service) startScripts() error {
	if s.Config.ScriptsDir == "" {
		return nil
	}
	rt, err := lua.New(lua.Options{Dir: s.Config.ScriptsDir, Timeout: s.Config.LuaTimeout, Logger: s.Log,
		HTTPAllow: s.Config.LuaHTTPAllow})
	if err != nil {
		return fmt.Errorf("scripts: %w", err)
	}
	rt.SetCall(s.scriptCall)
	s.ext.scripts = rt
	for _, spec := range rt.Methods() {
		if _, clash := s.Methods[spec.Name]; clash {
			s.Log.Error("scripts: method refused: its name is a built-in method", "method", spec.Name, "file", spec.File)
			continue
		}
		if _, err := scriptArgs(spec.Args); err != nil {
			s.Log.Error("scripts: method refused", "method", spec.Name, "file", spec.File, "err", err)
		}
	}
	return nil
}

// method finds a method by name: a built-in from the table, else one the scripts declare
// now. Scripts reload when their files change, so their methods are looked up per call
// and never stored in the table: one added by a reload is callable at once.
func (s *Service) method(name string) *Method {
	if m := s.Methods[name]; m != nil {
		return m
	}
	rt := s.ext.scripts
	if rt == nil {
		return nil
	}
	for _, spec := range rt.Methods() {
		if spec.Name != name {
			continue
		}
		args, err := scriptArgs(spec.Args)
		if err != nil {
			return nil // refused, and logged, at load
		}
		return &Method{Name: name, Level: spec.Level, Args: args, Handler: s.scriptMethod(rt, name, args), Summary: spec.Comment}
	}
	return nil
}

// scriptArgs converts a script method's arguments into the table's, so the gate and
// argument binding treat them as a built-in's.
func scriptArgs(specs []lua.ArgSpec) ([]Arg, error) {
	out := make([]Arg, 0, len(specs))
	for _, sp := range specs {
		a := Arg{Name: sp.Name, Type: ArgType(sp.Type), Required: sp.Required, Values: sp.Values}
		switch a.Type {
		case String, Num, Bool, UString:
		default:
			return nil, fmt.Errorf("argument %s: unknown type %q", sp.Name, sp.Type)
		}
		if sp.Default != "" {
			if _, err := a.check(sp.Default); err != nil {
				return nil, fmt.Errorf("argument %s: bad default %q", sp.Name, sp.Default)
			}
			a.Default, a.HasDefault = sp.Default, true
		}
		out = append(out, a)
	}
	return out, nil
}

// scriptReqKey carries the request a script runs for, so narayana.call acts as the same
// caller.
type scriptReqKey struct{}

// scriptMethod is the handler of a script method as method() found it: the gate and the
// argument binding have run on that declaration (Service.Call), so it passes the bound
// arguments to the script.
func (s *Service) scriptMethod(rt *lua.Runtime, name string, argDefs []Arg) Handler {
	return func(r *Request) (any, error) {
		args := map[string]any{}
		for _, a := range argDefs {
			if r.Has(a.Name) {
				args[a.Name] = scriptValue(a.Type, r.Str(a.Name))
			}
		}
		req := lua.Request{Args: args, Info: map[string]any{
			"method": name, "level": r.Caller.Level, "remote": r.Remote.String(), "version": r.Version,
		}}
		if r.Caller.Key != nil {
			req.Info["key"] = r.Caller.Key.Name
		}
		if r.Caller.User != nil {
			u, err := r.User()
			if err != nil {
				return nil, err
			}
			req.User = scriptUser(u)
		}
		ctx := context.WithValue(r.ctx, scriptReqKey{}, r)
		v, err := rt.CallMethod(ctx, name, req)
		if err != nil {
			return nil, s.scriptError(name, err)
		}
		return v, nil
	}
}

// scriptValue is a bound argument as the script sees it: num a number, bool a boolean.
func scriptValue(t ArgType, v string) any {
	switch t {
	case Num, Int, Money:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
		f, _ := strconv.ParseFloat(v, 64)
		return f
	case Bool:
		b, _ := parseBool(v)
		return b
	}
	return v
}

// scriptUser is the user record a script reads (req.user); money in micro-units.
func scriptUser(u *User) map[string]any {
	return map[string]any{
		"id": u.ID, "username": u.Username, "manager": u.Manager, "accesslevel": u.AccessLevel,
		"active": u.Active, "account": u.Number, "balance": int64(u.Balance), "overdraft": int64(u.Overdraft),
		"currency": u.Currency, "language": u.Language, "timezone": u.Timezone,
	}
}

// scriptWhere is the file:line a script's own error message starts with.
var scriptWhere = regexp.MustCompile(`^[^\s:]+\.lua:\d+: `)

// scriptError turns a script failure into the API's error, with lua.Code: the script's
// own code, E_LUA_EXCEPTION (logged with file:line) or the depth limit's code.
func (s *Service) scriptError(name string, err error) error {
	code := lua.Code(err)
	msg := err.Error()
	var le *lua.Error
	if errors.As(err, &le) {
		msg = le.Message
	}
	if code == apierr.LuaException {
		// file:line and the script's text go to the log, not to the client.
		s.Log.Warn("script failed", "method", name, "err", msg)
		msg = "the script of " + name + " failed"
	}
	return apierr.New(code, "%s", scriptWhere.ReplaceAllString(msg, ""))
}

// scriptCall is narayana.call: it runs a method of the table (built-in or script) as
// the caller of the running script, through Service.Call like any request. The depth
// limit travels in ctx and is the lua package's.
func (s *Service) scriptCall(ctx context.Context, name string, args map[string]any) (res any, err error) {
	outer, _ := ctx.Value(scriptReqKey{}).(*Request)
	if outer == nil {
		return nil, lua.NewError(apierr.UndefinedInstruction, "narayana.call outside an API call")
	}
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("panic in method called from a script", "method", name, "panic", p, "stack", string(debug.Stack()))
			res, err = nil, lua.NewError(apierr.UndefinedInstruction, "the method failed")
		}
	}()
	params := make(map[string]string, len(args))
	for k, v := range args {
		params[k] = paramText(v)
	}
	v, err := s.Call(ctx, Call{Method: name, Params: params, Key: outer.Caller.Key, Caller: outer.Caller,
		Version: outer.Version, Remote: outer.Remote})
	if err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) {
			return nil, lua.NewError(ae.Code, ae.Message)
		}
		s.Log.Error("method failed", "method", name, "via", "narayana.call", "err", err)
		return nil, lua.NewError(apierr.Code(err), "internal error")
	}
	if raw, ok := v.(Raw); ok {
		return string(raw.Body), nil
	}
	if v == nil {
		return true, nil
	}
	return plainValue(v), nil
}

// paramText is a script's argument as a query parameter would carry it.
func paramText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// plainValue passes a built-in's answer to a script as JSON would show it: money as a
// decimal string's number, structs as objects.
func plainValue(v any) any {
	switch x := v.(type) {
	case string, bool, int, int64, float64, nil:
		return x
	case money.Micro:
		f, _ := strconv.ParseFloat(x.String(), 64)
		return f
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	var out any
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.UseNumber()
	if d.Decode(&out) != nil {
		return string(b)
	}
	return numbers(out)
}

// numbers turns json.Number values into int64 or float64.
func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n
		}
		f, _ := x.Float64()
		return f
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// ttsEngine is the TTS engine: the one set on the Service, else espeak-ng, looked for
// on first use (and again while it is missing).
func (s *Service) ttsEngine() (lua.TTS, error) {
	s.ext.ttsMu.Lock()
	defer s.ext.ttsMu.Unlock()
	if s.ext.tts == nil {
		e, err := lua.NewEspeak()
		if err != nil {
			return nil, err
		}
		s.ext.tts = e
	}
	return s.ext.tts, nil
}

// ttsLanguages maps the users' language names to espeak-ng voices.
var ttsLanguages = map[string]string{
	"english": "en", "russian": "ru", "german": "de", "french": "fr", "spanish": "es",
	"italian": "it", "ukrainian": "uk", "portuguese": "pt", "polish": "pl", "dutch": "nl",
}

// createTTS(50) speaks text and answers a WAV file.
func (s *Service) createTTS(r *Request) (any, error) {
	lang := r.Str("lang")
	if lang == "" && r.Caller.User != nil {
		if u, err := r.User(); err == nil {
			lang = ttsLanguages[strings.ToLower(u.Language)]
		}
	}
	if lang == "" {
		lang = "en"
	}
	e, err := s.ttsEngine()
	if err != nil {
		return nil, apierr.New(apierr.TTSError, "no speech engine: espeak-ng is not installed")
	}
	wav, err := e.Synthesize(r.ctx, r.Str("text"), lang)
	if err != nil {
		msg := err.Error()
		var le *lua.Error
		if errors.As(err, &le) {
			msg = le.Message
		}
		return nil, apierr.New(apierr.TTSError, "%s", msg)
	}
	return Raw{ContentType: "audio/wav", Body: wav}, nil
}

// hasHandler reports whether a script registered the named handler of a kind.
func (s *Service) hasHandler(kind, name string) bool {
	rt := s.ext.scripts
	if rt == nil {
		return false
	}
	for _, h := range rt.Handlers(kind) {
		if h == name {
			return true
		}
	}
	return false
}

// hooked reports whether a script registered the hook, so callers build its input only
// then.
func (s *Service) hooked(name string) bool {
	rt := s.ext.scripts
	return rt != nil && rt.HasHook(name)
}

// scriptPrepare runs the scripts' callPrepare hook for a call of u, with in holding the
// call (destination, callerid, prior, uniqueid, …); ok is false when no script
// registered the hook. A failing hook (error, time or memory limit, bad answer) is
// logged and declines the call with its code: a broken hook must not let through the
// calls it was written to stop. For callPrepare to call once it has the destination:
//
//	if h, ok := s.scriptPrepare(ctx, u, in); ok && h.Decline != "" { return declined(h.Decline), nil }
func (s *Service) scriptPrepare(ctx context.Context, u *User, in map[string]any) (lua.PrepareHookResult, bool) {
	rt := s.ext.scripts
	if rt == nil || !rt.HasHook("callPrepare") {
		return lua.PrepareHookResult{}, false
	}
	in = hookInput(u, in)
	res, ok, err := rt.CallPrepareHook(ctx, in)
	if err != nil {
		s.Log.Warn("script hook failed", "hook", "callPrepare", "err", err)
		return lua.PrepareHookResult{Decline: lua.Code(err)}, true
	}
	return res, ok
}

// scriptFinish runs the scripts' callFinish hook, which only observes: a failure is
// logged and changes nothing.
func (s *Service) scriptFinish(ctx context.Context, u *User, in map[string]any) {
	rt := s.ext.scripts
	if rt == nil || !rt.HasHook("callFinish") {
		return
	}
	if _, err := rt.CallFinishHook(ctx, hookInput(u, in)); err != nil {
		s.Log.Warn("script hook failed", "hook", "callFinish", "err", err)
	}
}

func hookInput(u *User, in map[string]any) map[string]any {
	out := make(map[string]any, len(in)+1)
	for k, v := range in {
		out[k] = v
	}
	if u != nil {
		out["user"] = scriptUser(u)
	}
	return out
}
