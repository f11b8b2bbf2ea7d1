package asterisk

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config describes one Asterisk and how to talk to it. Zero values get the
// defaults noted on each field.
type Config struct {
	Address  string // host:port of the manager interface
	Username string
	Secret   string

	// Events is the Events header of Login: "on", "off" or a category list.
	// Default "call": Originate learns its outcome from the OriginateResponse
	// event, which only sessions reading call events receive.
	Events string

	// ActionTimeout bounds connecting plus one action's answer, so a silent
	// or unreachable Asterisk yields an error in time. Default 8s: DECISIONS
	// §7 wants the API's answer within 10 s, and the API needs some of that.
	ActionTimeout time.Duration

	// Keepalive is the interval between Pings on an idle connection, which
	// find half-open TCP connections. Default 30s; negative disables.
	Keepalive time.Duration

	// ReconnectMin and ReconnectMax bound the exponential backoff between
	// failed connection attempts. Defaults 500ms and 30s.
	ReconnectMin, ReconnectMax time.Duration

	// EventBuffer is how many unsolicited events are kept for Events(); when
	// full the oldest is dropped so the reader never blocks. Default 256.
	EventBuffer int

	Logger *slog.Logger // default: discard
}

// DefaultActionTimeout is Config.ActionTimeout's default.
const DefaultActionTimeout = 8 * time.Second

func (cfg Config) withDefaults() Config {
	if cfg.Events == "" {
		cfg.Events = "call"
	}
	if cfg.ActionTimeout <= 0 {
		cfg.ActionTimeout = DefaultActionTimeout
	}
	if cfg.Keepalive == 0 {
		cfg.Keepalive = 30 * time.Second
	}
	if cfg.ReconnectMin <= 0 {
		cfg.ReconnectMin = 500 * time.Millisecond
	}
	if cfg.ReconnectMax <= 0 {
		cfg.ReconnectMax = 30 * time.Second
	}
	cfg.ReconnectMax = max(cfg.ReconnectMax, cfg.ReconnectMin)
	if cfg.EventBuffer <= 0 {
		cfg.EventBuffer = 256
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Client is a connection to one Asterisk, opened on first use and shared by
// all callers. It is safe for concurrent use.
type Client struct {
	cfg     Config
	log     *slog.Logger
	events  chan Message
	dropped atomic.Uint64

	mu       sync.Mutex
	sess     *session
	dialing  *dialResult // non-nil while a connection attempt runs
	lastErr  error       // why the last attempt failed
	retryAt  time.Time   // callers do not start an attempt before this
	failures int         // failed attempts in a row, for the backoff
	timer    *time.Timer // background reconnect
	closed   bool
}

type dialResult struct {
	done chan struct{}
	err  error
}

// New returns a Client for cfg. It does not connect: the first action does.
func New(cfg Config) *Client {
	cfg = cfg.withDefaults()
	return &Client{
		cfg:    cfg,
		log:    cfg.Logger.With("asterisk", cfg.Address),
		events: make(chan Message, cfg.EventBuffer),
	}
}

// Events returns the unsolicited events (those not part of an answer). The
// channel is never closed. When nobody reads it, old events are dropped.
func (c *Client) Events() <-chan Message { return c.events }

// EventsDropped is how many events were dropped because the buffer was full.
func (c *Client) EventsDropped() uint64 { return c.dropped.Load() }

// pushEvent queues an event without ever blocking the reader: when the buffer
// is full the oldest event goes.
func (c *Client) pushEvent(m Message) {
	for {
		select {
		case c.events <- m:
			return
		default:
		}
		select {
		case <-c.events:
			c.dropped.Add(1)
		default:
		}
	}
}

// Close logs off and closes the connection. Actions in flight fail.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	s := c.sess
	c.sess = nil
	if c.timer != nil {
		c.timer.Stop()
	}
	c.mu.Unlock()
	if s != nil {
		s.logoff()
		s.close(ErrClosed)
	}
	return nil
}

// session returns the live session, connecting if needed. Concurrent callers
// share one connection attempt. After a failed attempt callers get its error
// at once until the backoff delay has passed, so an unreachable Asterisk
// costs them nothing while the background reconnect keeps trying.
func (c *Client) session(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if s := c.sess; s != nil {
			c.mu.Unlock()
			return s, nil
		}
		if c.dialing == nil {
			if c.lastErr != nil && time.Now().Before(c.retryAt) {
				err := c.lastErr
				c.mu.Unlock()
				return nil, err
			}
			c.dialLocked()
		}
		d := c.dialing
		c.mu.Unlock()
		select {
		case <-d.done:
			if d.err != nil {
				return nil, d.err
			}
		case <-ctx.Done():
			return nil, netError(c.cfg.Address, "", ctx.Err())
		}
	}
}

