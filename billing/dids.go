package billing

import (
	"context"
	"database/sql"
	"errors"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/lua"
	"github.com/narayana/narayanad/money"
)

// didMethods declares the methods whose handlers are in this file: the reference's "Direct
// numbers".
func (s *Service) didMethods() []Method {
	return []Method{
		method("getDisaDIDList", 0, s.getDisaDIDList).
			Doc("list the DISA numbers", "the DISA numbers"),
		method("updateDIDState", 1, s.updateDIDState, "did:string!",
			"parameter:ustring{autorenew,enabled}=autorenew", "state:bool!").
			Doc("turn a direct number's autorenew or enabled state on or off", "true"),
		method("getDIDPool", 1, s.getDIDPool, "country:string", "area:string", "search_pattern:string").
			Doc("browse the direct number pool: countries, areas or numbers", "the countries, the areas of a country or the numbers of an area"),
		method("orderDID", 1, s.orderDID, "pool_id:int!", "did:string!", "arg1:string", "arg2:string",
			"arg3:string").
			Doc("order a direct number", "true"),
		method("getDIDList", 1, s.getDIDList, "sort_by:ustring{expiration,cost,did}=expiration",
			"own:bool=true", "offset:int=0", "limit:int", "search:string").
			Doc("list the direct numbers: `limit` (all when absent) after skipping `offset`, those containing "+
				"`search` when given", "the direct numbers"),
		method("addDID", 22, s.addDID, "did:string!", "owner:string", "comment:string", "cost:money=0",
			"expiration:string", "pool_id:int", "disa:bool").
			Doc("add a direct number", "true"),
		method("updateDID", 22, s.updateDID, "did:string!", "owner:string", "comment:string", "cost:money",
			"expiration:string", "pool_id:int", "disa:bool").
			Doc("update a direct number's parameters", "true"),
		method("deleteDID", 22, s.deleteDID, "did:string!").
			Doc("delete a direct number", "true"),
		method("getDIDInfo", 22, s.getDIDInfo, "did:string!").
			Doc("get a direct number's data", "the direct number's data"),
		method("renewDID", 22, s.renewDID, "did:string!").
			Doc("prolong a direct number's rent", "true"),
		method("addDIDPool", 33, s.addDIDPool, "country:string!", "area:string!", "cost:money=0",
			"installcost:money=0", "provider:string=local", "user:string", "pass:string", "param1:string",
			"param2:string", "param3:string", "qty:int=100").
			Doc("add a direct number pool", "true"),
		method("updateDIDPool", 33, s.updateDIDPool, "id:int!", "country:string", "area:string",
			"cost:money", "installcost:money", "provider:string", "user:string", "pass:string",
			"param1:string", "param2:string", "param3:string", "qty:int").
			Doc("update a direct number pool's parameters", "true"),
		method("getDIDPools", 33, s.getDIDPools).
			Doc("list the direct number pools", "the direct number pools"),
		method("getDIDPoolInfo", 33, s.getDIDPoolInfo, "id:int!").
			Doc("get a direct number pool's data", "the pool's data"),
		method("deleteDIDPool", 33, s.deleteDIDPool, "id:int!").
			Doc("delete a direct number pool", "true"),
		method("getDIDCount", 50, s.getDIDCount, "did:string!").
			Doc("check whether a direct number exists", "the number of direct numbers found"),
	}
}

// providerLocal is the pool provider that sells numbers already in the dids table
// without an owner. Any other provider is the name of a Lua "did" handler.
const providerLocal = "local"

// DID is a row of the dids table with its owner's name.
//
// Ownership: a DID belongs to its owner's managers (the one rule, r.managesOwner); a DID
// without an owner (stock of a local pool, or released) belongs to the administrators.
type DID struct {
	DID         string        `db:"did"`
	OwnerID     sql.NullInt64 `db:"owner_id"`
	Owner       string        `db:"owner"`
	PoolID      sql.NullInt64 `db:"pool_id"`
	Comment     string        `db:"comment"`
	Cost        money.Micro   `db:"cost"`
	Expiration  int64         `db:"expiration"`
	Enabled     int           `db:"enabled"`
	AutoRenew   int           `db:"auto_renew"`
	RenewNotify int           `db:"renew_notify"`
	DISA        int           `db:"disa"`
}

