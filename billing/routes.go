package billing

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// routeMethods declares the methods whose handlers are in this file: the reference's
// "Routing".
func (s *Service) routeMethods() []Method {
	return []Method{
		method("getRoutes", 22, s.getRoutes, "update:bool=false", "type:ustring{all,sip,sms,default}=all",
			"all:bool=false").
			Doc("list the accessible routes", "the routes and their data"),
		method("getRouteInfo", 22, s.getRouteInfo, "id:int!").
			Doc("get a route's data by its id", "the route's data"),
		method("addRoute", 22, s.addRoute, "route:string!", "type:ustring{sip,sms}!", "sip_server:string",
			"prefix:string=", "host:string", "user:string", "fromuser:bool=false", "pass:string",
			"callerid:int=2", "balance_handler:string", "balance_username:string",
			"balance_password:string").
			Doc("add a route to the routing", "true"),
		method("updateRoute", 22, s.updateRoute, "id:int!", "route:string", "prefix:string", "host:string",
			"user:string", "fromuser:bool", "pass:string", "callerid:int", "sip_server:string",
			"balance_handler:string", "balance_username:string", "balance_password:string").
			Doc("update a route's parameters", "true"),
		method("updateRouteState", 22, s.updateRouteState, "id:int!", "state:bool!").
			Doc("turn a route on or off", "true"),
		method("deleteRoute", 22, s.deleteRoute, "id:int!").
			Doc("delete a route from the routing", "true"),
	}
}

// Route is a row of the routes table: a trunk that calls (or SMS) leave through.
//
// Ownership: a route belongs to its owner's managers (keys.Users.Manages). A system route
// (one without an owner, or owned by an administrator of level 33 or more) is visible to
// every caller of the routing methods and usable in their tariffs, but only its managers
// change it or see its credentials (user, pass, balance_username, balance_password).
type Route struct {
	ID              int64         `db:"id"`
	Name            string        `db:"name"`
	Type            string        `db:"type"`
	ServerID        sql.NullInt64 `db:"server_id"`
	Server          string        `db:"server"`
	Prefix          string        `db:"prefix"`
	Host            string        `db:"host"`
	Username        string        `db:"username"`
	FromUser        int           `db:"fromuser"`
	Pass            string        `db:"pass"`
	CLI             int           `db:"cli"`
	Enabled         int           `db:"enabled"`
	OwnerID         sql.NullInt64 `db:"owner_id"`
	Owner           string        `db:"owner"`
	OwnerLevel      int           `db:"owner_level"`
	BalanceHandler  string        `db:"balance_handler"`
	BalanceUsername string        `db:"balance_username"`
	BalancePassword string        `db:"balance_password"`
	Balance         money.Micro   `db:"balance"`
	LastUpdate      int64         `db:"lastupdate"`
	ClientLastUpd   int64         `db:"clientlastupdate"`
}

const routeSelect = `SELECT r.id, r.name, r.type, r.server_id, COALESCE(s.address, '') AS server, r.prefix, r.host,
	r.username, r.fromuser, r.pass, r.cli, r.enabled, r.owner_id, COALESCE(u.username, '') AS owner, COALESCE(u.accesslevel, 0) AS owner_level,
	r.balance_handler, r.balance_username, r.balance_password, r.balance, r.lastupdate, r.clientlastupdate
	FROM routes r LEFT JOIN sip_servers s ON s.id = r.server_id LEFT JOIN users u ON u.id = r.owner_id`

// Values of a route's cli (caller ID type).
var routeCLI = map[int64]bool{1: true, 2: true, 99: true}

func routeByID(ctx context.Context, q db.Queryer, id int64) (*Route, error) {
	var rt Route
	err := q.Get(ctx, &rt, routeSelect+` WHERE r.id = ?`, id)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no route %d", id)
	}
	return &rt, err
}

// managesOwner applies the ownership rule to an object with an owner_id column: the actor
// manages it when they manage its owner; an object without an owner (or whose owner was
// deleted) belongs to the administrators.
// mustManage is managesOwner as a refusal: E_DOES_NOT_BELONG_TO_YOU naming what (e.g.
// "DID 123") when the actor does not manage it.
func (r *Request) mustManage(owner sql.NullInt64, what string) error {
	ok, err := r.managesOwner(owner)
	if err == nil && !ok {
		err = apierr.New(apierr.DoesNotBelongToYou, "%s is not yours", what)
	}
	return err
}

func (r *Request) managesOwner(owner sql.NullInt64) (bool, error) {
	if r.Caller.Actor == nil {
		return false, nil
	}
	if !owner.Valid {
		return r.Caller.Actor.AccessLevel >= keys.LevelAdmin, nil
	}
	u, err := userByID(r.ctx, r.S.DB.Q(), owner.Int64)
	if apierr.Code(err) == apierr.NotExist {
		return r.Caller.Actor.AccessLevel >= keys.LevelAdmin, nil
	} else if err != nil {
		return false, err
	}
	return r.Manages(u)
}

