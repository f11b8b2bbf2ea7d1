// Package lua runs operator-written Lua extension scripts for narayanad: custom API
// methods, callPrepare/callFinish hooks and named handlers (payment, sms, did, gsm,
// route_balance). It depends on no other package of the project; the billing layer
// adapts the plain Go types it exposes.
//
// Scripts run in gopher-lua states kept in a pool (one state is not goroutine-safe),
// each call bounded by a time limit and a memory limit, in a sandbox without os, io or
// debug. See docs/EXTENSIONS.md.
package lua

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// CallFunc is how narayana.call(method, args) reaches the API: the embedder runs method
// with args on behalf of the same caller and returns the answer (a value fromLua can
// take: nil, bool, string, numbers, map[string]any, []any, or any JSON-encodable value).
// An error should carry its API code (an *Error from NewError, or any error with an
// APICode() string method); the script sees it as error {code=…, message=…}.
// ctx carries the call depth and the time limit: pass it on to Runtime.CallMethod.
type CallFunc func(ctx context.Context, method string, args map[string]any) (any, error)

// Options configure a Runtime. Zero values take the defaults in brackets.
type Options struct {
	Dir             string        // scripts folder; "" runs no script
	PoolSize        int           // idle states kept for reuse [2×GOMAXPROCS]
	Timeout         time.Duration // time limit of one call, and of loading the scripts [1s]
	MemoryLimit     int64         // bytes a state may hold or build in one string [64 MiB]
	HeapLimit       uint64        // process heap above which running calls stop [0: off]
	CallStackSize   int           // Lua call frames [200]
	RegistryMaxSize int           // Lua value stack slots [256 Ki]
	MaxDepth        int           // nesting of narayana.call [8]
	PollInterval    time.Duration // how often Dir is checked for changes [1s; <0: never]
	Logger          *slog.Logger  // narayana.log, print and reload errors [slog.Default()]
	HTTPAllow       []string      // hosts narayana.http_* may reach: "api.example.com", "*.example.com"
	HTTPClient      *http.Client  // [a client with the call's time limit]
	HTTPMaxBody     int64         // largest response body read [1 MiB]
	Call            CallFunc      // narayana.call; nil: narayana.call fails (see SetCall)
}

