package billing

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
)

// extensionMethods declares the methods whose handlers are in this file: the reference's "SIP
// accounts".
func (s *Service) extensionMethods() []Method {
	return []Method{
		method("getExtensions", 1, s.getExtensions, "own:bool=true", "all:bool=false", "owner:string",
			"offset:int=0", "limit:int", "search:string").
			Doc("list the user's SIP accounts: `limit` (all when absent) after skipping `offset`, those whose "+
				"number or caller ID contains `search` when given", "the SIP accounts"),
		method("getExtensionInfo", 1, s.getExtensionInfo, "sip_extension:string", "property:string").
			Doc("get a SIP account's data", "the SIP account's data, or the value of the requested property"),
		method("getAvailExtension", 1, s.getAvailExtension, "own:bool=false").
			Doc("get the nearest SIP account free for registration", "the free SIP account"),
		method("createExtension", 1, s.createExtensionMethod, "owner:string", "sip_extension:string",
			"sip_password:string", "sip_server:string", "sip_callerid:string", "sip_language:string",
			"sip_srtp:bool=false").
			Doc("create a SIP account", "true"),
		method("updateExtension", 1, s.updateExtension, "sip_extension:string", "extension:string",
			"sip_password:string", "sip_server:string", "sip_srtp:int", "sip_transport:string",
			"sip_callerid:string", "sip_max_call_len:int", "sip_reach:int", "sip_redirect:string",
			"sip_force_callback:int", "sip_language:string", "sip_rates_id:int", "disa_pin:string",
			"disa_trusted_cli:string", "sip_pitch_shift:int", "sip_host:string", "sip_options:string").
			Doc("update a SIP account", "true"),
		method("deleteExtension", 1, s.deleteExtension, "sip_extension:string!").
			Doc("delete a SIP account", "true"),
	}
}

// SIP accounts. Numbers are 5 digits (a main account, XXXXX) or 7 (an additional account
// XXXXXyy of the user owning XXXXX). Below effective access level 22 (a client key's user
// level, a server key's level) a caller may create only additional accounts under one of
// the owner's main accounts; resellers, administrators and server keys of level 22 or more
// create any free number for the users they manage.

// sipTransports are the values updateExtension's sip_transport accepts.
var sipTransports = map[string]bool{"udp": true, "tcp": true, "tls": true, "udp,tcp": true, "udp,tcp,tls": true}

var callerIDPattern = regexp.MustCompile(`^\+?[0-9A-Za-z_.-]{0,32}$`)
var languagePattern = regexp.MustCompile(`^[A-Za-z_-]{0,16}$`)
var pinPattern = regexp.MustCompile(`^[0-9]{0,16}$`)

// ownedExtension loads a SIP account whose owner the actor manages: E_NOT_EXIST or
// E_DOES_NOT_BELONG_TO_YOU otherwise.
func (r *Request) ownedExtension(name string) (*Extension, error) {
	e, err := extensionByName(r.ctx, r.S.DB.Q(), name)
	if err != nil {
		return nil, err
	}
	owner, err := userByID(r.ctx, r.S.DB.Q(), e.UserID)
	if err != nil {
		return nil, err
	}
	ok, err := r.Manages(owner)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "SIP account %s is not yours", name)
	}
	return e, nil
}

// getExtensions lists SIP accounts: of `owner` when given (a user the caller manages);
// with all, of the caller and every user they manage; with own=false, of the caller and
// the users they manage directly; else (own, the default) the caller's own.
func (s *Service) getExtensions(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	ids := []int64{u.ID}
	switch {
	case r.Str("owner") != "":
		o, err := r.Owned(r.Str("owner"))
		if err != nil {
			return nil, err
		}
		ids = []int64{o.ID}
	case r.Bool("all"), !r.Bool("own"):
		more, err := s.managedIDs(r.ctx, u, r.Bool("all"))
		if err != nil {
			return nil, err
		}
		ids = append(ids, more...)
	}
	search := r.Str("search")
	var found []*Extension
	for _, id := range ids {
		exts, err := extensionsOf(r.ctx, s.DB.Q(), id)
		if err != nil {
			return nil, err
		}
		for i := range exts {
			if search == "" || strings.Contains(exts[i].Extension, search) || strings.Contains(exts[i].CallerID, search) {
				found = append(found, &exts[i])
			}
		}
	}
	found, err = pageOf(r, found)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(found))
	for _, e := range found {
		out = append(out, e.view(true, r.Version))
	}
	return out, nil
}

