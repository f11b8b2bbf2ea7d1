package billing

import (
	"context"
	"crypto/md5"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// callMethods declares the methods whose handlers are in this file: the reference's
// "Directions and tarification", "Call processing".
func (s *Service) callMethods() []Method {
	prepare := method("callPrepare", 50, s.callPrepare, "callerid:string", "destination:string!", "prior:int=1",
		"from_originate:string", "source:string", "originated_by:string", "uniqueid:string",
		"is_did:string", "channel:string").
		Doc("authorize a call before it is dialled", "a line: Allowed MaxCallTime Destination CallerID DirectionName RoutePrefix RouteName PitchRx PitchTx, or Declined and the error code")
	prepare.AllowLocked = true // every refusal of a call is a Declined line
	finish := method("callFinish", 50, s.callFinish, "callerid:string", "destination:string!", "prior:int=1",
		"length:num=0", "status:string", "is_did:string", "uniqueid:string").
		Doc("bill a finished call", "a line: Saved DirectionName CallerID/Destination via route time cost CURRENCY SIPSTATUS")
	finish.AllowLocked = true // a call in progress when its user is locked is still billed
	return []Method{
		// Directions and tarification
		method("resolveDirection", 0, s.resolveDirection, "number:string!",
			"select:ustring{id,code,direction}=direction").
			Doc("resolve a phone number's direction", "the selected field of the direction (id, code or name)"),
		// Call processing
		method("resolveCallerid", 0, s.resolveCallerid).
			Doc("get the user's current caller ID (deprecated: getValue?property=sip_callerid)", "the caller ID"),
		prepare,
		finish,
		method("authorizeCall", 50, s.authorizeCall, "callerid:string", "auth:string").
			Doc("authorize a user in the DISA system", "the SIP extension of the authorized user, or Declined and the error code"),
		method("authorizeRealm", 50, s.authorizeRealm, "source:string!", "auth:string!").
			Doc("check that a query comes from an affiliated Asterisk", "true"),
	}
}

// Call processing (DECISIONS §5): callPrepare grants a call and reserves its cost,
// callFinish charges it, writes the event-log record and releases the reservation.
//
// Choices where the decisions are silent:
//   - The user is the gate's user; the extension is the one named by `login` when the key
//     authorizes by sip_extension, else the user's first extension (none is fine: no
//     extension tariff, caps or caller ID).
//   - A destination that is another extension of this system is internal: active = 2 does
//     not block it, and when the tariff has no direction for it the call is allowed free
//     (direction "Internal", route "internal", no reservation) instead of unroutable.
//   - Fields of the one-line answers are separated by single spaces, so spaces are removed
//     from every field (direction and route names, caller ID, status); an empty field
//     (a route without prefix) shows as two spaces in a row, which Asterisk's CUT() reads
//     as an empty field.
//   - callFinish re-rates the call with the current snapshot: a tariff change between
//     prepare and finish applies to the call. length may have a fraction; it is rounded up
//     to whole seconds.
//   - callFinish charges even when it finds no reservation (a call granted by another
//     system, a reservation already expired): the call happened, so its cost is debited,
//     and that may take the balance below −overdraft. With a uniqueid it settles only that
//     call's reservation, never another call's (which would free money still in use). It also works for locked users
//     (the method allows them through the gate): a call in progress when a user is locked
//     is still billed.
//   - callPrepare with a uniqueid that already holds a reservation (a retried request)
//     replaces that reservation rather than adding a second one.

// declined is callPrepare's refusal line.
func declined(code string) string { return "Declined " + code }

// callParty is who places a call: the user and the extension.
type callParty struct {
	user    *User
	ext     *Extension // nil when the user has no extension
	options []int64    // the extension's tariff options (sip_rates_options), parsed once

	resellers []resellerLevel // the resellers up the user's managers, nearest first (resellers.go)
	accounts  []int64         // the accounts a call locks: the user's, then the resellers'
}

// callParty finds who places the call. The answer is cached in the gate's directory
// (dropped whenever a user, SIP account, server or currency changes), so the call path
// reads no user row; the cached user carries no money: balances are read under lock.
func (s *Service) callParty(r *Request) (*callParty, error) {
	if r.Caller.User == nil {
		return nil, apierr.New(apierr.AuthFailed, "this call needs an authorized user")
	}
	login := ""
	if r.Caller.Key != nil && r.Caller.Key.AuthBy == "sip_extension" {
		login = r.Str("login")
	}
	key := "call.party\x00" + strconv.FormatInt(r.Caller.User.ID, 10) + "\x00" + login
	v, err := s.Gate.Directory.Remember(key, func() (any, error) { return s.loadCallParty(r.ctx, r.Caller.User.ID, login) })
	if err != nil {
		return nil, err
	}
	return v.(*callParty), nil
}

func (s *Service) loadCallParty(ctx context.Context, userID int64, login string) (*callParty, error) {
	q := s.DB.Q()
	u, err := userByID(ctx, q, userID)
	if err != nil {
		return nil, err
	}
	u.Account = Account{Number: u.AccountID} // money is never cached
	p := &callParty{user: u, accounts: []int64{u.AccountID}}
	if p.resellers, err = loadResellers(ctx, q, u); err != nil {
		return nil, err
	}
	for _, r := range p.resellers {
		p.accounts = append(p.accounts, r.accountID)
	}
	if login != "" {
		e, err := extensionByName(ctx, q, login)
		if err == nil && e.UserID == u.ID {
			p.ext = e
		} else if err != nil && apierr.Code(err) != apierr.NotExist {
			return nil, err
		}
	}
	if p.ext == nil {
		exts, err := extensionsOf(ctx, q, u.ID)
		if err != nil {
			return nil, err
		}
		if len(exts) > 0 {
			p.ext = &exts[0]
		}
	}
	if p.ext != nil {
		for _, f := range strings.Split(p.ext.RatesOptions, ",") {
			if id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64); err == nil {
				p.options = append(p.options, id)
			}
		}
	}
	return p, nil
}

