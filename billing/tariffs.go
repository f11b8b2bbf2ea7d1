package billing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// tariffMethods declares the methods whose handlers are in this file: the reference's
// "Directions and tarification".
func (s *Service) tariffMethods() []Method {
	return []Method{
		method("getCurrentRates", 0, s.getCurrentRates, "currency:string").
			Doc("get the current tariff's prices", "the directions of the user's current tariff"),
		method("getRatesList", 1, s.getRatesList, "all:bool=false", "is_public:bool=false",
			"is_option:bool").
			Doc("list the tariffs", "the tariffs and options the user may see"),
		method("switchRates", 1, s.switchRates, "id:int!", "state:bool", "sip_extension:string").
			Doc("change tariff, or connect or disconnect a tariff option", "true"),
		method("getRates", 1, s.getRates, "id:int!", "offset:int=0", "limit:int", "search:string").
			Doc("get a tariff's (option's) directions by its id: by direction id, `limit` directions (all when "+
				"absent) after skipping `offset`, those whose name contains `search` (any case) when given",
				"the tariff's directions"),
		method("getRatesInfo", 22, s.getRatesInfo, "id:int!").
			Doc("get a tariff's parameters", "the tariff's parameters"),
		method("addRates", 22, s.addRates, "table:string=", "name:string!", "bill_type:string=byminute",
			"is_option:bool=false", "is_public:bool=false", "switch_price:money=0", "multiplier:num=1",
			"did_multiplier:num=1", "description:string=").
			Doc("add a tariff", "true"),
		method("updateRates", 22, s.updateRates, "id:int!", "name:string", "bill_type:string",
			"is_option:bool", "is_public:bool", "switch_price:money", "multiplier:num",
			"did_multiplier:num", "description:string").
			Doc("update a tariff's parameters", "true"),
		method("deleteRates", 22, s.deleteRates, "id:int!").
			Doc("delete a tariff", "true"),
		method("addDirection", 22, s.addDirection, "rates:int!", "direction:int!", "cost:money!",
			"route:int!", "priority:int=1").
			Doc("add a direction to a tariff", "true"),
		method("updateDirection", 22, s.updateDirection, "rates:int!", "direction:int!", "prior:int=1",
			"cost:money", "route:int", "priority:int").
			Doc("update a direction's parameters in a tariff", "true"),
		method("updateDirections", 22, s.updateDirections, "rates:int!", "directions:string!").
			Doc("update many directions of a tariff at once", "true"),
		method("deleteDirection", 22, s.deleteDirection, "rates:int!", "direction:int!", "prior:int=1").
			Doc("delete a direction from a tariff", "true"),
		method("updateMarkup", 22, s.updateMarkup, "rates:int!", "markup:num!").
			Doc("raise every price of a tariff by a markup", "true"),
		method("copyDirections", 22, s.copyDirections, "rates:int!").
			Doc("copy the caller's current tariff into the selected tariff", "true"),
	}
}

// Rate is a tariff (or a tariff option): a row of the rates table. Costs, switch_price
// and multipliers are micro-units (multipliers: 1_000_000 is ×1).
//
// Ownership: a tariff belongs to its owner's managers; a tariff without an owner belongs
// to the administrators (level 33 or more). A user may use (see, switch to) the tariffs
// listed in their allowed_rates, or the public ones when that list is empty, and always
// sees the tariffs they are on.
type Rate struct {
	ID            int64         `db:"id"`
	TableName     string        `db:"table_name"`
	Name          string        `db:"name"`
	BillType      string        `db:"bill_type"`
	IsOption      int           `db:"is_option"`
	IsPublic      int           `db:"is_public"`
	SwitchPrice   money.Micro   `db:"switch_price"`
	Multiplier    money.Micro   `db:"multiplier"`
	DIDMultiplier money.Micro   `db:"did_multiplier"`
	Description   string        `db:"description"`
	OwnerID       sql.NullInt64 `db:"owner_id"`
	Owner         string        `db:"owner"`
}

const rateSelect = `SELECT t.id, t.table_name, t.name, t.bill_type, t.is_option, t.is_public, t.switch_price,
	t.multiplier, t.did_multiplier, t.description, t.owner_id, COALESCE(u.username, '') AS owner
	FROM rates t LEFT JOIN users u ON u.id = t.owner_id`

func rateByID(ctx context.Context, q db.Queryer, id int64) (*Rate, error) {
	var t Rate
	err := q.Get(ctx, &t, rateSelect+` WHERE t.id = ?`, id)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no tariff %d", id)
	}
	return &t, err
}

// ratingTx runs fn in a transaction that also bumps the rating version, and tells the
// call path after the commit: every change to directions, tariffs, entries, routes or
// bill types goes through here.
func (s *Service) ratingTx(r *Request, fn func(tx *db.Tx) error) error {
	err := changeRating(r.ctx, s.DB, fn)
	if err == nil {
		s.ratingChanged(r.Context())
	}
	return err
}

