package lua

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// writeScripts writes files (relative path → source) into a fresh folder.
func writeScripts(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newRuntime starts a runtime on files with short test limits.
func newRuntime(t testing.TB, files map[string]string, opts Options) *Runtime {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = writeScripts(t, files)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 100 * time.Millisecond
	}
	if opts.MemoryLimit == 0 {
		opts.MemoryLimit = 16 << 20
	}
	if opts.PollInterval == 0 {
		opts.PollInterval = -1
	}
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	rt, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { rt.Close() })
	return rt
}

// methods builds a script registering one argument-less method per entry.
func methods(bodies map[string]string) string {
	var b strings.Builder
	for name, body := range bodies {
		fmt.Fprintf(&b, "narayana.method{name=%q, handler=function(req)\n%s\nend}\n", name, body)
	}
	return b.String()
}

const helloScript = `narayana.method{name="hello", args={{name="who", type="string", required=true}},
  handler=function(req) return "hi " .. req.args.who end}
`

func call(rt *Runtime, name string) (any, error) {
	return rt.CallMethod(context.Background(), name, Request{Args: map[string]any{"who": "bob"}})
}

// mustServe checks that the pool still answers after a failure.
func mustServe(t *testing.T, rt *Runtime) {
	t.Helper()
	for i := 0; i < 3; i++ {
		v, err := call(rt, "hello")
		if err != nil || v != "hi bob" {
			t.Fatalf("hello after failure: %v, %v", v, err)
		}
	}
}

func TestSandbox(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret.lua")
	os.WriteFile(secret, []byte(`narayana.method{name="evil", handler=function() return 1 end} return "leaked"`), 0o644)
	files := map[string]string{
		"hello.lua":   helloScript,
		"lib/ok.lua":  `return {answer = 42}`,
		"sandbox.lua": "",
	}
	bodies := map[string]string{
		"os_execute":   `return os.execute("id")`,
		"io_open":      `return io.open("/etc/passwd")`,
		"dofile":       `return dofile("/etc/passwd")`,
		"loadfile":     `return loadfile("/etc/passwd")`,
		"req_abs":      `return require("/etc/passwd")`,
		"req_up":       `return require("../secret")`,
		"req_secret":   fmt.Sprintf(`return require(%q)`, strings.TrimSuffix(secret, ".lua")),
		"req_missing":  `return require("nothere")`,
		"loadlib":      `return package.loadlib("libc.so.6", "system")`,
		"debug":        `return debug.getinfo(1)`,
		"load_file":    `local f, err = load(io.lines("/etc/passwd")) return f`,
		"getmeta_str":  `return getmetatable("").__index.rep ~= nil`,
		"types":        `return {os=type(os), io=type(io), debug=type(debug), package=type(package), dofile=type(dofile), loadfile=type(loadfile), coroutine=type(coroutine)}`,
		"req_ok":       `return require("lib.ok").answer`,
		"req_twice":    `return require("lib.ok") == require("lib.ok")`,
		"loadstring":   `return loadstring("return 1 .. 2")()`,
		"load_badtype": `local f, err = load(function() return nil end) return err`,
	}
	files["sandbox.lua"] = methods(bodies)
	rt := newRuntime(t, files, Options{})

	refused := []string{"os_execute", "io_open", "dofile", "loadfile", "req_abs", "req_up", "req_secret", "req_missing", "loadlib", "debug", "load_file"}
	for _, m := range refused {
		t.Run(m, func(t *testing.T) {
			v, err := call(rt, m)
			if err == nil {
				t.Fatalf("%s: answered %v, want an error", m, v)
			}
			if !errors.Is(err, ErrLuaException) || Code(err) != CodeLuaException {
				t.Fatalf("%s: err %v (code %s), want E_LUA_EXCEPTION", m, err, Code(err))
			}
			if !strings.Contains(err.Error(), "sandbox.lua:") {
				t.Errorf("%s: error %q lacks file:line", m, err)
			}
			mustServe(t, rt)
		})
	}
	v, err := call(rt, "types")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"os": "nil", "io": "nil", "debug": "nil", "package": "nil", "dofile": "nil", "loadfile": "nil", "coroutine": "nil"}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("types = %v, want %v", v, want)
	}
	for m, want := range map[string]any{"req_ok": int64(42), "req_twice": true, "loadstring": "12", "load_badtype": "load: only a string of Lua source can be loaded here", "getmeta_str": true} {
		if v, err := call(rt, m); err != nil || v != want {
			t.Errorf("%s = %v, %v; want %v", m, v, err, want)
		}
	}
	if _, err := call(rt, "evil"); !errors.Is(err, ErrNotRegistered) || Code(err) != CodeUnknownMethod {
		t.Errorf("evil: %v", err)
	}
}