// usableRoute is a route the actor may see and put into tariffs: their managed routes and
// the system routes. E_NOT_EXIST or E_DOES_NOT_BELONG_TO_YOU otherwise.
func (r *Request) usableRoute(ctx context.Context, q db.Queryer, id int64) (*Route, bool, error) {
	rt, err := routeByID(ctx, q, id)
	if err != nil {
		return nil, false, err
	}
	mine, err := r.managesOwner(rt.OwnerID)
	if err != nil {
		return nil, false, err
	}
	if !mine && !rt.system() {
		return nil, false, apierr.New(apierr.DoesNotBelongToYou, "route %d is not yours", id)
	}
	return rt, mine, nil
}

// ownedRoute is a route the actor manages (to change or delete it).
func (r *Request) ownedRoute(ctx context.Context, q db.Queryer, id int64) (*Route, error) {
	rt, mine, err := r.usableRoute(ctx, q, id)
	if err != nil {
		return nil, err
	}
	if !mine {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "route %d is a system route", id)
	}
	return rt, nil
}

// system reports a route without an owner or owned by an administrator.
func (rt *Route) system() bool { return !rt.OwnerID.Valid || rt.OwnerLevel >= keys.LevelAdmin }

func (rt *Route) view(showSecret bool, tz float64) map[string]any {
	v := map[string]any{
		"id": rt.ID, "prefix": rt.Prefix, "cli": rt.CLI, "route": rt.Name, "owner": rt.Owner,
		"enabled": rt.Enabled, "type": rt.Type, "sip_server": rt.Server, "host": rt.Host,
		"fromuser": rt.FromUser, "balance_handler": rt.BalanceHandler,
		"lastupdate": formatTime(rt.LastUpdate, 0), "clientlastupdate": formatTime(rt.LastUpdate, tz),
		"balance": rt.Balance,
	}
	if showSecret {
		v["user"], v["pass"] = rt.Username, rt.Pass
		v["balance_username"], v["balance_password"] = rt.BalanceUsername, rt.BalancePassword
	}
	return v
}

// getRoutes lists the caller's routes and the system routes; with all, also the routes of
// the users they manage. type=default means voice routes (type sip). With update, the
// routes the caller manages that name a balance handler ask it (a Lua route_balance
// handler) for the carrier's balance first.
func (s *Service) getRoutes(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	query := routeSelect
	var args []any
	switch r.Str("type") {
	case "sip", "default":
		query += ` WHERE r.type = 'sip'`
	case "sms":
		query += ` WHERE r.type = 'sms'`
	default:
		query += ` WHERE 1 = 1`
	}
	var routes []Route
	if err := s.DB.Q().Select(r.ctx, &routes, query+` ORDER BY r.id`, args...); err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for i := range routes {
		rt := &routes[i]
		mine, err := r.managesOwner(rt.OwnerID)
		if err != nil {
			return nil, err
		}
		own := rt.OwnerID.Valid && rt.OwnerID.Int64 == actor.ID
		switch {
		case rt.system(), own:
		case mine && r.Bool("all"):
		default:
			continue
		}
		if r.Bool("update") && mine {
			s.refreshRouteBalance(r.ctx, rt)
		}
		out = append(out, rt.view(mine, actor.Timezone))
	}
	return out, nil
}

// getRouteInfo gets a route's data by its id.
func (s *Service) getRouteInfo(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	rt, mine, err := r.usableRoute(r.ctx, s.DB.Q(), r.Int("id"))
	if err != nil {
		return nil, err
	}
	return rt.view(mine, actor.Timezone), nil
}

// routeFields validates the optional route fields shared by addRoute and updateRoute.
func routeFields(r *Request) ([]string, []any, error) {
	var cols []string
	var vals []any
	set := func(c string, v any) { cols = append(cols, c); vals = append(vals, v) }
	if r.Has("route") {
		if r.Str("route") == "" || len(r.Str("route")) > 64 || hasControl(r.Str("route")) {
			return nil, nil, apierr.New(apierr.InvalidArgument, "route: 1 to 64 printable characters")
		}
		set("name", r.Str("route"))
	}
	for _, f := range []struct{ arg, col string }{{"prefix", "prefix"}, {"host", "host"}, {"user", "username"},
		{"pass", "pass"}, {"balance_handler", "balance_handler"}, {"balance_username", "balance_username"},
		{"balance_password", "balance_password"}} {
		if r.Has(f.arg) {
			if hasControl(r.Str(f.arg)) || len(r.Str(f.arg)) > 255 {
				return nil, nil, apierr.New(apierr.InvalidArgument, "%s: at most 255 printable characters", f.arg)
			}
			set(f.col, r.Str(f.arg))
		}
	}
	if r.Has("callerid") {
		if !routeCLI[r.Int("callerid")] {
			return nil, nil, apierr.New(apierr.InvalidArgument, "callerid: 1, 2 or 99")
		}
		set("cli", r.Int("callerid"))
	}
	if r.Has("fromuser") {
		set("fromuser", boolInt(r.Bool("fromuser")))
	}
	return cols, vals, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// hasControl reports a control character (CR, LF, NUL…), which never goes into a
// peer definition or an AMI message.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// addRoute adds a route owned by the call's user. A sip route needs an existing
// sip_server; an sms route may name one.
func (s *Service) addRoute(r *Request) (any, error) {
	owner, err := r.User()
	if err != nil {
		return nil, err
	}
	cols, vals, err := routeFields(r)
	if err != nil {
		return nil, err
	}
	var server sql.NullInt64
	if r.Str("sip_server") != "" {
		srv, err := sipServer(r.ctx, s.DB.Q(), r.Str("sip_server"))
		if err != nil {
			return nil, err
		}
		server = sql.NullInt64{Int64: srv.ID, Valid: true}
	} else if r.Str("type") == "sip" {
		return nil, apierr.New(apierr.MissingArgument, "sip_server is obligatory for a sip route")
	}
	cols = append(cols, "type", "server_id", "owner_id")
	vals = append(vals, r.Str("type"), server, owner.ID)
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		_, err := tx.Exec(r.ctx, `INSERT INTO routes (`+join(cols, ", ")+`) VALUES (`+placeholders(len(cols))+`)`, vals...)
		return err
	})
}