// idList parses a comma list of ids (allowed_rates, rates_options); junk is skipped.
func idList(s string) []int64 {
	var out []int64
	for _, f := range strings.Split(s, ",") {
		if n, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	return out
}

func joinIDs(ids []int64) string {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(parts, ",")
}

// mayUseRate: the user may be put on the tariff (switchRates, updateExtension's
// sip_rates_id): the actor manages the tariff, or the allowed_rates rule lets the user.
func (r *Request) mayUseRate(t *Rate, u *User) (bool, error) {
	mine, err := r.managesOwner(t.OwnerID)
	if err != nil || mine {
		return mine, err
	}
	return allowedRate(t, u), nil
}

// allowedRate: the tariff is in the user's allowed_rates, or that list is empty and the
// tariff is public.
func allowedRate(t *Rate, u *User) bool {
	allowed := idList(u.AllowedRates)
	if len(allowed) == 0 {
		return t.IsPublic != 0
	}
	return slices.Contains(allowed, t.ID)
}

// userSeesRate: the user may use the tariff or is on it (as user, SIP account or option).
func (r *Request) userSeesRate(t *Rate, u *User) (bool, error) {
	if allowedRate(t, u) || u.RatesID.Valid && u.RatesID.Int64 == t.ID {
		return true, nil
	}
	exts, err := extensionsOf(r.ctx, r.S.DB.Q(), u.ID)
	for _, e := range exts {
		if e.RatesID.Valid && e.RatesID.Int64 == t.ID || slices.Contains(idList(e.RatesOptions), t.ID) {
			return true, err
		}
	}
	return false, err
}

// seesRate: the actor manages the tariff, it is public, or the call's user sees it.
func (r *Request) seesRate(t *Rate) (bool, error) {
	ok, err := r.managesOwner(t.OwnerID)
	if err != nil || ok || t.IsPublic != 0 {
		return ok || t.IsPublic != 0, err
	}
	if r.Caller.User == nil {
		return false, nil
	}
	u, err := r.User()
	if err != nil {
		return false, err
	}
	return r.userSeesRate(t, u)
}

func (r *Request) visibleRate(id int64) (*Rate, error) {
	t, err := rateByID(r.ctx, r.S.DB.Q(), id)
	if err != nil {
		return nil, err
	}
	ok, err := r.seesRate(t)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "tariff %d is not yours", id)
	}
	return t, nil
}

// ownedRate is a tariff the actor manages (to change it or its entries).
func (r *Request) ownedRate(ctx context.Context, q db.Queryer, id int64) (*Rate, error) {
	t, err := rateByID(ctx, q, id)
	if err != nil {
		return nil, err
	}
	if err := r.mustManage(t.OwnerID, "tariff "+strconv.FormatInt(id, 10)); err != nil {
		return nil, err
	}
	return t, nil
}

func (s *Service) rateView(r *Request, t *Rate) (map[string]any, error) {
	x, err := s.viewerExchange(r, "")
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"id": t.ID, "name": t.Name, "bill_type": t.BillType, "is_public": t.IsPublic, "is_option": t.IsOption,
		"table name": t.TableName, "owner": t.Owner, "switch_price": t.SwitchPrice,
		"display_switch_price": x.display(t.SwitchPrice), "multiplier": t.Multiplier,
		"did_multiplier": t.DIDMultiplier, "description": t.Description,
	}, nil
}

// viewerExchange converts into the named currency, else that of the user the answer is
// about (the `username` target, else the caller), else the system's.
func (s *Service) viewerExchange(r *Request, code string) (exchange, error) {
	if code == "" {
		code = s.Config.Currency
		if r.Caller.User != nil {
			if u, err := r.User(); err == nil {
				code = u.Currency
			}
		}
	}
	x, err := s.exchange(r.ctx, code)
	if apierr.Code(err) == apierr.NotExist {
		return x, apierr.New(apierr.InvalidArgument, "currency: no currency %q", code)
	}
	return x, err
}

