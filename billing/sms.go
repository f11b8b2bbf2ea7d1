package billing

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// smsMethods declares the methods whose handlers are in this file: the reference's "SMS".
func (s *Service) smsMethods() []Method {
	return []Method{
		method("receiveSMS", 0, s.receiveSMS, "from:string", "to:string", "text:string",
			"msg_handler:string").
			Doc("take in an SMS from an external source", "true"),
		method("receiveDeliveryReport", 0, s.receiveDeliveryReport, "id:string", "status:string",
			"msg_handler:string").
			Doc("take in a delivery report from an external source", "true"),
		method("msgCallback", 0, s.msgCallback, "msisdn:string", "text:string!", "to:string").
			Doc("start a callback from an SMS of an external source", "true"),
		method("readSMS", 1, s.readSMS, "status:num", "did:string").
			Doc("mark all SMS as read", "true"),
		method("sendSMS", 1, s.sendSMS, "callerid:string", "to:string!", "text:string!").
			Doc("send an SMS", "the SMS's unique id"),
		method("sendHLR", 1, s.sendHLR, "to:string!").
			Doc("send an HLR request", "the HLR answer: OK,IMSI,MCC,MNC,LAC"),
		method("sendVoiceMessage", 1, s.sendVoiceMessage, "callerid:string", "to:string!", "text:string!").
			Doc("send a voice message", "the message's unique id"),
		method("sendSIPMessage", 1, s.sendSIPMessage, "callerid:string", "to:string!", "text:string!").
			Doc("send a SIP message to a client", "true"),
		method("deliveryReport", 1, s.deliveryReport, "id:num!").
			Doc("get the delivery report of a message by its id", "SMS Sent, SMS Deliv (delivered) or SMS Undeliv (not delivered)"),
		method("setDeliveryReport", 95, s.setDeliveryReport, "id:num!", "status:num!").
			Doc("set an SMS's delivery report", "true"),
		method("getSMS", 95, s.getSMS, "status:num").
			Doc("list all SMS (deprecated: readSMS)", "the SMS"),
	}
}

// SMS. Messages live in the sms table: type `in` (received for a DID's owner), `out`
// (sent by sendSMS or notifySIM) and `voice` (sendVoiceMessage). status of an incoming
// message: 0 unread, 1 read; of a sent one: 0 sent, 1 delivered, -1 not delivered (so
// getStats' success_sms, status > 0, counts delivered messages).
const (
	smsSent        = 0
	smsDelivered   = 1
	smsUndelivered = -1
	smsRead        = 1
)

// maxSMSText bounds a message: ten concatenated 160-character parts.
const maxSMSText = 1600

// smsListLimit bounds getSMS: a gateway polls it and takes the oldest first.
const smsListLimit = 1000

