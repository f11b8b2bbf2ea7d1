package billing

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// simMethods declares the methods whose handlers are in this file: the reference's "SIM-
// cards".
func (s *Service) simMethods() []Method {
	return []Method{
		method("getSIMList", 1, s.getSIMList, "all:bool=true", "own:bool=false").
			Doc("list the SIM cards", "the SIM cards"),
		method("getSIMInfo", 1, s.getSIMInfo, "iccid:string!").
			Doc("get a SIM card's data", "the SIM card's data"),
		method("bindSIM", 1, s.bindSIM, "iccid:string!", "puk1:string!", "puk2:string!").
			Doc("bind a SIM card to the user", "true"),
		method("unbindSIM", 1, s.unbindSIM, "iccid:string!").
			Doc("unbind a SIM card from the user", "true"),
		method("updateSIM", 1, s.updateSIM, "iccid:string!", "owner:string", "puk1:string", "puk2:string",
			"sip_extension:string", "callback_cid:string", "directsms:num", "enabled:num").
			Doc("update a SIM card's parameters", "true"),
		method("addSIM", 33, s.addSIM, "provider:string", "msisdn:string", "iccid:string!", "puk1:string!",
			"puk2:string!").
			Doc("add a SIM card", "true"),
		method("deleteSIM", 33, s.deleteSIM, "iccid:string!").
			Doc("delete a SIM card", "true"),
		method("notifySIM", 50, s.notifySIM, "sim:string!", "from:string!", "text:string!").
			Doc("send an SMS notification to a SIM card", "true"),
	}
}

// SIM cards. Administrators (33+) add and delete cards; a card starts without an owner
// and disabled. A user binds a card to themselves by proving its PUK1 and PUK2 (printed
// on the card's carrier), which enables it. Ownership is the one rule: a card belongs to
// the users who manage its owner; a card without an owner to the administrators. The
// card's provider names the Lua sms handler that reaches it (notifySIM).

// simManagerLevel is the effective level from which a caller may give a card to another
// user (updateSIM owner): corporate users and up, like the other administrative fields.
const simManagerLevel = keys.LevelManager

var (
	iccidPattern = regexp.MustCompile(`^[0-9]{1,22}$`)
	pukPattern   = regexp.MustCompile(`^[0-9]{4,16}$`)
)

// SIMCard is a row of sim_cards with its owner's name.
type SIMCard struct {
	ICCID          string        `db:"iccid"`
	MSISDN         string        `db:"msisdn"`
	Provider       string        `db:"provider"`
	OwnerID        sql.NullInt64 `db:"owner_id"`
	Owner          string        `db:"owner"`
	PUK1           string        `db:"puk1"`
	PUK2           string        `db:"puk2"`
	Extension      string        `db:"extension"`
	CallbackCID    string        `db:"callback_cid"`
	AllowDirectSMS int           `db:"allow_direct_sms"`
	Enabled        int           `db:"enabled"`
	LastNetwork    string        `db:"lastnetwork"`
	LastNetworkAt  int64         `db:"lastnetwork_at"`
}

const simSelect = `SELECT c.iccid, c.msisdn, c.provider, c.owner_id, COALESCE(u.username, '') AS owner, c.puk1, c.puk2,
	c.extension, c.callback_cid, c.allow_direct_sms, c.enabled, c.lastnetwork, c.lastnetwork_at
	FROM sim_cards c LEFT JOIN users u ON u.id = c.owner_id`

func simByICCID(ctx context.Context, q db.Queryer, iccid string) (*SIMCard, error) {
	var c SIMCard
	err := q.Get(ctx, &c, simSelect+` WHERE c.iccid = ?`, iccid)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no SIM card %q", iccid)
	}
	return &c, err
}

