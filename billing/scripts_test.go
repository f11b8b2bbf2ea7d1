package billing

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

const testScript = `
narayana.method{
  name = "greet", level = 1,
  args = {
    { name = "who", type = "string", required = true },
    { name = "n", type = "num", default = "1" },
    { name = "loud", type = "bool", default = "false" },
    { name = "tone", type = "ustring", values = {"warm", "cold"}, default = "warm" },
  },
  handler = function(req)
    local s = "hi " .. req.args.who .. " from " .. req.user.username
    if req.args.loud then s = string.upper(s) end
    return { text = s, n = req.args.n, tone = req.args.tone, key = req.info.key }
  end,
}
narayana.method{ name = "boom", handler = function(req) local t = nil; return t.x end }
narayana.method{ name = "refuse", handler = function(req) narayana.fail("E_INSUFFICIENT_MONEY", "no money") end }
narayana.method{ name = "recurse", handler = function(req) return narayana.call("recurse", {}) end }
narayana.method{ name = "myname", level = 1, handler = function(req)
  return narayana.call("getValue", { property = "username", login = "admin" })
end }
narayana.method{ name = "caught", level = 1, handler = function(req)
  local ok, err = pcall(narayana.call, "getUsers", {})
  if ok then return "allowed" end
  return err.code
end }
narayana.method{ name = "viaInfo", level = 1, handler = function(req)
  local ok, err = pcall(narayana.call, "getInfo", {})
  if ok then return "allowed" end
  return err.code
end }
narayana.method{ name = "getInfo", handler = function(req) return "hijacked" end }
narayana.method{ name = "spin", handler = function(req) while true do end end }
`

// scriptEnv is a daemon started with a scripts folder holding the files given.
func scriptEnv(t *testing.T, d *db.DB, files map[string]string) (*env, string) {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := testConfig()
	cfg.ScriptsDir = dir
	cfg.LuaTimeout = 300 * time.Millisecond
	if err := Bootstrap(context.Background(), d, cfg, adminName, md5hex("adminpw"), webKey); err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), d, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &env{t: t, s: s, h: s.Handler(), web: webKey}, dir
}

func TestScriptMethods(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e, dir := scriptEnv(t, d, map[string]string{"methods.lua": testScript})
		e.register(admin(), "alice", 11)

		a := e.ok(e.do(e.web, "greet", user("alice", "who", "bob", "loud", "yes")))
		if field(a, "text") != "HI BOB FROM ALICE" || field(a, "n") != "1" || field(a, "tone") != "warm" || field(a, "key") != "web" {
			t.Fatalf("greet: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "greet", user("alice", "who", "bob", "n", "2.5"))); field(a, "n") != "2.5" || field(a, "text") != "hi bob from alice" {
			t.Fatalf("greet n: %s", a.Body)
		}
		// The gate and the argument binding treat it as a built-in.
		e.fails(e.do(e.web, "greet", user("alice")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "greet", user("alice", "who", "x", "n", "many")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "greet", user("alice", "who", "x", "tone", "hot")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "greet", url.Values{"who": {"x"}}), apierr.AuthFailed, 200)
		e.ok(e.do(e.web, "addKey", admin("name", "narrow", "apikey", "narrow-key-1234", "allowed_methods", "getInfo")))
		e.fails(e.do("narrow-key-1234", "greet", user("alice", "who", "x")), apierr.InsufficientAccess, 200)

		// Errors: a script exception, a script's own code, the depth limit, a runaway.
		a = e.do(e.web, "boom", nil)
		e.fails(a, apierr.LuaException, 200)
		if strings.Contains(a.Description, ".lua:") {
			t.Fatalf("file:line reached the client: %s", a.Body)
		}
		a = e.do(e.web, "refuse", nil)
		e.fails(a, apierr.InsufficientMoney, 200)
		if a.Description != "no money" {
			t.Fatalf("refuse: %s", a.Body)
		}
		e.fails(e.do(e.web, "recurse", nil), apierr.EndlessLoop, 200)
		e.fails(e.do(e.web, "spin", nil), apierr.LuaException, 200)

		// narayana.call runs a method as the same caller: login in args changes nothing,
		// and the caller's level still applies.
		if a := e.ok(e.do(e.web, "myname", user("alice"))); a.Response != "alice" {
			t.Fatalf("myname: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "caught", user("alice"))); a.Response != apierr.InsufficientAccess {
			t.Fatalf("caught: %s", a.Body)
		}
		if a := e.ok(e.do(e.web, "caught", admin())); a.Response != "allowed" {
			t.Fatalf("caught as admin: %s", a.Body)
		}
		// The key's allowed_methods bind narayana.call too: the gate's rules are one
		// (keys.Permit), whether the method is asked over HTTP or from a script.
		e.ok(e.do(e.web, "addKey", admin("name", "via", "apikey", "via-key-123456", "allowed_methods", "viaInfo")))
		if a := e.ok(e.do("via-key-123456", "viaInfo", user("alice"))); a.Response != apierr.InsufficientAccess {
			t.Fatalf("narayana.call of a method the key does not allow: %s", a.Body)
		}
		e.fails(e.do("via-key-123456", "getInfo", user("alice")), apierr.InsufficientAccess, 200)
		if a := e.ok(e.do(e.web, "viaInfo", user("alice"))); a.Response != "allowed" {
			t.Fatalf("viaInfo with an unrestricted key: %s", a.Body)
		}
		// A script method named like a built-in is refused; the built-in answers.
		if a := e.ok(e.do(e.web, "getInfo", user("alice"))); a.Response == "hijacked" {
			t.Fatalf("getInfo hijacked: %s", a.Body)
		}

		// Reload: a method removed from the scripts answers E_UNKNOWN_METHOD.
		if err := os.WriteFile(filepath.Join(dir, "methods.lua"), []byte(`narayana.method{ name = "boom", handler = function() return "fixed" end }`), 0o644); err != nil {
			t.Fatal(err)
		}
		waitOK(t, func() bool { return e.do(e.web, "boom", nil).Response == "fixed" })
		e.fails(e.do(e.web, "greet", user("alice", "who", "x")), apierr.UnknownMethod, 400)
	})
}