// getExtensionInfo shows a SIP account (the user's first one without sip_extension), or
// one of its fields with property.
func (s *Service) getExtensionInfo(r *Request) (any, error) {
	e, err := s.extensionArg(r)
	if err != nil {
		return nil, err
	}
	v := e.view(true, r.Version)
	if p := r.Str("property"); p != "" {
		val, ok := v[p]
		if !ok {
			return nil, apierr.New(apierr.InvalidArgument, "property: no SIP account field %q", p)
		}
		if val == nil {
			return "", nil
		}
		return val, nil
	}
	return v, nil
}

// extensionArg is the SIP account sip_extension names, else the user's first.
func (s *Service) extensionArg(r *Request) (*Extension, error) {
	if name := r.Str("sip_extension"); name != "" {
		return r.ownedExtension(name)
	}
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	exts, err := extensionsOf(r.ctx, s.DB.Q(), u.ID)
	if err != nil {
		return nil, err
	}
	if len(exts) == 0 {
		return nil, apierr.New(apierr.NotExist, "%s has no SIP account", u.Username)
	}
	return &exts[0], nil
}

// nextExtension is the lowest free number: with own, the next XXXXXyy under the user's
// first main account; else the next free main number from 10000.
func (s *Service) nextExtension(r *Request, u *User, own bool) (string, error) {
	q := s.DB.Q()
	if own {
		exts, err := extensionsOf(r.ctx, q, u.ID)
		if err != nil {
			return "", err
		}
		main := ""
		for _, e := range exts {
			if len(e.Extension) == 5 {
				main = e.Extension
				break
			}
		}
		if main == "" {
			return "", apierr.New(apierr.NotExist, "%s has no main (5-digit) SIP account", u.Username)
		}
		var taken []string
		if err := q.Select(r.ctx, &taken, `SELECT extension FROM extensions WHERE extension LIKE ?`, main+"__"); err != nil {
			return "", err
		}
		used := map[string]bool{}
		for _, t := range taken {
			used[t] = true
		}
		for yy := 1; yy <= 99; yy++ {
			if c := fmt.Sprintf("%s%02d", main, yy); !used[c] {
				return c, nil
			}
		}
		return "", apierr.New(apierr.CantCreateExtension, "no free additional SIP account under %s", main)
	}
	var taken []string
	if err := q.Select(r.ctx, &taken, `SELECT extension FROM extensions WHERE length(extension) = 5`); err != nil {
		return "", err
	}
	used := map[int]bool{}
	for _, t := range taken {
		if n, err := strconv.Atoi(t); err == nil {
			used[n] = true
		}
	}
	for n := 10000; n <= 99999; n++ {
		if !used[n] {
			return strconv.Itoa(n), nil
		}
	}
	return "", apierr.New(apierr.CantCreateExtension, "no free SIP account number")
}

// getAvailExtension gets the nearest SIP account free for registration.
func (s *Service) getAvailExtension(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	return s.nextExtension(r, u, r.Bool("own"))
}

// mayCreateNumber: resellers and administrators create any well-formed number; other
// users only XXXXXyy under a main account of the owner.
func (s *Service) mayCreateNumber(r *Request, owner *User, number string) error {
	if !extensionPattern.MatchString(number) {
		return apierr.New(apierr.WrongExtension, "sip_extension: 5 or 7 digits")
	}
	if r.Caller.Level >= keys.LevelManager {
		return nil
	}
	if len(number) == 7 {
		if e, err := extensionByName(r.ctx, s.DB.Q(), number[:5]); err == nil && e.UserID == owner.ID {
			return nil
		} else if err != nil && apierr.Code(err) != apierr.NotExist {
			return err
		}
	}
	return apierr.New(apierr.WrongExtension, "sip_extension: you may create only XXXXXyy under your own XXXXX")
}