var (
	smsNumber = regexp.MustCompile(`^[0-9]{3,20}$`)
	// An alphanumeric sender ID (GSM 03.38 allows 11 characters), with at least one letter.
	smsAlpha  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9 ._-]{0,10}$`)
	smsLetter = regexp.MustCompile(`[A-Za-z]`)
)

// smsTo checks a destination: a phone number of 3 to 20 digits once spaces, dashes and a
// leading + or 00 are stripped (DECISIONS §5), else E_INVALID_SMS_TO.
func smsTo(v string) (string, error) {
	n := rating.Normalize(v)
	if !smsNumber.MatchString(n) {
		return "", apierr.New(apierr.InvalidSMSTo, "to: %q is not a phone number", v)
	}
	return n, nil
}

// smsSender checks a sender: a phone number (normalised like a destination) or an
// alphanumeric sender ID of up to 11 characters, else E_INVALID_SMS_FROM.
func smsSender(v string) (string, error) {
	if n := rating.Normalize(v); smsNumber.MatchString(n) {
		return n, nil
	}
	if smsAlpha.MatchString(v) && smsLetter.MatchString(v) {
		return v, nil
	}
	return "", apierr.New(apierr.InvalidSMSFrom, "callerid: %q is not a phone number or a sender name", v)
}

func smsText(v string) error {
	if !utf8.ValidString(v) || strings.ContainsRune(v, 0) {
		return apierr.New(apierr.InvalidArgument, "text: not valid UTF-8 text")
	}
	if n := utf8.RuneCountInString(v); n > maxSMSText {
		return apierr.New(apierr.InvalidArgument, "text: %d characters, at most %d", n, maxSMSText)
	}
	return nil
}

// senderOf is the sender of a message from u: the callerid argument, else (the
// reference: "taken from user profile") the caller ID of the user's first SIP account
// that has one. Any well-formed sender is accepted: the carrier decides what it lets
// through.
func (s *Service) senderOf(r *Request, u *User) (string, error) {
	if v := r.Str("callerid"); v != "" {
		return smsSender(v)
	}
	exts, err := extensionsOf(r.ctx, s.DB.Q(), u.ID)
	if err != nil {
		return "", err
	}
	for _, e := range exts {
		if e.CallerID != "" {
			return smsSender(e.CallerID)
		}
	}
	return "", apierr.New(apierr.InvalidSMSFrom, "no callerid given and user %s has no caller ID", u.Username)
}

// smsRoute is an SMS route a message to a number may leave through, with its price.
type smsRoute struct {
	ID      int64
	Name    string
	Handler string      // the route's prefix: the name of its Lua sms handler
	Cost    money.Micro // per message, system currency
}

// smsRoutes are the routes of type sms for a number, in priority order, and the tariff
// option they come from (0: u's tariff): a tariff's entries for the number's direction
// whose route is an enabled SMS route. As calls do (DECISIONS §5), the first tariff option
// on u's SIP accounts that has such entries replaces u's tariff for the direction (and
// its bundle may carry the message, bundles.go "SMS quotas"). An entry's cost is the
// price of one message (× the tariff's multiplier, rounded half-up once; no switch
// price). No tariff, direction or SMS route: E_UNROUTABLE.
func (s *Service) smsRoutes(ctx context.Context, u *User, to string) ([]smsRoute, int64, error) {
	snap, err := s.rating(ctx)
	if err != nil {
		return nil, 0, err
	}
	dir, ok := snap.Index.Resolve(to)
	if !ok {
		return nil, 0, apierr.New(apierr.Unroutable, "no direction for %s", to)
	}
	var rows []struct {
		ID     int64  `db:"id"`
		Name   string `db:"name"`
		Prefix string `db:"prefix"`
	}
	if err := s.DB.Q().Select(ctx, &rows, `SELECT id, name, prefix FROM routes WHERE type = 'sms' AND enabled = 1`); err != nil {
		return nil, 0, err
	}
	byID := make(map[int64]smsRoute, len(rows))
	for _, row := range rows {
		byID[row.ID] = smsRoute{ID: row.ID, Name: row.Name, Handler: row.Prefix}
	}
	priced := func(t *rating.Tariff) []smsRoute {
		var out []smsRoute
		for _, e := range t.Entries(dir.ID) {
			rt, ok := byID[e.RouteID]
			if !ok {
				continue
			}
			p := new(big.Int).Mul(big.NewInt(int64(e.Cost)), big.NewInt(int64(t.Multiplier)))
			rt.Cost = money.Micro(money.DivRound(p, big.NewInt(int64(money.One))))
			out = append(out, rt)
		}
		return out
	}
	opts, err := userOptions(ctx, s.DB.Q(), u.ID)
	if err != nil {
		return nil, 0, err
	}
	for _, id := range opts {
		if out := priced(snap.Tariffs[id]); len(out) > 0 {
			return out, id, nil
		}
	}
	if !u.RatesID.Valid {
		return nil, 0, apierr.New(apierr.Unroutable, "user %s has no tariff", u.Username)
	}
	if out := priced(snap.Tariffs[u.RatesID.Int64]); len(out) > 0 {
		return out, 0, nil
	}
	return nil, 0, apierr.New(apierr.Unroutable, "no SMS route for %s (%s)", to, dir.Name)
}

// sendSMS(1) sends a message through the SMS routes of the user's tariff (or of a tariff
// option, whose bundle may carry it) and answers the message's id (for deliveryReport).
func (s *Service) sendSMS(r *Request) (any, error) { return s.sendMessage(r, "send", "out", KindSMS) }

// sendVoiceMessage(1) has a carrier call the number and speak text (or play the audio at
// a URL): the same routes, price and answer as an SMS; the carrier's handler gets
// method "voice", and a route with prefix `asterisk` calls through the user's SIP server
// (voice.go). Stored as type voice, charged as ledger kind voice.
func (s *Service) sendVoiceMessage(r *Request) (any, error) {
	return s.sendMessage(r, "voice", "voice", KindVoice)
}

// sendMessage tries the routes in priority order: a route whose price the user cannot
// afford (balance + overdraft − reservations) is skipped, a carrier that fails passes the
// message to the next. The message is charged only once a carrier accepted it, in the
// transaction that stores it. A carrier's answer may take a moment, so no lock is held
// while it runs: two messages sent at the same moment can take the balance past the
// overdraft by the price of one (the messages were sent; as with callFinish, they are
// charged). An SMS through a tariff option whose bundle has a message left claims it
// before the first carrier is asked and pays with it instead (bundles.go "SMS quotas");
// the claim is given back when no carrier takes the message.
func (s *Service) sendMessage(r *Request, method, typ, kind string) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	to, err := smsTo(r.Str("to"))
	if err != nil {
		return nil, err
	}
	from, err := s.senderOf(r, u)
	if err != nil {
		return nil, err
	}
	text := r.Str("text")
	if err := smsText(text); err != nil {
		return nil, err
	}
	routes, option, err := s.smsRoutes(r.ctx, u, to)
	if err != nil {
		return nil, err
	}
	var claim *smsClaim // voice messages are not SMS: no quota
	if kind == KindSMS && option != 0 {
		if claim, err = s.claimSMS(r.ctx, u, option); err != nil {
			return nil, err
		}
	}
	defer func() {
		if claim != nil { // not spent: given back
			s.releaseSMS(r.ctx, claim)
		}
	}()
	held, err := reserved(r.ctx, s.DB.Q(), u.AccountID)
	if err != nil {
		return nil, err
	}
	available := u.Balance + u.Overdraft - held
	var lastErr error
	for _, rt := range routes {
		if claim == nil && rt.Cost > 0 && rt.Cost > available {
			if lastErr == nil {
				lastErr = apierr.New(apierr.InsufficientMoney, "a message to %s costs %s", to, rt.Cost)
			}
			continue
		}
		extID, status, err := s.deliver(r, u, rt, method, to, from, text)
		if err == nil {
			id, err := s.storeSent(r, u, rt, typ, kind, from, to, text, extID, status, claim)
			if err == nil {
				claim = nil // spent with the message
			}
			return id, err
		}
		if c := apierr.Code(err); c == apierr.InvalidSMSTo || c == apierr.InvalidSMSFrom {
			return nil, err // the message itself is wrong: another carrier would refuse it too
		}
		s.Log.Warn("sms: carrier failed", "route", rt.Name, "handler", rt.Handler, "err", err)
		lastErr = err
	}
	return nil, lastErr
}

// deliver hands a message to a route's carrier and answers the carrier's id for it and
// the message's status: the built-in carriers (a route prefix `kannel` once
// kannel_sendsms_url is set; `asterisk` for voice messages through the user's SIP
// server), else the Lua sms handler the prefix names.
func (s *Service) deliver(r *Request, u *User, rt smsRoute, method, to, from, text string) (string, int, error) {
	switch {
	case rt.Handler == kannelHandler && s.kannelOn():
		if method != "send" {
			return "", 0, apierr.New(apierr.CarrierError, "route %s (Kannel) carries SMS only", rt.Name)
		}
		id, err := s.kannelSend(r.ctx, to, from, text)
		return id, smsSent, err
	case rt.Handler == voiceHandler:
		if method != "voice" {
			return "", 0, apierr.New(apierr.CarrierError, "route %s (Asterisk) carries voice messages only", rt.Name)
		}
		// Originate answers once the callee answered: the message is delivered.
		id, err := s.voiceCall(r, to, from, text)
		return id, smsDelivered, err
	}
	v, err := s.carrier(r.ctx, "sms", rt.Handler, map[string]any{
		"method": method, "to": to, "from": from, "text": text, "route": rt.Name, "route_id": rt.ID,
		"user": scriptUser(u),
	}, false)
	if err != nil {
		return "", 0, err
	}
	id, err := carrierID(v)
	return id, smsSent, err
}

// storeSent stores a message a carrier accepted and charges it, in one transaction: to the
// quota when it was claimed from a bundle and the quota still has it, else in money.
func (s *Service) storeSent(r *Request, u *User, rt smsRoute, typ, kind, from, to, text, extID string, status int, claim *smsClaim) (any, error) {
	var id int64
	err := s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		if _, err := lockAccounts(r.ctx, tx, u.AccountID); err != nil {
			return err
		}
		cost := rt.Cost
		if claim != nil {
			covered, err := claim.spend(r.ctx, tx)
			if err != nil {
				return err
			}
			if covered {
				cost = 0
			}
		}
		var err error
		id, err = tx.Insert(r.ctx, `INSERT INTO sms (user_id, did, src, dest, msg, status, type, external_id, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, u.ID, from, from, to, text, status, typ, extID, time.Now().Unix())
		if err != nil {
			return err
		}
		if cost == 0 {
			return nil
		}
		what := "SMS"
		if typ == "voice" {
			what = "voice message"
		}
		err = post(r.ctx, tx, u.AccountID, -cost, kind, fmt.Sprintf("sms:%d", id),
			fmt.Sprintf("%s to %s via %s", what, to, rt.Name), r.Caller.Actor.ID)
		return err
	})
	if err != nil {
		// The carrier has the message; say so loudly, it was neither stored nor charged.
		s.Log.Error("sms: sent but not stored", "user", u.Username, "to", to, "route", rt.Name, "carrier_id", extID, "err", err)
		return nil, err
	}
	return id, nil
}

