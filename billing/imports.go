package billing

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// importMethods declares the methods whose handlers are in this file (not in the reference).
func (s *Service) importMethods() []Method {
	return []Method{
		method("importDeck", 33, s.importDeck, "rates:int!", "route:string!", "deck:string!", "priority:int=1",
			"replace:bool=false").
			Doc("apply a carrier's rate deck (`deck`: the file's text, prefix;description;rate lines, as "+
				"`narayanad import deck` reads) to a tariff the caller manages, through `route` (a name or id) at "+
				"`priority`; with `replace`, the tariff's other entries through that route go. Directions are "+
				"system-wide, so administrators only (not in the reference)",
				"{rows, directions, new_directions}"),
	}
}

// importDeck is ImportDeck through the method table: the tariff must be the caller's to change.
func (s *Service) importDeck(r *Request) (any, error) {
	if _, err := r.ownedRate(r.ctx, s.DB.Q(), r.Int("rates")); err != nil {
		return nil, err
	}
	if r.Int("priority") < 1 {
		return nil, apierr.New(apierr.InvalidArgument, "priority: 1 or more")
	}
	res, err := ImportDeck(r.ctx, s.DB, DeckSpec{RatesID: r.Int("rates"), Route: r.Str("route"),
		Priority: int(r.Int("priority")), Replace: r.Bool("replace")}, strings.NewReader(r.Str("deck")), nil)
	if err != nil {
		var le *rating.LineError
		if errors.As(err, &le) {
			return nil, apierr.New(apierr.InvalidArgument, "deck: %v", err)
		}
		return nil, err
	}
	s.ratingChanged(r.ctx)
	return map[string]any{"rows": res.Rows, "directions": res.Directions, "new_directions": res.NewDirections}, nil
}

// The imports (`narayanad import directions|rates`) apply a CSV file in one transaction:
// rows are checked as they stream in and written in multi-row upserts; the first bad row
// (a *rating.LineError naming its line) rolls back the whole file, so nothing of it is
// applied. The rating version is bumped in the same transaction, so running daemons
// reload their rating snapshot.

// importBatch is the number of rows per multi-row INSERT: 5 columns × 1000 rows stays under
// the placeholder limits of SQLite (32766) and PostgreSQL (65535).
const importBatch = 1000

// ImportDirections upserts directions by code from r (header rating.DirectionsHeader); a
// code repeated in the file takes its last row. progress, when not nil, is called after
// each row with the number of rows read so far. It answers the number of rows read.
func ImportDirections(ctx context.Context, d *db.DB, r io.Reader, progress func(rows int)) (int, error) {
	var n int
	err := changeRating(ctx, d, func(tx *db.Tx) error {
		up, err := newUpserter(ctx, tx, 5, func(rows int) string {
			return valuesSQL(`INSERT INTO directions (code, id, name, min_len, max_len) VALUES `, 5, rows,
				` ON CONFLICT (code) DO UPDATE SET id = excluded.id, name = excluded.name, min_len = excluded.min_len, max_len = excluded.max_len`)
		})
		if err != nil {
			return err
		}
		defer up.close()
		up.progress = progress
		n, err = rating.ReadDirections(r, func(dir rating.Direction) error {
			return up.add(dir.Code, dir.Code, dir.ID, dir.Name, dir.MinLen, dir.MaxLen)
		})
		if err != nil {
			return err
		}
		return up.flush()
	})
	return n, err
}

// ImportRates upserts the entries of tariff ratesID by direction and priority from r
// (header rating.RateEntriesHeader); with replace, the tariff's other entries go. Every
// row's direction and route must exist. progress is as for ImportDirections. It answers
// the number of rows read.
func ImportRates(ctx context.Context, d *db.DB, ratesID int64, replace bool, r io.Reader, progress func(rows int)) (int, error) {
	var n int
	err := changeRating(ctx, d, func(tx *db.Tx) error {
		if _, err := rateByID(ctx, tx, ratesID); err != nil {
			return err
		}
		routes, err := idSet(ctx, tx, `SELECT id FROM routes`)
		if err != nil {
			return err
		}
		dirs, err := idSet(ctx, tx, `SELECT DISTINCT id FROM directions`)
		if err != nil {
			return err
		}
		if replace {
			if _, err := tx.Exec(ctx, `DELETE FROM rate_entries WHERE rates_id = ?`, ratesID); err != nil {
				return err
			}
		}
		up, err := newUpserter(ctx, tx, 5, func(rows int) string {
			return valuesSQL(`INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES `, 5, rows,
				` ON CONFLICT (rates_id, direction_id, priority) DO UPDATE SET cost = excluded.cost, route_id = excluded.route_id`)
		})
		if err != nil {
			return err
		}
		defer up.close()
		up.progress = progress
		n, err = rating.ReadRateEntries(r, func(row rating.RateRow) error {
			if !dirs[row.DirectionID] {
				return fmt.Errorf("no direction %d", row.DirectionID)
			}
			if !routes[row.RouteID] {
				return fmt.Errorf("no route %d", row.RouteID)
			}
			key := strconv.FormatInt(row.DirectionID, 10) + "/" + strconv.Itoa(row.Priority)
			return up.add(key, ratesID, row.DirectionID, row.Priority, row.Cost, row.RouteID)
		})
		if err != nil {
			return err
		}
		return up.flush()
	})
	return n, err
}