// getRatesList lists the tariffs the caller sees: their own (for administrators also the
// ones without an owner), the ones they may use or are on, and with all, those of the
// users they manage. is_public keeps the public ones; is_option, when given, keeps only
// options (true) or only tariffs (false).
func (s *Service) getRatesList(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	var list []Rate
	if err := s.DB.Q().Select(r.ctx, &list, rateSelect+` ORDER BY t.id`); err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for i := range list {
		t := &list[i]
		if r.Bool("is_public") && t.IsPublic == 0 || r.Has("is_option") && r.Bool("is_option") != (t.IsOption != 0) {
			continue
		}
		own := t.OwnerID.Valid && t.OwnerID.Int64 == actor.ID || !t.OwnerID.Valid && actor.AccessLevel >= keys.LevelAdmin
		show := own
		if !show && r.Bool("all") {
			if show, err = r.managesOwner(t.OwnerID); err != nil {
				return nil, err
			}
		}
		if !show {
			if show, err = r.userSeesRate(t, u); err != nil {
				return nil, err
			}
		}
		if !show {
			continue
		}
		v, err := s.rateView(r, t)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// getRatesInfo gets a tariff's parameters.
func (s *Service) getRatesInfo(r *Request) (any, error) {
	t, err := r.visibleRate(r.Int("id"))
	if err != nil {
		return nil, err
	}
	return s.rateView(r, t)
}

// rateFields validates addRates' and updateRates' optional fields.
func (s *Service) rateFields(r *Request, q db.Queryer) ([]string, []any, error) {
	var cols []string
	var vals []any
	set := func(c string, v any) { cols = append(cols, c); vals = append(vals, v) }
	if r.Has("name") {
		if n := r.Str("name"); n == "" || len(n) > 64 || hasControl(n) {
			return nil, nil, apierr.New(apierr.InvalidArgument, "name: 1 to 64 printable characters")
		}
		set("name", r.Str("name"))
	}
	if r.Has("bill_type") {
		if _, err := billTypeByName(r.ctx, q, r.Str("bill_type")); err != nil {
			return nil, nil, err
		}
		set("bill_type", r.Str("bill_type"))
	}
	for _, b := range []string{"is_option", "is_public"} {
		if r.Has(b) {
			set(b, boolInt(r.Bool(b)))
		}
	}
	if r.Has("switch_price") {
		if r.Money("switch_price") < 0 {
			return nil, nil, apierr.New(apierr.InvalidArgument, "switch_price: must not be negative")
		}
		set("switch_price", r.Money("switch_price"))
	}
	for _, m := range []string{"multiplier", "did_multiplier"} {
		if r.Has(m) {
			if r.Money(m) <= 0 {
				return nil, nil, apierr.New(apierr.InvalidArgument, "%s: must be positive", m)
			}
			set(m, r.Money(m))
		}
	}
	if r.Has("description") {
		if len(r.Str("description")) > 1024 {
			return nil, nil, apierr.New(apierr.InvalidArgument, "description: at most 1024 characters")
		}
		set("description", r.Str("description"))
	}
	return cols, vals, nil
}

// addRates adds a tariff owned by the call's user; costs are in the system currency.
func (s *Service) addRates(r *Request) (any, error) {
	owner, err := r.User()
	if err != nil {
		return nil, err
	}
	if len(r.Str("table")) > 64 || hasControl(r.Str("table")) {
		return nil, apierr.New(apierr.InvalidArgument, "table: at most 64 printable characters")
	}
	cols, vals, err := s.rateFields(r, s.DB.Q())
	if err != nil {
		return nil, err
	}
	cols = append(cols, "table_name", "owner_id")
	vals = append(vals, r.Str("table"), owner.ID)
	err = s.ratingTx(r, func(tx *db.Tx) error {
		_, err := tx.Insert(r.ctx, `INSERT INTO rates (`+join(cols, ", ")+`) VALUES (`+placeholders(len(cols))+`)`, vals...)
		return err
	})
	if err != nil {
		return nil, err
	}
	return true, nil
}

// updateRates updates a tariff's parameters.
func (s *Service) updateRates(r *Request) (any, error) {
	cols, vals, err := s.rateFields(r, s.DB.Q())
	if err != nil {
		return nil, err
	}
	if len(cols) == 0 {
		return nil, apierr.New(apierr.MissingArgument, "nothing to update")
	}
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		t, err := r.ownedRate(r.ctx, tx, r.Int("id"))
		if err != nil {
			return err
		}
		if r.Has("is_option") && r.Bool("is_option") != (t.IsOption != 0) {
			if n, err := rateUsers(r.ctx, tx, t.ID); err != nil || n > 0 {
				if err == nil {
					err = apierr.New(apierr.DataAbort, "tariff %d is in use: is_option cannot change", t.ID)
				}
				return err
			}
		}
		_, err = tx.Exec(r.ctx, `UPDATE rates SET `+join(cols, " = ?, ")+` = ? WHERE id = ?`, append(vals, t.ID)...)
		return err
	})
}