// callerID is the `callerid` argument, else the extension's sip_callerid.
func (p *callParty) callerID(r *Request) string {
	cid := r.Str("callerid")
	if cid == "" && p.ext != nil {
		cid = p.ext.CallerID
	}
	return noSpaces(cid)
}

func (p *callParty) caps(s *Service) rating.Caps {
	c := rating.Caps{AllowedCallLen: p.user.AllowedCallLen, MaxCallTime: s.Config.MaxCallTime}
	if p.ext != nil {
		c.SIPMaxCallLen = p.ext.MaxCallLen
	}
	return c
}

// extension is the calling SIP account's number, "" when the user has none.
func (p *callParty) extension() string {
	if p.ext == nil {
		return ""
	}
	return p.ext.Extension
}

func (p *callParty) pitch() int {
	if p.ext == nil {
		return -1
	}
	return p.ext.PitchShift
}

// rate prices a call to dest for the party: the extension's tariff, else the user's, with
// the extension's tariff options.
func (p *callParty) rate(snap *rating.Snapshot, dest string, prior int, isDID bool) (rating.Quote, error) {
	q := rating.Query{Number: dest, Prior: prior, IsDID: isDID, Options: p.options}
	switch {
	case p.ext != nil && p.ext.RatesID.Valid:
		q.TariffID = p.ext.RatesID.Int64
	case p.user.RatesID.Valid:
		q.TariffID = p.user.RatesID.Int64
	default:
		return rating.Quote{}, fmt.Errorf("%w: user %s has no tariff", rating.ErrUnroutable, p.user.Username)
	}
	return snap.Rate(q)
}

// rateVia is rate, but when a script chose the route the entry of that route is used,
// whatever its priority; no entry with it is unroutable.
func (p *callParty) rateVia(snap *rating.Snapshot, dest string, prior int, isDID bool, routeID int64) (rating.Quote, error) {
	if routeID == 0 {
		return p.rate(snap, dest, prior, isDID)
	}
	for k := 1; ; k++ {
		q, err := p.rate(snap, dest, k, isDID)
		if err != nil {
			return q, fmt.Errorf("%w: route %d serves no entry of this direction", rating.ErrUnroutable, routeID)
		}
		if q.Route.ID == routeID {
			return q, nil
		}
	}
}

// hookResult is what the scripts' callPrepare hook made of a call.
type hookResult struct {
	destination string
	routeID     int64
	decline     string
}