// createExtension creates a SIP account for owner (default: the call's user). Without
// sip_extension the next free number is taken (see getAvailExtension; own for users below
// level 22); without sip_server, the server of the owner's first account.
func (s *Service) createExtensionMethod(r *Request) (any, error) {
	owner, err := r.Target("owner")
	if err != nil {
		return nil, err
	}
	q := s.DB.Q()
	number := r.Str("sip_extension")
	if number == "" {
		if number, err = s.nextExtension(r, owner, r.Caller.Level < keys.LevelManager); err != nil {
			return nil, err
		}
	}
	if err := s.mayCreateNumber(r, owner, number); err != nil {
		return nil, err
	}
	var server *SIPServer
	if name := r.Str("sip_server"); name != "" {
		if server, err = sipServer(r.ctx, q, name); err != nil {
			return nil, err
		}
	} else {
		exts, err := extensionsOf(r.ctx, q, owner.ID)
		if err != nil {
			return nil, err
		}
		if len(exts) == 0 || !exts[0].ServerID.Valid {
			return nil, apierr.New(apierr.SIPServerNotExist, "sip_server: name the SIP server of the new account")
		}
		server = &SIPServer{ID: exts[0].ServerID.Int64}
	}
	if err := checkExtText(r); err != nil {
		return nil, err
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		return createExtension(r.ctx, tx, newExtension{
			Extension: number, UserID: owner.ID, ServerID: server.ID, Password: r.Str("sip_password"),
			CallerID: r.Str("sip_callerid"), Language: r.Str("sip_language"), SRTP: r.Bool("sip_srtp"),
		})
	})
}

// checkExtText validates the free-text fields a SIP account shares with Asterisk.
func checkExtText(r *Request) error {
	if p := r.Str("sip_password"); r.Has("sip_password") && (len(p) > 64 || hasControl(p) || strings.ContainsAny(p, " ;\"'")) {
		return apierr.New(apierr.InvalidArgument, "sip_password: up to 64 characters without spaces, quotes or ;")
	}
	if !callerIDPattern.MatchString(r.Str("sip_callerid")) {
		return apierr.New(apierr.InvalidArgument, "sip_callerid: up to 32 digits or letters")
	}
	if !languagePattern.MatchString(r.Str("sip_language")) {
		return apierr.New(apierr.InvalidArgument, "sip_language: a language code")
	}
	return nil
}

// extColumns maps updateExtension's arguments to columns, with their checks.
var extColumns = []struct {
	arg, column string
	check       func(r *Request, v string) error
}{
	{"sip_callerid", "callerid", nil},
	{"sip_language", "language", nil},
	{"sip_password", "password", nil},
	{"sip_srtp", "srtp", intIn(0, 1)},
	{"sip_transport", "transport", func(_ *Request, v string) error {
		if !sipTransports[strings.ToLower(v)] {
			return apierr.New(apierr.InvalidArgument, "sip_transport: one of udp, tcp, tls, \"udp,tcp\", \"udp,tcp,tls\"")
		}
		return nil
	}},
	{"sip_max_call_len", "max_call_len", intIn(0, 86400)},
	{"sip_reach", "reach", intIn(0, 2)},
	{"sip_redirect", "redirect", text(64)},
	{"sip_force_callback", "force_callback", intIn(0, 1)},
	{"sip_pitch_shift", "pitch_shift", intIn(-1, 12)},
	{"disa_pin", "disa_pin", func(_ *Request, v string) error {
		if !pinPattern.MatchString(v) {
			return apierr.New(apierr.InvalidArgument, "disa_pin: up to 16 digits")
		}
		return nil
	}},
	{"disa_trusted_cli", "disa_trusted_cli", text(64)},
	{"sip_host", "host", text(255)},
	{"sip_options", "options", text(1024)},
}

func intIn(lo, hi int64) func(*Request, string) error {
	return func(_ *Request, v string) error {
		n, err := parseInt(v)
		if err != nil || n < lo || n > hi {
			return apierr.New(apierr.InvalidArgument, "want a whole number from %d to %d", lo, hi)
		}
		return nil
	}
}

func text(max int) func(*Request, string) error {
	return func(_ *Request, v string) error {
		if len(v) > max || hasControl(v) {
			return apierr.New(apierr.InvalidArgument, "at most %d printable characters", max)
		}
		return nil
	}
}

