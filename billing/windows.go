package billing

import (
	"bytes"
	"context"
	"encoding/gob"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/asterisk"
	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// Reservation windows (DECISIONS §5, setting reservation_window): a call that can be cut
// later — its SIP server has AMI and callPrepare got the call's channel — reserves the
// cost of one window, min(W, MaxCallTime) and at least one billing block, instead of its
// whole MaxCallTime. callPrepare still answers the whole MaxCallTime. While the call is
// open, its watcher (the daemon that answered callPrepare) extends the reservation by W
// windowLead seconds before the covered time runs out, under the account's lock like
// callPrepare; when the account cannot pay the next window it hangs the channel up
// through AMI once the covered time is over, and writes an event-log record (status
// CUT). A reservation covering the whole MaxCallTime is a plain one again (win = 0).
//
// Choices where the decisions are silent:
//   - The covered time and every window step run on the Service clock (Service.Now),
//     counted from callPrepare; expiry (expires_at, the grace) stays as it was, on the
//     wall clock.
//   - The next window is all or nothing: a call is not extended by part of a window.
//     An account topped up before the covered time is over saves the call (every round
//     tries again).
//   - The SIP server whose AMI cuts the call is the one whose name is the asking key's
//     name (the Asterisk that asked, DECISIONS §6), else the extension's server.
//   - Kamailio (contrib/kamailio) sends no channel: its calls reserve their whole grant.
//   - Several daemons on one database: each renews a lease in window_watchers every round;
//     the calls of a daemon whose lease ran out (it died) are adopted by the next daemon
//     whose round sees it. A daemon that closes gives its lease up, so its calls are
//     adopted at once. Extensions compare the covered seconds they read, so a call adopted
//     twice in a race is still extended once.

// Timing of the extender. A round runs every windowTick; a window is extended windowLead
// before its covered time runs out; a watcher's lease lasts windowLease, so a dead
// watcher's calls are adopted before their covered time is over (windowLease + a tick
// < windowLead).
const (
	windowTick  = time.Second
	windowLead  = 10 // seconds
	windowLease = 5  // seconds
	// windowBatch bounds the extensions of one transaction.
	windowBatch = 256
)

// windowState is the Service's extender.
type windowState struct {
	stop context.CancelFunc
	done chan struct{}
	mu   sync.Mutex // one round at a time (the loop, tests)
}

// callWindow is what callPrepare knows about cutting a call: nil when windows are off.
type callWindow struct {
	w       int    // reservation_window
	channel string // Asterisk's ${CHANNEL}; "" when not given
	server  string // the SIP server whose AMI cuts the call; "" when none has AMI
	start   int64  // Service clock at callPrepare

	// Set by reserve, for store.
	covered int    // seconds paid for; 0: the reservation is a plain one
	price   []byte // the call's price, to cost the next window
}

// callWindow finds out whether the call being prepared can be cut (nil when
// reservation_window is 0).

// windowCutStatus is the status of the event-log record of a call cut for want of money;
// getStats does not count it as a call.
const windowCutStatus = "CUT"

func (s *Service) callWindow(r *Request, p *callParty) (*callWindow, error) {
	w := s.Config.ReservationWindow
	if w <= 0 {
		return nil, nil
	}
	cw := &callWindow{w: w, channel: strings.TrimSpace(r.Str("channel")), start: s.now().Unix()}
	if cw.channel == "" || strings.ContainsAny(cw.channel, "\r\n") || strings.HasPrefix(cw.channel, "/") {
		cw.channel = "" // never hung up: a regex or a broken line is not a channel name
		return cw, nil
	}
	var names []string
	if r.Caller.Key != nil {
		names = append(names, r.Caller.Key.Name)
	}
	if p.ext != nil && p.ext.Server != "" {
		names = append(names, p.ext.Server)
	}
	for _, n := range names {
		v, err := s.Gate.Directory.Remember("call.ami\x00"+n, func() (any, error) {
			srv, err := sipServer(r.ctx, s.DB.Q(), n)
			if apierr.Code(err) == apierr.SIPServerNotExist {
				return "", nil
			} else if err != nil {
				return nil, err
			}
			if srv.AMIAddress == "" {
				return "", nil
			}
			return srv.Name, nil
		})
		if err != nil {
			return nil, err
		}
		if v.(string) != "" {
			cw.server = v.(string)
			return cw, nil
		}
	}
	return cw, nil
}

// reserve is the amount callPrepare reserves for a call granted secs, whose whole grant
// costs full: one window when the call can be cut, else full.
func (w *callWindow) reserve(q rating.Quote, secs int, full money.Micro) money.Micro {
	if w == nil {
		return full
	}
	w.covered, w.price = 0, nil
	if w.channel == "" || w.server == "" {
		return full
	}
	cover := min(secs, max(w.w, q.BillType.BilledSeconds(w.w)))
	if cover >= secs {
		return full
	}
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(q.Price); err != nil {
		return full // cannot happen for a struct of numbers; the call is still safe
	}
	w.covered, w.price = cover, b.Bytes()
	return windowCharge(q.Price, cover)
}

// windowCharge is the cost of the first secs of a call: what callFinish would charge.
func windowCharge(p rating.Price, secs int) money.Micro { return p.Charge(secs) }

// store writes the window of the reservation just inserted in tx (by id, or by uniqueid
// and prior), or clears one a retried callPrepare left there.
func (w *callWindow) store(ctx context.Context, tx *db.Tx, s *Service, id int64, uid string, prior int) error {
	if w == nil || (w.covered == 0 && uid == "") {
		return nil // a fresh row has no window
	}
	where, args := ` WHERE id = ?`, []any{id}
	if uid != "" {
		where, args = ` WHERE uniqueid = ? AND prior = ?`, []any{uid, prior}
	}
	if w.covered == 0 {
		return tx.ExecDeferred(ctx, `UPDATE reservations SET win = 0`+where, args...)
	}
	return tx.ExecDeferred(ctx, `UPDATE reservations SET channel = ?, sip_server = ?, win = ?, win_start = ?, covered = ?,
		win_price = ?, watcher = ?`+where, append([]any{w.channel, w.server, w.w, w.start, w.covered, w.price,
		s.runnerID()}, args...)...)
}

// startWindows starts the extender (only with reservation_window set); stopWindows
// stops it and gives its lease up, so another daemon adopts its calls at once.
func (s *Service) startWindows(ctx context.Context) {
	if s.Config.ReservationWindow <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.win.stop, s.win.done = cancel, make(chan struct{})
	go func() {
		defer close(s.win.done)
		t := time.NewTicker(windowTick)
		defer t.Stop()
		for {
			if _, err := s.windowRound(ctx); err != nil && ctx.Err() == nil {
				s.Log.Error("reservation windows: round failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

func (s *Service) stopWindows() {
	if s.haltWindows() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := s.DB.Q().Exec(ctx, `DELETE FROM window_watchers WHERE id = ?`, s.runnerID()); err != nil {
			s.Log.Warn("reservation windows: lease not given up", "err", err)
		}
	}
}

// haltWindows stops the extender without giving its lease up (as a daemon that dies).
func (s *Service) haltWindows() bool {
	if s.win.stop == nil {
		return false
	}
	s.win.stop()
	<-s.win.done
	s.win.stop = nil
	return true
}

// windowReport is what one round did.
type windowReport struct {
	Adopted, Extended, Cut int
}

// openWindow is a windowed reservation as a round reads it.
type openWindow struct {
	ID        int64       `db:"id"`
	Account   int64       `db:"account_id"`
	UserID    int64       `db:"user_id"`
	Username  string      `db:"username"`
	Extension string      `db:"extension"`
	UniqueID  string      `db:"uniqueid"`
	Prior     int         `db:"prior"`
	Dest      string      `db:"destination"`
	Channel   string      `db:"channel"`
	Server    string      `db:"sip_server"`
	Win       int         `db:"win"`
	Start     int64       `db:"win_start"`
	Covered   int         `db:"covered"`
	Price     []byte      `db:"win_price"`
	Amount    money.Micro `db:"amount"`
	Grant     int         `db:"max_call_time"`
	Expires   int64       `db:"expires_at"`
}

// windowRow is what an extension reads again under the account's lock.
type windowRow struct {
	ID      int64       `db:"id"`
	Covered int         `db:"covered"`
	Win     int         `db:"win"`
	Amount  money.Micro `db:"amount"`
}

func (o *openWindow) end() int64 { return o.Start + int64(o.Covered) }

// windowRound renews this daemon's lease, adopts the calls of dead watchers, extends the
// windows due, and hangs up the calls whose covered time is over and could not be
// extended.
func (s *Service) windowRound(ctx context.Context) (windowReport, error) {
	s.win.mu.Lock()
	defer s.win.mu.Unlock()
	var rep windowReport
	me, now, q := s.runnerID(), s.now().Unix(), s.DB.Q()
	// Through the group-commit writer, like the call path: on SQLite a write of another
	// connection would make the writer forget the accounts it keeps (holds.go).
	err := s.DB.InTxBatch(ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO window_watchers (id, lease_until) VALUES (?, ?)
			ON CONFLICT (id) DO UPDATE SET lease_until = excluded.lease_until`, me, now+windowLease); err != nil {
			return err
		}
		res, err := tx.Exec(ctx, `UPDATE reservations SET watcher = ? WHERE win > 0 AND watcher <> ? AND NOT EXISTS
			(SELECT 1 FROM window_watchers w WHERE w.id = reservations.watcher AND w.lease_until >= ?)`, me, me, now)
		if err == nil {
			n, _ := res.RowsAffected()
			rep.Adopted = int(n)
		}
		return err
	})
	if err != nil {
		return rep, err
	}
	if rep.Adopted > 0 {
		s.Log.Info("reservation windows: adopted the calls of a daemon whose lease ran out", "calls", rep.Adopted)
	}
	var due []openWindow
	if err := q.Select(ctx, &due, `SELECT r.id, r.account_id, r.user_id, COALESCE(u.username, '') AS username, r.extension,
		COALESCE(r.uniqueid, '') AS uniqueid, r.prior, r.destination, r.channel, r.sip_server, r.win, r.win_start,
		r.covered, r.win_price, r.amount, r.max_call_time, r.expires_at
		FROM reservations r LEFT JOIN users u ON u.id = r.user_id
		WHERE r.watcher = ? AND r.win > 0 AND r.win_start + r.covered <= ?`, me, now+windowLead); err != nil {
		return rep, err
	}
	// The soonest first, so the money goes to the calls in the order they need it.
	slices.SortFunc(due, func(a, b openWindow) int {
		if c := a.end() - b.end(); c != 0 {
			return int(c)
		}
		return int(a.ID - b.ID)
	})
	var cut []openWindow
	for len(due) > 0 {
		part := due[:min(len(due), windowBatch)]
		due = due[len(part):]
		ext, short, err := s.extendWindows(ctx, part)
		if err != nil {
			return rep, err
		}
		rep.Extended += ext
		for _, o := range short {
			if o.end() <= now {
				cut = append(cut, o)
			}
		}
	}
	rep.Cut = s.cutCalls(ctx, cut, now)
	return rep, nil
}

// extendWindows extends the given windows by one window each, in order, in one
// transaction that locks their accounts; it answers how many it extended and those the
// accounts could not pay.
func (s *Service) extendWindows(ctx context.Context, ws []openWindow) (int, []openWindow, error) {
	var accounts []int64
	for _, o := range ws {
		if !slices.Contains(accounts, o.Account) {
			accounts = append(accounts, o.Account)
		}
	}
	var (
		extended int
		short    []openWindow
	)
	err := s.DB.InTxBatch(ctx, func(tx *db.Tx) error {
		extended, short = 0, nil // the job may run twice
		now := time.Now().Unix() // expiry runs on the wall clock
		// Read the rows again under the accounts' locks: a callFinish may have settled
		// one, another daemon extended one.
		ids := make([]any, len(ws))
		for i, o := range ws {
			ids[i] = o.ID
		}
		var cur []windowRow
		prices := map[string]rating.Price{}
		if err := tx.Select(ctx, &cur, `SELECT id, covered, win, amount FROM reservations WHERE id IN (?`+
			strings.Repeat(", ?", len(ids)-1)+`)`, ids...); err != nil {
			return err
		}
		for _, o := range ws {
			i := slices.IndexFunc(cur, func(c windowRow) bool { return c.ID == o.ID })
			if i < 0 || cur[i].Covered != o.Covered || cur[i].Win == 0 {
				continue // settled, or extended by another daemon
			}
			p, ok := prices[string(o.Price)] // a gob decoder costs more than an extension
			if !ok {
				if err := gob.NewDecoder(bytes.NewReader(o.Price)).Decode(&p); err != nil {
					return fmt.Errorf("reservation %d: window price: %w", o.ID, err)
				}
				prices[string(o.Price)] = p
			}
			next := min(o.Covered+o.Win, o.Grant)
			amount := windowCharge(p, next)
			acc, err := s.holds.account(ctx, tx, o.Account, now, "", 0)
			if err != nil {
				return err
			}
			if extra := amount - cur[i].Amount; extra > 0 && acc.spendable(now, "", 0) < extra {
				short = append(short, o)
				continue
			}
			win := o.Win
			if next >= o.Grant {
				win = 0 // the whole grant is paid for: a plain reservation from now on
			}
			if _, err := tx.Exec(ctx, `UPDATE reservations SET amount = ?, covered = ?, win = ? WHERE id = ?`,
				amount, next, win, o.ID); err != nil {
				return err
			}
			s.holds.reserved(tx, o.Account, callHold(o.UniqueID, o.Prior, o.ID), hold{amount: amount, expires: o.Expires})
			extended++
		}
		return nil
	}, accounts...)
	return extended, short, err
}

// cutCalls hangs up, through their SIP servers' AMI, the calls whose covered time is
// over, and answers how many it hung up. A channel Asterisk no longer knows has ended
// (its callFinish settles it); an Asterisk that cannot be reached is tried again next
// round.
func (s *Service) cutCalls(ctx context.Context, cut []openWindow, now int64) int {
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		n  int
	)
	for _, o := range cut {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hung, err := s.hangUpWindow(ctx, o)
			if err != nil {
				s.Log.Error("reservation windows: could not hang up a call whose money ran out", "channel", o.Channel,
					"server", o.Server, "user", o.Username, "err", err)
				return
			}
			if err := s.endWindow(ctx, o, hung, now); err != nil {
				s.Log.Error("reservation windows: recording a cut call", "reservation", o.ID, "err", err)
			}
			if hung {
				mu.Lock()
				n++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return n
}

// hangUpWindow sends Hangup for the call's channel; false when Asterisk has no such
// channel (the call already ended).
func (s *Service) hangUpWindow(ctx context.Context, o openWindow) (bool, error) {
	srv, err := sipServer(ctx, s.DB.Q(), o.Server)
	if err != nil {
		return false, err
	}
	c, err := s.amiClient(srv)
	if err != nil {
		return false, err
	}
	err = c.Hangup(ctx, o.Channel)
	var ae *asterisk.Error
	if errors.As(err, &ae) && ae.Message == "No such channel" {
		return false, nil
	}
	return err == nil, err
}

// endWindow stops extending a cut call's reservation (callFinish settles it) and, when
// it was hung up, writes the event-log record saying so.
func (s *Service) endWindow(ctx context.Context, o openWindow, hung bool, now int64) error {
	return s.DB.InTx(ctx, func(tx *db.Tx) error {
		res, err := tx.Exec(ctx, `UPDATE reservations SET win = 0 WHERE id = ? AND covered = ? AND win > 0`, o.ID, o.Covered)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 || !hung {
			return nil
		}
		info := fmt.Sprintf("cut: no money for the next %d s window; channel %s hung up after %d s", o.Win, o.Channel, o.Covered)
		s.Log.Warn("reservation windows: call cut, the money ran out", "user", o.Username, "channel", o.Channel,
			"server", o.Server, "destination", o.Dest, "covered", o.Covered, "uniqueid", o.UniqueID)
		_, err = tx.Exec(ctx, `INSERT INTO call_log (user_id, account_id, username, extension, destination, time, cost,
			status, prior, info, debug, answer, created_at) VALUES (?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, '', ?)`,
			o.UserID, o.Account, o.Username, o.Extension, o.Dest, windowCutStatus, o.Prior, info,
			"reservation="+fmt.Sprint(o.ID)+" uniqueid="+o.UniqueID, time.Now().Unix())
		return err
	})
}