// updateRoute updates a route's parameters.
func (s *Service) updateRoute(r *Request) (any, error) {
	cols, vals, err := routeFields(r)
	if err != nil {
		return nil, err
	}
	if r.Str("sip_server") != "" {
		srv, err := sipServer(r.ctx, s.DB.Q(), r.Str("sip_server"))
		if err != nil {
			return nil, err
		}
		cols, vals = append(cols, "server_id"), append(vals, srv.ID)
	}
	if len(cols) == 0 {
		return nil, apierr.New(apierr.MissingArgument, "nothing to update")
	}
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		if _, err := r.ownedRoute(r.ctx, tx, r.Int("id")); err != nil {
			return err
		}
		_, err := tx.Exec(r.ctx, `UPDATE routes SET `+join(cols, " = ?, ")+` = ? WHERE id = ?`, append(vals, r.Int("id"))...)
		return err
	})
}

// updateRouteState turns a route on or off.
func (s *Service) updateRouteState(r *Request) (any, error) {
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		if _, err := r.ownedRoute(r.ctx, tx, r.Int("id")); err != nil {
			return err
		}
		_, err := tx.Exec(r.ctx, `UPDATE routes SET enabled = ? WHERE id = ?`, boolInt(r.Bool("state")), r.Int("id"))
		return err
	})
}

// deleteRoute refuses (E_DATA_ABORT) while tariff entries send calls through the route:
// delete or re-route those entries first, or disable the route with updateRouteState.
func (s *Service) deleteRoute(r *Request) (any, error) {
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		if _, err := r.ownedRoute(r.ctx, tx, r.Int("id")); err != nil {
			return err
		}
		var n int
		if err := tx.Get(r.ctx, &n, `SELECT count(*) FROM rate_entries WHERE route_id = ?`, r.Int("id")); err != nil {
			return err
		}
		if n > 0 {
			return apierr.New(apierr.DataAbort, "route %d is used by %d tariff entries", r.Int("id"), n)
		}
		_, err := tx.Exec(r.ctx, `DELETE FROM routes WHERE id = ?`, r.Int("id"))
		if errors.Is(err, db.ErrForeignKey) {
			return apierr.New(apierr.DataAbort, "route %d is in use", r.Int("id"))
		}
		return err
	})
}

// refreshRouteBalance asks the route's balance handler (a Lua route_balance handler named
// by balance_handler) for the carrier's balance and stores it with the time. A handler
// that is missing or fails leaves the stored balance, and is logged: the listing must
// not fail because a carrier's site is down. The handler answers a number of micro-units
// or a decimal string, as payment handlers do.
func (s *Service) refreshRouteBalance(ctx context.Context, rt *Route) {
	if rt.BalanceHandler == "" || !s.hasHandler("route_balance", rt.BalanceHandler) {
		return
	}
	v, err := s.ext.scripts.CallHandler(ctx, "route_balance", rt.BalanceHandler, map[string]any{
		"route": rt.Name, "host": rt.Host, "username": rt.BalanceUsername, "password": rt.BalancePassword})
	if err != nil {
		s.Log.Warn("route balance handler failed", "route", rt.ID, "handler", rt.BalanceHandler, "err", err)
		return
	}
	if m, ok := v.(map[string]any); ok {
		v = m["balance"]
	}
	balance, ok := handlerMoney(v)
	if !ok {
		s.Log.Warn("route balance handler answered no amount", "route", rt.ID, "handler", rt.BalanceHandler)
		return
	}
	now := time.Now().Unix()
	if _, err := s.DB.Q().Exec(ctx, `UPDATE routes SET balance = ?, lastupdate = ? WHERE id = ?`, balance, now, rt.ID); err != nil {
		s.Log.Warn("route balance not stored", "route", rt.ID, "err", err)
		return
	}
	rt.Balance, rt.LastUpdate = balance, now
}