// ownedSIM is a card the actor manages: E_NOT_EXIST or E_DOES_NOT_BELONG_TO_YOU otherwise.
func (r *Request) ownedSIM(iccid string) (*SIMCard, error) {
	c, err := simByICCID(r.ctx, r.S.DB.Q(), strings.TrimSpace(iccid))
	if err != nil {
		return nil, err
	}
	if err := r.mustManage(c.OwnerID, "SIM card "+c.ICCID); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *SIMCard) view(tz float64) map[string]any {
	return map[string]any{
		"iccid": c.ICCID, "msisdn": c.MSISDN, "provider": c.Provider, "owner": c.Owner,
		"puk1": c.PUK1, "puk2": c.PUK2, "sip_extension": c.Extension, "callback_cid": c.CallbackCID,
		"allow_direct_sms": c.AllowDirectSMS, "enabled": c.Enabled, "lastnetwork": c.LastNetwork,
		"lastnetworkdate": formatTime(c.LastNetworkAt, tz),
	}
}

// actorTZ is the timezone dates are shown in: the user's acted on.
func (r *Request) actorTZ() float64 {
	if u, err := r.User(); err == nil {
		return u.Timezone
	}
	return 0
}

// getSIMList(1) lists the cards the caller manages (the user's own, their users', and for
// administrators the cards nobody owns); with own, only the user's own; without all
// (default true), only enabled cards. PUK codes are shown: whoever sees a card manages it.
func (s *Service) getSIMList(r *Request) (any, error) {
	query, args := simSelect+` WHERE 1 = 1`, []any{}
	if r.Bool("own") {
		u, err := r.User()
		if err != nil {
			return nil, err
		}
		query, args = query+` AND c.owner_id = ?`, append(args, u.ID)
	}
	if !r.Bool("all") {
		query += ` AND c.enabled = 1`
	}
	var cards []SIMCard
	if err := s.DB.Q().Select(r.ctx, &cards, query+` ORDER BY c.iccid`, args...); err != nil {
		return nil, err
	}
	tz := r.actorTZ()
	mine := map[int64]bool{}
	out := make([]map[string]any, 0, len(cards))
	for i := range cards {
		c := &cards[i]
		key := int64(-1)
		if c.OwnerID.Valid {
			key = c.OwnerID.Int64
		}
		ok, seen := mine[key]
		if !seen {
			var err error
			if ok, err = r.managesOwner(c.OwnerID); err != nil {
				return nil, err
			}
			mine[key] = ok
		}
		if ok {
			out = append(out, c.view(tz))
		}
	}
	return out, nil
}

// getSIMInfo(1) shows one card the caller manages.
func (s *Service) getSIMInfo(r *Request) (any, error) {
	c, err := r.ownedSIM(r.Str("iccid"))
	if err != nil {
		return nil, err
	}
	return c.view(r.actorTZ()), nil
}

// bindSIM(1) binds a card without an owner to the user, once both PUK codes match
// (compared in constant time; a wrong pair is E_AUTH_FAILED), and enables it. Binding a
// card the user already owns is true; a card somebody else owns is
// E_DOES_NOT_BELONG_TO_YOU (its owner or a manager must unbind it first).
func (s *Service) bindSIM(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	c, err := simByICCID(r.ctx, s.DB.Q(), strings.TrimSpace(r.Str("iccid")))
	if err != nil {
		return nil, err
	}
	ok1 := subtle.ConstantTimeCompare([]byte(c.PUK1), []byte(r.Str("puk1")))
	ok2 := subtle.ConstantTimeCompare([]byte(c.PUK2), []byte(r.Str("puk2")))
	if ok1&ok2 != 1 || c.PUK1 == "" || c.PUK2 == "" {
		s.Log.Warn("bindSIM: wrong PUK", "iccid", c.ICCID, "user", u.Username, "remote", r.Remote)
		return nil, apierr.New(apierr.AuthFailed, "wrong PUK codes for SIM card %s", c.ICCID)
	}
	res, err := s.DB.Q().Exec(r.ctx, `UPDATE sim_cards SET owner_id = ?, enabled = 1 WHERE iccid = ? AND owner_id IS NULL`,
		u.ID, c.ICCID)
	if err != nil {
		return nil, err
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, err
	} else if n == 1 {
		return true, nil
	}
	// Somebody owns it (perhaps since we read it).
	if c, err = simByICCID(r.ctx, s.DB.Q(), c.ICCID); err != nil {
		return nil, err
	}
	if c.OwnerID.Valid && c.OwnerID.Int64 == u.ID {
		return true, nil
	}
	return nil, apierr.New(apierr.DoesNotBelongToYou, "SIM card %s is bound to another user", c.ICCID)
}

