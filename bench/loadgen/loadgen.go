// Package loadgen is a closed-loop HTTP load generator: a fixed number of workers, each
// sending its next request when the previous answer has arrived, over a keep-alive
// connection of its own, bounded by time and by a count of operations. Latencies go into a
// log-linear histogram per worker, merged at the end.
package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Worker is one closed loop: an Op receives it and sends its requests through it, over
// one keep-alive connection of its own.
type Worker struct {
	ID   int
	Rand *rand.Rand

	conn     net.Conn
	host     string // the connection's host:port
	br       *bufio.Reader
	req      []byte
	body     []byte
	requests int64
}

// requestTimeout bounds one request, connecting included.
const requestTimeout = 30 * time.Second

// Get sends a GET to an http:// URL and returns the status and the body, which is valid
// until the next request of this worker.
//
// HTTP/1.1 is written by hand over the worker's own connection: net/http's client hands
// every request to two goroutines of its transport, and on two cores shared with the
// daemon those hand-offs cost more CPU than the daemon's cheapest answer.
func (w *Worker) Get(ctx context.Context, url string) (int, []byte, error) {
	rest, ok := strings.CutPrefix(url, "http://")
	if !ok {
		return 0, nil, fmt.Errorf("loadgen: %q: only http:// URLs", url)
	}
	host, path := rest, "/"
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		host, path = rest[:i], rest[i:]
		if path[0] == '?' {
			path = "/" + path
		}
	}
	w.requests++
	w.req = append(append(append(append(append(w.req[:0], "GET "...), path...), " HTTP/1.1\r\nHost: "...), host...), "\r\n\r\n"...)
	// A kept connection the server has closed fails before any answer: retry once on a new one.
	for attempt := 0; ; attempt++ {
		reused := w.conn != nil && w.host == host
		if !reused {
			if err := w.dial(ctx, host); err != nil {
				return 0, nil, err
			}
		}
		status, body, started, err := w.roundTrip(ctx)
		if err == nil {
			return status, body, nil
		}
		w.close()
		if started || !reused || attempt > 0 {
			return 0, nil, err
		}
	}
}

func (w *Worker) dial(ctx context.Context, host string) error {
	w.close()
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return err
	}
	w.conn, w.host = c, host
	if w.br == nil {
		w.br = bufio.NewReaderSize(c, 16<<10)
	} else {
		w.br.Reset(c)
	}
	return nil
}

// Close closes the worker's connection.
func (w *Worker) close() {
	if w.conn != nil {
		w.conn.Close()
		w.conn = nil
	}
}

// roundTrip writes w.req and reads one answer; started reports whether any of it came.
func (w *Worker) roundTrip(ctx context.Context) (status int, body []byte, started bool, err error) {
	deadline := time.Now().Add(requestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	w.conn.SetDeadline(deadline)
	if _, err = w.conn.Write(w.req); err != nil {
		return 0, nil, false, err
	}
	line, err := w.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, len(line) > 0, err
	}
	// "HTTP/1.1 200 OK"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return 0, nil, true, fmt.Errorf("loadgen: bad status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, nil, true, fmt.Errorf("loadgen: bad status line %q", line)
	}
	length, chunked, closing := -1, false, false
	for {
		h, err := w.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, true, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, _ := bytes.Cut(h, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return 0, nil, true, fmt.Errorf("loadgen: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		}
	}
	switch {
	case status == 204 || status == 304 || status < 200: // no body, whatever the headers say
		w.body = w.body[:0]
	case chunked:
		err = w.readChunked()
	case length >= 0:
		w.body = slices.Grow(w.body[:0], length)[:length]
		_, err = io.ReadFull(w.br, w.body)
	default: // the body runs to the end of the connection
		w.body, closing = w.body[:0], true
		var b bytes.Buffer
		_, err = b.ReadFrom(w.br)
		w.body = append(w.body, b.Bytes()...)
	}
	if err != nil {
		return 0, nil, true, err
	}
	if closing {
		w.close()
	}
	return status, w.body, true, nil
}

func (w *Worker) readChunked() error {
	w.body = w.body[:0]
	for {
		line, err := w.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		sz, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		n, err := strconv.ParseInt(string(sz), 16, 32)
		if err != nil || n < 0 {
			return fmt.Errorf("loadgen: bad chunk size %q", line)
		}
		if n == 0 { // trailers, then the empty line
			for {
				t, err := w.br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(t, "\r\n")) == 0 {
					return nil
				}
			}
		}
		at := len(w.body)
		w.body = slices.Grow(w.body, int(n))[:at+int(n)]
		if _, err := io.ReadFull(w.br, w.body[at:]); err != nil {
			return err
		}
		if _, err := w.br.Discard(2); err != nil { // the chunk's CRLF
			return err
		}
	}
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
func Run(ctx context.Context, cfg Config, op Op) *Result {
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
			w := &Worker{ID: i, Rand: rand.New(rand.NewSource(cfg.Seed*7919 + int64(i)))}
			defer w.close()
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
