package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// userMethods declares the methods whose handlers are in this file: the reference's "User",
// "User control".
func (s *Service) userMethods() []Method {
	return []Method{
		// User
		method("getInfo", 1, s.getInfo).
			Doc("get the user's data", "the user's attributes with their SIP accounts, DIDs, SIM cards and broadcasts"),
		method("getValue", 1, s.getValue, "property:string!").
			Doc("get one attribute of the user", "the attribute's value"),
		method("updateUser", 1, s.updateUser, "user:string", "web_password:string", "accesslevel:int",
			"active:int", "account:int", "currency:string", "language:string", "timezone:num", "rates:int",
			"allowed_rates:string", "allowed_call_len:int", "notify_email:string", "notify_balance:int",
			"notify_did:int", "notify_ticket:int", "notify_balance_limit:money", "invites:int",
			"comment:string").
			Doc("update the user's data", "true"),
		// User control
		method("getUsers", 22, s.getUsers, "all:bool=false", "offset:int=0", "limit:int", "search:string").
			Doc("list the users: by id, `limit` users (all when absent) after skipping `offset`, those "+
				"whose username contains `search` (any case) when given", "the users"),
		method("registerUser", 22, s.registerUser, "user:string!", "web_password:string!",
			"accesslevel:int=11", "sip_server:string", "sip_extension:string", "sip_password:string",
			"balance:money=0", "language:string="+s.Config.DefaultLanguage, "currency:string=EUR",
			"sip_srtp:bool=false", "account:string=auto").
			Doc("register a new user", "true"),
		method("deleteUser", 22, s.deleteUser, "user:string!").
			Doc("delete a user", "true"),
	}
}

// Access levels of the reference's User object.
var accessLevels = map[int64]bool{10: true, 11: true, 22: true, 25: true, 33: true, 44: true}