// rateUsers counts the users and SIP accounts on a tariff or option.
func rateUsers(ctx context.Context, q db.Queryer, id int64) (int, error) {
	var n int
	if err := q.Get(ctx, &n, `SELECT (SELECT count(*) FROM users WHERE rates_id = ?) +
		(SELECT count(*) FROM extensions WHERE rates_id = ?)`, id, id); err != nil {
		return 0, err
	}
	var opts []string
	if err := q.Select(ctx, &opts, `SELECT rates_options FROM extensions WHERE rates_options <> ''`); err != nil {
		return 0, err
	}
	for _, o := range opts {
		if slices.Contains(idList(o), id) {
			n++
		}
	}
	return n, nil
}

// deleteRates refuses (E_DATA_ABORT) while a user or SIP account is on the tariff; its
// entries go with it.
func (s *Service) deleteRates(r *Request) (any, error) {
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		t, err := r.ownedRate(r.ctx, tx, r.Int("id"))
		if err != nil {
			return err
		}
		n, err := rateUsers(r.ctx, tx, t.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			return apierr.New(apierr.DataAbort, "tariff %d is used by %d users or SIP accounts", t.ID, n)
		}
		if _, err := tx.Exec(r.ctx, `DELETE FROM rate_entries WHERE rates_id = ?`, t.ID); err != nil {
			return err
		}
		_, err = tx.Exec(r.ctx, `DELETE FROM rates WHERE id = ?`, t.ID)
		return err
	})
}

// switchRates puts a SIP account (or, without sip_extension, the user) on a tariff, or
// turns a tariff option on or off (state) for a SIP account: the user's first one when
// sip_extension is not given. Options are kept in the account's rates_options, first
// switched on first.
func (s *Service) switchRates(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	q := s.DB.Q()
	var ext *Extension
	if name := r.Str("sip_extension"); name != "" {
		if ext, err = r.ownedExtension(name); err != nil {
			return nil, err
		}
		if u, err = userByID(r.ctx, q, ext.UserID); err != nil {
			return nil, err
		}
	}
	t, err := rateByID(r.ctx, q, r.Int("id"))
	if err != nil {
		return nil, err
	}
	if ok, err := r.mayUseRate(t, u); err != nil {
		return nil, err
	} else if !ok {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "tariff %d is not allowed for %s", t.ID, u.Username)
	}
	if t.IsOption == 0 {
		if ext == nil {
			if u.RatesID.Valid && u.RatesID.Int64 == t.ID {
				return nil, apierr.New(apierr.AlreadyOnThisTariff, "%s is on tariff %d", u.Username, t.ID)
			}
			_, err = q.Exec(r.ctx, `UPDATE users SET rates_id = ? WHERE id = ?`, t.ID, u.ID)
			return nil, err
		}
		if ext.RatesID.Valid && ext.RatesID.Int64 == t.ID {
			return nil, apierr.New(apierr.AlreadyOnThisTariff, "%s is on tariff %d", ext.Extension, t.ID)
		}
		_, err = q.Exec(r.ctx, `UPDATE extensions SET rates_id = ? WHERE id = ?`, t.ID, ext.ID)
		return nil, err
	}
	if !r.Has("state") {
		return nil, apierr.New(apierr.MissingArgument, "state is obligatory for a tariff option")
	}
	if ext == nil {
		exts, err := extensionsOf(r.ctx, q, u.ID)
		if err != nil {
			return nil, err
		}
		if len(exts) == 0 {
			return nil, apierr.New(apierr.NotExist, "%s has no SIP account", u.Username)
		}
		ext = &exts[0]
	}
	// Read and write the option list in one transaction: two switches at once both count.
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		var current string
		if err := tx.Get(r.ctx, &current, `SELECT rates_options FROM extensions WHERE id = ?`+tx.ForUpdate(), ext.ID); err != nil {
			return err
		}
		opts := idList(current)
		on := slices.Contains(opts, t.ID)
		if on == r.Bool("state") {
			return apierr.New(apierr.AlreadyOnThisTariff, "option %d is already %s on %s", t.ID,
				map[bool]string{true: "on", false: "off"}[on], ext.Extension)
		}
		if r.Bool("state") {
			opts = append(opts, t.ID)
		} else {
			opts = slices.DeleteFunc(opts, func(id int64) bool { return id == t.ID })
		}
		_, err := tx.Exec(r.ctx, `UPDATE extensions SET rates_options = ? WHERE id = ?`, joinIDs(opts), ext.ID)
		return err
	})
}

// entryRow is a tariff entry with its direction's and route's names.
type entryRow struct {
	DirectionID int64       `db:"direction_id"`
	Direction   string      `db:"direction"`
	Priority    int         `db:"priority"`
	Cost        money.Micro `db:"cost"`
	RouteID     int64       `db:"route_id"`
	Route       string      `db:"route"`
}