const didSelect = `SELECT d.did, d.owner_id, COALESCE(u.username, '') AS owner, d.pool_id, d.comment, d.cost,
	d.expiration, d.enabled, d.auto_renew, d.renew_notify, d.disa FROM dids d LEFT JOIN users u ON u.id = d.owner_id`

// didNumber normalises a DID as the rating does (spaces, '-', a leading '+' or "00").
func didNumber(s string) string { return rating.Normalize(strings.TrimSpace(s)) }

var didRE = regexp.MustCompile(`^[0-9]{3,20}$`)

func didByNumber(ctx context.Context, q db.Queryer, number string) (*DID, error) {
	var d DID
	err := q.Get(ctx, &d, didSelect+` WHERE d.did = ?`, didNumber(number))
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no DID %q", number)
	}
	return &d, err
}

// ownedDID is a DID the actor manages: E_NOT_EXIST or E_DOES_NOT_BELONG_TO_YOU otherwise.
func (r *Request) ownedDID(q db.Queryer, number string) (*DID, error) {
	d, err := didByNumber(r.ctx, q, number)
	if err != nil {
		return nil, err
	}
	if err := r.mustManage(d.OwnerID, "DID "+d.DID); err != nil {
		return nil, err
	}
	return d, nil
}

// view is a DID as getDIDList and getDIDInfo show it; times are UTC, as addDID takes them.
func (d *DID) view(x exchange) map[string]any {
	v := map[string]any{
		"did": d.DID, "owner": d.Owner, "comment": d.Comment, "cost": d.Cost, "displaycost": x.display(d.Cost),
		"expiration": formatTime(d.Expiration, 0), "enabled": d.Enabled, "auto_renew": d.AutoRenew,
		"renew_notify": d.RenewNotify, "disa": d.DISA, "pool": nil,
	}
	if d.PoolID.Valid {
		v["pool"] = d.PoolID.Int64
	}
	return v
}

// parseExpiration reads YYYY-MM-DD HH:MM:SS (UTC); "" is no expiration (0).
func parseExpiration(s string) (int64, error) {
	if strings.TrimSpace(s) == "" {
		return 0, nil
	}
	t, err := time.ParseInLocation(timeLayout, strings.TrimSpace(s), time.UTC)
	if err != nil {
		return 0, apierr.New(apierr.InvalidArgument, "expiration: want YYYY-MM-DD HH:MM:SS, got %q", s)
	}
	return t.Unix(), nil
}

// nextMonth is the expiration after paying one more month: a month after the current
// expiration, or after now when the DID has already expired (or never had one).
func nextMonth(expiration int64, now time.Time) int64 {
	from := time.Unix(expiration, 0).UTC()
	if expiration == 0 || from.Before(now) {
		from = now.UTC()
	}
	return from.AddDate(0, 1, 0).Unix()
}

// getDisaDIDList(0): the enabled DIDs marked as DISA access numbers, with their comments.
func (s *Service) getDisaDIDList(r *Request) (any, error) {
	var rows []struct {
		DID     string `db:"did"`
		Comment string `db:"comment"`
	}
	if err := s.DB.Q().Select(r.ctx, &rows, `SELECT did, comment FROM dids WHERE disa = 1 AND enabled = 1 ORDER BY did`); err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(rows))
	for i, d := range rows {
		out[i] = map[string]any{"did": d.DID, "comment": d.Comment}
	}
	return out, nil
}

// updateDIDState(1) switches a DID's auto-renewal or its enabled flag. An expired DID
// (maintenance disables one whose owner could not pay) is enabled only by renewDID,
// so that switching it on never skips the rent: E_DATA_ABORT.
func (s *Service) updateDIDState(r *Request) (any, error) {
	d, err := r.ownedDID(s.DB.Q(), r.Str("did"))
	if err != nil {
		return nil, err
	}
	col := "auto_renew"
	if r.Str("parameter") == "enabled" {
		col = "enabled"
		if r.Bool("state") && d.Expiration > 0 && d.Expiration < time.Now().Unix() {
			return nil, apierr.New(apierr.DataAbort, "DID %s expired on %s: renew it", d.DID, formatTime(d.Expiration, 0))
		}
	}
	_, err = s.DB.Q().Exec(r.ctx, `UPDATE dids SET `+col+` = ? WHERE did = ?`, boolInt(r.Bool("state")), d.DID)
	return nil, err
}

