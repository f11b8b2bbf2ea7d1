package billing

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/asterisk/amisim"
)

// execLines are contrib/asterisk/extensions.conf's #exec lines, made to run here: the
// real narayana-fetch script, this test's daemon and key, caches in dir. Each is the
// shell command Asterisk's config loader runs (main/config.c, handle_include_exec).
func execLines(t *testing.T, daemon, key, dir string) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../contrib/asterisk/extensions.conf")
	if err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs("../contrib/asterisk/narayana-fetch")
	re := regexp.MustCompile(`(?m)^#exec (\S+) "(http://127\.0\.0\.1:8080(/billing/api/2\.2/)CHANGE-ME-asterisk-server-key(/getServerFile\?kind=(\w+)))" (\S+)$`)
	out := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		if m[1] != "/etc/asterisk/narayana-fetch" {
			t.Fatalf("#exec runs %s", m[1])
		}
		url := daemon + m[3] + key + m[4]
		out[m[5]] = "sh " + script + ` "` + url + `" ` + filepath.Join(dir, filepath.Base(m[6]))
	}
	if out["dialplan"] == "" || out["interface"] == "" {
		t.Fatalf("extensions.conf has no #exec lines for both files: %v", out)
	}
	return out
}

// What Asterisk loads on `dialplan reload` is the version updateDialplan,
// updateInterface or restoreDialplan made current: the simulator runs the #exec lines of
// contrib/asterisk/extensions.conf on each reload, as Asterisk does, against the real
// router, and the test compares what they print with the stored files.
func TestDialplanArrives(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed: narayana-fetch (contrib/asterisk) needs it")
	}
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		daemon := httptest.NewServer(e.h)
		defer daemon.Close()
		sim := amisim.Start(t, amisim.Config{})
		e.amiServer("pbx1", "10.0.0.1", sim.Addr(), amisim.DefaultSecret)
		e.serverKey("pbx1", "pbx1-key-0123456789abcdef", 50)
		cmds := execLines(t, daemon.URL, "pbx1-key-0123456789abcdef", t.TempDir())

		var mu sync.Mutex
		loaded := map[string]string{}
		reloads := 0
		sim.SetCommandFunc("dialplan reload", func() (string, error) {
			mu.Lock()
			defer mu.Unlock()
			reloads++
			for kind, cmd := range cmds {
				out, err := exec.Command("sh", "-c", cmd).Output()
				if err != nil {
					return "", err
				}
				loaded[kind] = string(out)
			}
			return "Dialplan reloaded.\n", nil
		})
		now := func(kind string) string {
			mu.Lock()
			defer mu.Unlock()
			return loaded[kind]
		}

		files := map[string]string{
			"/dp/v1.conf": "; version: 0082R20170626_205\n[default]\nexten => _X.,1,NoOp(v1 \\; with an escaped semicolon)\n",
			"/dp/v2.conf": "; version: 0083R20170701_001\n[default]\nexten => _X.,1,Hangup()\n",
			"/ui/ui.conf": "[interface]\nversion = 0.12.4\n",
		}
		web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, files[r.URL.Path])
		}))
		defer web.Close()
		tilde := func(path string) string { return strings.ReplaceAll(web.URL+path, "/", "~") }

		e.ok(e.do(e.web, "updateDialplan", admin("asterisk", "pbx1", "url", tilde("/dp/v1.conf"))))
		if got := now("dialplan"); got != files["/dp/v1.conf"] {
			t.Fatalf("after v1 Asterisk loaded %q", got)
		}
		if got := now("interface"); !strings.HasPrefix(got, "; narayana: no interface version stored") {
			t.Fatalf("interface before any: %q", got)
		}
		e.ok(e.do(e.web, "updateDialplan", admin("asterisk", "pbx1", "url", tilde("/dp/v2.conf"))))
		if got := now("dialplan"); got != files["/dp/v2.conf"] {
			t.Fatalf("after v2 Asterisk loaded %q", got)
		}
		e.ok(e.do(e.web, "updateInterface", admin("asterisk", "pbx1", "url", tilde("/ui/ui.conf"))))
		if got := now("interface"); got != files["/ui/ui.conf"] {
			t.Fatalf("interface: %q", got)
		}
		e.ok(e.do(e.web, "restoreDialplan", admin("asterisk", "pbx1")))
		if got := now("dialplan"); got != files["/dp/v1.conf"] {
			t.Fatalf("after restoreDialplan Asterisk loaded %q", got)
		}

		// The billing down: the reload loads the last good copy, not an empty dialplan.
		daemon.Close()
		e.ok(e.do(e.web, "asteriskRequest", admin("asterisk", "pbx1", "destination", "dialplanreload")))
		if got := now("dialplan"); got != files["/dp/v1.conf"] {
			t.Fatalf("with the billing down Asterisk loaded %q", got)
		}

		// Only a server key reads a file, and only its own server's.
		e.fails(e.do(e.web, "getServerFile", admin()), apierr.InsufficientAccess, 200)
		e.fails(e.do("pbx1-key-0123456789abcdef", "getServerFile", kv("kind", "passwords")), apierr.InvalidArgument, 400)
		e.serverKey("other-key", "other-key-0123456789abcdef", 50)
		a := e.do("other-key-0123456789abcdef", "getServerFile", nil)
		if a.Result {
			t.Fatalf("a key of no SIP server read a file: %s", a.Body)
		}
	})
}
