package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// Run stops at MaxOps, counts failures apart, and keeps its connections alive.
func TestRunCountsAndBounds(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("fail") != "" {
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()

	var n atomic.Int64
	r := Run(context.Background(), Config{Concurrency: 4, Duration: time.Minute, MaxOps: 200},
		func(ctx context.Context, w *Worker) error {
			url := srv.URL
			if n.Add(1)%10 == 0 {
				url += "?fail=1"
			}
			st, body, err := w.Get(ctx, url)
			if err != nil {
				return err
			}
			if st != http.StatusOK || !bytes.Equal(body, []byte("ok")) {
				return fmt.Errorf("HTTP %d", st)
			}
			return nil
		})
	if r.Ops+r.Failed != 200 || r.Failed != 20 || r.Requests != 200 {
		t.Fatalf("ops %d failed %d requests %d, want 180 20 200", r.Ops, r.Failed, r.Requests)
	}
	if r.Latency.Count() != uint64(r.Ops) || r.Errors["HTTP 400"] != 20 {
		t.Fatalf("latencies %d, errors %v", r.Latency.Count(), r.Errors)
	}
	if c := conns.Load(); c > 4 {
		t.Errorf("%d connections for 4 workers: keep-alive lost", c)
	}
	if r.Rate() <= 0 || r.ErrorSummary() != "20× HTTP 400" {
		t.Fatalf("rate %v, summary %q", r.Rate(), r.ErrorSummary())
	}
}

// Worker.Get reads the answers the daemon's server can give: a Content-Length body, a
// chunked one, a connection the server closes after answering or while idle.
func TestWorkerGetHTTP(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			w.Write([]byte("one,"))
			w.(http.Flusher).Flush()
			w.Write([]byte("two"))
		case "/close":
			w.Header().Set("Connection", "close")
			fmt.Fprint(w, "bye")
		case "/missing":
			http.NotFound(w, r)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			fmt.Fprintf(w, "q=%s", r.URL.Query().Get("q"))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	w := &Worker{}
	defer w.close()
	ctx := context.Background()
	for i, c := range []struct {
		path, body string
		status     int
		conns      int64 // connections opened so far
	}{
		{"/?q=a", "q=a", 200, 1},
		{"?q=b", "q=b", 200, 1},
		{"/chunked", "one,two", 200, 1},
		{"/missing", "404 page not found\n", 404, 1},
		{"/empty", "", 204, 1},
		{"/close", "bye", 200, 1},
		{"/?q=c", "q=c", 200, 2},
		{"/idle-closed", "", 0, 3}, // the server drops the kept connection first
	} {
		if c.path == "/idle-closed" {
			srv.CloseClientConnections()
			time.Sleep(10 * time.Millisecond)
			c.path, c.body, c.status = "/?q=d", "q=d", 200
		}
		st, body, err := w.Get(ctx, srv.URL+c.path)
		if err != nil || st != c.status || string(body) != c.body || conns.Load() != c.conns {
			t.Fatalf("%d %s: %d %q %v, %d connections; want %d %q, %d", i, c.path, st, body, err, conns.Load(),
				c.status, c.body, c.conns)
		}
	}
	if _, _, err := w.Get(ctx, "https://example.org/"); err == nil {
		t.Fatal("https:// accepted")
	}
}
