// Package loadgen is a closed-loop HTTP load generator: a fixed number of workers, each
// sending its next request when the previous answer has arrived, over keep-alive
// connections, bounded by time and by a count of operations. Latencies go into a
// log-linear histogram per worker, merged at the end.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// NewClient returns an HTTP client keeping up to conns idle connections to one host, so
// every worker of a closed loop keeps its connection.
func NewClient(conns int) *http.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Worker is one closed loop: an Op receives it and sends its requests through it.
type Worker struct {
	ID   int
	Rand *rand.Rand

	client   *http.Client
	buf      bytes.Buffer
	requests int64
}

// Get sends a GET and returns the status and the body, which is valid until the next
// request of this worker.
func (w *Worker) Get(ctx context.Context, url string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	w.requests++
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	w.buf.Reset()
	_, err = io.Copy(&w.buf, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, w.buf.Bytes(), err
}

// Op is one unit of work, one or more requests; its latency is recorded when it returns
// nil, and it counts as failed otherwise.
type Op func(ctx context.Context, w *Worker) error

// Config bounds a run.
type Config struct {
	Concurrency int
	Duration    time.Duration // stop starting operations after this long
	MaxOps      int64         // and after this many (0: no bound)
	Seed        int64
}

// Result is what a run measured.
type Result struct {
	Concurrency int
	Ops         int64 // operations that succeeded
	Failed      int64
	Requests    int64 // HTTP requests sent, failed operations' included
	Elapsed     time.Duration
	Latency     *Histogram       // of successful operations
	Errors      map[string]int64 // distinct error texts (the first few) and their counts
}

// Rate is successful operations per second.
func (r *Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// ErrorSummary lists the errors seen, most frequent first.
func (r *Result) ErrorSummary() string {
	type kv struct {
		k string
		v int64
	}
	var all []kv
	for k, v := range r.Errors {
		all = append(all, kv{k, v})
	}
	sort.Slice(all, func(i, j int) bool { return all[i].v > all[j].v })
	var parts []string
	for _, e := range all {
		parts = append(parts, fmt.Sprintf("%d× %s", e.v, e.k))
	}
	return strings.Join(parts, "; ")
}

const maxDistinctErrors = 8

// Run drives op from cfg.Concurrency workers until the duration or the operation count
// is reached (or ctx ends), and returns the merged result.
func Run(ctx context.Context, client *http.Client, cfg Config, op Op) *Result {
	conc := max(cfg.Concurrency, 1)
	type out struct {
		hist           Histogram
		ok, failed     int64
		requests       int64
		errors         map[string]int64
		otherErrorsCnt int64
	}
	outs := make([]out, conc)
	var started atomic.Int64
	var wg sync.WaitGroup
	startGate := make(chan struct{})
	var deadline time.Time
	for i := range conc {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			o := &outs[i]
			o.errors = map[string]int64{}
			w := &Worker{ID: i, Rand: rand.New(rand.NewSource(cfg.Seed*7919 + int64(i))), client: client}
			<-startGate
			for ctx.Err() == nil && time.Now().Before(deadline) {
				if cfg.MaxOps > 0 && started.Add(1) > cfg.MaxOps {
					break
				}
				t0 := time.Now()
				err := op(ctx, w)
				if err == nil {
					o.hist.Record(time.Since(t0))
					o.ok++
					continue
				}
				o.failed++
				msg := err.Error()
				if len(msg) > 160 {
					msg = msg[:160] + "…"
				}
				if _, seen := o.errors[msg]; seen || len(o.errors) < maxDistinctErrors {
					o.errors[msg]++
				} else {
					o.otherErrorsCnt++
				}
			}
			o.requests = w.requests
		}(i)
	}
	start := time.Now()
	deadline = start.Add(cfg.Duration)
	close(startGate)
	wg.Wait()
	r := &Result{Concurrency: conc, Elapsed: time.Since(start), Latency: &Histogram{}, Errors: map[string]int64{}}
	for i := range outs {
		o := &outs[i]
		r.Latency.Merge(&o.hist)
		r.Ops += o.ok
		r.Failed += o.failed
		r.Requests += o.requests
		for k, v := range o.errors {
			if _, seen := r.Errors[k]; seen || len(r.Errors) < maxDistinctErrors {
				r.Errors[k] += v
			} else {
				r.Errors["(other errors)"] += v
			}
		}
		if o.otherErrorsCnt > 0 {
			r.Errors["(other errors)"] += o.otherErrorsCnt
		}
	}
	return r
}