// sendHLR(1) asks the SMS route's carrier (method "hlr") about a number and answers its
// text, such as "OK,IMSI,MCC,MNC,LAC". Routes are tried as for sendSMS; a lookup is not
// charged (the tariff prices messages, not lookups).
func (s *Service) sendHLR(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	to, err := smsTo(r.Str("to"))
	if err != nil {
		return nil, err
	}
	routes, _, err := s.smsRoutes(r.ctx, u, to)
	if err != nil {
		return nil, err
	}
	var lastErr error
	for _, rt := range routes {
		v, err := s.carrier(r.ctx, "sms", rt.Handler, map[string]any{
			"method": "hlr", "to": to, "route": rt.Name, "route_id": rt.ID, "user": scriptUser(u),
		}, false)
		if err == nil {
			if v == nil {
				return "", nil
			}
			return v, nil
		}
		lastErr = err
	}
	return nil, lastErr
}

// sendSIPMessage(1) sends a SIP MESSAGE to a SIP account of this system through the
// account's SIP server: AMI MessageSend (To <sip_message_tech>:<extension>, From the
// sender) when the server has AMI, unless a script registered the sms handler named
// "sip" (method "sip", with to, from, text and the account's SIP server), which then
// delivers it instead. Neither: E_CARRIER_ERROR. Not charged. A `to` that is no SIP
// account here is E_INVALID_SMS_TO.
func (s *Service) sendSIPMessage(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	target, err := extensionByName(r.ctx, s.DB.Q(), strings.TrimSpace(r.Str("to")))
	if apierr.Code(err) == apierr.NotExist {
		return nil, apierr.New(apierr.InvalidSMSTo, "to: %q is not a SIP account", r.Str("to"))
	} else if err != nil {
		return nil, err
	}
	from := r.Str("callerid")
	if from != "" {
		if from, err = smsSender(from); err != nil {
			return nil, err
		}
	} else {
		exts, err := extensionsOf(r.ctx, s.DB.Q(), u.ID)
		if err != nil {
			return nil, err
		}
		if len(exts) == 0 {
			return nil, apierr.New(apierr.InvalidSMSFrom, "no callerid given and user %s has no SIP account", u.Username)
		}
		from = exts[0].Extension
	}
	text := r.Str("text")
	if err := smsText(text); err != nil {
		return nil, err
	}
	if !s.hasHandler("sms", "sip") && target.Server != "" {
		srv, err := sipServer(r.ctx, s.DB.Q(), target.Server)
		if err != nil {
			return nil, err
		}
		if srv.AMIAddress != "" {
			return s.amiMessage(r, srv, target.Extension, from, text)
		}
	}
	v, err := s.carrier(r.ctx, "sms", "sip", map[string]any{
		"method": "sip", "to": target.Extension, "from": from, "text": text, "sip_server": target.Server,
		"user": scriptUser(u),
	}, false)
	if err != nil {
		return nil, err
	}
	if _, err := carrierID(v); err != nil {
		return nil, err
	}
	return true, nil
}