// unbindSIM(1) releases a card the caller manages: no owner, disabled, no SIP account
// and no callback caller ID, ready to be bound again with its PUK codes.
func (s *Service) unbindSIM(r *Request) (any, error) {
	c, err := r.ownedSIM(r.Str("iccid"))
	if err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `UPDATE sim_cards SET owner_id = NULL, enabled = 0, extension = '', callback_cid = ''
		WHERE iccid = ?`, c.ICCID)
	return true, err
}

// flag01 is a num argument that must be 0 or 1.
func flag01(r *Request, name string) (int, error) {
	switch r.Money(name) {
	case 0:
		return 0, nil
	case money.One:
		return 1, nil
	}
	return 0, apierr.New(apierr.InvalidArgument, "%s: want 0 or 1", name)
}

// updateSIM(1) changes a card the caller manages. Its owner uses sip_extension (one of
// the owner's SIP accounts, else E_WRONG_EXTENSION; empty clears it), callback_cid (a
// phone number or empty), directsms and enabled (0 or 1). Giving the card to another user
// (owner: a user the caller manages) needs effective level 22 and clears sip_extension
// unless one is given; changing the PUK codes needs an administrator (33), as adding
// the card does. Anything else is E_INSUFFICIENT_ACCESS.
func (s *Service) updateSIM(r *Request) (any, error) {
	c, err := r.ownedSIM(r.Str("iccid"))
	if err != nil {
		return nil, err
	}
	sets, args := []string{}, []any{}
	set := func(col string, v any) { sets, args = append(sets, col+" = ?"), append(args, v) }
	owner := c.OwnerID
	if name := strings.TrimSpace(r.Str("owner")); name != "" && name != c.Owner {
		if r.Caller.Level < simManagerLevel {
			return nil, apierr.New(apierr.InsufficientAccess, "giving a SIM card to another user needs access level %d", simManagerLevel)
		}
		u, err := r.Owned(name)
		if err != nil {
			return nil, err
		}
		owner = sql.NullInt64{Int64: u.ID, Valid: true}
		set("owner_id", u.ID)
		if !r.Has("sip_extension") {
			set("extension", "")
		}
	}
	for _, name := range []string{"puk1", "puk2"} {
		if !r.Has(name) {
			continue
		}
		if r.Caller.Level < keys.LevelAdmin {
			return nil, apierr.New(apierr.InsufficientAccess, "changing PUK codes needs access level %d", keys.LevelAdmin)
		}
		if !pukPattern.MatchString(r.Str(name)) {
			return nil, apierr.New(apierr.InvalidArgument, "%s: want 4 to 16 digits", name)
		}
		set(name, r.Str(name))
	}
	if r.Has("sip_extension") {
		ext := strings.TrimSpace(r.Str("sip_extension"))
		if ext != "" {
			e, err := extensionByName(r.ctx, s.DB.Q(), ext)
			if apierr.Code(err) == apierr.NotExist || err == nil && (!owner.Valid || e.UserID != owner.Int64) {
				return nil, apierr.New(apierr.WrongExtension, "sip_extension: %q is not a SIP account of the card's owner", ext)
			} else if err != nil {
				return nil, err
			}
		}
		set("extension", ext)
	}
	if r.Has("callback_cid") {
		cid := rating.Normalize(r.Str("callback_cid"))
		if cid != "" && !smsNumber.MatchString(cid) {
			return nil, apierr.New(apierr.InvalidArgument, "callback_cid: %q is not a phone number", r.Str("callback_cid"))
		}
		set("callback_cid", cid)
	}
	for arg, col := range map[string]string{"directsms": "allow_direct_sms", "enabled": "enabled"} {
		if !r.Has(arg) {
			continue
		}
		v, err := flag01(r, arg)
		if err != nil {
			return nil, err
		}
		set(col, v)
	}
	if len(sets) == 0 {
		return true, nil
	}
	_, err = s.DB.Q().Exec(r.ctx, `UPDATE sim_cards SET `+strings.Join(sets, ", ")+` WHERE iccid = ?`, append(args, c.ICCID)...)
	return true, err
}