// callHook runs the scripts' callPrepare hook (none without scripts): it may rewrite the
// number, choose the route, or decline with a code. callFinish runs it too, so a call is
// rated on the number and route callPrepare granted.
func (s *Service) callHook(r *Request, p *callParty, dest string, prior int) (hookResult, error) {
	res := hookResult{destination: dest}
	if !s.hooked("callPrepare") {
		return res, nil // the common case: nothing to build the hook's input for
	}
	h, ok := s.scriptPrepare(r.ctx, p.user, map[string]any{"destination": dest, "callerid": p.callerID(r),
		"prior": prior, "uniqueid": r.Str("uniqueid"), "method": r.Method.Name})
	if !ok {
		return res, nil
	}
	if h.Destination != "" {
		d, err := callNumber(h.Destination)
		if err != nil {
			s.Log.Warn("script hook rewrote the number into a bad one", "destination", h.Destination)
			return hookResult{decline: apierr.LuaException}, nil
		}
		res.destination = d
	}
	res.routeID, res.decline = h.RouteID, h.Decline
	return res, nil
}

// noSpaces removes white space so a value stays one field of a one-line answer.
func noSpaces(v string) string {
	return strings.Map(func(c rune) rune {
		if c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			return -1
		}
		return c
	}, v)
}

// callNumber normalises a destination; empty or not printable ASCII is E_INVALID_ARGUMENT.
func callNumber(raw string) (string, error) {
	n := rating.Normalize(strings.TrimSpace(raw))
	if n == "" || len(n) > 64 {
		return "", apierr.New(apierr.InvalidArgument, "destination: %q is not a number", raw)
	}
	for i := 0; i < len(n); i++ {
		if c := n[i]; c <= ' ' || c >= 0x7f || c == '[' || c == ']' || c == '/' {
			return "", apierr.New(apierr.InvalidArgument, "destination: %q is not a number", raw)
		}
	}
	return n, nil
}

func callPrior(r *Request) (int, error) {
	p := r.Int("prior")
	if p < 1 || p > 100 {
		return 0, apierr.New(apierr.InvalidArgument, "prior: want 1 to 100")
	}
	return int(p), nil
}

// isExtension reports whether number is an extension of this system (an internal call).
// The set of all extension numbers is cached, not one answer per dialled number: those
// are as many as the numbers people call.
func (s *Service) isExtension(ctx context.Context, number string) (bool, error) {
	v, err := s.Gate.Directory.Remember("call.extensions", func() (any, error) {
		var all []string
		if err := s.DB.Q().Select(ctx, &all, `SELECT extension FROM extensions`); err != nil {
			return nil, err
		}
		set := make(map[string]struct{}, len(all))
		for _, e := range all {
			set[e] = struct{}{}
		}
		return set, nil
	})
	if err != nil {
		return false, err
	}
	_, ok := v.(map[string]struct{})[number]
	return ok, nil
}

// isDIDArg is the DID a call came in on: callFinish's is_did, callPrepare's from_originate
// when it names a number rather than "true".
func isDIDArg(r *Request) string {
	if v := r.Str("is_did"); v != "" {
		return v
	}
	if v := r.Str("from_originate"); v != "" {
		if _, ok := parseBool(v); !ok {
			return v
		}
	}
	return ""
}

// callArgs is what callPrepare and callFinish both start from: who calls, the
// destination (an alias replaced by what it stands for, then normalised) and the
// priority.
func (s *Service) callArgs(r *Request) (*callParty, string, int, error) {
	p, err := s.callParty(r)
	if err != nil {
		return nil, "", 0, err
	}
	dialled := strings.TrimSpace(r.Str("destination"))
	if to, ok, err := s.aliasTarget(r.ctx, p.user, p.extension(), dialled); err != nil {
		return nil, "", 0, err
	} else if ok {
		dialled = to // a personal short number
	}
	dest, err := callNumber(dialled)
	if err != nil {
		return nil, "", 0, err
	}
	prior, err := callPrior(r)
	if err != nil {
		return nil, "", 0, err
	}
	return p, dest, prior, nil
}

