package billing

import (
	"context"
	"encoding/csv"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// logMethods declares the methods whose handlers are in this file: the reference's "Event
// log".
func (s *Service) logMethods() []Method {
	return []Method{
		method("getLogs", 1, s.getLogs, "limit:int=100", "offset:int=0", "from:string", "to:string",
			"only_completed:bool=false", "resolve_info:bool=false", "user:string").
			Doc("get the event log: newest first, `limit` records after skipping `offset`, "+
				"between `from` and `to` (UTC, YYYY-MM-DD[ HH:MM:SS], both included) when given", "the log's records"),
		method("deleteLogs", 1, s.deleteLogs, "user:string").
			Doc("delete the event log", "true"),
		method("exportCalls", 1, s.exportCalls, "from:string", "to:string", "user:string").
			Doc("download the user's (or `user`'s) calls between `from` and `to` (UTC, YYYY-MM-DD[ HH:MM:SS], "+
				"both included) as CSV, oldest first: the columns of `narayanad export calls` (not in the reference)",
				"a CSV file (not an envelope)"),
	}
}

// exportCalls(1) is `narayanad export calls` for one user, with getLogs' rights: the caller's
// own calls or those of a user it manages; debug only for administrators.
func (s *Service) exportCalls(r *Request) (any, error) {
	u, err := r.Target("user")
	if err != nil {
		return nil, err
	}
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if _, err := ExportCalls(r.ctx, s.DB, CallsExport{From: r.Str("from"), To: r.Str("to"), Currency: s.Config.Currency,
		UserID: u.ID, HideDebug: actor.AccessLevel < keys.LevelAdmin}, &b); err != nil {
		return nil, err
	}
	return Raw{ContentType: "text/csv; charset=utf-8", Body: []byte(b.String())}, nil
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
// be managed by the caller), newest first, after skipping `offset`; with `from` and/or
// `to` (parseDate: UTC, like `date`), only those made in that range. only_completed keeps calls that lasted more
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
	limit, offset, err := r.page(100_000)
	if err != nil {
		return nil, err
	}
	from, to, err := dateRange(r.Str("from"), r.Str("to"))
	if err != nil {
		return nil, err
	}
	query := `SELECT id, username, extension, callerid, destination, direction, route, time, cost, status, info, debug,
		granted, over_grant, created_at FROM call_log WHERE user_id = ? AND created_at >= ? AND created_at <= ?`
	if r.Bool("only_completed") {
		query += ` AND time > 0`
	}
	// created_at, then id: the order of the index (user_id, created_at, id), and for records
	// of one second the order they were written.
	var recs []logRecord
	if err := s.DB.Q().Select(r.ctx, &recs, query+` ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?`,
		u.ID, from, to, limit, offset); err != nil {
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

// page reads the `offset` and `limit` of a listing: offset 0 or more, limit 1 to max; no
// limit (when the method declares no default) is max.
func (r *Request) page(max int64) (limit, offset int64, err error) {
	limit, offset = max, r.Int("offset")
	if r.Has("limit") {
		limit = r.Int("limit")
	}
	if limit < 1 || limit > max {
		return 0, 0, apierr.New(apierr.InvalidArgument, "limit: want 1 to %d", max)
	}
	if offset < 0 {
		return 0, 0, apierr.New(apierr.InvalidArgument, "offset: want 0 or more")
	}
	return limit, offset, nil
}

// pageOf is the page of xs that offset and limit ask for (all of them without limit),
// for the listings that gather their items before answering.
func pageOf[T any](r *Request, xs []T) ([]T, error) {
	limit, offset, err := r.page(math.MaxInt32)
	if err != nil {
		return nil, err
	}
	xs = xs[min(offset, int64(len(xs))):]
	return xs[:min(limit, int64(len(xs)))], nil
}

// likePattern is a case-insensitive LIKE pattern (with ESCAPE '\') matching text that
// contains s; compare it with LOWER(column).
func likePattern(s string) string {
	s = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(strings.ToLower(s))
	return "%" + s + "%"
}

// dateLayouts are the forms a date argument takes: the reference's date, or a day.
var dateLayouts = []string{timeLayout, "2006-01-02"}

// parseDate reads a date of the reference's format (YYYY-MM-DD HH:MM:SS) or a day
// (YYYY-MM-DD), in UTC as the `date` of a log record is. A day given as the end of a range
// means its last second.
func parseDate(name, v string, end bool) (int64, error) {
	v = strings.TrimSpace(v)
	for i, layout := range dateLayouts {
		t, err := time.ParseInLocation(layout, v, time.UTC)
		if err != nil {
			continue
		}
		if i == 1 && end {
			t = t.AddDate(0, 0, 1).Add(-time.Second)
		}
		return t.Unix(), nil
	}
	return 0, apierr.New(apierr.InvalidArgument, "%s: %q is not a date (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS, UTC)", name, v)
}

// dateRange reads `from` and `to` (either may be empty: no bound) into Unix seconds, both
// included.
func dateRange(fromArg, toArg string) (from, to int64, err error) {
	from, to = 0, math.MaxInt64
	if fromArg != "" {
		if from, err = parseDate("from", fromArg, false); err != nil {
			return 0, 0, err
		}
	}
	if toArg != "" {
		if to, err = parseDate("to", toArg, true); err != nil {
			return 0, 0, err
		}
	}
	if from > to {
		return 0, 0, apierr.New(apierr.InvalidArgument, "from: after to")
	}
	return from, to, nil
}

// CallsHeader is the header of `narayanad export calls`: getLogs' fields.
var CallsHeader = []string{"id", "username", "sip_extension", "callerid", "destination", "direction", "route",
	"time", "granted", "over_grant", "cost", "displaycost", "displaycurrency", "status", "date", "clientdate",
	"info", "debug"}

// CallsExport selects the records `narayanad export calls` writes: From and To are dates
// as getLogs reads them (UTC, both included; empty: no bound); Currency is the system
// currency (the setting `currency`; EUR when empty).
type CallsExport struct {
	From, To, Currency string
	UserID             int64 // one user's calls (exportCalls); 0: everyone's
	HideDebug          bool  // leave debug empty (getLogs shows it to administrators only)
}

// ExportCalls writes the event-log records of the range to w as CSV (CallsHeader), one row a
// call, oldest first. It streams: the rows go out as the database hands them over, so a
// month of a busy switch takes no more memory than a day. display* and clientdate are in
// the record's user's currency and timezone (empty when that user is gone); debug is
// written in full (the operator's export). It answers the number of records written.
func ExportCalls(ctx context.Context, d *db.DB, spec CallsExport, w io.Writer) (int, error) {
	from, to, err := dateRange(spec.From, spec.To)
	if err != nil {
		return 0, err
	}
	var curs []Currency
	if err := d.Q().Select(ctx, &curs, `SELECT code, displayname, eur_course, transfer_fee, referral_reward FROM currencies`); err != nil {
		return 0, err
	}
	course := make(map[string]money.Micro, len(curs))
	for _, c := range curs {
		course[c.Code] = c.EURCourse
	}
	if spec.Currency == "" {
		spec.Currency = DefaultConfig().Currency
	}
	systemCourse, ok := course[strings.ToUpper(spec.Currency)]
	if !ok {
		return 0, apierr.New(apierr.NotExist, "no currency %q", spec.Currency)
	}
	rows, err := d.QueryContext(ctx, d.Rebind(`SELECT c.id, c.username, c.extension, c.callerid, c.destination, c.direction,
		c.route, c.time, c.granted, c.over_grant, c.cost, c.status, c.created_at, c.info, c.debug,
		COALESCE(u.currency, ''), COALESCE(u.timezone, 0)
		FROM call_log c LEFT JOIN users u ON u.id = c.user_id
		WHERE c.created_at >= ? AND c.created_at <= ? AND (? = 0 OR c.user_id = ?) ORDER BY c.created_at, c.id`), from, to, spec.UserID, spec.UserID)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cw := csv.NewWriter(w)
	cw.Write(CallsHeader)
	rec := make([]string, len(CallsHeader))
	n := 0
	for rows.Next() {
		var c logRecord
		var cur string
		var tz float64
		if err := rows.Scan(&c.ID, &c.Username, &c.Extension, &c.CallerID, &c.Destination, &c.Direction, &c.Route,
			&c.Time, &c.Granted, &c.OverGrant, &c.Cost, &c.Status, &c.CreatedAt, &c.Info, &c.Debug, &cur, &tz); err != nil {
			return n, err
		}
		granted, display, clientdate := "", "", ""
		if c.Granted != nil {
			granted = strconv.FormatInt(*c.Granted, 10)
		}
		if spec.HideDebug {
			c.Debug = ""
		}
		if cur != "" {
			display = money.Convert(c.Cost, systemCourse, course[cur]).Round(2).String()
			clientdate = formatTime(c.CreatedAt, tz)
		}
		rec = append(rec[:0], strconv.FormatInt(c.ID, 10), c.Username, c.Extension, c.CallerID, c.Destination,
			c.Direction, c.Route, strconv.Itoa(c.Time), granted, strconv.FormatBool(c.OverGrant == 1), c.Cost.String(),
			display, cur, c.Status, formatTime(c.CreatedAt, 0), clientdate, c.Info, c.Debug)
		if err := cw.Write(rec); err != nil {
			return n, err
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	cw.Flush()
	return n, cw.Error()
}