func (o *Options) setDefaults() {
	if o.PoolSize <= 0 {
		o.PoolSize = 2 * runtime.GOMAXPROCS(0)
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	if o.MemoryLimit <= 0 {
		o.MemoryLimit = 64 << 20
	}
	if o.CallStackSize <= 0 {
		o.CallStackSize = 200
	}
	if o.RegistryMaxSize <= 0 {
		o.RegistryMaxSize = 256 * 1024
	}
	if o.MaxDepth <= 0 {
		o.MaxDepth = 8
	}
	if o.PollInterval == 0 {
		o.PollInterval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.HTTPMaxBody <= 0 {
		o.HTTPMaxBody = 1 << 20
	}
}

// MethodSpec describes a custom API method registered by narayana.method.
type MethodSpec struct {
	Name    string
	Level   int // access level needed
	Args    []ArgSpec
	Comment string // optional description
	File    string // script that registered it
}

// ArgSpec describes one argument of a custom method.
type ArgSpec struct {
	Name     string
	Type     string   // "string", "num", "bool" or "ustring"
	Values   []string // the allowed values of a ustring
	Required bool
	Default  string // used when the argument is absent ("" : none)
}

// Request is what a custom method's handler receives as req: req.method, req.args,
// req.user and req.info, all read-only. The API layer fills Args with the bound
// arguments (typed: string, int64/float64, bool), User with the user the call acts for
// (nil for level-0 methods without a user) and Info with anything else worth knowing
// (API key name, access level, remote address, API version…).
type Request struct {
	Args map[string]any
	User map[string]any
	Info map[string]any
}

// PrepareHookResult is what a callPrepare hook decided. Zero fields change nothing.
type PrepareHookResult struct {
	Destination string // rewritten number
	RouteID     int64  // route to use
	Decline     string // decline the call with this code, e.g. E_UNROUTABLE
}

// Handler kinds accepted by narayana.handler.
var HandlerKinds = []string{"payment", "sms", "did", "gsm", "route_balance"}

// Hook names accepted by narayana.hook.
var HookNames = []string{"callPrepare", "callFinish"}

// Runtime runs the scripts of one folder. It is safe for concurrent use.
type Runtime struct {
	opts    Options
	call    atomic.Pointer[CallFunc]
	gen     atomic.Pointer[generation]
	reload  sync.Mutex
	lastFP  string // fingerprint of the last folder content tried
	stop    chan struct{}
	stopped sync.WaitGroup
	closeMu sync.Once
	genSeq  atomic.Uint64
}

// generation is one loaded set of scripts and the pool of states running it.
type generation struct {
	id       uint64
	entries  []string // top-level files, sorted
	protos   map[string]*glua.FunctionProto
	methods  []MethodSpec
	hooks    map[string]bool
	handlers map[string][]string

	mu     sync.Mutex
	idle   []*state
	closed bool
}

// New starts a runtime. When opts.Dir is set the scripts are loaded at once (an error
// in them is returned) and the folder is watched for changes.
func New(opts Options) (*Runtime, error) {
	opts.setDefaults()
	if opts.Dir != "" {
		abs, err := filepath.Abs(opts.Dir)
		if err != nil {
			return nil, err
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("lua: scripts folder %s: not a directory", opts.Dir)
		}
		opts.Dir = abs
	}
	rt := &Runtime{opts: opts, stop: make(chan struct{})}
	if opts.Call != nil {
		rt.SetCall(opts.Call)
	}
	empty := &generation{hooks: map[string]bool{}, handlers: map[string][]string{}, closed: true}
	rt.gen.Store(empty)
	if opts.Dir == "" {
		return rt, nil
	}
	if err := rt.Reload(); err != nil {
		return nil, err
	}
	if opts.PollInterval > 0 {
		rt.stopped.Add(1)
		go rt.watch()
	}
	return rt, nil
}

// SetCall sets the callback behind narayana.call (the API router usually exists only
// after the runtime).
func (rt *Runtime) SetCall(fn CallFunc) { rt.call.Store(&fn) }

// Close stops watching the folder and closes the idle states. Calls in flight finish.
func (rt *Runtime) Close() error {
	rt.closeMu.Do(func() {
		close(rt.stop)
		rt.stopped.Wait()
		rt.gen.Load().close()
	})
	return nil
}

// Methods lists the custom methods of the loaded scripts, sorted by name.
func (rt *Runtime) Methods() []MethodSpec {
	g := rt.gen.Load()
	out := make([]MethodSpec, len(g.methods))
	copy(out, g.methods)
	return out
}

// Handlers lists the names registered for a handler kind, sorted.
func (rt *Runtime) Handlers(kind string) []string {
	return append([]string(nil), rt.gen.Load().handlers[kind]...)
}

// HasHook reports whether a script registered the hook ("callPrepare", "callFinish").
func (rt *Runtime) HasHook(name string) bool { return rt.gen.Load().hooks[name] }

// ---- loading ----

type snapshot struct {
	fp      string
	entries []string
	sources map[string]string
}

const (
	maxScriptFiles = 1000
	maxScriptSize  = 4 << 20
)

// scan reads the folder: every *.lua file below it (modules for require), the top-level
// ones being the entries. Symbolic links leading out of the folder are ignored.
func (rt *Runtime) scan(read bool) (*snapshot, error) {
	dir := rt.opts.Dir
	snap := &snapshot{sources: map[string]string{}}
	var fp strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != dir && strings.HasPrefix(d.Name(), ".") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(d.Name(), ".lua") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.Type()&fs.ModeSymlink != 0 {
			target, err := filepath.EvalSymlinks(path)
			if err != nil || !inside(dir, target) {
				return nil
			}
		}
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		if len(snap.sources) >= maxScriptFiles {
			return fmt.Errorf("more than %d .lua files", maxScriptFiles)
		}
		if fi.Size() > maxScriptSize {
			return fmt.Errorf("%s: larger than %d bytes", rel, maxScriptSize)
		}
		fmt.Fprintf(&fp, "%s\x00%d\x00%d\n", rel, fi.Size(), fi.ModTime().UnixNano())
		src := ""
		if read {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			src = string(b)
		}
		snap.sources[rel] = src
		if !strings.Contains(rel, "/") {
			snap.entries = append(snap.entries, rel)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lua: reading %s: %w", dir, err)
	}
	sort.Strings(snap.entries)
	snap.fp = fp.String()
	return snap, nil
}

func inside(dir, path string) bool {
	realDir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		realDir = dir
	}
	rel, err := filepath.Rel(realDir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel)
}

// Reload loads the scripts folder again now. On error the previous scripts stay in use
// and the error is returned (and logged).
func (rt *Runtime) Reload() error {
	if rt.opts.Dir == "" {
		return nil
	}
	rt.reload.Lock()
	defer rt.reload.Unlock()
	snap, err := rt.scan(true)
	if err == nil {
		rt.lastFP = snap.fp
		err = rt.load(snap)
	}
	if err != nil {
		rt.opts.Logger.Error("lua: loading scripts failed; keeping the previous ones", "dir", rt.opts.Dir, "err", err)
	}
	return err
}

func (rt *Runtime) load(snap *snapshot) error {
	g := &generation{
		id:       rt.genSeq.Add(1),
		entries:  snap.entries,
		protos:   map[string]*glua.FunctionProto{},
		hooks:    map[string]bool{},
		handlers: map[string][]string{},
	}
	for rel, src := range snap.sources {
		p, err := compileChunk(src, rel)
		if err != nil {
			return &Error{Code: CodeLuaException, Kind: ErrLuaException, Message: err.Error()}
		}
		g.protos[rel] = p
	}
	s, err := rt.newState(g)
	if err != nil {
		return err
	}
	g.methods = s.specs
	sort.Slice(g.methods, func(i, j int) bool { return g.methods[i].Name < g.methods[j].Name })
	for name := range s.hooks {
		g.hooks[name] = true
	}
	for kind, m := range s.handlers {
		for name := range m {
			g.handlers[kind] = append(g.handlers[kind], name)
		}
		sort.Strings(g.handlers[kind])
	}
	g.idle = append(g.idle, s)
	old := rt.gen.Swap(g)
	old.close()
	rt.opts.Logger.Info("lua: scripts loaded", "dir", rt.opts.Dir, "files", len(g.entries),
		"methods", len(g.methods), "hooks", len(g.hooks))
	return nil
}

func (rt *Runtime) watch() {
	defer rt.stopped.Done()
	t := time.NewTicker(rt.opts.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-rt.stop:
			return
		case <-t.C:
		}
		snap, err := rt.scan(false)
		rt.reload.Lock()
		changed := err == nil && snap.fp != rt.lastFP
		rt.reload.Unlock()
		if changed {
			_ = rt.Reload() // logged there
		}
	}
}