func TestTimeLimit(t *testing.T) {
	rt := newRuntime(t, map[string]string{
		"hello.lua": helloScript,
		"loop.lua": methods(map[string]string{
			"loop":      `while true do end`,
			"swallow":   `while true do pcall(function() while true do end end) end`,
			"recursion": `local function f(n) return f(n+1) + 1 end return f(1)`,
		}),
	}, Options{Timeout: 100 * time.Millisecond})
	for _, m := range []string{"loop", "swallow"} {
		_, err := call(rt, m)
		if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrLuaException) || Code(err) != CodeLuaException {
			t.Fatalf("%s: %v, want a time limit error", m, err)
		}
		if !strings.Contains(err.Error(), "time limit") || !strings.Contains(err.Error(), "loop.lua:") {
			t.Errorf("%s: unclear message %q", m, err)
		}
		mustServe(t, rt)
	}
	// The caller's own deadline stops the call too.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := rt.CallMethod(ctx, "loop", Request{}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("caller deadline: %v", err)
	}
	// Stack overflow is an exception, not a crash.
	if _, err := call(rt, "recursion"); Code(err) != CodeLuaException {
		t.Fatalf("recursion: %v", err)
	}
	mustServe(t, rt)
}

func TestMemoryLimit(t *testing.T) {
	rt := newRuntime(t, map[string]string{
		"hello.lua": helloScript,
		"bomb.lua": methods(map[string]string{
			"rep_table":  `local t={} while true do t[#t+1]=string.rep("x",1e6) end`,
			"rep_huge":   `return string.rep("x", 1e12)`,
			"concat":     `local s="x" while true do s = s .. s end`,
			"table":      `local t={} while true do t[#t+1]=#t end`,
			"tables":     `local t={} local i=0 while true do i=i+1 t["k"..i]={i} end`,
			"global":     `big = {} while true do big[#big+1] = string.rep("y", 1000) .. #big end`,
			"tconcat":    `local t={} for i=1,100 do t[i]=string.rep("z",1e6) end return #table.concat(t)`,
			"format":     `return string.format("%999999999d", 1)`,
			"gsub":       `local s = string.rep("a", 1e5) return #s:gsub("a", string.rep("b", 1000))`,
			"gsub_fn":    `local s = string.rep("a", 1e5) local r = string.rep("b", 1000) return #s:gsub("a", function() return r end)`,
			"gsub_pct":   `local s = string.rep("a", 1e5) return #s:gsub("a", "%0%0%0%0%0%0%0%0%0%0")`,
			"swallow":    `local ok = pcall(string.rep, "x", 1e12) return "survived"`,
			"ok_builder": `local s = "" for i=1,3000 do s = s .. "x" end return #s`,
		}),
	}, Options{MemoryLimit: 16 << 20, Timeout: 5 * time.Second})
	for _, m := range []string{"rep_table", "rep_huge", "concat", "table", "tables", "global", "tconcat", "gsub", "gsub_fn", "gsub_pct", "swallow"} {
		t.Run(m, func(t *testing.T) {
			_, err := call(rt, m)
			if !errors.Is(err, ErrMemory) || !errors.Is(err, ErrLuaException) || Code(err) != CodeLuaException {
				t.Fatalf("%s: %v, want a memory limit error", m, err)
			}
			if !strings.Contains(err.Error(), "memory limit") {
				t.Errorf("%s: unclear message %q", m, err)
			}
			mustServe(t, rt)
		})
	}
	if _, err := call(rt, "format"); Code(err) != CodeLuaException || !strings.Contains(err.Error(), "too long") {
		t.Errorf("format: %v", err)
	}
	if v, err := call(rt, "ok_builder"); err != nil || v != int64(3000) {
		t.Errorf("ok_builder: %v, %v", v, err)
	}
}

