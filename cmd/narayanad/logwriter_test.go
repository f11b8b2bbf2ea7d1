package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRequestLogJSONNothingLost runs the daemon with log_format = json, makes requests and
// stops it with SIGTERM at once: every request has its line (the buffer is flushed on
// exit), with the method, key name, login, uniqueid, answer code and time taken, and no
// password or key.
func TestRequestLogJSONNothingLost(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := buildBinary(t, dir)
	dsn := initSQLite(t, bin, dir)
	addr := freeAddr(t)
	cmd := exec.Command(bin, "serve", "--db", dsn, "--listen", addr)
	cmd.Env = append(os.Environ(), "NARAYANA_LOG_FORMAT=json")
	logPath := filepath.Join(dir, "stderr.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stderr, cmd.Stdout = logf, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	waitHealthy(t, addr, nil)
	const n = 50
	password := "900150983cd24fb0d6963f7d28e17f72"
	for i := 0; i < n; i++ {
		resp, err := http.Get(fmt.Sprintf("http://%s/billing/api/2.2/0123456789abc/getInfo?login=root&password=%s&uniqueid=1733.%d", addr, password, i))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	raw, _ := os.ReadFile(logPath)
	if bytes.Contains(raw, []byte(password)) || bytes.Contains(raw, []byte("0123456789abc")) {
		t.Fatalf("a secret in the log:\n%s", raw)
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		if line["msg"] != "request" {
			continue
		}
		if line["method"] != "getInfo" || line["key"] != "web" || line["login"] != "root" || line["code"] != "E_AUTH_FAILED" || line["duration"] == nil {
			t.Fatalf("request line: %s", sc.Text())
		}
		seen[fmt.Sprint(line["uniqueid"])] = true
	}
	for i := 0; i < n; i++ {
		if !seen[fmt.Sprintf("1733.%d", i)] {
			t.Fatalf("request 1733.%d has no line (%d of %d):\n%s", i, len(seen), n, raw)
		}
	}
}

// BenchmarkRequestLine is one request line as serve writes it, to a pipe (as under
// systemd or docker, whose reader drains it): written at once (one write(2) a line, as
// before) and through the buffered logWriter.
func BenchmarkRequestLine(b *testing.B) {
	attrs := []slog.Attr{slog.String("method", "callPrepare"), slog.String("key", "pbx1"),
		slog.String("login", "10001"), slog.String("uniqueid", "1733571000.1"), slog.String("remote", "127.0.0.1:40000"),
		slog.Int("status", 200), slog.String("code", "OK"), slog.Duration("duration", 97*time.Microsecond)}
	for _, format := range []string{"text", "json"} {
		r, w, err := os.Pipe()
		if err != nil {
			b.Fatal(err)
		}
		go io.Copy(io.Discard, r)
		var h slog.Handler = slog.NewTextHandler(w, nil)
		if format == "json" {
			h = slog.NewJSONHandler(w, nil)
		}
		b.Run(format+"/unbuffered", func(b *testing.B) {
			log := slog.New(h)
			b.ReportAllocs()
			for b.Loop() {
				log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
			}
		})
		b.Run(format+"/buffered", func(b *testing.B) {
			log, lw := newLogger(w, "info", format)
			defer lw.Close()
			b.ReportAllocs()
			for b.Loop() {
				log.LogAttrs(context.Background(), slog.LevelInfo, "request", attrs...)
			}
		})
		w.Close()
	}
}

// TestLogWriterFlushes: a line waits at most a tick, a WARN line not at all, Close writes
// the rest.
func TestLogWriterFlushes(t *testing.T) {
	var out syncBuffer
	log, lw := newLogger(&out, "info", "text")
	log.Info("request", "n", 1)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "n=1") {
		if time.Now().After(deadline) {
			t.Fatal("an INFO line never reached the output")
		}
		time.Sleep(10 * time.Millisecond)
	}
	log.Warn("attention")
	if !strings.Contains(out.String(), "attention") {
		t.Fatal("a WARN line waits in the buffer")
	}
	log.Info("last")
	lw.Close()
	if !strings.Contains(out.String(), "last") {
		t.Fatal("Close did not flush")
	}
}