// Statuses (`active`) of the reference's User object.
var activeStates = map[int64]bool{-1: true, 0: true, 1: true, 2: true, 3: true, 99: true}

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9_.@+-]{1,32}$`)

// userView is the User object as getInfo, getValue and getUsers show it: the user's own
// fields, the account's, the first SIP account's, and the virtual parameters in the
// user's own currency (the answer is that user's view). It also returns all the user's
// SIP accounts.
func (s *Service) userView(ctx context.Context, r *Request, u *User) (map[string]any, []Extension, error) {
	viewer, err := r.Actor()
	if err != nil {
		return nil, nil, err
	}
	x, err := s.exchange(ctx, u.Currency)
	if err != nil {
		return nil, nil, err
	}
	exts, err := extensionsOf(ctx, s.DB.Q(), u.ID)
	if err != nil {
		return nil, nil, err
	}
	v := map[string]any{
		"id": u.ID, "username": u.Username, "manager": u.Manager, "accesslevel": u.AccessLevel,
		"active": u.Active, "account": u.Number, "currency": u.Currency, "language": u.Language,
		"timezone": u.Timezone, "rates": nullInt(u.RatesID), "allowed_rates": u.AllowedRates,
		"allowed_call_len": u.AllowedCallLen, "notify_email": u.NotifyEmail, "notify_balance": u.NotifyBalance,
		"notify_balance_limit": u.NotifyBalanceLimit, "notify_did": u.NotifyDID, "notify_ticket": u.NotifyTicket,
		"invites": u.Invites,
		"balance": u.Balance, "overdraft": u.Overdraft, "refill_allowed": u.RefillAllowed, "postpaid": u.Postpaid,
		"billing_name": u.BillingName, "billing_address": u.BillingAddress, "billing_email": u.BillingEmail,
		"billing_bank_account":      u.BillingBankAccount,
		"actualbalance":             u.Balance + u.Overdraft,
		"displaycurrency":           x.user.DisplayName,
		"displaybalance":            x.display(u.Balance),
		"displayoverdraft":          x.display(u.Overdraft),
		"displaynotifybalancelimit": x.display(u.NotifyBalanceLimit),
	}
	if viewer.AccessLevel >= keys.LevelAdmin {
		v["comment"] = u.Comment
	}
	var unread int
	if err := s.DB.Q().Get(ctx, &unread, `SELECT count(DISTINCT ticket) FROM tickets WHERE recipient = ? AND status = 1`, u.Username); err != nil {
		return nil, nil, err
	}
	v["unread_tickets"] = unread
	if len(exts) > 0 {
		for k, val := range exts[0].view(true, r.Version) {
			switch k {
			case "owner", "rates_name", "lastupdated":
				continue
			}
			v[k] = val
		}
	}
	return v, exts, nil
}

// getInfo gets the user's data.
func (s *Service) getInfo(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	v, exts, err := s.userView(r.ctx, r, u)
	if err != nil {
		return nil, err
	}
	list := make([]map[string]any, len(exts))
	for i := range exts {
		list[i] = exts[i].view(true, r.Version)
	}
	v["sip_extensions"] = list
	if v["did_numbers"], err = s.didsOf(r.ctx, u); err != nil {
		return nil, err
	}
	if v["sim_cards"], err = s.simCardsOf(r.ctx, u); err != nil {
		return nil, err
	}
	if v["broadcasts"], err = s.broadcastsFor(r.ctx, u); err != nil {
		return nil, err
	}
	return v, nil
}

// didsOf lists the user's DID numbers as getInfo shows them.
func (s *Service) didsOf(ctx context.Context, u *User) ([]map[string]any, error) {
	var rows []struct {
		DID        string      `db:"did"`
		Comment    string      `db:"comment"`
		Cost       money.Micro `db:"cost"`
		Expiration int64       `db:"expiration"`
		Enabled    int         `db:"enabled"`
		AutoRenew  int         `db:"auto_renew"`
	}
	err := s.DB.Q().Select(ctx, &rows, `SELECT did, comment, cost, expiration, enabled, auto_renew FROM dids WHERE owner_id = ? ORDER BY did`, u.ID)
	out := make([]map[string]any, len(rows))
	for i, d := range rows {
		out[i] = map[string]any{"did": d.DID, "comment": d.Comment, "cost": d.Cost, "expiration": formatTime(d.Expiration, 0),
			"enabled": d.Enabled, "auto_renew": d.AutoRenew}
	}
	return out, err
}

// simCardsOf lists the user's SIM cards as getInfo shows them.
func (s *Service) simCardsOf(ctx context.Context, u *User) ([]map[string]any, error) {
	var rows []struct {
		ICCID    string `db:"iccid"`
		MSISDN   string `db:"msisdn"`
		Provider string `db:"provider"`
		Ext      string `db:"extension"`
		Enabled  int    `db:"enabled"`
	}
	err := s.DB.Q().Select(ctx, &rows, `SELECT iccid, msisdn, provider, extension, enabled FROM sim_cards WHERE owner_id = ? ORDER BY iccid`, u.ID)
	out := make([]map[string]any, len(rows))
	for i, c := range rows {
		out[i] = map[string]any{"iccid": c.ICCID, "msisdn": c.MSISDN, "provider": c.Provider, "sip_extension": c.Ext, "enabled": c.Enabled}
	}
	return out, err
}

// broadcastsFor lists the broadcast messages the user may read.
func (s *Service) broadcastsFor(ctx context.Context, u *User) ([]map[string]any, error) {
	var rows []struct {
		ID        string `db:"id"`
		Typ       string `db:"typ"`
		Broadcast string `db:"broadcast"`
		Header    string `db:"header"`
	}
	err := s.DB.Q().Select(ctx, &rows, `SELECT id, typ, broadcast, header FROM news
		WHERE is_broadcast = 1 AND access <= ? AND (for_user = '' OR for_user = ?) AND (language = '' OR language = ?)
		ORDER BY created_at DESC`, u.AccessLevel, u.Username, u.Language)
	out := make([]map[string]any, len(rows))
	for i, n := range rows {
		out[i] = map[string]any{"id": n.ID, "typ": n.Typ, "broadcast": n.Broadcast, "header": n.Header}
	}
	return out, err
}

// getValue gets one attribute of the user.
func (s *Service) getValue(r *Request) (any, error) {
	info, err := s.getInfo(r)
	if err != nil {
		return nil, err
	}
	prop := r.Str("property")
	v, ok := info.(map[string]any)[prop]
	if !ok || prop == "sip_extensions" || prop == "did_numbers" || prop == "sim_cards" || prop == "broadcasts" {
		return nil, apierr.New(apierr.InvalidArgument, "property: no User parameter %q", prop)
	}
	if v == nil {
		return "", nil
	}
	return v, nil
}

// userColumns maps updateUser's arguments to columns. Admin fields change who may do
// what or what a user may spend; a user cannot set them on themself.
var userColumns = []struct {
	arg, column string
	admin       bool
}{
	{"accesslevel", "accesslevel", true}, {"active", "active", true}, {"account", "account_id", true},
	{"rates", "rates_id", true}, {"allowed_rates", "allowed_rates", true},
	{"allowed_call_len", "allowed_call_len", true}, {"invites", "invites", true}, {"comment", "comment", true},
	{"currency", "currency", false}, {"language", "language", false}, {"timezone", "timezone", false},
	{"notify_email", "notify_email", false}, {"notify_balance", "notify_balance", false},
	{"notify_did", "notify_did", false}, {"notify_ticket", "notify_ticket", false},
	{"notify_balance_limit", "notify_balance_limit", false}, {"web_password", "password_hash", false},
}

// updateUser updates the user's data.
func (s *Service) updateUser(r *Request) (any, error) {
	target, err := r.Target("user")
	if err != nil {
		return nil, err
	}
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	self := actor.ID == target.ID
	var sets []string
	var vals []any
	for _, c := range userColumns {
		if !r.Has(c.arg) {
			continue
		}
		if c.admin && (actor.AccessLevel < keys.LevelManager || self && actor.AccessLevel < keys.LevelAdmin) {
			return nil, apierr.New(apierr.InsufficientAccess, "%s can be changed only by the user's manager", c.arg)
		}
		if c.arg == "comment" && actor.AccessLevel < keys.LevelAdmin {
			return nil, apierr.New(apierr.InsufficientAccess, "comment is for administrators")
		}
		v, err := s.userValue(r, actor, target, c.arg)
		if err != nil {
			return nil, err
		}
		sets = append(sets, c.column+" = ?")
		vals = append(vals, v)
	}
	if len(sets) == 0 {
		return nil, apierr.New(apierr.MissingArgument, "nothing to update")
	}
	vals = append(vals, target.ID)
	if _, err = s.DB.Q().Exec(r.ctx, `UPDATE users SET `+strings.Join(sets, ", ")+` WHERE id = ?`, vals...); err != nil {
		return nil, err
	}
	// A lock ends the user's browser sessions for good: unlocking does not revive them.
	// (A password change ends them through the session's stamp, keys/sessions.go.)
	if r.Has("active") && r.Int("active") == keys.LockedUserActive {
		return nil, s.Gate.Sessions.CloseAll(r.ctx, target.ID)
	}
	return nil, nil
}

// userValue validates one updateUser argument and returns the value to store.
func (s *Service) userValue(r *Request, actor, target *User, arg string) (any, error) {
	ctx, q := r.ctx, s.DB.Q()
	switch arg {
	case "accesslevel":
		l := r.Int(arg)
		if !accessLevels[l] {
			return nil, apierr.New(apierr.InvalidArgument, "accesslevel: %d is not a user access level", l)
		}
		if l > int64(actor.AccessLevel) || actor.ID == target.ID && l > int64(target.AccessLevel) {
			return nil, apierr.New(apierr.InsufficientAccess, "nobody raises a user above their own access level")
		}
		return l, nil
	case "active":
		if a := r.Int(arg); !activeStates[a] {
			return nil, apierr.New(apierr.InvalidArgument, "active: %d is not a user status", a)
		}
		return r.Int(arg), nil
	case "account":
		acc, err := s.manageableAccount(r, r.Int(arg))
		if err != nil {
			return nil, err
		}
		return acc, nil
	case "rates":
		if r.Int(arg) == 0 {
			return nil, nil
		}
		var n int
		if err := q.Get(ctx, &n, `SELECT count(*) FROM rates WHERE id = ? AND is_option = 0`, r.Int(arg)); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, apierr.New(apierr.NotExist, "no tariff %d", r.Int(arg))
		}
		return r.Int(arg), nil
	case "currency":
		c, err := currency(ctx, q, r.Str(arg))
		if err != nil {
			return nil, err
		}
		return c.Code, nil
	case "timezone":
		tz, _ := strconv.ParseFloat(r.Str(arg), 64)
		if tz < -12 || tz > 14 {
			return nil, apierr.New(apierr.InvalidArgument, "timezone: want hours from -12 to 14")
		}
		return tz, nil
	case "notify_balance_limit":
		x, err := s.exchange(ctx, actor.Currency)
		if err != nil {
			return nil, err
		}
		return x.toSystem(r.Money(arg)), nil
	case "web_password":
		return s.hashPassword(r.Str(arg))
	case "allowed_call_len", "invites", "notify_balance", "notify_did", "notify_ticket":
		if r.Int(arg) < -1 {
			return nil, apierr.New(apierr.InvalidArgument, "%s: must not be negative", arg)
		}
		return r.Int(arg), nil
	}
	return r.Str(arg), nil
}

func (s *Service) hashPassword(md5hex string) (string, error) {
	if !keys.IsMD5Hex(md5hex) {
		return "", apierr.New(apierr.InvalidArgument, "web_password: want the md5 hex of the password")
	}
	return s.Passwords.Hash(md5hex)
}

// usersOf is a subquery of the ids of u and, with all, of every user u manages by the
// ownership rule (keys.Manages, in SQL, so an administrator's thousands of users never
// become thousands of placeholders).
func usersOf(u *User, all bool) (string, []any) {
	if !all {
		return `SELECT CAST(? AS BIGINT)`, []any{u.ID}
	}
	return `WITH RECURSIVE sub(id) AS (SELECT CAST(? AS BIGINT) UNION SELECT x.id FROM users x JOIN sub ON x.manager_id = sub.id)
		SELECT id FROM sub UNION SELECT id FROM users WHERE CAST(? AS INTEGER) >= ? OR (CAST(? AS INTEGER) >= ? AND accesslevel < ?)`,
		[]any{u.ID, u.AccessLevel, keys.LevelMaster, u.AccessLevel, keys.LevelAdmin, u.AccessLevel}
}

// managedIDs lists the users the actor manages, without the actor: with all, everyone
// the ownership rule gives them; without, only the users they manage directly.
func (s *Service) managedIDs(ctx context.Context, actor *User, all bool) ([]int64, error) {
	q := s.DB.Q()
	var ids []int64
	if !all {
		err := q.Select(ctx, &ids, `SELECT id FROM users WHERE manager_id = ? ORDER BY id`, actor.ID)
		return ids, err
	}
	who, args := usersOf(actor, true)
	err := q.Select(ctx, &ids, who, args...)
	out := ids[:0]
	for _, id := range ids {
		if id != actor.ID {
			out = append(out, id)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, err
}

// getUsers lists the users the caller manages (directly; with all, every one), by id, a
// page at a time when asked (offset, limit, search).
func (s *Service) getUsers(r *Request) (any, error) {
	actor, err := r.User()
	if err != nil {
		return nil, err
	}
	ids, err := s.managedIDs(r.ctx, actor, r.Bool("all"))
	if err != nil {
		return nil, err
	}
	if search := r.Str("search"); search != "" {
		var match []int64
		if err := s.DB.Q().Select(r.ctx, &match, `SELECT id FROM users WHERE LOWER(username) LIKE ? ESCAPE '\'`, likePattern(search)); err != nil {
			return nil, err
		}
		found := make(map[int64]bool, len(match))
		for _, id := range match {
			found[id] = true
		}
		ids = slices.DeleteFunc(ids, func(id int64) bool { return !found[id] })
	}
	if ids, err = pageOf(r, ids); err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		u, err := userByID(r.ctx, s.DB.Q(), id)
		if err != nil {
			return nil, err
		}
		v, _, err := s.userView(r.ctx, r, u)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