func rateEntries(ctx context.Context, q db.Queryer, id int64) ([]entryRow, error) {
	var rows []entryRow
	err := q.Select(ctx, &rows, `SELECT e.direction_id, COALESCE((SELECT d.name FROM directions d WHERE d.id = e.direction_id
		ORDER BY d.code LIMIT 1), '') AS direction, e.priority, e.cost, e.route_id, COALESCE(rt.name, '') AS route
		FROM rate_entries e LEFT JOIN routes rt ON rt.id = e.route_id WHERE e.rates_id = ?
		ORDER BY e.direction_id, e.priority`, id)
	return rows, err
}

// rateEntriesPage is rateEntries for `limit` directions after skipping `offset`, by
// direction id, of those with a name containing search (every one when search is empty).
// The page of direction ids is chosen first, on the entries' primary key (rates_id,
// direction_id, priority), then its entries are read by that key: CROSS JOIN keeps
// SQLite's planner from scanning the whole tariff and probing the page instead.
func rateEntriesPage(ctx context.Context, q db.Queryer, id, limit, offset int64, search string) ([]entryRow, error) {
	filter, args := ``, []any{id}
	if search != "" {
		filter = ` AND EXISTS (SELECT 1 FROM directions d WHERE d.id = e.direction_id AND LOWER(d.name) LIKE ? ESCAPE '\')`
		args = append(args, likePattern(search))
	}
	args = append(args, limit, offset, id)
	var rows []entryRow
	err := q.Select(ctx, &rows, `WITH page AS (SELECT DISTINCT e.direction_id FROM rate_entries e WHERE e.rates_id = ?`+filter+`
		ORDER BY e.direction_id LIMIT ? OFFSET ?)
		SELECT e.direction_id, COALESCE((SELECT d.name FROM directions d WHERE d.id = e.direction_id
		ORDER BY d.code LIMIT 1), '') AS direction, e.priority, e.cost, e.route_id, COALESCE(rt.name, '') AS route
		FROM page p CROSS JOIN rate_entries e LEFT JOIN routes rt ON rt.id = e.route_id
		WHERE e.rates_id = ? AND e.direction_id = p.direction_id ORDER BY e.direction_id, e.priority`, args...)
	return rows, err
}

// entriesView groups entries by direction as getRates and getCurrentRates answer: one
// object per direction with the reference's {"<direction ID>": "<name>"} pair, plus id
// and direction, and its routing list in priority order. cost is in the system currency
// (per minute), displaycost in the viewer's, rounded to cents.
func entriesView(rows []entryRow, x exchange, multiplier func(entryRow) money.Micro) []map[string]any {
	out := []map[string]any{}
	var cur map[string]any
	var routing []map[string]any
	for i, e := range rows {
		if i == 0 || e.DirectionID != rows[i-1].DirectionID {
			if cur != nil {
				cur["routing"] = routing
				out = append(out, cur)
			}
			id := strconv.FormatInt(e.DirectionID, 10)
			cur = map[string]any{id: e.Direction, "id": e.DirectionID, "direction": e.Direction}
			routing = nil
		}
		cost := e.Cost
		if multiplier != nil {
			cost = money.Micro(money.MulDiv(int64(e.Cost), int64(multiplier(e)), int64(money.One)))
		}
		routing = append(routing, map[string]any{"routename": e.Route, "route": e.RouteID, "priority": e.Priority,
			"cost": cost, "displaycost": x.display(cost)})
	}
	if cur != nil {
		cur["routing"] = routing
		out = append(out, cur)
	}
	return out
}

// getRates lists a tariff's entries as stored (cost per minute before the multiplier), a
// page of directions at a time when asked (offset, limit, search).
func (s *Service) getRates(r *Request) (any, error) {
	t, err := r.visibleRate(r.Int("id"))
	if err != nil {
		return nil, err
	}
	limit, offset, err := r.page(math.MaxInt32)
	if err != nil {
		return nil, err
	}
	x, err := s.viewerExchange(r, "")
	if err != nil {
		return nil, err
	}
	var rows []entryRow
	if !r.Has("limit") && offset == 0 && r.Str("search") == "" {
		rows, err = rateEntries(r.ctx, s.DB.Q(), t.ID) // the whole tariff, as before paging
	} else {
		rows, err = rateEntriesPage(r.ctx, s.DB.Q(), t.ID, limit, offset, r.Str("search"))
	}
	if err != nil {
		return nil, err
	}
	return entriesView(rows, x, nil), nil
}

// currentTariff is the tariff the user's calls use: the first SIP account's, else the
// user's; and the account's options.
func currentTariff(ctx context.Context, q db.Queryer, u *User) (base int64, options []int64, err error) {
	exts, err := extensionsOf(ctx, q, u.ID)
	if err != nil {
		return 0, nil, err
	}
	if u.RatesID.Valid {
		base = u.RatesID.Int64
	}
	if len(exts) > 0 {
		if exts[0].RatesID.Valid {
			base = exts[0].RatesID.Int64
		}
		options = idList(exts[0].RatesOptions)
	}
	return base, options, nil
}