func (g *generation) close() {
	g.mu.Lock()
	idle := g.idle
	g.idle, g.closed = nil, true
	g.mu.Unlock()
	for _, s := range idle {
		s.L.Close()
	}
}

// get takes an idle state of the generation or makes a new one.
func (rt *Runtime) get(g *generation) (*state, error) {
	g.mu.Lock()
	if n := len(g.idle); n > 0 {
		s := g.idle[n-1]
		g.idle = g.idle[:n-1]
		g.mu.Unlock()
		return s, nil
	}
	g.mu.Unlock()
	return rt.newState(g)
}

// put returns a healthy state to its pool; a broken one, or one of an old generation,
// is closed.
func (rt *Runtime) put(s *state) {
	g := s.gen
	if !s.broken {
		g.mu.Lock()
		if !g.closed && len(g.idle) < rt.opts.PoolSize {
			g.idle = append(g.idle, s)
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
	}
	s.L.Close()
}

// ---- calls ----

type depthKey struct{}

func depthOf(ctx context.Context) int {
	d, _ := ctx.Value(depthKey{}).(int)
	return d
}

// exec runs fn on a pooled state of the current scripts with the limits in place.
func (rt *Runtime) exec(ctx context.Context, fn func(s *state) (any, error)) (res any, err error) {
	if ctx == nil {
		ctx = context.Background()
	}
	if depthOf(ctx) > rt.opts.MaxDepth {
		return nil, luaErr(ErrDepth, fmt.Sprintf("narayana.call nested deeper than %d", rt.opts.MaxDepth))
	}
	g := rt.gen.Load()
	s, err := rt.get(g)
	if err != nil {
		return nil, err
	}
	defer func() {
		if r := recover(); r != nil {
			s.broken = true
			err = luaErr(ErrLuaException, fmt.Sprintf("internal error: %v", r))
			res = nil
		}
		s.end()
		rt.put(s)
	}()
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	res, err = fn(s)
	if err != nil && !errors.Is(err, ErrScript) && !errors.Is(err, ErrNotRegistered) {
		// A state that hit a limit or an exception may hold half-done work: never reuse
		// it. An API error raised on purpose (narayana.fail) unwinds cleanly.
		s.broken = true
	}
	return res, err
}

// CallMethod runs the custom method name with req. The handler's return value comes back
// converted (string, int64, float64, bool, nil, map[string]any, []any).
func (rt *Runtime) CallMethod(ctx context.Context, name string, req Request) (any, error) {
	if !rt.hasMethod(name) {
		return nil, &Error{Code: CodeUnknownMethod, Kind: ErrNotRegistered, Message: "no script registered method " + name}
	}
	return rt.exec(ctx, func(s *state) (any, error) {
		fn := s.methods[name]
		if fn == nil {
			return nil, &Error{Code: CodeUnknownMethod, Kind: ErrNotRegistered, Message: "no script registered method " + name}
		}
		return s.invoke(fn, map[string]any{"method": name, "args": nz(req.Args), "user": req.User, "info": nz(req.Info)},
			"method "+name)
	})
}

func nz(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

func (rt *Runtime) hasMethod(name string) bool {
	for _, m := range rt.gen.Load().methods {
		if m.Name == name {
			return true
		}
	}
	return false
}

// CallPrepareHook runs the callPrepare hook with in (user, destination, callerid, prior,
// …). ok is false when no script registered the hook. The hook may return nil (no
// change) or a table {destination=…, route=…, decline="E_…"}.
func (rt *Runtime) CallPrepareHook(ctx context.Context, in map[string]any) (res PrepareHookResult, ok bool, err error) {
	if !rt.HasHook("callPrepare") {
		return res, false, nil
	}
	v, err := rt.callHook(ctx, "callPrepare", in)
	if err != nil {
		return res, true, err
	}
	switch v := v.(type) {
	case nil:
		return res, true, nil
	case map[string]any:
		bad := func(f string) error {
			return luaErr(ErrLuaException, "callPrepare hook returned a bad "+f)
		}
		for k, x := range v {
			switch k {
			case "destination":
				str, isStr := x.(string)
				if n, isNum := x.(int64); isNum {
					str, isStr = fmt.Sprint(n), true
				}
				if !isStr || str == "" || strings.ContainsAny(str, "\r\n \t") {
					return res, true, bad("destination")
				}
				res.Destination = str
			case "route":
				n, isNum := x.(int64)
				if !isNum || n <= 0 {
					return res, true, bad("route (want a positive route id)")
				}
				res.RouteID = n
			case "decline":
				str, _ := x.(string)
				if !validCode(str) {
					return res, true, bad("decline (want a code such as E_UNROUTABLE)")
				}
				res.Decline = str
			default:
				return res, true, luaErr(ErrLuaException, "callPrepare hook returned an unknown field "+k)
			}
		}
		return res, true, nil
	case []any:
		if len(v) == 0 {
			return res, true, nil
		}
	}
	return res, true, luaErr(ErrLuaException, fmt.Sprintf("callPrepare hook must return nil or a table, not %T", v))
}

// CallFinishHook runs the callFinish hook with in (the call's outcome). It observes:
// its return value is ignored. ok is false when no script registered it.
func (rt *Runtime) CallFinishHook(ctx context.Context, in map[string]any) (ok bool, err error) {
	if !rt.HasHook("callFinish") {
		return false, nil
	}
	_, err = rt.callHook(ctx, "callFinish", in)
	return true, err
}

func (rt *Runtime) callHook(ctx context.Context, name string, in map[string]any) (any, error) {
	return rt.exec(ctx, func(s *state) (any, error) {
		fn := s.hooks[name]
		if fn == nil {
			return nil, &Error{Code: CodeNotExist, Kind: ErrNotRegistered, Message: "no " + name + " hook"}
		}
		return s.invoke(fn, nz(in), name+" hook")
	})
}

// CallHandler runs the handler registered as narayana.handler(kind, name, fn) with in
// and returns its converted result.
func (rt *Runtime) CallHandler(ctx context.Context, kind, name string, in map[string]any) (any, error) {
	found := false
	for _, n := range rt.gen.Load().handlers[kind] {
		found = found || n == name
	}
	notReg := &Error{Code: CodeNotExist, Kind: ErrNotRegistered, Message: fmt.Sprintf("no %s handler named %q", kind, name)}
	if !found {
		return nil, notReg
	}
	return rt.exec(ctx, func(s *state) (any, error) {
		fn := s.handlers[kind][name]
		if fn == nil {
			return nil, notReg
		}
		return s.invoke(fn, nz(in), kind+" handler "+name)
	})
}

// invoke calls a script's function with in as its read-only argument (also what
// narayana.request reads) and converts the answer to Go; what names the function in
// errors ("method hello", "callPrepare hook", "payment handler card").
func (s *state) invoke(fn *glua.LFunction, in map[string]any, what string) (any, error) {
	arg, err := s.toLua(in, true, 0)
	if err != nil {
		return nil, luaErr(ErrLuaException, what+" input: "+err.Error())
	}
	s.request = arg
	ret, err := s.pcall(fn, arg)
	if err != nil {
		return nil, err
	}
	v, err := fromLua(ret)
	if err != nil {
		return nil, luaErr(ErrLuaException, fmt.Sprintf("%s returned a value that cannot be used: %v", what, err))
	}
	return v, nil
}