func TestHeapLimitBackstop(t *testing.T) {
	rt := newRuntime(t, map[string]string{
		"hello.lua": helloScript,
		"a.lua":     methods(map[string]string{"spin": `local x = 0 while true do x = x + 1 end`}),
	}, Options{HeapLimit: 1, Timeout: 5 * time.Second}) // any heap is over 1 byte
	if _, err := call(rt, "spin"); !errors.Is(err, ErrMemory) || !strings.Contains(err.Error(), "process heap") {
		t.Fatalf("spin: %v", err)
	}
}

func TestConcurrentCalls(t *testing.T) {
	rt := newRuntime(t, map[string]string{
		"hello.lua": helloScript,
		"more.lua": methods(map[string]string{
			"sum":   `local s = 0 for i = 1, 1000 do s = s + i end counter = (counter or 0) + 1 return s`,
			"fail":  `narayana.fail("E_NOT_EXIST", "nope")`,
			"boom":  `error("boom")`,
			"loop":  `while true do end`,
			"money": `return narayana.money.format(narayana.money.mul(narayana.money.parse("2.50"), 3000000), 2)`,
		}),
	}, Options{PoolSize: 4, Timeout: 5 * time.Second}) // loops get a short deadline per call
	var wg sync.WaitGroup
	var bad atomic.Int64
	var badMu sync.Mutex
	var badErrs []string
	note := func(what string, v any, err error) {
		bad.Add(1)
		badMu.Lock()
		badErrs = append(badErrs, fmt.Sprintf("%s: %v %v", what, v, err))
		badMu.Unlock()
	}
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				switch (g + i) % 7 {
				case 0:
					if v, err := call(rt, "fail"); Code(err) != "E_NOT_EXIST" {
						note("fail", v, err)
					}
				case 1:
					if v, err := call(rt, "boom"); Code(err) != CodeLuaException {
						note("boom", v, err)
					}
				case 2:
					if i%5 == 0 {
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
						v, err := rt.CallMethod(ctx, "loop", Request{})
						cancel()
						if !errors.Is(err, ErrTimeout) {
							note("loop", v, err)
						}
					}
				case 3:
					if v, err := call(rt, "sum"); err != nil || v != int64(500500) {
						note("sum", v, err)
					}
				case 4:
					if v, err := call(rt, "money"); err != nil || v != "7.50" {
						note("money", v, err)
					}
				default:
					if v, err := call(rt, "hello"); err != nil || v != "hi bob" {
						note("hello", v, err)
					}
				}
			}
		}(g)
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d wrong answers: %v", bad.Load(), badErrs)
	}
	g := rt.gen.Load()
	g.mu.Lock()
	idle := len(g.idle)
	g.mu.Unlock()
	if idle > 4 {
		t.Errorf("pool keeps %d idle states, want at most 4", idle)
	}
}

