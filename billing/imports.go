package billing

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

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
		n, err = rating.ReadDirections(r, func(dir rating.Direction) error {
			if err := up.add(dir.Code, dir.Code, dir.ID, dir.Name, dir.MinLen, dir.MaxLen); err != nil {
				return err
			}
			if progress != nil {
				progress(up.rows())
			}
			return nil
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
		n, err = rating.ReadRateEntries(r, func(row rating.RateRow) error {
			if !dirs[row.DirectionID] {
				return fmt.Errorf("no direction %d", row.DirectionID)
			}
			if !routes[row.RouteID] {
				return fmt.Errorf("no route %d", row.RouteID)
			}
			key := strconv.FormatInt(row.DirectionID, 10) + "/" + strconv.Itoa(row.Priority)
			if err := up.add(key, ratesID, row.DirectionID, row.Priority, row.Cost, row.RouteID); err != nil {
				return err
			}
			if progress != nil {
				progress(up.rows())
			}
			return nil
		})
		if err != nil {
			return err
		}
		return up.flush()
	})
	return n, err
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