// getDIDList(1): the user's DIDs (own=true) or every DID the caller manages (own=false,
// for administrators also the unowned stock), sorted by expiration, cost or number.
func (s *Service) getDIDList(r *Request) (any, error) {
	_, x, err := s.viewer(r)
	if err != nil {
		return nil, err
	}
	var dids []DID
	if r.Bool("own") {
		u, err := r.User()
		if err != nil {
			return nil, err
		}
		err = s.DB.Q().Select(r.ctx, &dids, didSelect+` WHERE d.owner_id = ?`, u.ID)
		if err != nil {
			return nil, err
		}
	} else {
		var all []DID
		if err := s.DB.Q().Select(r.ctx, &all, didSelect); err != nil {
			return nil, err
		}
		seen := map[int64]bool{}
		for _, d := range all {
			key := int64(-1)
			if d.OwnerID.Valid {
				key = d.OwnerID.Int64
			}
			mine, known := seen[key]
			if !known {
				if mine, err = r.managesOwner(d.OwnerID); err != nil {
					return nil, err
				}
				seen[key] = mine
			}
			if mine {
				dids = append(dids, d)
			}
		}
	}
	sort.SliceStable(dids, func(i, j int) bool {
		a, b := dids[i], dids[j]
		switch r.Str("sort_by") {
		case "cost":
			if a.Cost != b.Cost {
				return a.Cost < b.Cost
			}
		case "expiration":
			if a.Expiration != b.Expiration {
				return a.Expiration < b.Expiration
			}
		}
		return a.DID < b.DID
	})
	if search := r.Str("search"); search != "" {
		dids = slices.DeleteFunc(dids, func(d DID) bool { return !strings.Contains(d.DID, search) })
	}
	if dids, err = pageOf(r, dids); err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(dids))
	for i := range dids {
		out[i] = dids[i].view(x)
	}
	return out, nil
}

// didFields validates the optional fields shared by addDID and updateDID. Costs are in
// the caller's currency. disa (an addition: the reference has no way to mark DISA access
// numbers) is for administrators only, since DISA numbers are listed to everyone.
func (s *Service) didFields(r *Request, actor *User) ([]string, []any, error) {
	var cols []string
	var vals []any
	set := func(c string, v any) { cols = append(cols, c); vals = append(vals, v) }
	if r.Has("comment") {
		if len(r.Str("comment")) > 255 || hasControl(r.Str("comment")) {
			return nil, nil, apierr.New(apierr.InvalidArgument, "comment: at most 255 printable characters")
		}
		set("comment", r.Str("comment"))
	}
	if r.Has("cost") {
		if r.Money("cost") < 0 {
			return nil, nil, apierr.New(apierr.InvalidArgument, "cost must not be negative")
		}
		x, err := s.exchange(r.ctx, actor.Currency)
		if err != nil {
			return nil, nil, err
		}
		set("cost", x.toSystem(r.Money("cost")))
	}
	if r.Has("expiration") {
		exp, err := parseExpiration(r.Str("expiration"))
		if err != nil {
			return nil, nil, err
		}
		set("expiration", exp)
		set("renew_notify", 0)
	}
	if r.Has("pool_id") {
		if id := r.Int("pool_id"); id == 0 {
			set("pool_id", nil)
		} else {
			if _, err := poolByID(r.ctx, s.DB.Q(), id); err != nil {
				return nil, nil, err
			}
			set("pool_id", id)
		}
	}
	if r.Has("disa") {
		if actor.AccessLevel < keys.LevelAdmin {
			return nil, nil, apierr.New(apierr.InsufficientAccess, "only administrators mark DISA numbers")
		}
		set("disa", boolInt(r.Bool("disa")))
	}
	return cols, vals, nil
}

// didOwner resolves the owner argument: a user the caller manages, or none ("") for
// the unowned stock, which only administrators keep.
func (r *Request) didOwner(name string) (sql.NullInt64, error) {
	if name == "" {
		ok, err := r.managesOwner(sql.NullInt64{})
		if err != nil {
			return sql.NullInt64{}, err
		}
		if !ok {
			return sql.NullInt64{}, apierr.New(apierr.DoesNotBelongToYou, "only administrators keep DIDs without an owner")
		}
		return sql.NullInt64{}, nil
	}
	u, err := r.Owned(name)
	if err != nil {
		return sql.NullInt64{}, err
	}
	return sql.NullInt64{Int64: u.ID, Valid: true}, nil
}