func TestReload(t *testing.T) {
	dir := writeScripts(t, map[string]string{"a.lua": `narayana.method{name="v", handler=function() return 1 end}`})
	rt := newRuntime(t, nil, Options{Dir: dir, PollInterval: 10 * time.Millisecond})
	if v, _ := call(rt, "v"); v != int64(1) {
		t.Fatalf("v = %v", v)
	}
	// write replaces a file as editors and deploy tools do, by renaming a finished copy
	// over it: written in place, the 10 ms poller could load it empty, half written.
	write := func(name, src string, age time.Duration) {
		p := filepath.Join(dir, name)
		tmp := p + ".tmp"
		if err := os.WriteFile(tmp, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(age)
		os.Chtimes(tmp, mt, mt)
		if err := os.Rename(tmp, p); err != nil {
			t.Fatal(err)
		}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("gave up waiting: %s", what)
	}
	// A change is picked up by the poller.
	write("a.lua", `narayana.method{name="v", handler=function() return 2 end}`, time.Hour)
	waitFor("v == 2", func() bool { v, _ := call(rt, "v"); return v == int64(2) })

	// A new file adds a method.
	write("b.lua", `narayana.handler("sms", "gw", function() return "sent" end)`, 2*time.Hour)
	waitFor("sms handler", func() bool { return len(rt.Handlers("sms")) == 1 })

	// A broken file keeps the previous set.
	write("a.lua", `narayana.method{name="v", handler=function() return 3 end`, 3*time.Hour)
	if err := rt.Reload(); err == nil || !strings.Contains(err.Error(), "a.lua") {
		t.Fatalf("Reload of a syntax error: %v", err)
	}
	if v, _ := call(rt, "v"); v != int64(2) {
		t.Fatalf("after a failed reload v = %v, want 2", v)
	}
	write("a.lua", `error("fails at load")`, 4*time.Hour)
	if err := rt.Reload(); err == nil || !strings.Contains(err.Error(), "fails at load") {
		t.Fatalf("Reload of a failing script: %v", err)
	}
	if v, _ := call(rt, "v"); v != int64(2) {
		t.Fatalf("after a failed reload v = %v, want 2", v)
	}
	// Fixed: on demand.
	write("a.lua", `narayana.method{name="v", handler=function() return 5 end}`, 5*time.Hour)
	if err := rt.Reload(); err != nil {
		t.Fatal(err)
	}
	if v, _ := call(rt, "v"); v != int64(5) {
		t.Fatalf("v = %v, want 5", v)
	}
	// Removing a file removes its registrations.
	os.Remove(filepath.Join(dir, "b.lua"))
	rt.Reload()
	if h := rt.Handlers("sms"); len(h) != 0 {
		t.Fatalf("sms handlers after removal: %v", h)
	}
}

func TestNoScripts(t *testing.T) {
	rt, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if _, err := call(rt, "hello"); !errors.Is(err, ErrNotRegistered) || Code(err) != CodeUnknownMethod {
		t.Fatalf("CallMethod: %v", err)
	}
	if _, ok, err := rt.CallPrepareHook(context.Background(), nil); ok || err != nil {
		t.Fatalf("CallPrepareHook: %v %v", ok, err)
	}
	if ok, err := rt.CallFinishHook(context.Background(), nil); ok || err != nil {
		t.Fatalf("CallFinishHook: %v %v", ok, err)
	}
	if _, err := rt.CallHandler(context.Background(), "payment", "x", nil); !errors.Is(err, ErrNotRegistered) || Code(err) != "E_NOT_EXIST" {
		t.Fatalf("CallHandler: %v", err)
	}
	if len(rt.Methods()) != 0 || len(rt.Handlers("payment")) != 0 || rt.Reload() != nil {
		t.Fatal("an empty runtime has something")
	}
	if _, err := New(Options{Dir: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Fatal("New with a missing folder succeeded")
	}
}

func TestDepthLimit(t *testing.T) {
	var calls atomic.Int64
	var rt *Runtime
	rt = newRuntime(t, map[string]string{
		"rec.lua": `
narayana.method{name="rec", handler=function(req) return narayana.call("rec", {}) end}
narayana.method{name="two", handler=function(req) return narayana.call("leaf", {x = 1}) end}
narayana.method{name="leaf", handler=function(req) return "leaf " .. req.args.x end}
narayana.method{name="catch", handler=function(req)
  local ok, err = pcall(narayana.call, "missing", {})
  return {ok = ok, code = err.code, message = err.message}
end}
`,
	}, Options{Timeout: 5 * time.Second})
	rt.SetCall(func(ctx context.Context, method string, args map[string]any) (any, error) {
		calls.Add(1)
		if method == "missing" {
			return nil, NewError("E_UNKNOWN_METHOD", "no method missing")
		}
		return rt.CallMethod(ctx, method, Request{Args: args})
	})
	_, err := rt.CallMethod(context.Background(), "rec", Request{})
	if !errors.Is(err, ErrDepth) || Code(err) != CodeDepth {
		t.Fatalf("rec: %v (code %s)", err, Code(err))
	}
	if n := calls.Load(); n != 8 {
		t.Errorf("callback ran %d times, want 8 (MaxDepth)", n)
	}
	if v, err := rt.CallMethod(context.Background(), "two", Request{}); err != nil || v != "leaf 1" {
		t.Fatalf("two: %v %v", v, err)
	}
	v, err := rt.CallMethod(context.Background(), "catch", Request{})
	want := map[string]any{"ok": false, "code": "E_UNKNOWN_METHOD", "message": "no method missing"}
	if err != nil || !reflect.DeepEqual(v, want) {
		t.Fatalf("catch: %v %v", v, err)
	}
	// A context already too deep is refused before any script runs.
	deep := context.WithValue(context.Background(), depthKey{}, 9)
	if _, err := rt.CallMethod(deep, "leaf", Request{}); !errors.Is(err, ErrDepth) {
		t.Fatalf("deep ctx: %v", err)
	}
}

type codedErr struct{}

func (codedErr) Error() string   { return "coded" }
func (codedErr) APICode() string { return "E_CODED" }

func TestErrorCodes(t *testing.T) {
	rt := newRuntime(t, map[string]string{
		"errs.lua": methods(map[string]string{
			"table_err":  `error({code="E_INSUFFICIENT_MONEY", message="broke"})`,
			"fail":       `narayana.fail("E_USER_LOCKED", "locked")`,
			"string_err": `error("plain text")`,
			"bad_code":   `error({code="oops"})`,
			"runtime":    `return nil + 1`,
			"bad_ret":    `return function() end`,
			"cycle":      `local t = {} t.t = t return t`,
			"fail_bad":   `narayana.fail("lowercase")`,
			"depth_code": `narayana.fail("E_HAS_NO_ONE_TOLD_YOU_SHE_IS_NOT_BREATHING")`,
			"late_reg":   `narayana.method{name="late", handler=function() end}`,
			"no_cb":      `return narayana.call("x", {})`,
		}),
	}, Options{})
	cases := []struct {
		method, code string
		kind         error
		text         string
	}{
		{"table_err", "E_INSUFFICIENT_MONEY", ErrScript, "broke"},
		{"fail", "E_USER_LOCKED", ErrScript, "errs.lua:"},
		{"string_err", CodeLuaException, ErrLuaException, "errs.lua:"},
		{"bad_code", CodeLuaException, ErrLuaException, "valid code"},
		{"runtime", CodeLuaException, ErrLuaException, "errs.lua:"},
		{"bad_ret", CodeLuaException, ErrLuaException, "cannot be"},
		{"cycle", CodeLuaException, ErrLuaException, "itself"},
		{"fail_bad", CodeLuaException, ErrLuaException, "E_SOMETHING"},
		{"depth_code", CodeDepth, ErrDepth, ""},
		{"late_reg", CodeLuaException, ErrLuaException, "while the script loads"},
		{"no_cb", CodeLuaException, ErrLuaException, "no callback"},
	}
	for _, c := range cases {
		_, err := call(rt, c.method)
		if Code(err) != c.code || !errors.Is(err, c.kind) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("%s: %v (code %s), want code %s kind %v text %q", c.method, err, Code(err), c.code, c.kind, c.text)
		}
	}
	if Code(nil) != "" || Code(errors.New("x")) != CodeLuaException || Code(fmt.Errorf("w: %w", codedErr{})) != "E_CODED" {
		t.Error("Code of plain errors")
	}
	if Code(fmt.Errorf("wrapped: %w", NewError("E_X", "y"))) != "E_X" {
		t.Error("Code of a wrapped *Error")
	}
}

func TestRegistrationErrors(t *testing.T) {
	for name, src := range map[string]string{
		"dup method":   `for i=1,2 do narayana.method{name="m", handler=function() end} end`,
		"bad name":     `narayana.method{name="a b", handler=function() end}`,
		"no handler":   `narayana.method{name="m"}`,
		"bad type":     `narayana.method{name="m", args={{name="a", type="date"}}, handler=function() end}`,
		"ustring":      `narayana.method{name="m", args={{name="a", type="ustring"}}, handler=function() end}`,
		"bad hook":     `narayana.hook("callStart", function() end)`,
		"dup hook":     `narayana.hook("callPrepare", function() end) narayana.hook("callPrepare", function() end)`,
		"bad kind":     `narayana.handler("fax", "x", function() end)`,
		"dup handler":  `narayana.handler("sms", "x", function() end) narayana.handler("sms", "x", function() end)`,
		"loading loop": `while true do end`,
		"syntax":       `narayana.method{`,
	} {
		dir := writeScripts(t, map[string]string{"x.lua": src})
		if rt, err := New(Options{Dir: dir, Logger: quietLogger(), Timeout: 100 * time.Millisecond, PollInterval: -1}); err == nil {
			rt.Close()
			t.Errorf("%s: loaded", name)
		} else if Code(err) != CodeLuaException || !strings.Contains(err.Error(), "x.lua") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestSpecsAndConversions(t *testing.T) {
	rt := newRuntime(t, map[string]string{
		"conv.lua": `
narayana.method{name="echo", level=30, comment="echo",
  args={{name="a", type="string", required=true}, {name="n", type="num", default=1},
        {name="b", type="bool", default=true}, {name="u", type="ustring", values={"x","y"}, default="x"}},
  handler=function(req) return req end}
narayana.method{name="nouser", handler=function(req) return req.user == nil end}
narayana.method{name="shapes", handler=function(req)
  return {list={1,2,"three"}, map={a=1, b={c=true}}, empty={}, f=1.5, big=2^40, neg=-3, mixed={1, x=2}, sparse={[1]=1,[3]=3}}
end}
narayana.method{name="readonly", handler=function(req)
  local ok, err = pcall(function() req.user.name = "mallory" end)
  local ok2 = pcall(function() req.user.new = 1 end)
  local ok3 = pcall(setmetatable, req.user, nil)
  local keys = {}
  for k, v in pairs(req.user) do keys[#keys+1] = k end
  table.sort(keys)
  local tags = {}
  for i, v in ipairs(req.user.tags) do tags[i] = v end
  return {ok=ok, ok2=ok2, ok3=ok3, keys=keys, tags=tags, n=#req.user.tags, name=req.user.name,
          meta=getmetatable(req.user), same=narayana.request().user.name, nested=req.info.plan.price}
end}
`,
	}, Options{})
	specs := rt.Methods()
	wantSpec := MethodSpec{Name: "echo", Level: 30, Comment: "echo", File: "conv.lua:2", Args: []ArgSpec{
		{Name: "a", Type: "string", Required: true}, {Name: "n", Type: "num", Default: "1"},
		{Name: "b", Type: "bool", Default: "true"}, {Name: "u", Type: "ustring", Values: []string{"x", "y"}, Default: "x"},
	}}
	if len(specs) != 4 || !reflect.DeepEqual(specs[0], wantSpec) {
		t.Fatalf("specs[0] = %+v\nwant %+v", specs[0], wantSpec)
	}
	v, err := rt.CallMethod(context.Background(), "echo", Request{Args: map[string]any{"a": "x", "n": int64(2), "b": false}, User: map[string]any{"id": 7}})
	want := map[string]any{"method": "echo", "args": map[string]any{"a": "x", "n": int64(2), "b": false}, "user": map[string]any{"id": int64(7)}, "info": []any{}}
	if err != nil || !reflect.DeepEqual(v, want) {
		t.Fatalf("echo = %#v, %v\nwant %#v", v, err, want)
	}
	if v, err := call(rt, "nouser"); v != true || err != nil {
		t.Errorf("nouser = %v, %v", v, err)
	}
	v, err = call(rt, "shapes")
	want = map[string]any{
		"list": []any{int64(1), int64(2), "three"}, "map": map[string]any{"a": int64(1), "b": map[string]any{"c": true}},
		"empty": []any{}, "f": 1.5, "big": int64(1 << 40), "neg": int64(-3),
		"mixed": map[string]any{"1": int64(1), "x": int64(2)}, "sparse": map[string]any{"1": int64(1), "3": int64(3)},
	}
	if err != nil || !reflect.DeepEqual(v, want) {
		t.Fatalf("shapes = %#v, %v", v, err)
	}
	type plan struct {
		Price int64 `json:"price"`
	}
	v, err = rt.CallMethod(context.Background(), "readonly", Request{
		User: map[string]any{"name": "alice", "tags": []string{"a", "b"}},
		Info: map[string]any{"plan": plan{Price: 5}},
	})
	want = map[string]any{"ok": false, "ok2": false, "ok3": false, "keys": []any{"name", "tags"}, "tags": []any{"a", "b"},
		"n": int64(2), "name": "alice", "meta": "read-only", "same": "alice", "nested": int64(5)}
	if err != nil || !reflect.DeepEqual(v, want) {
		t.Fatalf("readonly = %#v, %v", v, err)
	}
}

func TestHooksAndHandlers(t *testing.T) {
	rt := newRuntime(t, map[string]string{
		"hooks.lua": `
narayana.hook("callPrepare", function(c)
  if c.destination == "bad" then return {decline="E_UNROUTABLE"} end
  if c.destination == "route" then return {route=7, destination="4930"} end
  if c.destination == "junk" then return {foo=1} end
  if c.destination == "str" then return "x" end
  if c.destination == "badroute" then return {route="x"} end
  return nil
end)
narayana.hook("callFinish", function(c) seen = c.destination end)
narayana.handler("did", "provision", function(in_) return {ok=true, did=in_.did} end)
narayana.handler("route_balance", "cheapest", function(in_) return in_.routes[2] end)
`,
	}, Options{})
	ctx := context.Background()
	for dest, want := range map[string]PrepareHookResult{
		"bad":    {Decline: "E_UNROUTABLE"},
		"route":  {RouteID: 7, Destination: "4930"},
		"normal": {},
	} {
		got, ok, err := rt.CallPrepareHook(ctx, map[string]any{"destination": dest, "prior": 1})
		if !ok || err != nil || got != want {
			t.Errorf("prepare %s = %+v %v %v, want %+v", dest, got, ok, err, want)
		}
	}
	for _, dest := range []string{"junk", "str", "badroute"} {
		if _, ok, err := rt.CallPrepareHook(ctx, map[string]any{"destination": dest}); !ok || Code(err) != CodeLuaException {
			t.Errorf("prepare %s: %v %v", dest, ok, err)
		}
	}
	if ok, err := rt.CallFinishHook(ctx, map[string]any{"destination": "x"}); !ok || err != nil {
		t.Errorf("finish: %v %v", ok, err)
	}
	v, err := rt.CallHandler(ctx, "did", "provision", map[string]any{"did": "4930111"})
	if err != nil || !reflect.DeepEqual(v, map[string]any{"ok": true, "did": "4930111"}) {
		t.Errorf("did handler: %v %v", v, err)
	}
	v, err = rt.CallHandler(ctx, "route_balance", "cheapest", map[string]any{"routes": []any{int64(1), int64(2)}})
	if err != nil || v != int64(2) {
		t.Errorf("route_balance: %v %v", v, err)
	}
	if got := rt.Handlers("did"); !reflect.DeepEqual(got, []string{"provision"}) {
		t.Errorf("Handlers(did) = %v", got)
	}
	if _, err := rt.CallHandler(ctx, "did", "nope", nil); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("unknown handler: %v", err)
	}
}

func TestHTTP(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/redirect":
			http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
		case "/big":
			w.Write(bytes.Repeat([]byte("x"), 2<<20))
		default:
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "%s %s %s %s", r.Method, r.URL.Path, r.Header.Get("Content-Type"), b)
		}
	}))
	defer srv.Close()
	u := srv.URL
	rt := newRuntime(t, map[string]string{
		"http.lua": methods(map[string]string{
			"get":      fmt.Sprintf(`local b, st, h = narayana.http_get(%q) return {b, st, h["content-type"]}`, u+"/x"),
			"post":     fmt.Sprintf(`local b, st = narayana.http_post(%q, '{"a":1}', "application/json") return b`, u+"/p"),
			"denied":   `return narayana.http_get("http://example.com/")`,
			"scheme":   `return narayana.http_get("file:///etc/passwd")`,
			"redirect": fmt.Sprintf(`local b, err = narayana.http_get(%q) return err`, u+"/redirect"),
			"big":      fmt.Sprintf(`local b, err = narayana.http_get(%q) return err`, u+"/big"),
		}),
	}, Options{HTTPAllow: []string{"127.0.0.1"}, Timeout: 5 * time.Second})
	v, err := call(rt, "get")
	if err != nil || !reflect.DeepEqual(v, []any{"GET /x  ", int64(200), "text/plain; charset=utf-8"}) {
		t.Errorf("get: %#v %v", v, err)
	}
	if v, err := call(rt, "post"); err != nil || v != `POST /p application/json {"a":1}` {
		t.Errorf("post: %#v %v", v, err)
	}
	before := hits.Load()
	if _, err := call(rt, "denied"); Code(err) != CodeLuaException || !strings.Contains(err.Error(), "allow-list") {
		t.Errorf("denied: %v", err)
	}
	if _, err := call(rt, "scheme"); Code(err) != CodeLuaException {
		t.Errorf("scheme: %v", err)
	}
	if hits.Load() != before {
		t.Error("a refused request reached a server")
	}
	if v, err := call(rt, "redirect"); err != nil || !strings.Contains(fmt.Sprint(v), "allow-list") {
		t.Errorf("redirect: %v %v", v, err)
	}
	if v, err := call(rt, "big"); err != nil || !strings.Contains(fmt.Sprint(v), "larger than") {
		t.Errorf("big: %v %v", v, err)
	}
}