// addSIM(33) adds a card without an owner, disabled. iccid: 1 to 22 digits; PUK codes:
// 4 to 16 digits each, both obligatory (they are what binding checks); msisdn: a phone
// number or empty; provider: the name of the card's Lua sms handler, or empty. An ICCID
// already known is E_DATA_ABORT.
func (s *Service) addSIM(r *Request) (any, error) {
	iccid := strings.TrimSpace(r.Str("iccid"))
	if !iccidPattern.MatchString(iccid) {
		return nil, apierr.New(apierr.InvalidArgument, "iccid: want 1 to 22 digits")
	}
	for _, name := range []string{"puk1", "puk2"} {
		if !pukPattern.MatchString(r.Str(name)) {
			return nil, apierr.New(apierr.InvalidArgument, "%s: want 4 to 16 digits", name)
		}
	}
	msisdn := rating.Normalize(r.Str("msisdn"))
	if msisdn != "" && !smsNumber.MatchString(msisdn) {
		return nil, apierr.New(apierr.InvalidArgument, "msisdn: %q is not a phone number", r.Str("msisdn"))
	}
	provider := strings.TrimSpace(r.Str("provider"))
	if provider != "" && !handlerName.MatchString(provider) {
		return nil, apierr.New(apierr.InvalidArgument, "provider: want a handler name (letters, digits, _)")
	}
	_, err := s.DB.Q().Exec(r.ctx, `INSERT INTO sim_cards (iccid, msisdn, provider, puk1, puk2) VALUES (?, ?, ?, ?, ?)`,
		iccid, msisdn, provider, r.Str("puk1"), r.Str("puk2"))
	if err != nil && errors.Is(err, db.ErrConflict) {
		return nil, apierr.New(apierr.DataAbort, "SIM card %s already exists", iccid)
	}
	return true, err
}

// deleteSIM(33) deletes a card the caller manages.
func (s *Service) deleteSIM(r *Request) (any, error) {
	c, err := r.ownedSIM(r.Str("iccid"))
	if err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `DELETE FROM sim_cards WHERE iccid = ?`, c.ICCID)
	return true, err
}

// notifySIM(50) sends a service SMS to a card the caller manages: to its msisdn (none:
// E_INVALID_SMS_TO) through its provider's sms handler (method "notify"; none:
// E_CARRIER_ERROR). A notification is not charged; it is stored as a sent message without
// a user, so the carrier's delivery report finds it.
func (s *Service) notifySIM(r *Request) (any, error) {
	c, err := r.ownedSIM(r.Str("sim"))
	if err != nil {
		return nil, err
	}
	if c.MSISDN == "" {
		return nil, apierr.New(apierr.InvalidSMSTo, "SIM card %s has no MSISDN", c.ICCID)
	}
	from, err := smsSender(r.Str("from"))
	if err != nil {
		return nil, err
	}
	text := r.Str("text")
	if err := smsText(text); err != nil {
		return nil, err
	}
	v, err := s.carrier(r.ctx, "sms", c.Provider, map[string]any{
		"method": "notify", "to": c.MSISDN, "from": from, "text": text, "iccid": c.ICCID,
	}, false)
	if err != nil {
		return nil, err
	}
	extID, err := carrierID(v)
	if err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `INSERT INTO sms (user_id, did, src, dest, msg, status, type, external_id, created_at)
		VALUES (NULL, '', ?, ?, ?, ?, 'out', ?, ?)`, from, c.MSISDN, text, smsSent, extID, time.Now().Unix())
	return true, err
}