// addDID(22) adds a number. Without owner it is unowned stock (administrators only),
// which a local pool (pool_id, an addition) sells through orderDID. Without expiration
// it never expires. Adding charges nothing: ordering and renewing do.
func (s *Service) addDID(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	number := didNumber(r.Str("did"))
	if !didRE.MatchString(number) {
		return nil, apierr.New(apierr.InvalidArgument, "did: 3 to 20 digits")
	}
	owner, err := r.didOwner(r.Str("owner"))
	if err != nil {
		return nil, err
	}
	cols, vals, err := s.didFields(r, actor)
	if err != nil {
		return nil, err
	}
	cols = append(cols, "did", "owner_id")
	vals = append(vals, number, owner)
	_, err = s.DB.Q().Exec(r.ctx, `INSERT INTO dids (`+strings.Join(cols, ", ")+`) VALUES (?`+strings.Repeat(", ?", len(cols)-1)+`)`, vals...)
	if errors.Is(err, db.ErrConflict) {
		return nil, apierr.New(apierr.DataAbort, "DID %s exists", number)
	}
	return nil, err
}

// updateDID(22) changes a number the caller manages; a new owner must be one too, and an
// empty owner returns the number to the unowned stock (administrators only).
func (s *Service) updateDID(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	d, err := r.ownedDID(s.DB.Q(), r.Str("did"))
	if err != nil {
		return nil, err
	}
	cols, vals, err := s.didFields(r, actor)
	if err != nil {
		return nil, err
	}
	if r.Has("owner") {
		owner, err := r.didOwner(r.Str("owner"))
		if err != nil {
			return nil, err
		}
		cols, vals = append(cols, "owner_id"), append(vals, owner)
	}
	if len(cols) == 0 {
		return nil, nil
	}
	_, err = s.DB.Q().Exec(r.ctx, `UPDATE dids SET `+strings.Join(cols, " = ?, ")+` = ? WHERE did = ?`, append(vals, d.DID)...)
	return nil, err
}

// deleteDID(22) deletes a number and its DIDTables rules; nothing is refunded.
func (s *Service) deleteDID(r *Request) (any, error) {
	d, err := r.ownedDID(s.DB.Q(), r.Str("did"))
	if err != nil {
		return nil, err
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(r.ctx, `DELETE FROM did_rules WHERE did = ?`, d.DID); err != nil {
			return err
		}
		_, err := tx.Exec(r.ctx, `DELETE FROM dids WHERE did = ?`, d.DID)
		return err
	})
}

// getDIDInfo gets a direct number's data.
func (s *Service) getDIDInfo(r *Request) (any, error) {
	d, err := r.ownedDID(s.DB.Q(), r.Str("did"))
	if err != nil {
		return nil, err
	}
	_, x, err := s.viewer(r)
	if err != nil {
		return nil, err
	}
	return d.view(x), nil
}

// charge takes amount (system currency) from an account for a DID inside tx: refused
// when the account's financial transactions are locked (refill_allowed 0) or when
// balance + overdraft − the reservations of open calls cannot pay it.
func chargeDID(ctx context.Context, tx *db.Tx, account int64, amount money.Micro, number, comment string, by int64) error {
	acc, err := lockAccounts(ctx, tx, account)
	if err != nil {
		return err
	}
	a := acc[account]
	if a.RefillAllowed == refillForbidden {
		return apierr.New(apierr.TransactionsLocked, "financial transactions of account %d are forbidden", account)
	}
	if amount <= 0 {
		return nil // nothing to pay, no ledger row
	}
	avail, err := spendable(ctx, tx, a)
	if err != nil {
		return err
	}
	if avail < amount {
		return apierr.New(apierr.InsufficientMoney, "account %d cannot pay %s", account, amount)
	}
	err = post(ctx, tx, account, -amount, KindDID, "did:"+number, comment, by)
	return err
}

