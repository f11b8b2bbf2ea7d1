package db

import (
	"context"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// ChangesChannel is the PostgreSQL channel on which the version rows' triggers
// (migration 020) announce directory and rating changes; the payload is
// "<schema> <what>", what being "directory" or "rating".
const ChangesChannel = "narayana_changes"

// Listener keeps one PostgreSQL connection LISTENing on ChangesChannel and hands each
// change of its own schema to OnChange. When the connection drops it says so through
// OnState(false), so that its users go back to polling, and reconnects with backoff;
// OnState(true) once it listens again (changes made meanwhile were not announced to it:
// its users check the versions then).
type Listener struct {
	dsn      string
	onChange func(what string)
	onState  func(up bool)

	retry atomic.Int64 // the first wait before reconnecting (doubles, up to maxRetry)
	wake  chan struct{}
	pid   atomic.Uint32
	up    atomic.Bool

	stop context.CancelFunc
	done chan struct{}
}

const (
	defaultRetry = 100 * time.Millisecond
	maxRetry     = 10 * time.Second
	// listenPing: how long the connection may stay silent before it is asked whether it
	// is still there (a dead peer would otherwise leave us listening to nothing).
	listenPing = 30 * time.Second
)

// Listen starts a Listener on d's PostgreSQL (nil on SQLite: one daemon per file, it
// sees its own changes). onChange and onState run on the listener's goroutine.
func (d *DB) Listen(onChange func(what string), onState func(up bool)) *Listener {
	if d.Dialect != Postgres {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{dsn: d.dsn, onChange: onChange, onState: onState, stop: cancel, done: make(chan struct{}),
		wake: make(chan struct{}, 1)}
	l.retry.Store(int64(defaultRetry))
	go l.run(ctx)
	return l
}

// Up reports whether the listener is connected and listening.
func (l *Listener) Up() bool { return l != nil && l.up.Load() }

// PID is the backend process id of the listening connection (0 while down).
func (l *Listener) PID() uint32 {
	if l == nil || !l.up.Load() {
		return 0
	}
	return l.pid.Load()
}

// SetRetry sets the first wait before reconnecting (default 100 ms; it doubles after each
// failure, up to 10 s). A wait under way starts over with it.
func (l *Listener) SetRetry(d time.Duration) {
	l.retry.Store(int64(d))
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// Close stops listening and waits for the goroutine.
func (l *Listener) Close() {
	if l == nil {
		return
	}
	l.stop()
	<-l.done
}

func (l *Listener) run(ctx context.Context) {
	defer close(l.done)
	var wait time.Duration
	for ctx.Err() == nil {
		l.listen(ctx) // why it ended matters less than that it did: onState says so
		if l.up.Swap(false) {
			l.onState(false)
			wait = 0 // it was up: the first retry comes soon again
		}
		if ctx.Err() != nil {
			return
		}
		if wait == 0 {
			wait = time.Duration(l.retry.Load())
		} else {
			wait = min(2*wait, max(maxRetry, time.Duration(l.retry.Load())))
		}
		select { // a SetRetry made while connected is no reason to hurry now
		case <-l.wake:
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		case <-l.wake:
			wait = 0
		}
	}
}

// listen connects, listens and hands notifications on until the connection fails.
func (l *Listener) listen(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.Connect(cctx, l.dsn)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+ChangesChannel); err != nil {
		return err
	}
	l.pid.Store(conn.PgConn().PID())
	l.up.Store(true)
	l.onState(true)
	prefix := schema + " "
	for {
		wctx, cancel := context.WithTimeout(ctx, listenPing)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			if what, ok := strings.CutPrefix(n.Payload, prefix); ok {
				l.onChange(what)
			}
		case ctx.Err() != nil:
			return ctx.Err()
		case wctx.Err() != nil:
			// Silent for a while: make sure the connection is still there.
			if _, err := conn.Exec(ctx, `SELECT 1`); err != nil {
				return err
			}
		default:
			return err
		}
	}
}