// getCurrentRates lists what the caller's calls cost: the entries of their tariff with the
// options switched on overriding it per direction (first option first), cost multiplied by
// the tariff's multiplier. An anonymous caller sees the default public tariff: the public
// tariff (not an option) with the lowest id. displaycost is in `currency`, else the
// caller's currency.
func (s *Service) getCurrentRates(r *Request) (any, error) {
	q := s.DB.Q()
	x, err := s.viewerExchange(r, r.Str("currency"))
	if err != nil {
		return nil, err
	}
	var base int64
	var options []int64
	if r.Caller.User != nil {
		u, err := r.User()
		if err != nil {
			return nil, err
		}
		if base, options, err = currentTariff(r.ctx, q, u); err != nil {
			return nil, err
		}
	} else {
		var ids []int64
		if err := q.Select(r.ctx, &ids, `SELECT id FROM rates WHERE is_public = 1 AND is_option = 0 ORDER BY id LIMIT 1`); err != nil {
			return nil, err
		}
		if len(ids) > 0 {
			base = ids[0]
		}
	}
	if base == 0 && len(options) == 0 {
		return []map[string]any{}, nil
	}
	mult := map[int64]money.Micro{}
	byDir := map[int64][]entryRow{}
	from := map[int64]int64{} // direction → the tariff whose entries it uses
	var order []int64
	for _, id := range append(slices.Clone(options), base) {
		if id == 0 {
			continue
		}
		t, err := rateByID(r.ctx, q, id)
		if apierr.Code(err) == apierr.NotExist {
			continue // a deleted option
		} else if err != nil {
			return nil, err
		}
		mult[id] = t.Multiplier
		rows, err := rateEntries(r.ctx, q, id)
		if err != nil {
			return nil, err
		}
		for _, e := range rows {
			if owner, ok := from[e.DirectionID]; ok && owner != id {
				continue
			}
			if _, ok := from[e.DirectionID]; !ok {
				order = append(order, e.DirectionID)
			}
			from[e.DirectionID] = id
			byDir[e.DirectionID] = append(byDir[e.DirectionID], e)
		}
	}
	slices.Sort(order)
	var rows []entryRow
	for _, d := range order {
		rows = append(rows, byDir[d]...)
	}
	return entriesView(rows, x, func(e entryRow) money.Micro { return mult[from[e.DirectionID]] }), nil
}

// directionExists checks a direction id against the directions table.
func directionExists(ctx context.Context, q db.Queryer, id int64) error {
	var n int
	if err := q.Get(ctx, &n, `SELECT count(*) FROM directions WHERE id = ?`, id); err != nil {
		return err
	}
	if n == 0 {
		return apierr.New(apierr.NotExist, "no direction %d", id)
	}
	return nil
}

// entryChange is one tariff entry to add or change (addDirection, updateDirection and the
// elements of updateDirections). Has* tell which fields were given.
type entryChange struct {
	Direction, Prior, Route, Priority int64
	Cost                              money.Micro
	HasCost, HasRoute, HasPriority    bool
}

func (c entryChange) check() error {
	switch {
	case c.Direction < 1:
		return apierr.New(apierr.InvalidArgument, "direction: want a direction id")
	case c.Prior < 1:
		return apierr.New(apierr.InvalidArgument, "prior: 1 or more")
	case c.HasCost && c.Cost < 0:
		return apierr.New(apierr.InvalidArgument, "cost: must not be negative")
	case c.HasPriority && c.Priority < 1:
		return apierr.New(apierr.InvalidArgument, "priority: 1 or more")
	}
	return nil
}

