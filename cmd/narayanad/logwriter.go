package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// logFlushEvery bounds how long a log line waits in the buffer.
const logFlushEvery = 200 * time.Millisecond

// logWriter buffers the daemon's log: one write(2) per request line cost about 4 µs of
// the call path, a copy into a buffer costs nothing measurable. It is written out when
// full, by a ticker, at once for a line at WARN or above (what an operator watches for
// should not wait), and by Close, which serve defers, so nothing is lost on exit.
type logWriter struct {
	mu   sync.Mutex
	buf  *bufio.Writer
	stop chan struct{}
	done chan struct{}
}

func newLogWriter(w io.Writer) *logWriter {
	lw := &logWriter{buf: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go lw.flushEvery(logFlushEvery)
	return lw
}

func (lw *logWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.buf.Write(p)
}

// Flush writes out what the buffer holds.
func (lw *logWriter) Flush() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.buf.Flush()
}

func (lw *logWriter) flushEvery(d time.Duration) {
	defer close(lw.done)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-lw.stop:
			return
		case <-t.C:
			lw.Flush()
		}
	}
}

// Close stops the ticker and flushes. Close it last: a line written after it waits for
// another Flush.
func (lw *logWriter) Close() error {
	select {
	case <-lw.stop:
	default:
		close(lw.stop)
		<-lw.done
	}
	return lw.Flush()
}

// flushHandler flushes the writer after each record at WARN or above.
type flushHandler struct {
	slog.Handler
	w *logWriter
}

func (h flushHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		h.w.Flush()
	}
	return err
}

func (h flushHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return flushHandler{h.Handler.WithAttrs(as), h.w}
}

func (h flushHandler) WithGroup(name string) slog.Handler {
	return flushHandler{h.Handler.WithGroup(name), h.w}
}

// newLogger is the daemon's logger: text or JSON (setting log_format) at level, on a
// buffered writer that the caller closes.
func newLogger(w io.Writer, level, format string) (*slog.Logger, *logWriter) {
	var l slog.Level
	l.UnmarshalText([]byte(level))
	lw := newLogWriter(w)
	opts := &slog.HandlerOptions{Level: l}
	var h slog.Handler = slog.NewTextHandler(lw, opts)
	if format == "json" {
		h = slog.NewJSONHandler(lw, opts)
	}
	return slog.New(flushHandler{h, lw}), lw
}
