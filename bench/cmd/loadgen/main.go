// Command loadgen drives closed-loop GET load at one URL and prints the rate and the
// latency quantiles: `loadgen -url URL -c 64 -d 10s [-n 100000] [-expect PREFIX]`.
// The full benchmark (data set, daemon, every phase) is bench/cmd/narabench.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/narayana/narayanad/bench/loadgen"
)

func main() {
	url := flag.String("url", "", "the URL to GET")
	conc := flag.Int("c", 16, "concurrent connections (closed loop: one request in flight each)")
	dur := flag.Duration("d", 10*time.Second, "how long to send")
	n := flag.Int64("n", 0, "stop after this many requests (0: no bound)")
	expect := flag.String("expect", "", "count an answer as failed unless its body starts with this")
	flag.Parse()
	if *url == "" {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	want := []byte(*expect)
	r := loadgen.Run(ctx, loadgen.Config{Concurrency: *conc, Duration: *dur, MaxOps: *n},
		func(ctx context.Context, w *loadgen.Worker) error {
			status, body, err := w.Get(ctx, *url)
			if err != nil {
				return err
			}
			if status != 200 || !bytes.HasPrefix(body, want) {
				return fmt.Errorf("HTTP %d: %.80s", status, body)
			}
			return nil
		})
	h := r.Latency
	fmt.Printf("%d ok, %d failed in %v: %.0f/s  p50 %v  p99 %v  p99.9 %v  max %v\n", r.Ops, r.Failed,
		r.Elapsed.Round(time.Millisecond), r.Rate(), h.Quantile(0.5), h.Quantile(0.99), h.Quantile(0.999), h.Max())
	if r.Failed > 0 {
		fmt.Println("errors:", r.ErrorSummary())
	}
}
