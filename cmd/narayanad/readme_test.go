package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// TestREADME runs the README's shell blocks marked `<!-- readme-test: NAME -->` as an
// operator would paste them into a shell: the real binary, the real HTTP port, curl.
//   - first-call, "From an empty database to a billed call", on SQLite and PostgreSQL: the
//     test changes only the database (NARAYANA_DB) and the port, and skips `make build`
//     (it builds bin/narayanad itself);
//   - demo, the queries after `make run`: the test does what `make run` does first
//     (`narayanad demo`, then `serve`).
//
// A line `# → text` asserts that the command before it printed text.
func TestREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the README")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("the README's commands use curl, which this machine lacks")
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t, t.TempDir())
	firstCall := readmeBlock(t, string(readme), "first-call")
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run("first-call/"+string(dialect), func(t *testing.T) {
			runREADME(t, bin, readmeScript(t, firstCall, dbtest.DSN(t, dialect), freePort(t)))
		})
	}
	t.Run("demo", func(t *testing.T) {
		port := freePort(t)
		makeRun := []string{ // what `make run` does
			"bin/narayanad demo --db sqlite:demo.db --listen 127.0.0.1:8080",
			"bin/narayanad serve --db sqlite:demo.db --listen 127.0.0.1:8080 &",
			"until curl -sf http://127.0.0.1:8080/healthz >/dev/null; do sleep 0.2; done",
		}
		runREADME(t, bin, readmeScript(t, append(makeRun, readmeBlock(t, string(readme), "demo")...), "", port))
	})
}

// runREADME runs a script from readmeScript in a fresh folder holding bin/narayanad.
func runREADME(t *testing.T, bin, script string) {
	t.Helper()
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "bin"), 0o755)
	if err := os.Symlink(bin, filepath.Join(dir, "bin", "narayanad")); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NARAYANA_DB=") // the README sets it where it needs it
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the README's commands failed: %v\n%s", err, out.String())
		}
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("the README's commands did not finish:\n%s", out.String())
	}
}

// readmeBlock returns the shell lines of the block marked name, without fences.
func readmeBlock(t *testing.T, readme, name string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(readme, "<!-- readme-test: "+name+" -->")
	block, _, ok2 := strings.Cut(rest, "<!-- readme-test: end -->")
	if !ok || !ok2 {
		t.Fatalf("README.md has no readme-test block %q", name)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(block), "\n") {
		if !strings.HasPrefix(l, "```") {
			lines = append(lines, l)
		}
	}
	return lines
}

// readmeScript turns the README's lines into a bash script that stops at the first
// failing command or unmet `# →` line, and ends the daemon it started.
func readmeScript(t *testing.T, lines []string, dsn, port string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("set -e -o pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n")
	pending := "" // the last command, held until we know whether an expectation follows
	flush := func(expect string) {
		if pending == "" {
			if expect != "" {
				t.Fatalf("README: `# → %s` follows no command", expect)
			}
			return
		}
		if expect == "" {
			b.WriteString(pending + "\n")
		} else {
			fmt.Fprintf(&b, "__out=$(%s)\nprintf '%%s\\n' \"$__out\"\n", pending)
			fmt.Fprintf(&b, "if [[ \"$__out\" != *%s* ]]; then echo %s >&2; exit 1; fi\n",
				shellQuote(expect), shellQuote("README: the command above printed something else than: "+expect))
		}
		pending = ""
	}
	for _, l := range lines {
		if expect, ok := strings.CutPrefix(l, "# → "); ok {
			flush(expect)
			continue
		}
		flush("")
		switch {
		case strings.TrimSpace(l) == "make build", strings.HasPrefix(l, "#"), strings.TrimSpace(l) == "":
			continue
		case strings.HasPrefix(l, "export NARAYANA_DB=") && dsn != "":
			l = "export NARAYANA_DB=" + shellQuote(dsn)
		}
		l = strings.ReplaceAll(l, "127.0.0.1:8080", "127.0.0.1:"+port)
		if strings.HasSuffix(l, "&") || strings.HasPrefix(l, "until ") {
			b.WriteString(l + "\n")
			continue
		}
		pending = l
	}
	flush("")
	return b.String()
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// freePort is a free TCP port on the loopback address.
func freePort(t *testing.T) string {
	_, port, _ := net.SplitHostPort(freeAddr(t))
	return port
}