// smsRow is a row of the sms table with its user's name.
type smsRow struct {
	ID         int64         `db:"id"`
	UserID     sql.NullInt64 `db:"user_id"`
	User       string        `db:"username"`
	DID        string        `db:"did"`
	Src        string        `db:"src"`
	Dest       string        `db:"dest"`
	Msg        string        `db:"msg"`
	Status     int           `db:"status"`
	Type       string        `db:"type"`
	ExternalID string        `db:"external_id"`
	CreatedAt  int64         `db:"created_at"`
}

const smsSelect = `SELECT m.id, m.user_id, COALESCE(u.username, '') AS username, m.did, m.src, m.dest, m.msg,
	m.status, m.type, m.external_id, m.created_at FROM sms m LEFT JOIN users u ON u.id = m.user_id`

func smsByID(ctx context.Context, q db.Queryer, id int64) (*smsRow, error) {
	var m smsRow
	err := q.Get(ctx, &m, smsSelect+` WHERE m.id = ?`, id)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no SMS %d", id)
	}
	return &m, err
}

// ownedSMS is a message whose user the actor manages (a message without a user, such as
// notifySIM's, belongs to the administrators).
func (r *Request) ownedSMS(id int64) (*smsRow, error) {
	m, err := smsByID(r.ctx, r.S.DB.Q(), id)
	if err != nil {
		return nil, err
	}
	if err := r.mustManage(m.UserID, fmt.Sprintf("SMS %d", id)); err != nil {
		return nil, err
	}
	return m, nil
}