// renewDID(22) pays one more month of a number the caller manages from its owner's
// account (the DID's cost) and moves its expiration a month on (from now when it has
// already expired), enabling it again (maintenance disables a DID it could not renew).
// The provider is not told: renewals are the billing's business.
func (s *Service) renewDID(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	d, err := r.ownedDID(s.DB.Q(), r.Str("did"))
	if err != nil {
		return nil, err
	}
	if !d.OwnerID.Valid {
		return nil, apierr.New(apierr.DataAbort, "DID %s has no owner to pay for it", d.DID)
	}
	owner, err := userByID(r.ctx, s.DB.Q(), d.OwnerID.Int64)
	if err != nil {
		return nil, err
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		var cur DID
		if err := tx.Get(r.ctx, &cur, `SELECT did, cost, expiration FROM dids WHERE did = ?`+tx.ForUpdate(), d.DID); err != nil {
			if db.IsNotFound(err) {
				return apierr.New(apierr.NotExist, "no DID %s", d.DID)
			}
			return err
		}
		if err := chargeDID(r.ctx, tx, owner.Number, cur.Cost, cur.DID, "DID "+cur.DID+" renewal", actor.ID); err != nil {
			return err
		}
		_, err := tx.Exec(r.ctx, `UPDATE dids SET expiration = ?, enabled = 1, renew_notify = 0 WHERE did = ?`,
			nextMonth(cur.Expiration, time.Now()), cur.DID)
		return err
	})
}

// getDIDCount(50): how many numbers equal did (0 or 1), whatever their state: Asterisk
// asks it to know whether a called number is one of ours.
func (s *Service) getDIDCount(r *Request) (any, error) {
	var n int64
	err := s.DB.Q().Get(r.ctx, &n, `SELECT COUNT(*) FROM dids WHERE did = ?`, didNumber(r.Str("did")))
	return n, err
}

// ---- pools ----

// Pool is a row of did_pools: numbers of one country and area sold at one price.
type Pool struct {
	ID          int64       `db:"id"`
	Country     string      `db:"country"`
	Area        string      `db:"area"`
	Cost        money.Micro `db:"cost"`
	InstallCost money.Micro `db:"installcost"`
	Provider    string      `db:"provider"`
	Username    string      `db:"username"`
	Password    string      `db:"password"`
	Param1      string      `db:"param1"`
	Param2      string      `db:"param2"`
	Param3      string      `db:"param3"`
	Quantity    int         `db:"quantity"`
}

const poolSelect = `SELECT id, country, area, cost, installcost, provider, username, password, param1, param2, param3, quantity FROM did_pools`

func poolByID(ctx context.Context, q db.Queryer, id int64) (*Pool, error) {
	var p Pool
	err := q.Get(ctx, &p, poolSelect+` WHERE id = ?`, id)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no DID pool %d", id)
	}
	return &p, err
}

// view is a pool as getDIDPools shows it. Pools have no owner: the administrators who
// reach these level-33 methods manage them, so the provider password is shown.
func (p *Pool) view(x exchange) map[string]any {
	return map[string]any{
		"id": p.ID, "country": p.Country, "area": p.Area, "cost": p.Cost, "installcost": p.InstallCost,
		"displaycost": x.display(p.Cost), "displayinstallcost": x.display(p.InstallCost), "quantity": p.Quantity,
		"provider": p.Provider, "username": p.Username, "password": p.Password,
		"param1": p.Param1, "param2": p.Param2, "param3": p.Param3,
	}
}