// updateExtension changes a SIP account's fields; extension renames it, sip_server moves
// it, sip_rates_id puts it on a tariff (0 clears it) under switchRates' rule.
func (s *Service) updateExtension(r *Request) (any, error) {
	e, err := s.extensionArg(r)
	if err != nil {
		return nil, err
	}
	if err := checkExtText(r); err != nil {
		return nil, err
	}
	if r.Has("sip_password") && r.Str("sip_password") == "" {
		return nil, apierr.New(apierr.InvalidArgument, "sip_password: must not be empty")
	}
	q := s.DB.Q()
	var cols []string
	var vals []any
	for _, c := range extColumns {
		if !r.Has(c.arg) {
			continue
		}
		v := r.Str(c.arg)
		if c.check != nil {
			if err := c.check(r, v); err != nil {
				return nil, apierr.New(apierr.InvalidArgument, "%s: %s", c.arg, err.(*apierr.Error).Message)
			}
		}
		if c.arg == "sip_transport" {
			v = strings.ToLower(v)
		}
		cols, vals = append(cols, c.column), append(vals, v)
	}
	if r.Has("sip_server") {
		srv, err := sipServer(r.ctx, q, r.Str("sip_server"))
		if err != nil {
			return nil, err
		}
		cols, vals = append(cols, "server_id"), append(vals, srv.ID)
	}
	if r.Has("sip_rates_id") {
		if id := r.Int("sip_rates_id"); id == 0 {
			cols, vals = append(cols, "rates_id"), append(vals, nil)
		} else {
			t, err := rateByID(r.ctx, q, id)
			if err != nil {
				return nil, err
			}
			if t.IsOption != 0 {
				return nil, apierr.New(apierr.InvalidArgument, "sip_rates_id: %d is a tariff option (use switchRates)", id)
			}
			owner, err := userByID(r.ctx, q, e.UserID)
			if err != nil {
				return nil, err
			}
			if ok, err := r.mayUseRate(t, owner); err != nil {
				return nil, err
			} else if !ok {
				return nil, apierr.New(apierr.DoesNotBelongToYou, "tariff %d is not allowed for %s", id, owner.Username)
			}
			cols, vals = append(cols, "rates_id"), append(vals, id)
		}
	}
	if r.Has("extension") && r.Str("extension") != e.Extension {
		owner, err := userByID(r.ctx, q, e.UserID)
		if err != nil {
			return nil, err
		}
		if err := s.mayCreateNumber(r, owner, r.Str("extension")); err != nil {
			return nil, err
		}
		if n, err := subAccounts(r, e.Extension); err != nil {
			return nil, err
		} else if n > 0 {
			return nil, apierr.New(apierr.DataAbort, "%s has %d additional SIP accounts: it keeps its number", e.Extension, n)
		}
		cols, vals = append(cols, "extension"), append(vals, r.Str("extension"))
	}
	if len(cols) == 0 {
		return nil, apierr.New(apierr.MissingArgument, "nothing to update")
	}
	cols, vals = append(cols, "updated_at"), append(vals, time.Now().Unix())
	_, err = q.Exec(r.ctx, `UPDATE extensions SET `+join(cols, " = ?, ")+` = ? WHERE id = ?`, append(vals, e.ID)...)
	if errors.Is(err, db.ErrConflict) {
		return nil, apierr.New(apierr.CantCreateExtension, "SIP account %s exists", r.Str("extension"))
	}
	return nil, err
}

// deleteExtension deletes a SIP account. E_CANT_DELETE_EXTENSION: a main account XXXXX
// while additional accounts XXXXXyy exist, or a user's last account when they delete it
// themself below level 22 (their manager can).
func (s *Service) deleteExtension(r *Request) (any, error) {
	if r.Str("sip_extension") == "" {
		return nil, apierr.New(apierr.MissingArgument, "sip_extension is obligatory")
	}
	e, err := r.ownedExtension(r.Str("sip_extension"))
	if err != nil {
		return nil, err
	}
	q := s.DB.Q()
	if n, err := subAccounts(r, e.Extension); err != nil {
		return nil, err
	} else if n > 0 {
		return nil, apierr.New(apierr.CantDeleteExtension, "%s has %d additional SIP accounts", e.Extension, n)
	}
	actor := r.Caller.Actor
	if actor.ID == e.UserID && r.Caller.Level < keys.LevelManager {
		exts, err := extensionsOf(r.ctx, q, e.UserID)
		if err != nil {
			return nil, err
		}
		if len(exts) <= 1 {
			return nil, apierr.New(apierr.CantDeleteExtension, "%s is your last SIP account", e.Extension)
		}
	}
	_, err = q.Exec(r.ctx, `DELETE FROM extensions WHERE id = ?`, e.ID)
	return nil, err
}

// subAccounts counts the additional accounts XXXXXyy of a main account XXXXX.
func subAccounts(r *Request, main string) (int, error) {
	if len(main) != 5 {
		return 0, nil
	}
	var n int
	err := r.S.DB.Q().Get(r.ctx, &n, `SELECT count(*) FROM extensions WHERE extension LIKE ?`, main+"__")
	return n, err
}