// DeckSpec says where a carrier's rate deck goes: the tariff, the route its prices are
// through (a route's name, or its id when no route has that name) and the priority of
// those entries (1 when 0). With Replace, the tariff's other entries through that route
// go.
type DeckSpec struct {
	RatesID  int64
	Route    string
	Priority int
	Replace  bool
}

// DeckResult counts what ImportDeck did.
type DeckResult struct {
	Rows          int // rows read
	Directions    int // directions priced in the tariff
	NewDirections int // of which created
}

// ImportDeck applies a carrier's rate deck (rating.ReadDeck: prefix, description, rate per
// minute) to a tariff, in one transaction that bumps the rating version once.
//
// Directions: one direction per distinct description. A description that names an
// existing direction (exactly; the lowest id when several do) reuses its id; any other
// gets a new id above the current maximum, in the order of first appearance. Each prefix
// is upserted as a code of its description's direction (a prefix already known moves to
// it, keeping its min_len and max_len; a new one gets the defaults). Each direction gets
// one entry in the tariff: the description's rate through the route, at the priority. A
// description with two different rates is a bad row (a carrier's deck prices a
// destination once), as is any row rating.ReadDeck refuses; then nothing is applied.
func ImportDeck(ctx context.Context, d *db.DB, spec DeckSpec, r io.Reader, progress func(rows int)) (DeckResult, error) {
	var res DeckResult
	if spec.Priority == 0 {
		spec.Priority = 1
	}
	if spec.Priority < 1 {
		return res, apierr.New(apierr.InvalidArgument, "priority: 1 or more")
	}
	err := changeRating(ctx, d, func(tx *db.Tx) error {
		if _, err := rateByID(ctx, tx, spec.RatesID); err != nil {
			return err
		}
		route, err := routeNamed(ctx, tx, spec.Route)
		if err != nil {
			return err
		}
		var known []struct {
			Name string `db:"name"`
			ID   int64  `db:"id"`
		}
		if err := tx.Select(ctx, &known, `SELECT name, MIN(id) AS id FROM directions GROUP BY name`); err != nil {
			return err
		}
		byName := make(map[string]int64, len(known))
		var maxID int64
		for _, k := range known {
			byName[k.Name] = k.ID
			maxID = max(maxID, k.ID)
		}
		known = nil
		if spec.Replace {
			if _, err := tx.Exec(ctx, `DELETE FROM rate_entries WHERE rates_id = ? AND route_id = ?`, spec.RatesID, route); err != nil {
				return err
			}
		}
		codes, err := newUpserter(ctx, tx, 5, func(rows int) string {
			return valuesSQL(`INSERT INTO directions (code, id, name, min_len, max_len) VALUES `, 5, rows,
				` ON CONFLICT (code) DO UPDATE SET id = excluded.id, name = excluded.name`)
		})
		if err != nil {
			return err
		}
		defer codes.close()
		codes.progress = progress
		entries, err := newUpserter(ctx, tx, 5, func(rows int) string {
			return valuesSQL(`INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES `, 5, rows,
				` ON CONFLICT (rates_id, direction_id, priority) DO UPDATE SET cost = excluded.cost, route_id = excluded.route_id`)
		})
		if err != nil {
			return err
		}
		defer entries.close()
		type priced struct {
			id   int64
			rate money.Micro
			line int
		}
		seen := map[string]priced{}
		res.Rows, err = rating.ReadDeck(r, func(row rating.DeckRow) error {
			p, ok := seen[row.Description]
			switch {
			case ok && p.rate != row.Rate:
				return fmt.Errorf("%q costs %s here but %s at line %d", row.Description, row.Rate, p.rate, p.line)
			case !ok:
				id, exists := byName[row.Description]
				if !exists {
					maxID++
					id = maxID
					byName[row.Description] = id
					res.NewDirections++
				}
				p = priced{id: id, rate: row.Rate, line: row.Line}
				seen[row.Description] = p
				res.Directions++
				key := strconv.FormatInt(id, 10)
				if err := entries.add(key, spec.RatesID, id, spec.Priority, row.Rate, route); err != nil {
					return err
				}
			}
			return codes.add(row.Prefix, row.Prefix, p.id, row.Description, rating.DefaultMinLen, rating.DefaultMaxLen)
		})
		if err != nil {
			return err
		}
		if err := codes.flush(); err != nil {
			return err
		}
		return entries.flush()
	})
	return res, err
}