// callPrepare authorizes a call before it is dialled.
func (s *Service) callPrepare(r *Request) (any, error) {
	ctx := r.ctx
	p, dest, prior, err := s.callArgs(r)
	if err != nil {
		return nil, err
	}
	u := p.user
	switch u.Active {
	case -1, 0, 3:
		return declined(apierr.UserLocked), nil
	}
	hook, err := s.callHook(r, p, dest, prior)
	if err != nil {
		return nil, err
	}
	if hook.decline != "" {
		return declined(hook.decline), nil
	}
	dest = hook.destination
	internal, err := s.isExtension(ctx, dest)
	if err != nil {
		return nil, err
	}
	if u.Active == 2 && !internal {
		return declined(apierr.UserLocked), nil
	}
	snap, err := s.rating(ctx)
	if err != nil {
		return nil, err
	}
	cid, caps := p.callerID(r), p.caps(s)
	q, rerr := p.rateVia(snap, dest, prior, isDIDArg(r) != "", hook.routeID)
	if rerr != nil {
		if !internal {
			return declined(apierr.Unroutable), nil
		}
		return allowedLine(caps.Limit(), dest, cid, "Internal", "", "internal", p.pitch()), nil
	}
	if q.BillTypeFallback {
		s.Log.Warn("rating: unknown bill type, billed byminute", "tariff", q.Tariff.ID, "bill_type", q.Tariff.BillType)
	}
	chain := p.resellerQuotes(snap, dest, q.IsDID, q.Route.ID)
	s.startAt(&q, chain, 0) // prices by period (periods.go): granted from now
	for _, lq := range chain {
		if !lq.ok {
			return declined(apierr.Unroutable), nil // a reseller that does not buy the direction
		}
	}
	uid := r.Str("uniqueid")
	win, err := s.callWindow(r, p) // reservation windows (windows.go); nil when off
	if err != nil {
		return nil, err
	}
	var secs, quota int // quota: seconds of a bundle held (bundles.go)
	var granted bool
	// The hot path's one write: group-committed with other calls' on SQLite.
	err = s.DB.InTxBatch(ctx, func(tx *db.Tx) error {
		now := time.Now().Unix()
		// What the account can still spend: balance + overdraft less the open calls'
		// reservations, not counting this call's own (a retried callPrepare replaces it).
		// Read under the account's lock (on PostgreSQL it must come after the lock is
		// granted, to see the reservations the lock's previous holder committed), or
		// from the writer's mirror of it on SQLite.
		acc, err := s.holds.account(ctx, tx, u.AccountID, now, uid, prior)
		if err != nil {
			return err
		}
		var amount money.Micro
		avail := acc.spendable(now, uid, prior)
		secs, amount, granted = q.Price.MaxCallTime(avail, caps)
		quota = 0
		if q.Tariff.IsOption { // a bundle's quota goes before money (bundles.go)
			if secs, quota, amount, granted, err = s.bundlePrepare(ctx, tx, u.ID, q, avail, caps, now, uid, prior, secs, amount, granted); err != nil {
				return err
			}
		}
		if granted && len(chain) > 0 { // the shortest grant of the chain
			if secs, granted, err = s.chainGrant(ctx, tx, chain, now, uid, prior, caps, secs); err != nil {
				return err
			}
			quota, amount = bundleSplit(q.Price, secs, quota)
		}
		if !granted {
			if uid != "" {
				_, err = s.releaseCall(ctx, tx, uid, prior)
			}
			return err
		}
		var bundle int64
		if quota > 0 {
			bundle = q.Tariff.ID // the quota part is held, not windowed
		} else {
			amount = win.reserve(q, secs, amount) // one window of a call that can be cut
		}
		expires := now + int64(secs) + int64(s.Config.ReservationGrace/time.Second)
		args := []any{u.AccountID, u.ID, p.extension(), nullStr(uid), dest, prior, amount, secs, now, expires, quota, bundle}
		var id int64
		if uid == "" { // never in conflict: uniqueid is NULL
			id, err = tx.Insert(ctx, reserve+reserveValues, args...)
		} else {
			err = tx.ExecDeferredShared(ctx, reserve+reserveValues+reserveAgain,
				reserve+` SELECT * FROM unnest(?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[], ?::bigint[],
				?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[])`+reserveAgain, args...)
		}
		if err != nil {
			return err
		}
		if err := win.store(ctx, tx, s, id, uid, prior); err != nil {
			return err
		}
		s.holds.reserved(tx, u.AccountID, callHold(uid, prior, id), hold{amount: amount, expires: expires})
		if len(chain) > 0 {
			return s.chainReserve(ctx, tx, chain, u, p.extension(), uid, dest, prior, id, secs, now, expires)
		}
		return nil
	}, p.accounts...) // on PostgreSQL: the accounts this job reads and writes (db.InTxBatch)
	if err != nil {
		return nil, err
	}
	if !granted {
		return declined(apierr.InsufficientMoney), nil
	}
	return allowedLine(secs, dest, cid, q.Direction.Name, q.Route.Prefix, q.Route.Name, p.pitch()), nil
}

