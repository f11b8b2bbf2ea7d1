package main

import (
	"context"
	"database/sql"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/billing/money"
	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
)

// importBatch is the number of rows per multi-row INSERT: 5 columns × 1000 rows stays under
// the placeholder limits of SQLite (32766) and PostgreSQL (65535).
const importBatch = 1000

// progressEvery is how many rows pass between two progress lines on a terminal.
const progressEvery = 100_000

// The imports (`narayanad import directions|rates`) apply a file in one transaction: rows
// are checked as they stream in and written in multi-row upserts; the first bad row
// (reported with its line number) rolls back the whole file, so nothing of it is applied.
// The rating version is bumped in the same transaction, so running daemons reload their
// rating snapshot.

// runExportRates is `narayanad export rates --rates ID`: the tariff's entries as CSV on stdout.
func runExportRates(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export rates", stderr)
	dsn := dsnFlag(fs)
	rates := fs.Int64("rates", 0, "the tariff's id")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *rates <= 0 {
		return usagef("export rates needs --rates ID")
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := tariffExists(ctx, d.Q(), *rates); err != nil {
		return err
	}
	rows, err := d.QueryContext(ctx, d.Rebind(`SELECT direction_id, cost, route_id, priority FROM rate_entries
		WHERE rates_id = ? ORDER BY direction_id, priority`), *rates)
	if err != nil {
		return err
	}
	defer rows.Close()
	w := csv.NewWriter(stdout)
	w.Write(rating.RateEntriesHeader)
	for rows.Next() {
		var dir, route int64
		var cost money.Micro
		var prio int
		if err := rows.Scan(&dir, &cost, &route, &prio); err != nil {
			return err
		}
		w.Write([]string{strconv.FormatInt(dir, 10), cost.String(), strconv.FormatInt(route, 10), strconv.Itoa(prio)})
	}
	if err := rows.Err(); err != nil {
		return err
	}
	w.Flush()
	return w.Error()
}

// parseInterspersed parses flags that may come before or after the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func openChecked(ctx context.Context, dsn string) (*db.DB, error) {
	d, err := db.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := d.CheckSchema(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func tariffExists(ctx context.Context, q db.Queryer, id int64) error {
	var n int
	if err := q.Get(ctx, &n, `SELECT count(*) FROM rates WHERE id = ?`, id); err != nil {
		return err
	}
	if n == 0 {
		return fmt.Errorf("no tariff %d", id)
	}
	return nil
}

// openInput opens the CSV file ("-" is stdin).
func openInput(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	return os.Open(path)
}

// progress prints a running count to stderr when stderr is a terminal.
type progress struct {
	w     io.Writer
	on    bool
	what  string
	start time.Time
}

func newProgress(stderr io.Writer, what string) *progress {
	p := &progress{w: stderr, what: what, start: time.Now()}
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

func (p *progress) row(n int) {
	if p.on && n%progressEvery == 0 {
		fmt.Fprintf(p.w, "\r%s: %d rows (%.1fs)", p.what, n, time.Since(p.start).Seconds())
	}
}

func (p *progress) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

// upserter writes rows in multi-row INSERT … ON CONFLICT DO UPDATE statements inside tx,
// with a prepared statement for full batches. A key seen twice in one batch flushes the
// batch first, so the last row of a file wins (PostgreSQL refuses to update a row twice in
// one statement).
type upserter struct {
	ctx    context.Context
	d      *db.DB
	tx     *sql.Tx
	cols   int
	sql    func(rows int) string
	full   *sql.Stmt
	args   []any
	seen   map[string]bool
	stored int
}

func newUpserter(ctx context.Context, d *db.DB, tx *sql.Tx, cols int, sqlFor func(rows int) string) (*upserter, error) {
	full, err := tx.PrepareContext(ctx, d.Rebind(sqlFor(importBatch)))
	if err != nil {
		return nil, err
	}
	return &upserter{ctx: ctx, d: d, tx: tx, cols: cols, sql: sqlFor, full: full,
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
		_, err = u.full.ExecContext(u.ctx, u.args...)
	} else {
		_, err = u.tx.ExecContext(u.ctx, u.d.Rebind(u.sql(n)), u.args...)
	}
	if err != nil {
		return db.Translate(err)
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

// inTx runs fn in one transaction that also bumps the rating version.
func inTx(ctx context.Context, d *db.DB, fn func(tx *sql.Tx) error) error {
	tx, err := d.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE rating_version SET version = version + 1 WHERE id = 1`); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func runImportDirections(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import directions", stderr)
	dsn := dsnFlag(fs)
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("import directions needs one FILE.csv (header %s)", strings.Join(rating.DirectionsHeader, ","))
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	in, err := openInput(files[0])
	if err != nil {
		return err
	}
	defer in.Close()
	start := time.Now()
	p := newProgress(stderr, "import directions")
	var n int
	err = inTx(ctx, d, func(tx *sql.Tx) error {
		up, err := newUpserter(ctx, d, tx, 5, func(rows int) string {
			return valuesSQL(`INSERT INTO directions (code, id, name, min_len, max_len) VALUES `, 5, rows,
				` ON CONFLICT (code) DO UPDATE SET id = excluded.id, name = excluded.name, min_len = excluded.min_len, max_len = excluded.max_len`)
		})
		if err != nil {
			return err
		}
		defer up.close()
		n, err = rating.ReadDirections(in, func(dir rating.Direction) error {
			if err := up.add(dir.Code, dir.Code, dir.ID, dir.Name, dir.MinLen, dir.MaxLen); err != nil {
				return err
			}
			p.row(up.rows())
			return nil
		})
		if err != nil {
			return err
		}
		return up.flush()
	})
	p.done()
	if err != nil {
		return importError(files[0], err)
	}
	fmt.Fprintf(stdout, "imported %d directions from %s in %.2fs\n", n, files[0], time.Since(start).Seconds())
	return nil
}

func runImportRates(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import rates", stderr)
	dsn := dsnFlag(fs)
	rates := fs.Int64("rates", 0, "the tariff's id")
	replace := fs.Bool("replace", false, "delete the tariff's entries first (default: upsert by direction and priority)")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 || *rates <= 0 {
		return usagef("import rates needs --rates ID and one FILE.csv (header %s)", strings.Join(rating.RateEntriesHeader, ","))
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := tariffExists(ctx, d.Q(), *rates); err != nil {
		return err
	}
	var routeIDs, dirIDs []int64
	if err := d.Q().Select(ctx, &routeIDs, `SELECT id FROM routes`); err != nil {
		return err
	}
	if err := d.Q().Select(ctx, &dirIDs, `SELECT DISTINCT id FROM directions`); err != nil {
		return err
	}
	routes, dirs := set(routeIDs), set(dirIDs)
	in, err := openInput(files[0])
	if err != nil {
		return err
	}
	defer in.Close()
	start := time.Now()
	p := newProgress(stderr, "import rates")
	var n int
	err = inTx(ctx, d, func(tx *sql.Tx) error {
		if *replace {
			if _, err := tx.ExecContext(ctx, d.Rebind(`DELETE FROM rate_entries WHERE rates_id = ?`), *rates); err != nil {
				return err
			}
		}
		up, err := newUpserter(ctx, d, tx, 5, func(rows int) string {
			return valuesSQL(`INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES `, 5, rows,
				` ON CONFLICT (rates_id, direction_id, priority) DO UPDATE SET cost = excluded.cost, route_id = excluded.route_id`)
		})
		if err != nil {
			return err
		}
		defer up.close()
		n, err = rating.ReadRateEntries(in, func(row rating.RateRow) error {
			if !dirs[row.DirectionID] {
				return fmt.Errorf("no direction %d", row.DirectionID)
			}
			if !routes[row.RouteID] {
				return fmt.Errorf("no route %d", row.RouteID)
			}
			key := strconv.FormatInt(row.DirectionID, 10) + "/" + strconv.Itoa(row.Priority)
			if err := up.add(key, *rates, row.DirectionID, row.Priority, row.Cost, row.RouteID); err != nil {
				return err
			}
			p.row(up.rows())
			return nil
		})
		if err != nil {
			return err
		}
		return up.flush()
	})
	p.done()
	if err != nil {
		return importError(files[0], err)
	}
	fmt.Fprintf(stdout, "imported %d entries of tariff %d from %s in %.2fs\n", n, *rates, files[0], time.Since(start).Seconds())
	return nil
}

func set(ids []int64) map[int64]bool {
	m := make(map[int64]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// importError names the file and line of a bad row and says that nothing was applied.
func importError(path string, err error) error {
	var le *rating.LineError
	if errors.As(err, &le) {
		return fmt.Errorf("%s:%d: %v (nothing imported)", path, le.Line, le.Err)
	}
	return fmt.Errorf("%s: %w (nothing imported)", path, err)
}
