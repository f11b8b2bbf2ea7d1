package lua

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// state is one Lua VM with the scripts of a generation loaded.
type state struct {
	rt  *Runtime
	gen *generation
	L   *glua.LState

	// what the scripts registered in this state
	specs    []MethodSpec
	methods  map[string]*glua.LFunction
	hooks    map[string]*glua.LFunction
	handlers map[string]map[string]*glua.LFunction

	loaded  map[string]glua.LValue // require cache, by file
	loading map[string]bool

	concatFn   *glua.LFunction
	roNewIndex *glua.LFunction

	// per call
	ctx         context.Context // the caller's context with the time limit (not the guard)
	cancel      context.CancelFunc
	g           *guard
	deadlineOwn bool
	request     glua.LValue
	produced    int64
	walkDue     bool
	registering bool
	broken      bool
}

func (rt *Runtime) newState(g *generation) (s *state, err error) {
	L := glua.NewState(glua.Options{
		SkipOpenLibs:        true,
		CallStackSize:       rt.opts.CallStackSize,
		RegistrySize:        1024,
		RegistryMaxSize:     rt.opts.RegistryMaxSize,
		MinimizeStackMemory: true,
	})
	s = &state{
		rt: rt, gen: g, L: L,
		methods:  map[string]*glua.LFunction{},
		hooks:    map[string]*glua.LFunction{},
		handlers: map[string]map[string]*glua.LFunction{},
		loaded:   map[string]glua.LValue{},
		loading:  map[string]bool{},
	}
	defer func() {
		if r := recover(); r != nil {
			err = luaErr(ErrLuaException, fmt.Sprintf("loading scripts: internal error: %v", r))
		}
		if err != nil {
			L.Close()
			s = nil
		}
	}()
	s.openSandbox()
	s.openAPI()
	if err := s.begin(context.Background()); err != nil {
		return nil, err
	}
	s.registering = true
	err = s.loadEntries()
	s.registering = false
	s.end()
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (s *state) loadEntries() error {
	L := s.L
	for _, rel := range s.gen.entries {
		fn := L.NewFunction(func(L *glua.LState) int {
			L.Push(s.requireFile(L, rel, strings.TrimSuffix(rel, ".lua")))
			return 1
		})
		if _, err := s.pcall(fn); err != nil {
			return err
		}
	}
	return nil
}

// openSandbox opens base (without file access), table, string and math.
func (s *state) openSandbox() {
	L := s.L
	for _, lib := range []struct {
		name string
		fn   glua.LGFunction
	}{
		{glua.BaseLibName, glua.OpenBase},
		{glua.TabLibName, glua.OpenTable},
		{glua.StringLibName, glua.OpenString},
		{glua.MathLibName, glua.OpenMath},
	} {
		L.Push(L.NewFunction(lib.fn))
		L.Push(glua.LString(lib.name))
		L.Call(1, 0)
	}
	G := L.G.Global
	for _, name := range []string{"dofile", "loadfile", "module", "_printregs", "newproxy", "collectgarbage"} {
		G.RawSetString(name, glua.LNil)
	}
	// collectgarbage would let a script stall the whole process; keep a harmless stub.
	G.RawSetString("collectgarbage", L.NewFunction(func(L *glua.LState) int {
		L.Push(glua.LNumber(0))
		return 1
	}))
	G.RawSetString("print", L.NewFunction(func(L *glua.LState) int {
		parts := make([]string, L.GetTop())
		for i := range parts {
			parts[i] = L.ToStringMeta(L.Get(i + 1)).String()
		}
		s.rt.opts.Logger.Info(strings.Join(parts, "\t"), "lua", strings.TrimSuffix(L.Where(1), ":"))
		return 0
	}))
	G.RawSetString("require", L.NewFunction(s.luaRequire))
	G.RawSetString("load", L.NewFunction(s.luaLoad))
	G.RawSetString("loadstring", L.NewFunction(s.luaLoad))
	G.RawSetString("pairs", L.NewFunction(luaPairs))
	G.RawSetString("ipairs", L.NewFunction(luaIpairs))

	s.concatFn = L.NewFunction(s.luaConcat)
	s.roNewIndex = L.NewFunction(func(L *glua.LState) int {
		L.RaiseError("attempt to change a read-only table (field %s)", L.ToStringMeta(L.Get(2)).String())
		return 0
	})
	s.wrapStringLib(L, L.GetGlobal("string").(*glua.LTable))
	s.wrapTableLib(L, L.GetGlobal("table").(*glua.LTable))
}

// luaPairs is pairs with the __pairs metamethod of Lua 5.2, so read-only tables iterate.
func luaPairs(L *glua.LState) int {
	v := L.CheckAny(1)
	if mm := L.GetMetaField(v, "__pairs"); mm != glua.LNil {
		L.Push(mm)
		L.Push(v)
		L.Call(1, 3)
		return 3
	}
	t := L.CheckTable(1)
	L.Push(L.NewFunction(func(L *glua.LState) int {
		k, val := t.Next(L.Get(2))
		if k == glua.LNil {
			L.Push(glua.LNil)
			return 1
		}
		L.Push(k)
		L.Push(val)
		return 2
	}))
	L.Push(t)
	L.Push(glua.LNil)
	return 3
}

var ipairsIter = func(L *glua.LState) int {
	i := L.CheckInt(2) + 1
	v := L.GetTable(L.Get(1), glua.LNumber(i))
	if v == glua.LNil {
		return 0
	}
	L.Push(glua.LNumber(i))
	L.Push(v)
	return 2
}

// luaIpairs is ipairs that reads through __index (Lua 5.3), so read-only tables iterate.
func luaIpairs(L *glua.LState) int {
	v := L.CheckAny(1)
	L.Push(L.NewFunction(ipairsIter))
	L.Push(v)
	L.Push(glua.LNumber(0))
	return 3
}

var moduleRE = regexp.MustCompile(`^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$`)

// luaRequire loads a module from the scripts folder only: require "lib.util" reads
// lib/util.lua. Names with slashes, "..", or absolute paths are refused.
func (s *state) luaRequire(L *glua.LState) int {
	name := L.CheckString(1)
	if !moduleRE.MatchString(name) {
		L.RaiseError("require %q: only modules of the scripts folder can be required (a name like \"lib.util\")", name)
	}
	rel := strings.ReplaceAll(name, ".", "/") + ".lua"
	L.Push(s.requireFile(L, rel, name))
	return 1
}

func (s *state) requireFile(L *glua.LState, rel, name string) glua.LValue {
	if v, ok := s.loaded[rel]; ok {
		return v
	}
	proto := s.gen.protos[rel]
	if proto == nil {
		L.RaiseError("module %q not found in the scripts folder", name)
	}
	if s.loading[rel] {
		L.RaiseError("module %q requires itself (loop)", name)
	}
	s.loading[rel] = true
	defer delete(s.loading, rel)
	outer := L.NewFunctionFromProto(proto)
	L.Push(outer)
	L.Call(0, 1)
	body := L.Get(-1)
	L.Pop(1)
	L.Push(body)
	L.Push(s.concatFn)
	L.Push(glua.LString(name))
	L.Call(2, 1)
	v := L.Get(-1)
	L.Pop(1)
	if v == glua.LNil {
		v = glua.LTrue
	}
	s.loaded[rel] = v
	return v
}

// luaLoad is load/loadstring for source text only (with the same guards as files).
func (s *state) luaLoad(L *glua.LState) int {
	src, ok := L.Get(1).(glua.LString)
	if !ok {
		L.Push(glua.LNil)
		L.Push(glua.LString("load: only a string of Lua source can be loaded here"))
		return 2
	}
	name := L.OptString(2, "=(load)")
	proto, err := compileChunk(string(src), name)
	if err != nil {
		L.Push(glua.LNil)
		L.Push(glua.LString(err.Error()))
		return 2
	}
	outer := L.NewFunctionFromProto(proto)
	L.Push(outer)
	L.Call(0, 1)
	body := L.Get(-1).(*glua.LFunction)
	L.Pop(1)
	concat := s.concatFn
	L.Push(L.NewFunction(func(L *glua.LState) int {
		top := L.GetTop()
		L.Push(body)
		L.Push(concat)
		for i := 1; i <= top; i++ {
			L.Push(L.Get(i))
		}
		L.Call(top+1, glua.MultRet)
		return L.GetTop() - top
	}))
	return 1
}

// funcs are the registered functions, for the memory estimate.
func (s *state) funcs() []glua.LValue {
	var out []glua.LValue
	for _, f := range s.methods {
		out = append(out, f)
	}
	for _, f := range s.hooks {
		out = append(out, f)
	}
	for _, m := range s.handlers {
		for _, f := range m {
			out = append(out, f)
		}
	}
	if s.request != nil {
		out = append(out, s.request)
	}
	return out
}

// begin binds the state to a call: time limit, guard context, counters.
func (s *state) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return &Error{Code: CodeLuaException, Kind: ErrTimeout, Message: "the deadline passed before the call started", Cause: err}
		}
		return &Error{Code: CodeLuaException, Kind: ErrLuaException, Message: "call canceled before it started", Cause: err}
	}
	s.ctx, s.cancel, s.deadlineOwn = withLimit(ctx, s.rt.opts.Timeout)
	s.g = &guard{Context: s.ctx, s: s, nextWalk: walkMinInstructions, nextHeap: heapCheckEvery}
	s.produced, s.walkDue = 0, false
	s.L.SetContext(s.g)
	return nil
}