// routeNamed finds the route a deck's prices go through: by name, else by id when name is
// a number that no route has as its name.
func routeNamed(ctx context.Context, q db.Queryer, name string) (int64, error) {
	var ids []int64
	if err := q.Select(ctx, &ids, `SELECT id FROM routes WHERE name = ? ORDER BY id`, name); err != nil {
		return 0, err
	}
	if len(ids) == 0 {
		if id, err := strconv.ParseInt(name, 10, 64); err == nil && id > 0 {
			err := q.Select(ctx, &ids, `SELECT id FROM routes WHERE id = ?`, id)
			if err != nil {
				return 0, err
			}
		}
	}
	switch len(ids) {
	case 0:
		return 0, apierr.New(apierr.NotExist, "no route %q", name)
	case 1:
		return ids[0], nil
	}
	return 0, apierr.New(apierr.InvalidArgument, "%d routes are named %q: give the route's id", len(ids), name)
}

// ExportDirections writes every direction code to w as CSV (header
// rating.DirectionsHeader), by code: a file ImportDirections reads back.
func ExportDirections(ctx context.Context, d *db.DB, w io.Writer) error {
	rows, err := d.QueryContext(ctx, `SELECT id, code, name, min_len, max_len FROM directions ORDER BY code`)
	if err != nil {
		return err
	}
	defer rows.Close()
	cw := csv.NewWriter(w)
	cw.Write(rating.DirectionsHeader)
	for rows.Next() {
		var id int64
		var code, name string
		var minLen, maxLen int
		if err := rows.Scan(&id, &code, &name, &minLen, &maxLen); err != nil {
			return err
		}
		cw.Write([]string{strconv.FormatInt(id, 10), code, name, strconv.Itoa(minLen), strconv.Itoa(maxLen)})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// ExportRates writes the entries of tariff ratesID to w as CSV (header
// rating.RateEntriesHeader), by direction and priority: a file ImportRates reads back.
func ExportRates(ctx context.Context, d *db.DB, ratesID int64, w io.Writer) error {
	if _, err := rateByID(ctx, d.Q(), ratesID); err != nil {
		return err
	}
	rows, err := d.QueryContext(ctx, d.Rebind(`SELECT direction_id, cost, route_id, priority FROM rate_entries
		WHERE rates_id = ? ORDER BY direction_id, priority`), ratesID)
	if err != nil {
		return err
	}
	defer rows.Close()
	cw := csv.NewWriter(w)
	cw.Write(rating.RateEntriesHeader)
	for rows.Next() {
		var dir, route int64
		var cost money.Micro
		var prio int
		if err := rows.Scan(&dir, &cost, &route, &prio); err != nil {
			return err
		}
		cw.Write([]string{strconv.FormatInt(dir, 10), cost.String(), strconv.FormatInt(route, 10), strconv.Itoa(prio)})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// idSet reads a column of ids into a set.
func idSet(ctx context.Context, q db.Queryer, query string) (map[int64]bool, error) {
	var ids []int64
	if err := q.Select(ctx, &ids, query); err != nil {
		return nil, err
	}
	m := make(map[int64]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m, nil
}

// upserter writes rows in multi-row INSERT … ON CONFLICT DO UPDATE statements inside tx,
// with a prepared statement for full batches. A key seen twice in one batch flushes the
// batch first, so the last row of a file wins (PostgreSQL refuses to update a row twice in
// one statement).
type upserter struct {
	ctx    context.Context
	tx     *db.Tx
	cols   int
	sql    func(rows int) string
	full   *db.Stmt
	args   []any
	seen   map[string]bool
	stored int
	// progress, when set, is told the rows added so far after each add.
	progress func(rows int)
}

func newUpserter(ctx context.Context, tx *db.Tx, cols int, sqlFor func(rows int) string) (*upserter, error) {
	full, err := tx.Prepare(ctx, sqlFor(importBatch))
	if err != nil {
		return nil, err
	}
	return &upserter{ctx: ctx, tx: tx, cols: cols, sql: sqlFor, full: full,
		args: make([]any, 0, cols*importBatch), seen: make(map[string]bool, importBatch)}, nil
}

func (u *upserter) add(key string, vals ...any) error {
	if u.seen[key] {
		if err := u.flush(); err != nil {
			return err
		}
	}
	u.seen[key] = true
	u.args = append(u.args, vals...)
	if u.progress != nil {
		u.progress(u.rows())
	}
	if len(u.args) == u.cols*importBatch {
		return u.flush()
	}
	return nil
}

func (u *upserter) flush() error {
	n := len(u.args) / u.cols
	if n == 0 {
		return nil
	}
	var err error
	if n == importBatch {
		_, err = u.full.Exec(u.ctx, u.args...)
	} else {
		_, err = u.tx.Exec(u.ctx, u.sql(n), u.args...)
	}
	if err != nil {
		return err
	}
	u.stored += n
	u.args = u.args[:0]
	clear(u.seen)
	return nil
}

func (u *upserter) close() { u.full.Close() }

// rows counts the rows added so far, stored or waiting for the next flush.
func (u *upserter) rows() int { return u.stored + len(u.args)/u.cols }

func valuesSQL(prefix string, cols, rows int, suffix string) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(suffix) + rows*(cols*3+3))
	b.WriteString(prefix)
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	b.WriteString(suffix)
	return b.String()
}