// dialLocked starts a connection attempt. It runs on its own context so that
// one impatient caller does not spoil the attempt for the others.
func (c *Client) dialLocked() {
	d := &dialResult{done: make(chan struct{})}
	c.dialing = d
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ActionTimeout)
		s, err := c.open(ctx)
		cancel()

		c.mu.Lock()
		defer c.mu.Unlock()
		defer close(d.done)
		c.dialing = nil
		if c.closed {
			if s != nil {
				s.close(ErrClosed)
			}
			d.err = ErrClosed
			return
		}
		if err != nil {
			d.err = err
			c.failures++
			delay := c.backoff()
			c.lastErr, c.retryAt = err, time.Now().Add(delay)
			c.log.Warn("asterisk connect failed", "err", err, "retry_in", delay)
			// Retrying cannot fix a refused login or a bad value; those
			// wait for the next caller instead of knocking on the door.
			var amiErr *Error
			if !errors.As(err, &amiErr) && !errors.Is(err, ErrInvalidValue) {
				c.timer = time.AfterFunc(delay, c.redial)
			}
			return
		}
		c.failures, c.lastErr = 0, nil
		c.sess = s
		s.start()
	}()
}

// backoff is ReconnectMin doubled per failure in a row, capped.
func (c *Client) backoff() time.Duration {
	d := c.cfg.ReconnectMin
	for i := 1; i < c.failures && d < c.cfg.ReconnectMax; i++ {
		d *= 2
	}
	return min(d, c.cfg.ReconnectMax)
}

func (c *Client) redial() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.sess != nil || c.dialing != nil {
		return
	}
	c.dialLocked()
}

// dropped is called by a session whose connection ended. The client
// reconnects at once; failed attempts then back off.
func (c *Client) sessionEnded(s *session, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess != s || c.closed {
		return
	}
	c.sess = nil
	c.log.Warn("asterisk connection lost, reconnecting", "err", err)
	if c.dialing == nil {
		c.dialLocked()
	}
}

// open connects, checks the banner and logs in. It does this synchronously,
// before the session's reader starts, so a session is only ever shared once
// it is logged in.
func (c *Client) open(ctx context.Context) (*session, error) {
	addr := c.cfg.Address
	login, err := appendAction(nil, "Login", []Header{
		{"Username", c.cfg.Username},
		{"Secret", c.cfg.Secret},
		{"Events", c.cfg.Events},
	})
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, netError(addr, "", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	s := newSession(c, conn)
	if _, err := s.r.readBanner(); err != nil {
		conn.Close()
		return nil, netError(addr, "", err)
	}
	id := s.nextID()
	if _, err := conn.Write(withActionID(login, id)); err != nil {
		conn.Close()
		return nil, netError(addr, "Login", err)
	}
	for {
		m, err := s.r.next()
		if err != nil {
			conn.Close()
			return nil, netError(addr, "Login", err)
		}
		if m.Get("Event") != "" {
			c.pushEvent(m)
			continue
		}
		if m.Get("ActionID") != id {
			continue
		}
		if !isSuccess(m) {
			// Asterisk closes the connection after a failed login.
			conn.Close()
			return nil, &Error{Action: "Login", Message: m.Get("Message")}
		}
		break
	}
	conn.SetDeadline(time.Time{})
	return s, nil
}

func isSuccess(m Message) bool {
	switch strings.ToLower(m.Get("Response")) {
	case "success", "follows", "goodbye":
		return true
	}
	return false
}

// withActionID inserts the ActionID header before the blank line that ends
// an action rendered by appendAction. The ID is ours and always valid.
func withActionID(action []byte, id string) []byte {
	buf := make([]byte, 0, len(action)+len(id)+12)
	buf = append(buf, action[:len(action)-2]...)
	buf = append(buf, "ActionID: "...)
	buf = append(buf, id...)
	return append(buf, "\r\n\r\n"...)
}

// randomPrefix makes ActionIDs unique across sessions and daemons: Asterisk
// sends OriginateResponse, ActionID included, to every session reading call
// events, not only to the one that asked.
func randomPrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-"
}

// do sends an action and waits for its whole answer (the list, for list
// actions), bounded by ActionTimeout. An Error answer gives *Error along with
// the call, whose answer some callers still read.
func (c *Client) do(ctx context.Context, action string, headers []Header) (*call, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ActionTimeout)
	defer cancel()
	s, cl, err := c.send(ctx, action, headers, "")
	if err != nil {
		return nil, err
	}
	if err := s.wait(ctx, cl, cl.done); err != nil {
		return nil, err
	}
	if !isSuccess(cl.resp) {
		return cl, &Error{Action: action, Message: cl.resp.Get("Message")}
	}
	return cl, nil
}

// send validates and writes an action on the shared session. want names an
// event with the same ActionID that completes the call after a Success
// answer (OriginateResponse).
func (c *Client) send(ctx context.Context, action string, headers []Header, want string) (*session, *call, error) {
	// Validate before touching the network: a bad value is the caller's
	// fault whatever state Asterisk is in.
	body, err := appendAction(nil, action, headers)
	if err != nil {
		return nil, nil, err
	}
	s, err := c.session(ctx)
	if err != nil {
		return nil, nil, err
	}
	cl, err := s.send(ctx, action, body, want)
	if err != nil {
		return nil, nil, err
	}
	return s, cl, nil
}

func (c *Client) String() string { return fmt.Sprintf("asterisk.Client(%s)", c.cfg.Address) }

// Connected reports whether the session to Asterisk is up now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess != nil && !c.closed
}