// deliveryReport(1) answers the state of a sent message (sendSMS's id).
func (s *Service) deliveryReport(r *Request) (any, error) {
	id, err := wholeNum(r, "id")
	if err != nil {
		return nil, err
	}
	m, err := r.ownedSMS(id)
	if err != nil {
		return nil, err
	}
	if m.Type == "in" {
		return nil, apierr.New(apierr.NotExist, "SMS %d was received, not sent", m.ID)
	}
	switch {
	case m.Status > 0:
		return "SMS Deliv", nil
	case m.Status < 0:
		return "SMS Undeliv", nil
	}
	return "SMS Sent", nil
}

// wholeNum is a num argument that must be whole (E_INVALID_ARGUMENT otherwise).
func wholeNum(r *Request, name string) (int64, error) {
	m := r.Money(name)
	if m%money.One != 0 {
		return 0, apierr.New(apierr.InvalidArgument, "%s: want a whole number", name)
	}
	return int64(m / money.One), nil
}

// setDeliveryReport(95) sets a message's status (a gateway reports what became of the
// messages getSMS gave it): 1 delivered (or read), 0 sent (or unread), -1 not delivered.
func (s *Service) setDeliveryReport(r *Request) (any, error) {
	st, err := wholeNum(r, "status")
	if err != nil {
		return nil, err
	}
	if st < -1 || st > 1 {
		return nil, apierr.New(apierr.InvalidArgument, "status: want -1, 0 or 1")
	}
	id, err := wholeNum(r, "id")
	if err != nil {
		return nil, err
	}
	if _, err := r.ownedSMS(id); err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `UPDATE sms SET status = ? WHERE id = ?`, st, id)
	return true, err
}

// getSMS(95) lists messages, oldest first, at most 1000 (a gateway polls status=0 for the
// messages to send and reports with setDeliveryReport): those of the users the caller
// manages; a server key of level 95 has exclusive rights, so for its owner that is every
// message. date is server time (UTC).
func (s *Service) getSMS(r *Request) (any, error) {
	query, args := smsSelect, []any{}
	if r.Has("status") {
		st, err := wholeNum(r, "status")
		if err != nil {
			return nil, err
		}
		query, args = query+` WHERE m.status = ?`, append(args, st)
	}
	var rows []smsRow
	if err := s.DB.Q().Select(r.ctx, &rows, query+fmt.Sprintf(` ORDER BY m.id LIMIT %d`, smsListLimit), args...); err != nil {
		return nil, err
	}
	mine := map[int64]bool{}
	out := make([]map[string]any, 0, len(rows))
	for _, m := range rows {
		key := int64(-1)
		if m.UserID.Valid {
			key = m.UserID.Int64
		}
		ok, seen := mine[key]
		if !seen {
			var err error
			if ok, err = r.managesOwner(m.UserID); err != nil {
				return nil, err
			}
			mine[key] = ok
		}
		if !ok {
			continue
		}
		out = append(out, map[string]any{
			"id": m.ID, "date": formatTime(m.CreatedAt, 0), "src": m.Src, "dest": m.Dest, "msg": m.Msg,
			"status": m.Status, "type": m.Type, "did": m.DID, "user": m.User, "external_id": m.ExternalID,
		})
	}
	return out, nil
}