var extensionPattern = regexp.MustCompile(`^[0-9]{5}([0-9]{2})?$`)

// registerUser registers a new user.
func (s *Service) registerUser(r *Request) (any, error) {
	registrar, err := r.User()
	if err != nil {
		return nil, err
	}
	name := r.Str("user")
	if !usernamePattern.MatchString(name) {
		return nil, apierr.New(apierr.InvalidArgument, "user: 1 to 32 letters, digits or _.@+-")
	}
	level := r.Int("accesslevel")
	if !accessLevels[level] {
		return nil, apierr.New(apierr.InvalidArgument, "accesslevel: %d is not a user access level", level)
	}
	if level > int64(registrar.AccessLevel) || level > int64(r.Caller.Level) {
		return nil, apierr.New(apierr.InsufficientAccess, "nobody creates a user above their own access level")
	}
	hash, err := s.hashPassword(r.Str("web_password"))
	if err != nil {
		return nil, err
	}
	q := s.DB.Q()
	cur, err := currency(r.ctx, q, r.Str("currency"))
	if err != nil {
		return nil, apierr.New(apierr.InvalidArgument, "currency: no currency %q", r.Str("currency"))
	}
	if r.Money("balance") < 0 {
		return nil, apierr.New(apierr.InvalidArgument, "balance: must not be negative")
	}
	x, err := s.exchange(r.ctx, registrar.Currency)
	if err != nil {
		return nil, err
	}
	initial := x.toSystem(r.Money("balance"))
	var account int64
	if a := r.Str("account"); a != "" && a != "auto" {
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return nil, apierr.New(apierr.InvalidArgument, "account: want a number or auto")
		}
		if account, err = s.manageableAccount(r, n); err != nil {
			return nil, err
		}
	}
	var server *SIPServer
	ext := r.Str("sip_extension")
	if ext != "" {
		if !extensionPattern.MatchString(ext) {
			return nil, apierr.New(apierr.WrongExtension, "sip_extension: 5 or 7 digits")
		}
		if server, err = sipServer(r.ctx, q, r.Str("sip_server")); err != nil {
			return nil, err
		}
	} else if r.Str("sip_server") != "" {
		return nil, apierr.New(apierr.MissingArgument, "sip_extension is obligatory with sip_server")
	}
	now := time.Now().Unix()
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		if account == 0 {
			if account, err = tx.Insert(r.ctx, `INSERT INTO accounts (owner_id, created_at) VALUES (?, ?)`, registrar.ID, now); err != nil {
				return err
			}
		}
		id, err := tx.Insert(r.ctx, `INSERT INTO users (username, password_hash, manager_id, accesslevel, active, account_id,
			currency, language, created_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)`,
			name, hash, registrar.ID, level, account, cur.Code, r.Str("language"), now)
		if errors.Is(err, db.ErrConflict) {
			return apierr.New(apierr.CantCreateAccount, "user %q exists", name)
		} else if err != nil {
			return err
		}
		switch {
		case initial == 0:
		case registrar.AccessLevel >= keys.LevelAdmin: // administrators issue money
			if err := post(r.ctx, tx, account, initial, KindInitial, "user:"+name, "initial balance", registrar.ID); err != nil {
				return err
			}
		default: // a reseller gives it out of its own account
			if err := pay(r.ctx, tx, registrar.Number, account, initial, KindInitial, "initial balance of "+name, registrar.ID); err != nil {
				return err
			}
		}
		if ext != "" {
			return createExtension(r.ctx, tx, newExtension{
				Extension: ext, UserID: id, ServerID: server.ID, Password: r.Str("sip_password"),
				SRTP: r.Bool("sip_srtp"),
			})
		}
		return nil
	})
}