func TestLogAndPrint(t *testing.T) {
	var buf bytes.Buffer
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	rt := newRuntime(t, map[string]string{
		"log.lua": methods(map[string]string{
			"log":    `narayana.log("warn", "careful " .. 1) print("printed", 2) return true`,
			"badlvl": `narayana.log("loud", "x")`,
		}),
	}, Options{Logger: logger})
	if _, err := call(rt, "log"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out := buf.String()
	mu.Unlock()
	if !strings.Contains(out, `level=WARN msg="careful 1" lua=log.lua:`) || !strings.Contains(out, "printed\\t2") {
		t.Errorf("log output:\n%s", out)
	}
	if _, err := call(rt, "badlvl"); Code(err) != CodeLuaException {
		t.Errorf("badlvl: %v", err)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func BenchmarkCallMethod(b *testing.B) {
	rt := newRuntime(b, map[string]string{"hello.lua": helloScript}, Options{Timeout: time.Second})
	ctx := context.Background()
	req := Request{Args: map[string]any{"who": "bob"}}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := rt.CallMethod(ctx, "hello", req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestSymlinkOutsideIgnored(t *testing.T) {
	outside := writeScripts(t, map[string]string{"evil.lua": `return "outside"`})
	dir := writeScripts(t, map[string]string{
		"a.lua":      methods(map[string]string{"get": `return require("evil")`, "inner": `return require("lib.in")`}),
		"lib/in.lua": `return "inside"`,
	})
	if err := os.Symlink(filepath.Join(outside, "evil.lua"), filepath.Join(dir, "evil.lua")); err != nil {
		t.Skip("no symlinks:", err)
	}
	rt := newRuntime(t, nil, Options{Dir: dir})
	if v, err := call(rt, "get"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("require through a symlink out of the folder: %v %v", v, err)
	}
	if v, err := call(rt, "inner"); err != nil || v != "inside" {
		t.Fatalf("inner: %v %v", v, err)
	}
}