// readSMS(1) marks the user's received messages read: only those with status `status`
// and/or received on DID `did` when given.
func (s *Service) readSMS(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	query, args := `UPDATE sms SET status = ? WHERE user_id = ? AND type = 'in'`, []any{smsRead, u.ID}
	if r.Has("status") {
		st, err := wholeNum(r, "status")
		if err != nil {
			return nil, err
		}
		query, args = query+` AND status = ?`, append(args, st)
	}
	if d := r.Str("did"); d != "" {
		query, args = query+` AND did IN (?, ?)`, append(args, d, rating.Normalize(d))
	}
	_, err = s.DB.Q().Exec(r.ctx, query, args...)
	return true, err
}

// inbound runs the msg_handler named in the request, if any, on an incoming message or
// report: the handler gets the message's fields and params (every parameter of the
// request); it may refuse it (its code answers) or return a table whose string fields
// replace the message's (a carrier naming its fields differently).
func (s *Service) inbound(r *Request, method string, fields map[string]string) error {
	name := r.Str("msg_handler")
	if name == "" {
		return nil
	}
	if name == kannelHandler && (s.kannelOn() || !s.hasHandler("sms", kannelHandler)) {
		// Kannel's get-url and dlr-url use our own field names; a report's type
		// is one of Kannel's dlr-mask bits.
		if method == "report" {
			st, ok := kannelStatus(fields["status"])
			if !ok {
				return apierr.New(apierr.InvalidArgument, "status: unknown Kannel report type %q", fields["status"])
			}
			fields["status"] = st
		}
		return nil
	}
	in := map[string]any{"method": method, "params": r.rawParams(), "remote": r.Remote.String()}
	for k, v := range fields {
		in[k] = v
	}
	v, err := s.carrier(r.ctx, "sms", name, in, true)
	if err != nil {
		return err
	}
	if m, ok := v.(map[string]any); ok {
		for k := range fields {
			if x, ok := m[k].(string); ok {
				fields[k] = x
			}
		}
	}
	return nil
}

// receiveSMS(0) stores a message a carrier received for one of our DIDs, for the DID's
// owner, unread. A `to` that is no DID in service here (unknown, without an owner, or
// disabled) is E_INVALID_SMS_TO. The DID's rules (sms_action) are not applied here.
func (s *Service) receiveSMS(r *Request) (any, error) {
	f := map[string]string{"from": r.Str("from"), "to": r.Str("to"), "text": r.Str("text")}
	if err := s.inbound(r, "receive", f); err != nil {
		return nil, err
	}
	for _, k := range []string{"from", "to"} {
		if f[k] == "" {
			return nil, apierr.New(apierr.MissingArgument, "%s is obligatory", k)
		}
	}
	from := strings.TrimSpace(f["from"])
	if from == "" || len(from) > 32 || strings.ContainsAny(from, "\r\n\x00") {
		return nil, apierr.New(apierr.InvalidSMSFrom, "from: %q is not a sender", f["from"])
	}
	if n := rating.Normalize(from); smsNumber.MatchString(n) {
		from = n
	}
	if err := smsText(f["text"]); err != nil {
		return nil, err
	}
	to := rating.Normalize(f["to"])
	var did struct {
		DID   string `db:"did"`
		Owner int64  `db:"owner_id"`
	}
	err := s.DB.Q().Get(r.ctx, &did, `SELECT did, owner_id FROM dids WHERE did IN (?, ?) AND owner_id IS NOT NULL
		AND enabled = 1`, f["to"], to)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.InvalidSMSTo, "to: %q is not a DID in service here", f["to"])
	} else if err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `INSERT INTO sms (user_id, did, src, dest, msg, status, type, created_at)
		VALUES (?, ?, ?, ?, ?, ?, 'in', ?)`, did.Owner, did.DID, from, to, f["text"], smsSent, time.Now().Unix())
	return true, err
}