// newExtension is what creating a SIP account needs.
type newExtension struct {
	Extension, Password, CallerID, Language string
	UserID, ServerID                        int64
	SRTP                                    bool
}

// createExtension inserts a SIP account; a taken number is E_CANT_CREATE_ASTERISK_EXTENSION.
func createExtension(ctx context.Context, tx *db.Tx, e newExtension) error {
	if e.Password == "" {
		buf := make([]byte, 8)
		rand.Read(buf)
		e.Password = hex.EncodeToString(buf)
	}
	if e.CallerID == "" {
		e.CallerID = e.Extension
	}
	if e.Language == "" {
		e.Language = "en"
	}
	srtp := 0
	if e.SRTP {
		srtp = 1
	}
	_, err := tx.Exec(ctx, `INSERT INTO extensions (extension, user_id, server_id, password, callerid, language, srtp, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, e.Extension, e.UserID, e.ServerID, e.Password, e.CallerID, e.Language, srtp, time.Now().Unix())
	if errors.Is(err, db.ErrConflict) {
		return apierr.New(apierr.CantCreateExtension, "SIP account %s exists", e.Extension)
	}
	return err
}

// deleteUser deletes a user.
func (s *Service) deleteUser(r *Request) (any, error) {
	u, err := r.Owned(r.Str("user"))
	if err != nil {
		return nil, err
	}
	if u.ID == r.Caller.Actor.ID {
		return nil, apierr.New(apierr.DataAbort, "nobody deletes themself")
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		// The deleted user's own users move up to the deleted user's manager.
		if _, err := tx.Exec(r.ctx, `UPDATE users SET manager_id = ? WHERE manager_id = ?`, u.ManagerID, u.ID); err != nil {
			return err
		}
		// Its open calls go with it, and its call records stay, naming no user
		// (reservations and, on PostgreSQL, call_log have no foreign key: sql/*/024, 025).
		if _, err := tx.Exec(r.ctx, `DELETE FROM reservations WHERE user_id = ?`, u.ID); err != nil {
			return err
		}
		if _, err := tx.Exec(r.ctx, `UPDATE call_log SET user_id = NULL WHERE user_id = ?`, u.ID); err != nil {
			return err
		}
		_, err := tx.Exec(r.ctx, `DELETE FROM users WHERE id = ?`, u.ID)
		return err
	})
}