// providerRE is what a provider may be called: "local" or a Lua handler's name.
var providerRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// poolFields validates the pool arguments; costs are in the caller's currency.
func (s *Service) poolFields(r *Request) ([]string, []any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, nil, err
	}
	var cols []string
	var vals []any
	set := func(c string, v any) { cols = append(cols, c); vals = append(vals, v) }
	for _, f := range []string{"country", "area"} {
		if r.Has(f) {
			v := strings.TrimSpace(r.Str(f))
			if v == "" || len(v) > 64 || hasControl(v) {
				return nil, nil, apierr.New(apierr.InvalidArgument, "%s: 1 to 64 printable characters", f)
			}
			set(f, v)
		}
	}
	for _, f := range []string{"cost", "installcost"} {
		if r.Has(f) {
			if r.Money(f) < 0 {
				return nil, nil, apierr.New(apierr.InvalidArgument, "%s must not be negative", f)
			}
			x, err := s.exchange(r.ctx, actor.Currency)
			if err != nil {
				return nil, nil, err
			}
			set(f, x.toSystem(r.Money(f)))
		}
	}
	if r.Has("provider") {
		if !providerRE.MatchString(r.Str("provider")) {
			return nil, nil, apierr.New(apierr.InvalidArgument, "provider: local or the name of a Lua did handler")
		}
		set("provider", r.Str("provider"))
	}
	for _, f := range []struct{ arg, col string }{{"user", "username"}, {"pass", "password"},
		{"param1", "param1"}, {"param2", "param2"}, {"param3", "param3"}} {
		if r.Has(f.arg) {
			if len(r.Str(f.arg)) > 255 || hasControl(r.Str(f.arg)) {
				return nil, nil, apierr.New(apierr.InvalidArgument, "%s: at most 255 printable characters", f.arg)
			}
			set(f.col, r.Str(f.arg))
		}
	}
	if r.Has("qty") {
		if q := r.Int("qty"); q < 1 || q > 1000 {
			return nil, nil, apierr.New(apierr.InvalidArgument, "qty: 1 to 1000")
		}
		set("quantity", r.Int("qty"))
	}
	return cols, vals, nil
}

// addDIDPool adds a direct number pool.
func (s *Service) addDIDPool(r *Request) (any, error) {
	cols, vals, err := s.poolFields(r)
	if err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Insert(r.ctx, `INSERT INTO did_pools (`+strings.Join(cols, ", ")+`) VALUES (?`+strings.Repeat(", ?", len(cols)-1)+`)`, vals...)
	return nil, err
}

// updateDIDPool updates a direct number pool's parameters.
func (s *Service) updateDIDPool(r *Request) (any, error) {
	p, err := poolByID(r.ctx, s.DB.Q(), r.Int("id"))
	if err != nil {
		return nil, err
	}
	cols, vals, err := s.poolFields(r)
	if err != nil || len(cols) == 0 {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `UPDATE did_pools SET `+strings.Join(cols, " = ?, ")+` = ? WHERE id = ?`, append(vals, p.ID)...)
	return nil, err
}

// getDIDPools lists the direct number pools.
func (s *Service) getDIDPools(r *Request) (any, error) {
	_, x, err := s.viewer(r)
	if err != nil {
		return nil, err
	}
	var pools []Pool
	if err := s.DB.Q().Select(r.ctx, &pools, poolSelect+` ORDER BY id`); err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(pools))
	for i := range pools {
		out[i] = pools[i].view(x)
	}
	return out, nil
}

// getDIDPoolInfo gets a direct number pool's data.
func (s *Service) getDIDPoolInfo(r *Request) (any, error) {
	_, x, err := s.viewer(r)
	if err != nil {
		return nil, err
	}
	p, err := poolByID(r.ctx, s.DB.Q(), r.Int("id"))
	if err != nil {
		return nil, err
	}
	return p.view(x), nil
}

// deleteDIDPool(33) deletes a pool. Its numbers stay: owned ones keep working, unsold
// stock stays unowned without a pool (updateDID pool_id puts it into another one).
func (s *Service) deleteDIDPool(r *Request) (any, error) {
	p, err := poolByID(r.ctx, s.DB.Q(), r.Int("id"))
	if err != nil {
		return nil, err
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(r.ctx, `UPDATE dids SET pool_id = NULL WHERE pool_id = ?`, p.ID); err != nil {
			return err
		}
		_, err := tx.Exec(r.ctx, `DELETE FROM did_pools WHERE id = ?`, p.ID)
		return err
	})
}

// ---- ordering ----

// didHandler calls the Lua "did" handler named after a pool's provider. The handler gets
// {action = "list"|"order", pool = {id, country, area, username, password, param1..3,
// quantity}, …}: "list" adds search_pattern and answers a list of {did, voice_support,
// sms_support, arg1, arg2, arg3}; "order" adds did, arg1..3 and user (the buyer's
// username) and answers true (or a table) when the provider sold the number.
func (s *Service) didHandler(ctx context.Context, p *Pool, in map[string]any) (any, bool, error) {
	rt := s.ext.scripts
	if rt == nil {
		return nil, false, nil
	}
	found := false
	for _, n := range rt.Handlers("did") {
		found = found || n == p.Provider
	}
	if !found {
		return nil, false, nil
	}
	in["pool"] = map[string]any{"id": p.ID, "country": p.Country, "area": p.Area, "username": p.Username,
		"password": p.Password, "param1": p.Param1, "param2": p.Param2, "param3": p.Param3, "quantity": int64(p.Quantity)}
	v, err := rt.CallHandler(ctx, "did", p.Provider, in)
	if err != nil && errors.Is(err, lua.ErrNotRegistered) {
		return nil, false, nil
	}
	return v, true, err
}