func TestScriptsFailingAtStart(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "bad.lua"), []byte("this is not lua"), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.ScriptsDir = dir
		if _, err := Start(context.Background(), d, cfg, slog.New(slog.NewTextHandler(io.Discard, nil))); err == nil {
			t.Fatal("Start accepted a broken script")
		}
	})
}

type fakeTTS struct{ fail bool }

func (f fakeTTS) Synthesize(_ context.Context, text, lang string) ([]byte, error) {
	if f.fail {
		return nil, errors.New("engine broke")
	}
	return []byte("RIFF" + lang + ":" + text), nil
}

func TestCreateTTS(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "alice", 11)
		e.serverKey("pbx", "pbx-server-key-50", 50)
		get := func(kv ...string) *httptest.ResponseRecorder {
			v := url.Values{"login": {"alice"}}
			for i := 0; i+1 < len(kv); i += 2 {
				v.Set(kv[i], kv[i+1])
			}
			req := httptest.NewRequest(http.MethodGet, "/billing/api/2.2/pbx-server-key-50/createTTS?"+v.Encode(), nil)
			req.RemoteAddr = "127.0.0.1:1"
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			return rec
		}
		e.s.ext.tts = fakeTTS{}
		rec := get("text", "hello world")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "audio/wav" || rec.Body.String() != "RIFFen:hello world" {
			t.Fatalf("createTTS: %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
		}
		if rec := get("text", "hallo", "lang", "de"); rec.Body.String() != "RIFFde:hallo" {
			t.Fatalf("lang: %q", rec.Body.String())
		}
		e.fails(e.do("pbx-server-key-50", "createTTS", url.Values{"login": {"alice"}}), apierr.MissingArgument, 400)
		e.s.ext.tts = fakeTTS{fail: true}
		e.fails(e.do("pbx-server-key-50", "createTTS", url.Values{"login": {"alice"}, "text": {"x"}}), apierr.TTSError, 200)

		// The real engine when it is installed.
		if _, err := exec.LookPath("espeak-ng"); err != nil {
			return
		}
		e.s.ext.tts = nil
		rec = get("text", "hello")
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "audio/wav" || !strings.HasPrefix(rec.Body.String(), "RIFF") {
			t.Fatalf("espeak-ng: %d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
	})
}

func TestScriptHooks(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e, _ := scriptEnv(t, d, map[string]string{"hooks.lua": `
narayana.hook("callPrepare", function(call)
  if call.destination == "112" then return { destination = "4930112" } end
  if call.destination == "900" then return { decline = "E_UNROUTABLE" } end
  if call.destination == "666" then error("broken") end
  if call.user.username ~= "alice" then return { decline = "E_USER_LOCKED" } end
end)
narayana.hook("callFinish", function(call) error("ignored") end)
`})
		e.register(admin(), "alice", 11)
		u, err := userByName(context.Background(), e.s.DB.Q(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		for dest, want := range map[string]string{"112": "4930112/", "900": "/E_UNROUTABLE", "666": "/E_LUA_EXCEPTION", "4930": "/"} {
			h, ok := e.s.scriptPrepare(ctx, u, map[string]any{"destination": dest})
			if got := h.Destination + "/" + h.Decline; !ok || got != want {
				t.Errorf("%s: %v %q, want %q", dest, ok, got, want)
			}
		}
		e.s.scriptFinish(ctx, u, map[string]any{"destination": "1"})

		// Without scripts no hook runs.
		plain := New(d, testConfig(), nil)
		if _, ok := plain.scriptPrepare(ctx, u, nil); ok {
			t.Fatal("a hook ran without scripts")
		}
	})
}
