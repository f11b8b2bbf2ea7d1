package billing

import (
	"strings"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// logMethods declares the methods whose handlers are in this file: the reference's "Event
// log".
func (s *Service) logMethods() []Method {
	return []Method{
		method("getLogs", 1, s.getLogs, "limit:int=100", "only_completed:bool=false",
			"resolve_info:bool=false", "user:string").
			Doc("get the event log", "the log's records"),
		method("deleteLogs", 1, s.deleteLogs, "user:string").
			Doc("delete the event log", "true"),
	}
}

// logRecord is a call_log row.
type logRecord struct {
	ID          int64       `db:"id"`
	Username    string      `db:"username"`
	Extension   string      `db:"extension"`
	CallerID    string      `db:"callerid"`
	Destination string      `db:"destination"`
	Direction   string      `db:"direction"`
	Route       string      `db:"route"`
	Time        int         `db:"time"`
	Cost        money.Micro `db:"cost"`
	Status      string      `db:"status"`
	Info        string      `db:"info"`
	Granted     *int64      `db:"granted"`    // callPrepare's MaxCallTime; nil without one
	OverGrant   int         `db:"over_grant"` // 1: it lasted more than 5 s longer than granted
	Debug       string      `db:"debug"`
	CreatedAt   int64       `db:"created_at"`
}

// getLogs(1) lists the last `limit` event-log records of the user (or of `user`, who must
// be managed by the caller), newest first. only_completed keeps calls that lasted more
// than 0 seconds. resolve_info fills `info`, for calls to another extension of this
// system, with the called extension's owner. `debug` (tariff, route and price used) is
// shown only to administrators (accesslevel 33 and more).
func (s *Service) getLogs(r *Request) (any, error) {
	u, err := r.Target("user")
	if err != nil {
		return nil, err
	}
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	limit := r.Int("limit")
	if limit < 1 || limit > 100_000 {
		return nil, apierr.New(apierr.InvalidArgument, "limit: want 1 to 100000")
	}
	query := `SELECT id, username, extension, callerid, destination, direction, route, time, cost, status, info, debug,
		granted, over_grant, created_at FROM call_log WHERE user_id = ?`
	if r.Bool("only_completed") {
		query += ` AND time > 0`
	}
	var recs []logRecord
	if err := s.DB.Q().Select(r.ctx, &recs, query+` ORDER BY id DESC LIMIT ?`, u.ID, limit); err != nil {
		return nil, err
	}
	x, err := s.exchange(r.ctx, u.Currency)
	if err != nil {
		return nil, err
	}
	owners := map[string]string{}
	out := make([]map[string]any, 0, len(recs))
	for _, c := range recs {
		info := c.Info
		if r.Bool("resolve_info") {
			owner, seen := owners[c.Destination]
			if !seen {
				var name string
				err := s.DB.Q().Get(r.ctx, &name, `SELECT u.username FROM extensions e JOIN users u ON u.id = e.user_id
					WHERE e.extension = ?`, c.Destination)
				if err != nil && !db.IsNotFound(err) {
					return nil, err
				}
				owner, owners[c.Destination] = name, name
			}
			if owner != "" {
				info = strings.TrimSpace(info + " " + owner)
			}
		}
		var granted any = "" // empty when callPrepare granted nothing for this call
		if c.Granted != nil {
			granted = *c.Granted
		}
		debug := ""
		if actor.AccessLevel >= keys.LevelAdmin {
			debug = c.Debug
		}
		out = append(out, map[string]any{
			"id":              c.ID,
			"username":        c.Username,
			"sip_extension":   c.Extension,
			"callerid":        c.CallerID,
			"destination":     c.Destination,
			"direction":       c.Direction,
			"route":           c.Route,
			"time":            c.Time,
			"granted":         granted,
			"over_grant":      c.OverGrant == 1,
			"cost":            c.Cost,
			"displaycost":     x.display(c.Cost),
			"displaycurrency": u.Currency,
			"status":          c.Status,
			"date":            formatTime(c.CreatedAt, 0),
			"clientdate":      formatTime(c.CreatedAt, u.Timezone),
			"info":            info,
			"debug":           debug,
		})
	}
	return out, nil
}

// deleteLogs(1) deletes the event log of the user (or of `user`, managed by the caller).
// The money is untouched (the ledger keeps every charge); a callFinish repeated after its
// record was deleted is no longer recognised as a repeat.
func (s *Service) deleteLogs(r *Request) (any, error) {
	u, err := r.Target("user")
	if err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `DELETE FROM call_log WHERE user_id = ?`, u.ID)
	return nil, err
}