// getDIDPool(1): the countries of the pools; with country, their areas; with area too,
// the numbers on sale (at most the pool's quantity per pool), those containing
// search_pattern when it is given. A local pool offers its unowned enabled numbers; any
// other provider is asked through its Lua did handler, and a provider without one (or
// whose handler fails, logged) offers nothing.
func (s *Service) getDIDPool(r *Request) (any, error) {
	q := s.DB.Q()
	country, area := strings.TrimSpace(r.Str("country")), strings.TrimSpace(r.Str("area"))
	if country == "" {
		var names []string
		err := q.Select(r.ctx, &names, `SELECT DISTINCT country FROM did_pools ORDER BY country`)
		out := make([]map[string]any, len(names))
		for i, n := range names {
			out[i] = map[string]any{"country": n}
		}
		return out, err
	}
	if area == "" {
		var names []string
		err := q.Select(r.ctx, &names, `SELECT DISTINCT area FROM did_pools WHERE country = ? ORDER BY area`, country)
		out := make([]map[string]any, len(names))
		for i, n := range names {
			out[i] = map[string]any{"area": n}
		}
		return out, err
	}
	_, x, err := s.viewer(r)
	if err != nil {
		return nil, err
	}
	var pools []Pool
	if err := q.Select(r.ctx, &pools, poolSelect+` WHERE country = ? AND area = ? ORDER BY id`, country, area); err != nil {
		return nil, err
	}
	search := r.Str("search_pattern")
	out := []map[string]any{}
	for i := range pools {
		p := &pools[i]
		item := func(did string, voice, sms bool, a1, a2, a3 string) map[string]any {
			return map[string]any{
				"did": did, "pool_id": p.ID, "country": p.Country, "area": p.Area,
				"cost": p.Cost, "installcost": p.InstallCost,
				"displaycost": x.display(p.Cost), "displayinstallcost": x.display(p.InstallCost),
				"voice_support": voice, "sms_support": sms, "arg1": a1, "arg2": a2, "arg3": a3,
			}
		}
		if p.Provider == providerLocal {
			// search_pattern is a part of the number: LIKE's own wildcards match nothing.
			var nums []string
			if needle := didNumber(search); !strings.ContainsAny(needle, `%_\`) {
				err := q.Select(r.ctx, &nums, `SELECT did FROM dids WHERE pool_id = ? AND owner_id IS NULL AND enabled = 1
					AND did LIKE ? ORDER BY did LIMIT ?`, p.ID, "%"+needle+"%", p.Quantity)
				if err != nil {
					return nil, err
				}
			}
			// Local numbers are voice numbers: SMS needs a carrier behind them.
			for _, n := range nums {
				out = append(out, item(n, true, false, "", "", ""))
			}
			continue
		}
		v, ok, err := s.didHandler(r.ctx, p, map[string]any{"action": "list", "search_pattern": search})
		if !ok {
			continue
		}
		if err != nil {
			s.Log.Warn("did handler failed", "provider", p.Provider, "pool", p.ID, "err", err)
			continue
		}
		list, _ := v.([]any)
		for j, e := range list {
			if j >= p.Quantity {
				break
			}
			m, _ := e.(map[string]any)
			did := didNumber(handlerText(m["did"]))
			if !didRE.MatchString(did) {
				continue
			}
			voice, sms := true, false
			if b, ok := m["voice_support"].(bool); ok {
				voice = b
			}
			if b, ok := m["sms_support"].(bool); ok {
				sms = b
			}
			out = append(out, item(did, voice, sms, handlerText(m["arg1"]), handlerText(m["arg2"]), handlerText(m["arg3"])))
		}
	}
	return out, nil
}

// handlerText is a handler's scalar as text.
func handlerText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

// orderDID(1) buys a number from a pool for the user: installcost plus the first month
// (the pool's prices, system currency) from their account, one ledger row of kind did,
// in the transaction that gives them the number. A local pool sells a number of its
// unowned stock; any other provider's Lua did handler is asked first (outside the
// transaction), and a provider without a handler answers E_DID_ORDER_FAIL.
func (s *Service) orderDID(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	p, err := poolByID(r.ctx, s.DB.Q(), r.Int("pool_id"))
	if err != nil {
		return nil, err
	}
	number := didNumber(r.Str("did"))
	if !didRE.MatchString(number) {
		return nil, apierr.New(apierr.InvalidArgument, "did: 3 to 20 digits")
	}
	price := p.InstallCost + p.Cost
	now := time.Now()
	expiration := nextMonth(0, now)
	if p.Provider != providerLocal {
		// Check what can be checked before the provider sells anything.
		if d, err := didByNumber(r.ctx, s.DB.Q(), number); err == nil && d.OwnerID.Valid {
			return nil, apierr.New(apierr.DIDOrderFail, "DID %s is taken", number)
		}
		acc, err := accountByNumber(r.ctx, s.DB.Q(), u.Number)
		if err != nil {
			return nil, err
		}
		held, err := reserved(r.ctx, s.DB.Q(), u.Number)
		if err != nil {
			return nil, err
		}
		if acc.RefillAllowed == refillForbidden {
			return nil, apierr.New(apierr.TransactionsLocked, "financial transactions of account %d are forbidden", u.Number)
		}
		if price > 0 && acc.Balance+acc.Overdraft-held < price {
			return nil, apierr.New(apierr.InsufficientMoney, "account %d cannot pay %s", u.Number, price)
		}
		v, ok, err := s.didHandler(r.ctx, p, map[string]any{"action": "order", "did": number, "user": u.Username,
			"arg1": r.Str("arg1"), "arg2": r.Str("arg2"), "arg3": r.Str("arg3")})
		if !ok {
			return nil, apierr.New(apierr.DIDOrderFail, "provider %q has no did handler", p.Provider)
		}
		if err != nil {
			s.Log.Warn("did handler failed", "provider", p.Provider, "did", number, "err", err)
			return nil, apierr.New(apierr.DIDOrderFail, "provider %s refused: %s", p.Provider, luaMessage(err))
		}
		if b, isBool := v.(bool); v == nil || isBool && !b {
			return nil, apierr.New(apierr.DIDOrderFail, "provider %s did not sell %s", p.Provider, number)
		}
	}
	err = s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		if p.Provider == providerLocal {
			res, err := tx.Exec(r.ctx, `UPDATE dids SET owner_id = ?, cost = ?, expiration = ?, enabled = 1, auto_renew = 1,
				renew_notify = 0 WHERE did = ? AND pool_id = ? AND owner_id IS NULL AND enabled = 1`,
				u.ID, p.Cost, expiration, number, p.ID)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n != 1 {
				return apierr.New(apierr.DIDOrderFail, "DID %s is not on sale in pool %d", number, p.ID)
			}
		} else {
			res, err := tx.Exec(r.ctx, `UPDATE dids SET owner_id = ?, pool_id = ?, cost = ?, expiration = ?, enabled = 1,
				auto_renew = 1, renew_notify = 0 WHERE did = ? AND owner_id IS NULL`, u.ID, p.ID, p.Cost, expiration, number)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				_, err = tx.Exec(r.ctx, `INSERT INTO dids (did, owner_id, pool_id, cost, expiration) VALUES (?, ?, ?, ?, ?)`,
					number, u.ID, p.ID, p.Cost, expiration)
				if errors.Is(err, db.ErrConflict) {
					return apierr.New(apierr.DIDOrderFail, "DID %s is taken", number)
				} else if err != nil {
					return err
				}
			}
		}
		return chargeDID(r.ctx, tx, u.Number, price, number, "DID "+number+" order", actor.ID)
	})
	if err != nil && p.Provider != providerLocal {
		// The provider sold a number the billing could not book: the operator must know.
		s.Log.Error("DID ordered from the provider but not booked", "provider", p.Provider, "did", number,
			"user", u.Username, "err", err)
	}
	return nil, err
}

// luaMessage is a script error's own text, without the code.
func luaMessage(err error) string {
	var le *lua.Error
	if errors.As(err, &le) {
		return scriptWhere.ReplaceAllString(le.Message, "")
	}
	return "the handler failed"
}
