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

	client := NewClient(4)
	var n atomic.Int64
	r := Run(context.Background(), client, Config{Concurrency: 4, Duration: time.Minute, MaxOps: 200},
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