// end unbinds the state from its call.
func (s *state) end() {
	if s.g != nil && s.g.err != nil {
		s.broken = true
	}
	if s.ctx != nil && s.ctx.Err() != nil {
		s.broken = true
	}
	s.L.RemoveContext()
	if s.cancel != nil {
		s.cancel()
	}
	s.ctx, s.cancel, s.g, s.request = nil, nil, nil, nil
	s.L.SetTop(0)
}

// pcall calls fn with args in protected mode and returns its first result, turning a
// Lua error into an *Error.
func (s *state) pcall(fn *glua.LFunction, args ...glua.LValue) (ret glua.LValue, err error) {
	L := s.L
	base := L.GetTop()
	L.Push(fn)
	for _, a := range args {
		L.Push(a)
	}
	if perr := L.PCall(len(args), 1, nil); perr != nil {
		L.SetTop(base)
		return glua.LNil, s.translate(perr)
	}
	ret = L.Get(-1)
	L.SetTop(base)
	// A limit hit inside a pcall the script swallowed still fails the call.
	if s.g.err != nil || s.ctx.Err() != nil {
		return glua.LNil, s.translate(errors.New(""))
	}
	return ret, nil
}

// translate turns what the VM raised into an *Error with the right kind and code.
func (s *state) translate(perr error) error {
	var obj glua.LValue = glua.LString(perr.Error())
	trace := ""
	var ae *glua.ApiError
	if errors.As(perr, &ae) {
		obj = ae.Object
		trace = ae.StackTrace
	}
	msg := ""
	if str, ok := obj.(glua.LString); ok {
		msg = string(str)
	}
	switch {
	case s.g.err != nil:
		if msg == "" || !strings.Contains(msg, "memory limit") {
			msg = s.g.err.Error()
		}
		return &Error{Code: CodeLuaException, Kind: ErrMemory, Message: msg}
	case errors.Is(s.ctx.Err(), context.DeadlineExceeded):
		if msg == "" || !strings.Contains(msg, "exceeded") {
			msg = s.g.Err().Error()
		}
		return &Error{Code: CodeLuaException, Kind: ErrTimeout, Message: msg, Cause: context.DeadlineExceeded}
	case s.ctx.Err() != nil:
		return &Error{Code: CodeLuaException, Kind: ErrLuaException, Message: "call canceled: " + msg, Cause: s.ctx.Err()}
	}
	if t, ok := obj.(*glua.LTable); ok {
		code, _ := t.RawGetString("code").(glua.LString)
		text := glua.LVAsString(t.RawGetString("message"))
		where := glua.LVAsString(t.RawGetString("where"))
		if where != "" {
			text = where + ": " + text
		}
		if validCode(string(code)) {
			e := &Error{Code: string(code), Message: strings.TrimSpace(text), Kind: ErrScript}
			switch e.Code {
			case CodeDepth:
				e.Kind = ErrDepth
			case CodeLuaException:
				e.Kind = ErrLuaException
			}
			return e
		}
		msg = "error object without a valid code (want error{code=\"E_…\"}): " + luaToString(t)
	}
	if msg == "" {
		msg = obj.String()
	}
	if trace != "" {
		s.rt.opts.Logger.Debug("lua: exception", "err", msg, "trace", trace)
	}
	return &Error{Code: CodeLuaException, Kind: ErrLuaException, Message: msg}
}

func luaToString(t *glua.LTable) string {
	var b strings.Builder
	b.WriteString("{")
	n := 0
	t.ForEach(func(k, v glua.LValue) {
		if n < 8 {
			fmt.Fprintf(&b, "%s=%s ", k, v)
		}
		n++
	})
	b.WriteString("}")
	return b.String()
}