// earlyReportWait bounds how long a delivery report waits for its message to be stored
// (50+100+…+1600 ms: about 3 s in all).
const earlyReportWait = 1600 * time.Millisecond

// receiveDeliveryReport(0) records a carrier's report on a message it accepted, found by
// the id the carrier gave it (the newest such message, should two carriers share ids).
// DELIVERED/DELIVRD/DELIVERY_SUCCESS/SUCCESS/OK/1 mean delivered;
// UNDELIVERED/UNDELIV/UNDELIVERABLE/FAILED/REJECTED/REJECTD/EXPIRED/DELETED/ERROR/-1/2
// not delivered; ACCEPTED/ENROUTE/SENT/BUFFERED/QUEUED/PENDING/0 still on its way.
func (s *Service) receiveDeliveryReport(r *Request) (any, error) {
	f := map[string]string{"id": r.Str("id"), "status": r.Str("status")}
	if err := s.inbound(r, "report", f); err != nil {
		return nil, err
	}
	for _, k := range []string{"id", "status"} {
		if f[k] == "" {
			return nil, apierr.New(apierr.MissingArgument, "%s is obligatory", k)
		}
	}
	var st int
	switch strings.ToUpper(strings.TrimSpace(f["status"])) {
	case "DELIVERED", "DELIVRD", "DELIVERY_SUCCESS", "SUCCESS", "OK", "1":
		st = smsDelivered
	case "UNDELIVERED", "UNDELIV", "UNDELIVERABLE", "FAILED", "REJECTED", "REJECTD", "EXPIRED", "DELETED",
		"ERROR", "-1", "2":
		st = smsUndelivered
	case "ACCEPTED", "ACCEPTD", "ENROUTE", "SENT", "BUFFERED", "QUEUED", "PENDING", "0":
		st = smsSent
	default:
		return nil, apierr.New(apierr.InvalidArgument, "status: unknown delivery status %q", f["status"])
	}
	// A fast carrier reports before sendSMS has stored the message it accepted (Kannel's
	// fake SMSC does within milliseconds): wait a moment for it before answering that no
	// such message exists.
	var id int64
	var err error
	for wait := 50 * time.Millisecond; ; wait *= 2 {
		err = s.DB.Q().Get(r.ctx, &id, `SELECT id FROM sms WHERE external_id = ? AND type <> 'in' ORDER BY id DESC LIMIT 1`, f["id"])
		if !db.IsNotFound(err) || wait > earlyReportWait {
			break
		}
		select {
		case <-time.After(wait):
		case <-r.ctx.Done():
			return nil, r.ctx.Err()
		}
	}
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no message with carrier id %q", f["id"])
	} else if err != nil {
		return nil, err
	}
	// Reports can arrive out of order (Kannel sends "accepted by the SMSC" and
	// "delivered" separately): one that the message is still on its way does not
	// undo a final report.
	q := `UPDATE sms SET status = ? WHERE id = ?`
	if st == smsSent {
		q += fmt.Sprintf(` AND status = %d`, smsSent)
	}
	_, err = s.DB.Q().Exec(r.ctx, q, st, id)
	return true, err
}

// A DISA PIN is short and msgCallback needs no user, so wrong PINs are counted per SIP
// account: after pinMaxFails within pinWindow the account takes no SMS callback (even
// with the right PIN) until the window has passed. The count lives in the daemon's
// memory (per Service), so a restart or another daemon starts afresh.
const (
	pinMaxFails = 5
	pinWindow   = 15 * time.Minute
)

// pinGuard counts wrong PINs per SIP account; its zero value is ready (a Service holds one).
type pinGuard struct {
	mu    sync.Mutex
	fails map[string][]time.Time
}

// recent drops the failures older than the window; the caller holds mu.
func (g *pinGuard) recent(key string, now time.Time) []time.Time {
	fs := g.fails[key]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= pinWindow {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(g.fails, key)
		return nil
	}
	g.fails[key] = fs
	return fs
}