// reserve, reserveValues and reserveAgain are callPrepare's INSERT of its reservation;
// with reserveAgain a retried callPrepare (the same uniqueid and prior) replaces its own.
// In a PostgreSQL group the callPrepares' INSERTs go as one, from arrays
// (db.Tx.ExecDeferredShared).
const (
	reserve = `INSERT INTO reservations (account_id, user_id, extension, uniqueid, destination, prior,
		amount, max_call_time, created_at, expires_at, quota, bundle)`
	reserveValues = ` VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	reserveAgain  = `
		ON CONFLICT (uniqueid, prior, level) DO UPDATE SET account_id = excluded.account_id, user_id = excluded.user_id,
		extension = excluded.extension, destination = excluded.destination, amount = excluded.amount,
		max_call_time = excluded.max_call_time, created_at = excluded.created_at, expires_at = excluded.expires_at,
		quota = excluded.quota, bundle = excluded.bundle`
)

func allowedLine(secs int, dest, cid, direction, prefix, route string, pitch int) string {
	return fmt.Sprintf("Allowed %d %s %s %s %s %s %d %d", secs, dest, cid, noSpaces(direction),
		noSpaces(prefix), noSpaces(route), pitch, pitch)
}

func nullStr(v string) sql.NullString { return sql.NullString{String: v, Valid: v != ""} }

// sweepReservations deletes the reservations past their expiry (of one account, or all
// when account is 0) and logs each: a call never settled must not hold money forever.
func (s *Service) sweepReservations(ctx context.Context, q db.Queryer, account int64) (int, error) {
	var gone []struct {
		ID          int64          `db:"id"`
		UserID      int64          `db:"user_id"`
		UniqueID    sql.NullString `db:"uniqueid"`
		Destination string         `db:"destination"`
		Amount      money.Micro    `db:"amount"`
	}
	query := `DELETE FROM reservations WHERE expires_at < ?`
	args := []any{time.Now().Unix()}
	if account != 0 {
		query += ` AND account_id = ?`
		args = append(args, account)
	}
	err := q.Select(ctx, &gone, query+` RETURNING id, user_id, uniqueid, destination, amount`, args...)
	s.metrics.expired.Add(float64(len(gone)))
	for _, g := range gone {
		s.Log.Warn("reservation expired unsettled", "reservation", g.ID, "user", g.UserID,
			"uniqueid", g.UniqueID.String, "destination", g.Destination, "amount", g.Amount.String())
	}
	return len(gone), err
}

// releaseCall deletes the reservations of call uniqueid/prior in tx (every level of its
// reseller chain), if any, and answers the MaxCallTime it granted (not Valid when there
// was none).
func (s *Service) releaseCall(ctx context.Context, tx *db.Tx, uid string, prior int) (sql.NullInt64, error) {
	var gone []struct {
		Grant int64 `db:"max_call_time"`
		Level int   `db:"level"`
	}
	err := tx.Select(ctx, &gone, `DELETE FROM reservations WHERE uniqueid = ? AND prior = ? RETURNING max_call_time, level`, uid, prior)
	if err != nil || len(gone) == 0 {
		return sql.NullInt64{}, err
	}
	for _, g := range gone {
		s.holds.released(tx, callHoldAt(uid, prior, 0, g.Level))
	}
	return sql.NullInt64{Int64: gone[0].Grant, Valid: true}, nil
}

// settleOldest deletes the user's oldest open reservation for dest/prior, for a
// callFinish without uniqueid, and answers the MaxCallTime it granted.
func (s *Service) settleOldest(ctx context.Context, tx *db.Tx, user int64, dest string, prior int) (sql.NullInt64, error) {
	var gone []struct {
		ID       int64  `db:"id"`
		UniqueID string `db:"uniqueid"`
		Grant    int64  `db:"max_call_time"`
	}
	if err := tx.Select(ctx, &gone, `DELETE FROM reservations WHERE id = (SELECT id FROM reservations
		WHERE user_id = ? AND destination = ? AND prior = ? AND level = 0 ORDER BY id LIMIT 1)
		RETURNING id, COALESCE(uniqueid, '') AS uniqueid, max_call_time`, user, dest, prior); err != nil || len(gone) == 0 {
		return sql.NullInt64{}, err
	}
	g := gone[0]
	s.holds.released(tx, callHold(g.UniqueID, prior, g.ID))
	// Its resellers' levels: by uniqueid, or linked to its row.
	var levels []struct {
		ID    int64 `db:"id"`
		Level int   `db:"level"`
	}
	var err error
	if g.UniqueID != "" {
		err = tx.Select(ctx, &levels, `DELETE FROM reservations WHERE uniqueid = ? AND prior = ? RETURNING id, level`, g.UniqueID, prior)
	} else {
		err = tx.Select(ctx, &levels, `DELETE FROM reservations WHERE parent_id = ? RETURNING id, level`, g.ID)
	}
	for _, l := range levels {
		s.holds.released(tx, callHoldAt(g.UniqueID, prior, l.ID, l.Level))
	}
	return sql.NullInt64{Int64: g.Grant, Valid: true}, err
}

// Seconds around a call's grant (DECISIONS §5): a switch's timer cuts a call at its grant
// give or take a second, so up to grantSlack above it is billed as the grant; more than
// grantOverrun above it means the switch did not cut it (a dialplan without L()).
const (
	grantSlack   = 2
	grantOverrun = 5
)

// chargedLength is the length a call is charged for, given what callPrepare granted, and
// whether it ran past its grant.
func chargedLength(secs int, grant sql.NullInt64) (charged int, over bool) {
	if !grant.Valid {
		return secs, false
	}
	g := int(grant.Int64)
	switch {
	case secs > g+grantOverrun:
		return secs, true
	case secs > g && secs <= g+grantSlack:
		return g, false
	}
	return secs, false
}

// callPost is callFinish's call record, and its posting with the record as one statement.
var callPost = recordPost("call_log", `INSERT INTO call_log (id, user_id, account_id, username, extension,
	callerid, destination, direction, route, time, billed, cost, status, uniqueid, prior, is_did, answer, debug,
	granted, over_grant, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)

// savedAnswer is the answer line of an already finished call.
func savedAnswer(ctx context.Context, q db.Queryer, uid string, prior int) (string, bool, error) {
	var ans string
	err := q.Get(ctx, &ans, `SELECT answer FROM call_log WHERE uniqueid = ? AND prior = ?`, uid, prior)
	if db.IsNotFound(err) {
		return "", false, nil
	}
	return ans, err == nil, err
}

// callFinish bills a finished call.
func (s *Service) callFinish(r *Request) (any, error) {
	ctx := r.ctx
	p, dest, prior, err := s.callArgs(r)
	if err != nil {
		return nil, err
	}
	length := r.Money("length")
	if length < 0 || length > money.Micro(864_000)*money.One {
		return nil, apierr.New(apierr.InvalidArgument, "length: want 0 to 864000 seconds")
	}
	secs := int((length + money.One - 1) / money.One)
	// A repeated callFinish (same uniqueid and prior) is caught by call_log's unique index
	// below: its transaction rolls back and the saved line is answered again.
	uid := r.Str("uniqueid")
	u := p.user
	// The call is rated as callPrepare granted it: the hook's number and route.
	hook, err := s.callHook(r, p, dest, prior)
	if err != nil {
		return nil, err
	}
	dest = hook.destination
	internal, err := s.isExtension(ctx, dest)
	if err != nil {
		return nil, err
	}
	snap, err := s.rating(ctx)
	if err != nil {
		return nil, err
	}
	did := r.Str("is_did")
	var (
		direction, route string
		debug            string
	)
	q, rerr := p.rateVia(snap, dest, prior, did != "", hook.routeID)
	switch {
	case rerr == nil:
		direction, route = noSpaces(q.Direction.Name), noSpaces(q.Route.Name)
		debug = fmt.Sprintf("tariff=%d direction=%d route=%d cost/min=%s bill_type=%s", q.Tariff.ID,
			q.Direction.ID, q.Route.ID, q.Entry.Cost.String(), q.BillType.Name)
	case internal:
		direction, route = "Internal", "internal"
	default:
		debug = "unrated: " + rerr.Error()
	}
	var chain []levelQuote
	if rerr == nil {
		chain = p.resellerQuotes(snap, dest, q.IsDID, q.Route.ID)
		s.startAt(&q, chain, secs) // prices by period: the call began length ago
	}
	x, err := s.exchange(ctx, u.Currency)
	if err != nil {
		return nil, err
	}
	cid, status := p.callerID(r), noSpaces(r.Str("status"))
	var (
		cost   money.Micro
		billed int
		line   string
		grant  sql.NullInt64
		over   bool
	)
	err = s.DB.InTxBatch(ctx, func(tx *db.Tx) error {
		// Settle the call's own reservation (by uniqueid, and no other), or without
		// uniqueid the user's oldest for this destination. What it granted decides the
		// length charged. (post's UPDATE takes the account's row lock; nothing here reads
		// the balance.)
		var err error
		if uid != "" {
			grant, err = s.releaseCall(ctx, tx, uid, prior)
		} else {
			grant, err = s.settleOldest(ctx, tx, u.ID, dest, prior)
		}
		if err != nil {
			return err
		}
		var charged int
		charged, over = chargedLength(secs, grant)
		cost, billed = 0, 0
		note := ""
		if rerr == nil {
			billed, cost = q.BillType.BilledSeconds(charged), q.Charge(charged)
			if q.Tariff.IsOption { // a bundle's quota goes before money (bundles.go)
				if cost, note, err = s.bundleFinish(ctx, tx, u.ID, q, charged, cost); err != nil {
					return err
				}
			}
		}
		line = strings.TrimSuffix(fmt.Sprintf("Saved %s [%s/%s] via [%s] %d %s %s %s", direction, cid, dest, route,
			charged, x.fromSystem(cost).Format(4), x.user.Code, status), " ")
		args := []any{u.ID, u.AccountID, u.Username, p.extension(), cid, dest, direction, route, secs, billed, cost, status,
			nullStr(uid), prior, did, line, debug + note, grant, boolInt(over), time.Now().Unix()}
		var id int64
		if cost != 0 { // the call record and the ledger row that names it
			if id, err = postRecorded(ctx, tx, callPost, args, u.AccountID, -cost, KindCall, "call:", dest, u.ID); err != nil {
				return err
			}
			s.holds.posted(tx, u.AccountID, -cost)
		} else if id, err = tx.InsertDeferred(ctx, callPost.table, callPost.insert, args...); err != nil {
			return err
		}
		if len(chain) > 0 {
			return s.chainCharge(ctx, tx, chain, u, id, dest, charged, cost)
		}
		return nil
	}, p.accounts...)
	if errors.Is(err, db.ErrConflict) && uid != "" {
		// The same call finished concurrently: answer its saved line, charge nothing.
		ans, ok, serr := savedAnswer(ctx, s.DB.Q(), uid, prior)
		switch {
		case serr != nil:
			return nil, serr
		case ok:
			return ans, nil
		}
		return nil, err // a conflict, but not with a saved call: nothing was charged
	}
	if err != nil {
		return nil, err
	}
	if over {
		s.Log.Warn("call lasted longer than granted: is the dialplan's Dial() missing L()?", "user", u.Username,
			"uniqueid", uid, "destination", dest, "length", secs, "granted", grant.Int64)
	}
	if s.hooked("callFinish") {
		s.scriptFinish(ctx, u, map[string]any{"destination": dest, "callerid": cid, "prior": prior, "length": secs,
			"billed": billed, "cost": int64(cost), "status": status, "uniqueid": uid, "direction": direction,
			"route": route, "answer": line})
	}
	return line, nil
}

// resolveDirection(0) names the direction of a number: its name (default), id or code.
// A number without a direction is E_NOT_EXIST.
func (s *Service) resolveDirection(r *Request) (any, error) {
	num, err := callNumber(r.Str("number"))
	if err != nil {
		return nil, apierr.New(apierr.InvalidArgument, "number: %q is not a number", r.Str("number"))
	}
	snap, err := s.rating(r.ctx)
	if err != nil {
		return nil, err
	}
	d, ok := snap.Index.Resolve(num)
	if !ok {
		return nil, apierr.New(apierr.NotExist, "no direction for %s", num)
	}
	switch r.Str("select") {
	case "id":
		return d.ID, nil
	case "code":
		return d.Code, nil
	}
	return d.Name, nil
}

// resolveCallerid(0), deprecated in favour of getValue?property=sip_callerid: the caller ID
// of the user's extension (the one named by login on a sip_extension key, else the first).
// It needs a user like any user method: anonymous calls answer E_AUTH_FAILED, and a user
// without an extension E_NOT_EXIST.
func (s *Service) resolveCallerid(r *Request) (any, error) {
	p, err := s.callParty(r)
	if err != nil {
		return nil, err
	}
	if p.user.Active == -1 {
		return nil, apierr.New(apierr.UserLocked, "user %s is locked", p.user.Username)
	}
	if p.ext == nil {
		return nil, apierr.New(apierr.NotExist, "user %s has no SIP account", p.user.Username)
	}
	return p.ext.CallerID, nil
}

// authorizeCall(50) authorizes a DISA caller: `auth` is an extension followed by its
// disa_pin, or the caller ID is listed in an extension's disa_trusted_cli (comma list).
// It answers the extension, `Declined E_AUTH_FAILED`, or `Declined E_USER_LOCKED` when the
// extension's user is locked (active -1, 0 or 3). Only extensions of users the key's user
// manages are considered (every one for keys of level 90 and more).
func (s *Service) authorizeCall(r *Request) (any, error) {
	ctx, q := r.ctx, s.DB.Q()
	const fail = "Declined " + apierr.AuthFailed
	var cands []Extension
	if auth := strings.TrimSpace(r.Str("auth")); auth != "" {
		if err := q.Select(ctx, &cands, extensionSelect+` WHERE e.disa_pin <> '' AND e.extension || e.disa_pin = ?`, auth); err != nil {
			return nil, err
		}
	}
	if cid := rating.Normalize(strings.TrimSpace(r.Str("callerid"))); len(cands) == 0 && cid != "" {
		var trusted []Extension
		if err := q.Select(ctx, &trusted, extensionSelect+` WHERE e.disa_trusted_cli LIKE ? ORDER BY e.id`, "%"+cid+"%"); err != nil {
			return nil, err
		}
		for _, e := range trusted {
			for _, c := range strings.Split(e.DISATrustedCLI, ",") {
				if rating.Normalize(strings.TrimSpace(c)) == cid {
					cands = append(cands, e)
					break
				}
			}
		}
	}
	for _, e := range cands {
		u, err := userByID(ctx, q, e.UserID)
		if err != nil {
			return nil, err
		}
		if r.Caller.Key.AccessLevel < keys.LevelExclusive {
			ok, err := r.Manages(u)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
		}
		switch u.Active {
		case -1, 0, 3:
			return declined(apierr.UserLocked), nil
		}
		return e.Extension, nil
	}
	return fail, nil
}

// authorizeRealm(50) checks an affiliated Asterisk: `source` is its address as registered
// with `sip-server add`, whose name is its realm; the key named like that realm must give
// md5("${API-key}${source}${key name}") == auth. Answers true or false; an unknown
// server or key, or a disabled or revoked key, is false.
func (s *Service) authorizeRealm(r *Request) (any, error) {
	ctx, q := r.ctx, s.DB.Q()
	src := strings.TrimSpace(r.Str("source"))
	var realm string
	err := q.Get(ctx, &realm, `SELECT name FROM sip_servers WHERE address = ?`, src)
	if db.IsNotFound(err) {
		return false, nil
	} else if err != nil {
		return nil, err
	}
	k, err := s.Gate.Keys.ByName(ctx, q, realm)
	if db.IsNotFound(err) {
		return false, nil
	} else if err != nil {
		return nil, err
	}
	if !k.Usable() {
		return false, nil
	}
	sum := md5.Sum([]byte(k.APIKey + src + k.Name))
	want := hex.EncodeToString(sum[:])
	got := strings.ToLower(strings.TrimSpace(r.Str("auth")))
	return subtle.ConstantTimeCompare([]byte(want), []byte(got)) == 1, nil
}