// applyEntry adds (insert) or changes the entry (rates, Direction, Prior) in tx.
func (r *Request) applyEntry(tx *db.Tx, rates int64, c entryChange, insert bool) error {
	if err := c.check(); err != nil {
		return err
	}
	ctx := r.ctx
	if c.HasRoute {
		if _, _, err := r.usableRoute(ctx, tx, c.Route); err != nil {
			return err
		}
	}
	if insert {
		if !c.HasCost || !c.HasRoute {
			return apierr.New(apierr.MissingArgument, "cost and route are obligatory for a new entry")
		}
		if err := directionExists(ctx, tx, c.Direction); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES (?, ?, ?, ?, ?)`,
			rates, c.Direction, c.Prior, c.Cost, c.Route)
		if errors.Is(err, db.ErrConflict) {
			return apierr.New(apierr.DataAbort, "tariff %d has direction %d with priority %d", rates, c.Direction, c.Prior)
		}
		return err
	}
	var cols []string
	var vals []any
	if c.HasCost {
		cols, vals = append(cols, "cost"), append(vals, c.Cost)
	}
	if c.HasRoute {
		cols, vals = append(cols, "route_id"), append(vals, c.Route)
	}
	if c.HasPriority {
		cols, vals = append(cols, "priority"), append(vals, c.Priority)
	}
	if len(cols) == 0 {
		return apierr.New(apierr.MissingArgument, "nothing to update (cost, route, priority)")
	}
	res, err := tx.Exec(ctx, `UPDATE rate_entries SET `+join(cols, " = ?, ")+` = ? WHERE rates_id = ? AND direction_id = ? AND priority = ?`,
		append(vals, rates, c.Direction, c.Prior)...)
	if errors.Is(err, db.ErrConflict) {
		return apierr.New(apierr.DataAbort, "tariff %d has direction %d with priority %d", rates, c.Direction, c.Priority)
	} else if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return apierr.New(apierr.NotExist, "tariff %d has no direction %d with priority %d", rates, c.Direction, c.Prior)
	}
	return nil
}

// addDirection adds an entry to a tariff: direction, cost per minute (system currency),
// route and priority. An existing (direction, priority) is E_DATA_ABORT.
func (s *Service) addDirection(r *Request) (any, error) {
	c := entryChange{Direction: r.Int("direction"), Prior: r.Int("priority"), Cost: r.Money("cost"), Route: r.Int("route"),
		HasCost: true, HasRoute: true}
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		if _, err := r.ownedRate(r.ctx, tx, r.Int("rates")); err != nil {
			return err
		}
		return r.applyEntry(tx, r.Int("rates"), c, true)
	})
}

// updateDirection changes the entry (rates, direction, prior): cost, route, priority.
func (s *Service) updateDirection(r *Request) (any, error) {
	c := entryChange{Direction: r.Int("direction"), Prior: r.Int("prior"),
		Cost: r.Money("cost"), HasCost: r.Has("cost"), Route: r.Int("route"), HasRoute: r.Has("route"),
		Priority: r.Int("priority"), HasPriority: r.Has("priority")}
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		if _, err := r.ownedRate(r.ctx, tx, r.Int("rates")); err != nil {
			return err
		}
		return r.applyEntry(tx, r.Int("rates"), c, false)
	})
}

// updateDirections applies a JSON array of updateDirection objects
// ({"direction":…, "prior":…, "cost":…, "route":…, "priority":…}; numbers or strings) in
// one transaction: an element naming an entry that does not exist adds it (cost and route
// then obligatory). One bad element changes nothing and names its index.
func (s *Service) updateDirections(r *Request) (any, error) {
	changes, err := parseEntryChanges(r.Str("directions"))
	if err != nil {
		return nil, err
	}
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		rates := r.Int("rates")
		if _, err := r.ownedRate(r.ctx, tx, rates); err != nil {
			return err
		}
		for i, c := range changes {
			var n int
			if err := tx.Get(r.ctx, &n, `SELECT count(*) FROM rate_entries WHERE rates_id = ? AND direction_id = ? AND priority = ?`,
				rates, c.Direction, c.Prior); err != nil {
				return err
			}
			if err := r.applyEntry(tx, rates, c, n == 0); err != nil {
				var ae *apierr.Error
				if errors.As(err, &ae) {
					return apierr.New(ae.Code, "directions[%d]: %s", i, ae.Message)
				}
				return err
			}
		}
		return nil
	})
}

// maxEntryChanges bounds one updateDirections call.
const maxEntryChanges = 100_000

func parseEntryChanges(text string) ([]entryChange, error) {
	var raw []map[string]any
	dec := jsonDecoder(text)
	if err := dec.Decode(&raw); err != nil {
		return nil, apierr.New(apierr.InvalidArgument, "directions: want a JSON array of objects: %v", err)
	}
	if len(raw) > maxEntryChanges {
		return nil, apierr.New(apierr.InvalidArgument, "directions: at most %d elements", maxEntryChanges)
	}
	out := make([]entryChange, len(raw))
	for i, o := range raw {
		bad := func(field string) error {
			return apierr.New(apierr.InvalidArgument, "directions[%d]: %s is not a valid number", i, field)
		}
		num := func(field string) (money.Micro, bool, error) {
			v, ok := o[field]
			if !ok || v == nil {
				return 0, false, nil
			}
			var s string
			switch x := v.(type) {
			case string:
				s = x
			case interface{ String() string }:
				s = x.String()
			default:
				return 0, false, bad(field)
			}
			m, err := money.Parse(s)
			if err != nil {
				return 0, false, bad(field)
			}
			return m, true, nil
		}
		whole := func(field string, def int64) (int64, bool, error) {
			m, ok, err := num(field)
			if err != nil || !ok {
				return def, ok, err
			}
			if m%money.One != 0 {
				return 0, false, bad(field)
			}
			return int64(m / money.One), true, nil
		}
		c := &out[i]
		var err error
		var ok bool
		if c.Direction, ok, err = whole("direction", 0); err != nil {
			return nil, err
		} else if !ok {
			return nil, apierr.New(apierr.MissingArgument, "directions[%d]: direction is obligatory", i)
		}
		if c.Prior, _, err = whole("prior", 1); err != nil {
			return nil, err
		}
		if c.Route, c.HasRoute, err = whole("route", 0); err != nil {
			return nil, err
		}
		if c.Priority, c.HasPriority, err = whole("priority", 0); err != nil {
			return nil, err
		}
		if c.Cost, c.HasCost, err = num("cost"); err != nil {
			return nil, err
		}
		if err := c.check(); err != nil {
			return nil, apierr.New(apierr.InvalidArgument, "directions[%d]: %s", i, err.(*apierr.Error).Message)
		}
	}
	return out, nil
}

// deleteDirection deletes a direction from a tariff.
func (s *Service) deleteDirection(r *Request) (any, error) {
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		if _, err := r.ownedRate(r.ctx, tx, r.Int("rates")); err != nil {
			return err
		}
		res, err := tx.Exec(r.ctx, `DELETE FROM rate_entries WHERE rates_id = ? AND direction_id = ? AND priority = ?`,
			r.Int("rates"), r.Int("direction"), r.Int("prior"))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return apierr.New(apierr.NotExist, "tariff %d has no direction %d with priority %d", r.Int("rates"), r.Int("direction"), r.Int("prior"))
		}
		return nil
	})
}

// updateMarkup multiplies every cost of a tariff by markup, exactly, rounding each entry
// half-up to a micro-unit.
func (s *Service) updateMarkup(r *Request) (any, error) {
	markup := r.Money("markup")
	if markup <= 0 {
		return nil, apierr.New(apierr.InvalidArgument, "markup: must be positive")
	}
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		t, err := r.ownedRate(r.ctx, tx, r.Int("rates"))
		if err != nil {
			return err
		}
		// One statement when no product can overflow (costs are never negative, so integer
		// division rounds the +0.5 down: half-up); else entry by entry in big integers.
		var top int64
		if err := tx.Get(r.ctx, &top, `SELECT COALESCE(MAX(cost), 0) FROM rate_entries WHERE rates_id = ?`, t.ID); err != nil {
			return err
		}
		if top <= (math.MaxInt64-int64(money.One)/2)/int64(markup) {
			_, err := tx.Exec(r.ctx, `UPDATE rate_entries SET cost = (cost * ? + ?) / ? WHERE rates_id = ?`,
				int64(markup), int64(money.One)/2, int64(money.One), t.ID)
			return err
		}
		var rows []struct {
			Direction int64       `db:"direction_id"`
			Priority  int64       `db:"priority"`
			Cost      money.Micro `db:"cost"`
		}
		if err := tx.Select(r.ctx, &rows, `SELECT direction_id, priority, cost FROM rate_entries WHERE rates_id = ?`+tx.ForUpdate(), t.ID); err != nil {
			return err
		}
		for _, e := range rows {
			cost := money.MulDiv(int64(e.Cost), int64(markup), int64(money.One))
			if _, err := tx.Exec(r.ctx, `UPDATE rate_entries SET cost = ? WHERE rates_id = ? AND direction_id = ? AND priority = ?`,
				cost, t.ID, e.Direction, e.Priority); err != nil {
				return err
			}
		}
		return nil
	})
}

// copyDirections copies the entries of the caller's current tariff (see getCurrentRates;
// options not included) into the tariff `rates`, which the caller must manage: an entry
// with the same direction and priority is overwritten, other entries of the target stay.
func (s *Service) copyDirections(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	base, _, err := currentTariff(r.ctx, s.DB.Q(), u)
	if err != nil {
		return nil, err
	}
	if base == 0 {
		return nil, apierr.New(apierr.NotExist, "%s is on no tariff", u.Username)
	}
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		t, err := r.ownedRate(r.ctx, tx, r.Int("rates"))
		if err != nil {
			return err
		}
		if t.ID == base {
			return apierr.New(apierr.InvalidArgument, "rates: %d is the current tariff itself", base)
		}
		_, err = tx.Exec(r.ctx, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id)
			SELECT ?, direction_id, priority, cost, route_id FROM rate_entries WHERE rates_id = ?
			ON CONFLICT (rates_id, direction_id, priority) DO UPDATE SET cost = excluded.cost, route_id = excluded.route_id`,
			t.ID, base)
		return err
	})
}

func jsonDecoder(text string) *json.Decoder {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	return dec
}

func join(parts []string, sep string) string { return strings.Join(parts, sep) }

func placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }
