package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/narayana/narayanad/db"
)

func TestInitTwiceChangesNothing(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "n.db")
	var out, errb bytes.Buffer
	args := []string{"init", "--db", dsn, "--admin-user", "root", "--admin-password", "pw", "--api-key", "0123456789abc"}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatal(err, errb.String())
	}
	err := run(context.Background(), args, &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "already initialised") {
		t.Fatalf("second init: %v", err)
	}
	if err := run(context.Background(), []string{"migrate", "--db", dsn}, &out, &errb); err != nil {
		t.Fatalf("migrate an up-to-date database: %v", err)
	}
	if err := run(context.Background(), []string{"migrate", "--db", "sqlite:" + filepath.Join(t.TempDir(), "empty.db")}, &out, &errb); err == nil {
		t.Fatal("migrate accepted an empty database")
	}
	if err := run(context.Background(), []string{"sip-server", "add", "--db", dsn, "--name", "pbx", "--address", "192.0.2.1"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"sip-server", "add", "--db", dsn, "--name", "pbx", "--address", "192.0.2.1"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("duplicate SIP server: %v", err)
	}
	if err := run(context.Background(), []string{"sip-server", "add", "--db", dsn, "--name", "x", "--address", "nope"}, &out, &errb); err == nil || !strings.Contains(err.Error(), "not an IP address") {
		t.Fatalf("bad address: %v", err)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.conf")
	os.WriteFile(path, []byte("# comment\nmax_call_time = soon\n"), 0o600)
	_, err := loadConfig(path)
	if err == nil || !strings.Contains(err.Error(), "max_call_time") || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("config error: %v", err)
	}
	os.WriteFile(path, []byte("tls_listen = :8443\n"), 0o600)
	if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), "tls_cert") {
		t.Fatalf("tls without cert: %v", err)
	}
}

// TestServeLifecycle builds the binary and runs it: /healthz, an API call, a busy port
// failing at once, and SIGTERM ending it with status 0.
func TestServeLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	dsn := initSQLite(t, bin, dir)
	// Exit statuses as a shell sees them: help is a success, a usage error is 2.
	for _, c := range []struct {
		args   []string
		status int
	}{{[]string{"init", "--help"}, 0}, {[]string{"import", "-h"}, 0}, {[]string{"init", "--nope"}, 2}, {[]string{"nope"}, 2}} {
		err := exec.Command(bin, c.args...).Run()
		status := 0
		if ee, ok := err.(*exec.ExitError); ok {
			status = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if status != c.status {
			t.Errorf("narayanad %v: exit status %d, want %d", c.args, status, c.status)
		}
	}
	addr := freeAddr(t)
	cmd, logs := startServe(t, bin, "--db", dsn, "--listen", addr)
	resp, err := http.Get(fmt.Sprintf("http://%s/billing/api/2.2/0123456789abc/getInfo?login=root&password=%s", addr, "900150983cd24fb0d6963f7d28e17f72"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"response":"E_AUTH_FAILED"`) {
		t.Fatalf("getInfo with a wrong password: %s", body)
	}
	// A second daemon on the same port fails at once.
	busy := exec.Command(bin, "serve", "--db", dsn, "--listen", addr)
	if out, err := busy.CombinedOutput(); err == nil || !strings.Contains(string(out), "address already in use") {
		t.Fatalf("busy port: %v %s", err, out)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
	if !strings.Contains(logs.String(), "method=getInfo") {
		t.Fatalf("no request log line:\n%s", logs.String())
	}
}

// TestDemoDatabase: `demo` creates the demo data once (users, SIP accounts, a tariff) and
// leaves an existing database as it is.
func TestDemoDatabase(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "demo.db")
	var out, errb bytes.Buffer
	for i := 0; i < 2; i++ {
		if err := run(context.Background(), []string{"demo", "--db", dsn}, &out, &errb); err != nil {
			t.Fatalf("demo run %d: %v %s", i, err, errb.String())
		}
	}
	if !strings.Contains(out.String(), "callPrepare?login=10001") {
		t.Fatalf("no call example in:\n%s", out.String())
	}
	d, err := db.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var users, entries int
	d.Q().Get(context.Background(), &users, `SELECT count(*) FROM users WHERE rates_id IS NOT NULL`)
	d.Q().Get(context.Background(), &entries, `SELECT count(*) FROM rate_entries`)
	if users != 3 || entries != 5 {
		t.Fatalf("demo data: %d users on a tariff, %d entries", users, entries)
	}
	// The demo's Asterisk key, made by the code path of addKey and `key add`.
	out.Reset()
	if err := run(context.Background(), []string{"key", "list", "--db", dsn}, &out, &errb); err != nil ||
		!strings.Contains(out.String(), "demo  50     sip_extension  127.0.0.1  yes      demo…") {
		t.Fatalf("key list of the demo: %v\n%s", err, out.String())
	}
}

// TestConfigFromEnvironment: NARAYANA_<SETTING> stands in for a file setting, and its
// errors name the variable.
func TestConfigFromEnvironment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "n.conf")
	os.WriteFile(path, []byte("max_call_time = 600\n"), 0o600)
	t.Setenv("NARAYANA_MAX_CALL_TIME", "900")
	cfg, err := loadConfig(path)
	if err != nil || cfg.MaxCallTime != 900 {
		t.Fatalf("environment over the file: %d %v", cfg.MaxCallTime, err)
	}
	t.Setenv("NARAYANA_BAN_THRESHOLD", "many")
	if _, err := loadConfig(path); err == nil || !strings.Contains(err.Error(), "NARAYANA_BAN_THRESHOLD") {
		t.Fatalf("bad environment value: %v", err)
	}
}

// TestSecondSignalAborts: the first SIGTERM waits for a request in flight; a second one
// ends the daemon at once, with a non-zero status.
func TestSecondSignalAborts(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	dsn := initSQLite(t, bin, dir)
	addr := freeAddr(t)
	cmd, logs := startServe(t, bin, "--db", dsn, "--listen", addr)
	exited := make(chan error, 1)
	// A request in flight: its headers never end (the server waits up to its 10 s
	// ReadHeaderTimeout for them).
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n"))
	time.Sleep(200 * time.Millisecond) // the server reads the first bytes: the connection is active
	go func() { exited <- cmd.Wait() }()
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		t.Fatalf("the first signal did not wait for the request in flight: %v\n%s", err, logs.String())
	case <-time.After(time.Second):
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err == nil || !strings.Contains(logs.String(), "second signal") {
			t.Fatalf("after a second signal: %v\n%s", err, logs.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("a second signal did not end the daemon:\n%s", logs.String())
	}
}

// buildBinary builds narayanad into dir, for the tests that run it as an operator does.
func buildBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "narayanad")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// initSQLite initialises a SQLite database in dir with the binary (master admin root/pw,
// client key 0123456789abc) and returns its DSN.
func initSQLite(t *testing.T, bin, dir string) string {
	t.Helper()
	dsn := "sqlite:" + filepath.Join(dir, "n.db")
	if out, err := exec.Command(bin, "init", "--db", dsn, "--admin-user", "root", "--admin-password", "pw", "--api-key", "0123456789abc").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	return dsn
}

// startServe starts `narayanad serve` with args (which must include --listen) and waits
// until /healthz answers; the daemon is killed when the test ends. Its stderr (the log)
// is in the buffer.
func startServe(t *testing.T, bin string, args ...string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	var addr string
	for i, a := range args {
		if a == "--listen" && i+1 < len(args) {
			addr = args[i+1]
		}
	}
	cmd := exec.Command(bin, append([]string{"serve"}, args...)...)
	logs := &syncBuffer{}
	cmd.Stderr, cmd.Stdout = logs, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	waitHealthy(t, addr, logs)
	return cmd, logs
}

// waitHealthy waits until the daemon at addr answers /healthz; logs, when not nil, is
// shown if it never does.
func waitHealthy(t *testing.T, addr string, logs fmt.Stringer) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if logs != nil {
		t.Fatalf("%s never healthy:\n%s", addr, logs)
	}
	t.Fatalf("%s never healthy", addr)
}

// syncBuffer collects a process's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