func (g *pinGuard) blocked(key string, now time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.recent(key, now)) >= pinMaxFails
}

func (g *pinGuard) fail(key string, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.fails == nil {
		g.fails = map[string][]time.Time{}
	}
	g.fails[key] = append(g.recent(key, now), now)
}

func (g *pinGuard) reset(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.fails, key)
}

// msgCallback(0) starts a callback that an SMS asked for: text is
// "SIPEXTEN PIN [CALLERID] DESTINATION1 [DESTINATION2]". With two fields after the PIN
// they are DESTINATION1 and DESTINATION2; with three, CALLERID and both destinations;
// with one, it is the second leg's destination and the first leg calls back the phone
// the SMS came from (msisdn). The PIN is the SIP account's disa_pin, compared in constant
// time; an unknown account, an account without a PIN and a wrong PIN all answer
// E_AUTH_FAILED. The callback is createCallback's, run as the account's owner (through
// that user's SIP server; caller ID CALLERID, else the account's). `to` (the number the
// SMS came to) is only logged. The request's text holds the PIN, so it is not stored.
func (s *Service) msgCallback(r *Request) (any, error) {
	f := strings.Fields(r.Str("text"))
	if len(f) < 3 || len(f) > 5 {
		return nil, apierr.New(apierr.InvalidArgument, "text: want SIPEXTEN PIN [CALLERID] DESTINATION1 [DESTINATION2]")
	}
	ext, pin := f[0], f[1]
	var cid, d1, d2 string
	switch len(f) {
	case 3:
		d1, d2 = rating.Normalize(r.Str("msisdn")), f[2]
	case 4:
		d1, d2 = f[2], f[3]
	case 5:
		cid, d1, d2 = f[2], f[3], f[4]
	}
	for _, d := range []string{d1, d2} {
		if !dialable.MatchString(d) {
			return nil, apierr.New(apierr.InvalidArgument, "%q is not a number or extension", d)
		}
	}
	if cid != "" && !smsNumber.MatchString(rating.Normalize(cid)) {
		return nil, apierr.New(apierr.InvalidArgument, "%q is not a caller ID", cid)
	}
	e, err := extensionByName(r.ctx, s.DB.Q(), ext)
	if err != nil && apierr.Code(err) != apierr.NotExist {
		return nil, err
	}
	// The same answer, after the same work, whether the account is unknown, has no PIN
	// or the PIN is wrong.
	want := "\x00no account"
	if e != nil && e.DISAPin != "" {
		want = e.DISAPin
	}
	guard := ext
	now := time.Now()
	if e != nil && s.pins.blocked(guard, now) {
		s.Log.Warn("msgCallback: refused, too many wrong PINs", "extension", ext, "msisdn", r.Str("msisdn"), "remote", r.Remote)
		return nil, apierr.New(apierr.AuthFailed, "wrong SIP account or PIN")
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(pin)) != 1 {
		if e != nil {
			s.pins.fail(guard, now)
		}
		s.Log.Warn("msgCallback: refused", "extension", ext, "msisdn", r.Str("msisdn"), "to", r.Str("to"), "remote", r.Remote)
		return nil, apierr.New(apierr.AuthFailed, "wrong SIP account or PIN")
	}
	s.pins.reset(guard)
	owner, err := userByID(r.ctx, s.DB.Q(), e.UserID)
	if err != nil {
		return nil, err
	}
	p := owner.principal()
	if p.Locked() {
		return nil, apierr.New(apierr.UserLocked, "user %s is locked", owner.Username)
	}
	if cid == "" {
		cid = e.CallerID
	}
	if cid == "" {
		cid = e.Extension
	}
	m := s.Methods["createCallback"]
	if m == nil {
		return nil, apierr.New(apierr.InitiateCallFail, "callbacks are not available")
	}
	cr := &Request{ctx: r.ctx, S: s, Method: m, Version: r.Version, Remote: r.Remote,
		Caller: &keys.Caller{Key: r.Caller.Key, Actor: p, User: p, Level: owner.AccessLevel},
		args:   map[string]string{"destination1": d1, "destination2": d2, "callerid": cid}}
	return s.createCallback(cr)
}
