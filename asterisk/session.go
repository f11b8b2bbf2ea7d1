package asterisk

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// session is one logged-in connection. Its reader goroutine routes each
// answer to the waiting call by ActionID and every other event to the
// client's event buffer.
type session struct {
	c      *Client
	conn   net.Conn
	r      *reader
	prefix string
	seq    atomic.Uint64
	probe  chan struct{} // asks the keepalive loop to Ping now

	wmu sync.Mutex // a message must go out whole

	mu      sync.Mutex
	pending map[string]*call // nil once the session is dead
	killErr error            // why close was called, reported instead of the read error

	closeOnce sync.Once
	done      chan struct{} // closed when the reader has stopped
}

// call is one action waiting for its answer.
type call struct {
	id     string
	action string
	want   string // event completing the call after a Success answer

	// Written by the reader under session.mu, read by the caller after the
	// matching channel is closed.
	resp     Message
	items    []Message // list events, in order
	event    Message   // the wanted event
	gotEvent bool
	inList   bool
	isAcked  bool
	isDone   bool
	err      error // the connection failed

	acked chan struct{} // the response arrived
	done  chan struct{} // the call is complete
}

func (cl *call) ack() {
	if !cl.isAcked {
		cl.isAcked = true
		close(cl.acked)
	}
}

func (cl *call) finish() {
	cl.ack()
	if !cl.isDone {
		cl.isDone = true
		close(cl.done)
	}
}

func newSession(c *Client, conn net.Conn) *session {
	return &session{
		c:       c,
		conn:    conn,
		r:       newReader(conn),
		prefix:  randomPrefix(),
		probe:   make(chan struct{}, 1),
		pending: make(map[string]*call),
		done:    make(chan struct{}),
	}
}

func (s *session) nextID() string {
	return s.prefix + strconv.FormatUint(s.seq.Add(1), 10)
}

func (s *session) start() {
	go s.readLoop()
	go s.keepalive()
}

// close kills the connection; the reader then fails what is pending.
func (s *session) close(err error) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.killErr = err
		s.mu.Unlock()
		s.conn.Close()
	})
}

// logoff says goodbye without waiting for the answer: the connection is
// closed right after, and Asterisk copes either way.
func (s *session) logoff() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.conn.SetWriteDeadline(time.Now().Add(time.Second))
	s.conn.Write(withActionID([]byte("Action: Logoff\r\n\r\n"), s.nextID()))
}

func (s *session) readLoop() {
	for {
		m, err := s.r.next()
		if err != nil {
			s.fail(err)
			return
		}
		s.dispatch(m)
	}
}

// fail ends the session: the client drops it (and reconnects) first, so a
// caller retrying on the error below never gets this dead session again;
// then pending calls get the error.
func (s *session) fail(err error) {
	s.conn.Close()
	s.mu.Lock()
	if s.killErr != nil {
		err = s.killErr
	}
	s.mu.Unlock()
	s.c.sessionEnded(s, err)
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	for _, cl := range pending {
		cl.err = err
		cl.finish()
	}
	s.mu.Unlock()
	close(s.done)
}

// dispatch routes one message. It classifies by Event first: OriginateResponse
// is an event that also carries Response and ActionID.
func (s *session) dispatch(m Message) {
	id := m.Get("ActionID")
	if name := m.Get("Event"); name != "" {
		if id != "" && s.deliverEvent(id, name, m) {
			return
		}
		s.c.pushEvent(m)
		return
	}
	if m.Get("Response") == "" {
		return // neither; nothing Asterisk sends
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.pending[id]
	if cl == nil {
		// The caller gave up (timeout) or it is an answer without ActionID.
		s.c.log.Debug("asterisk answer nobody waits for", "action_id", id)
		return
	}
	cl.resp = m
	switch {
	case !isSuccess(m):
		s.finishLocked(cl)
	case strings.EqualFold(m.Get("EventList"), "start"):
		cl.inList = true
		cl.ack()
	case cl.want != "" && !cl.gotEvent:
		cl.ack()
	default:
		s.finishLocked(cl)
	}
}

// deliverEvent hands an event carrying one of our ActionIDs to its call: an
// item or the end of a list, or the event the call waits for. It reports
// whether the event was consumed.
func (s *session) deliverEvent(id, name string, m Message) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.pending[id]
	if cl == nil {
		return false
	}
	switch {
	case cl.want != "" && strings.EqualFold(name, cl.want):
		// It may even come before the answer; the call completes once both
		// are in.
		cl.event, cl.gotEvent = m, true
		if cl.isAcked {
			s.finishLocked(cl)
		}
	case cl.inList && strings.EqualFold(m.Get("EventList"), "complete"):
		s.finishLocked(cl)
	case cl.inList:
		cl.items = append(cl.items, m)
	default:
		return false
	}
	return true
}

func (s *session) finishLocked(cl *call) {
	delete(s.pending, cl.id)
	cl.finish()
}

func (s *session) forget(cl *call) {
	s.mu.Lock()
	if s.pending != nil {
		delete(s.pending, cl.id)
	}
	s.mu.Unlock()
}

// send registers a call and writes the action. body comes from appendAction.
func (s *session) send(ctx context.Context, action string, body []byte, want string) (*call, error) {
	cl := &call{
		id:     s.nextID(),
		action: action,
		want:   want,
		acked:  make(chan struct{}),
		done:   make(chan struct{}),
	}
	s.mu.Lock()
	if s.pending == nil {
		s.mu.Unlock()
		return nil, netError(s.c.cfg.Address, action, errors.New("connection lost"))
	}
	s.pending[cl.id] = cl
	s.mu.Unlock()

	s.wmu.Lock()
	dl, _ := ctx.Deadline()
	s.conn.SetWriteDeadline(dl)
	_, err := s.conn.Write(withActionID(body, cl.id))
	s.wmu.Unlock()
	if err != nil {
		// A partial write leaves the stream unusable.
		s.close(err)
		s.forget(cl)
		return nil, netError(s.c.cfg.Address, action, err)
	}
	return cl, nil
}

// wait waits for ch (the call's acked or done) or the end of ctx.
func (s *session) wait(ctx context.Context, cl *call, ch <-chan struct{}) error {
	select {
	case <-ch:
		if cl.err != nil {
			return netError(s.c.cfg.Address, cl.action, cl.err)
		}
		return nil
	case <-ctx.Done():
		s.forget(cl)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// Asterisk answers in order; a late answer may mean a dead
			// connection. Let the keepalive check now rather than later.
			select {
			case s.probe <- struct{}{}:
			default:
			}
		}
		return netError(s.c.cfg.Address, cl.action, ctx.Err())
	}
}

// keepalive Pings on every tick and on demand; a failed Ping closes the
// session so that the client reconnects.
func (s *session) keepalive() {
	var tick <-chan time.Time
	if k := s.c.cfg.Keepalive; k > 0 {
		t := time.NewTicker(k)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-s.done:
			return
		case <-tick:
		case <-s.probe:
		}
		if err := s.ping(); err != nil {
			s.c.log.Warn("asterisk keepalive failed", "err", err)
			s.close(err)
			return
		}
	}
}

func (s *session) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.c.cfg.ActionTimeout)
	defer cancel()
	cl, err := s.send(ctx, "Ping", []byte("Action: Ping\r\n\r\n"), "")
	if err != nil {
		return err
	}
	// Any answer proves the connection alive.
	return s.wait(ctx, cl, cl.done)
}
