package db

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// A dump is the whole database in a form neither dialect owns, so that an installation
// moves from SQLite to PostgreSQL and back: gzip'd JSON lines. The first line is the
// header (DumpHeader); then, for every table, a line {"table":…,"columns":[…]} followed by
// one JSON array per row, values in the columns' order. A value is null, a number, a
// string, or {"bytes":"<base64>"} for a BLOB/BYTEA. The last line is {"end":true,…}: a
// truncated file is refused instead of loaded in part.

// DumpFormat names the format in the header; a reader refuses any other.
const DumpFormat = "narayanad-dump/1"

// DumpHeader is a dump's first line.
type DumpHeader struct {
	Format  string `json:"format"`
	Schema  int    `json:"schema"`  // the newest migration the dumped database had
	Dialect string `json:"dialect"` // where it came from (informative)
	Created string `json:"created"` // RFC 3339, UTC
}

type dumpTable struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
}

type dumpEnd struct {
	End  bool           `json:"end"`
	Rows map[string]int `json:"rows"`
}

// DumpStats says what a dump or load moved: rows per table.
type DumpStats struct {
	Schema int
	Rows   map[string]int
	Took   time.Duration
}

// Total is the number of rows in every table.
func (s DumpStats) Total() int {
	n := 0
	for _, r := range s.Rows {
		n += r
	}
	return n
}

// skipTable is bookkeeping a load recreates itself: the migrations' record (the target
// gets its own by migrating) and SQLite's internals (AUTOINCREMENT counters follow the
// ids inserted).
func skipTable(name string) bool {
	return name == "schema_migrations" || strings.HasPrefix(name, "sqlite_")
}

// tables lists the schema's tables, parents before children (by foreign key), each
// with its self-references (a column naming a row of the same table).
func (d *DB) tables(ctx context.Context, q querier) ([]string, map[string][]string, error) {
	listQ := `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`
	if d.Dialect == Postgres {
		listQ = `SELECT table_name FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`
	}
	var all, names []string
	if err := q.SelectContext(ctx, &all, listQ); err != nil {
		return nil, nil, err
	}
	for _, n := range all {
		if !skipTable(n) {
			names = append(names, n)
		}
	}
	parents := map[string][]string{} // table -> the tables it references
	self := map[string][]string{}    // table -> its columns that reference itself
	type fk struct {
		Table  string `db:"tbl"`
		Column string `db:"col"`
		Ref    string `db:"ref"`
	}
	var fks []fk
	if d.Dialect == Postgres {
		err := q.SelectContext(ctx, &fks, `SELECT (SELECT relname FROM pg_class WHERE oid = c.conrelid) AS tbl,
				a.attname AS col, (SELECT relname FROM pg_class WHERE oid = c.confrelid) AS ref
			FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
			WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace`)
		if err != nil {
			return nil, nil, err
		}
	} else {
		for _, t := range names {
			var rows []fk
			if err := q.SelectContext(ctx, &rows, `SELECT ? AS tbl, "from" AS col, "table" AS ref
				FROM pragma_foreign_key_list(?)`, t, t); err != nil {
				return nil, nil, err
			}
			fks = append(fks, rows...)
		}
	}
	for _, f := range fks {
		if f.Table == f.Ref {
			self[f.Table] = append(self[f.Table], f.Column)
		} else {
			parents[f.Table] = append(parents[f.Table], f.Ref)
		}
	}
	// Depth-first: every table after the tables it references. The schema has no cycle
	// between tables (only self-references, loaded in a second pass).
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(string) error
	visit = func(t string) error {
		switch state[t] {
		case 1:
			return fmt.Errorf("db: foreign keys form a cycle through %s", t)
		case 2:
			return nil
		}
		state[t] = 1
		ps := parents[t]
		sort.Strings(ps)
		for _, p := range ps {
			if err := visit(p); err != nil {
				return err
			}
		}
		state[t] = 2
		order = append(order, t)
		return nil
	}
	for _, t := range names {
		if err := visit(t); err != nil {
			return nil, nil, err
		}
	}
	return order, self, nil
}

// Dump writes every table of the database to w (see DumpFormat), as one consistent
// snapshot taken while daemons keep serving: a read transaction (SQLite's WAL lets the
// writer go on; PostgreSQL's REPEATABLE READ sees one moment of every table).
func (d *DB) Dump(ctx context.Context, w io.Writer) (DumpStats, error) {
	start := time.Now()
	v, err := d.SchemaVersion(ctx)
	if err != nil {
		return DumpStats{}, err
	}
	if v == 0 {
		return DumpStats{}, fmt.Errorf("the database holds no narayanad schema: nothing to dump")
	}
	tx, end, err := d.snapshot(ctx)
	if err != nil {
		return DumpStats{}, err
	}
	defer end()
	tables, _, err := d.tables(ctx, tx)
	if err != nil {
		return DumpStats{}, err
	}
	zw := gzip.NewWriter(w)
	bw := bufio.NewWriterSize(zw, 1<<16)
	enc := json.NewEncoder(bw)
	st := DumpStats{Schema: v, Rows: map[string]int{}}
	if err := enc.Encode(DumpHeader{Format: DumpFormat, Schema: v, Dialect: string(d.Dialect),
		Created: time.Now().UTC().Format(time.RFC3339)}); err != nil {
		return st, err
	}
	for _, t := range tables {
		n, err := dumpOne(ctx, tx, enc, t)
		if err != nil {
			return st, fmt.Errorf("dump %s: %w", t, err)
		}
		st.Rows[t] = n
	}
	if err := enc.Encode(dumpEnd{End: true, Rows: st.Rows}); err != nil {
		return st, err
	}
	if err := bw.Flush(); err != nil {
		return st, err
	}
	if err := zw.Close(); err != nil {
		return st, err
	}
	st.Took = time.Since(start)
	return st, nil
}

// querier is what the dump reads through: a transaction, or one connection in one.
type querier interface {
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// snapshot begins the dump's read transaction and returns it with its end. On SQLite
// the DSN makes every BeginTx take the write lock (_txlock=immediate), which would stop
// the daemons' writes for the whole dump: a plain BEGIN on one connection reads a
// snapshot without it.
func (d *DB) snapshot(ctx context.Context) (querier, func(), error) {
	conn, err := d.Connx(ctx)
	if err != nil {
		return nil, nil, err
	}
	if d.Dialect == SQLite {
		if _, err := conn.ExecContext(ctx, `BEGIN DEFERRED`); err != nil {
			conn.Close()
			return nil, nil, err
		}
		return conn, func() { conn.ExecContext(context.Background(), `ROLLBACK`); conn.Close() }, nil
	}
	tx, err := conn.BeginTxx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return tx, func() { tx.Rollback(); conn.Close() }, nil
}

func dumpOne(ctx context.Context, tx querier, enc *json.Encoder, table string) (int, error) {
	// Ordered by the first column (the primary key in every table), so that a dump of
	// the same data is the same file and self-references mostly point backwards.
	rows, err := tx.QueryContext(ctx, `SELECT * FROM `+quoteIdent(table)+` ORDER BY 1`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	if err := enc.Encode(dumpTable{Table: table, Columns: cols}); err != nil {
		return 0, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	out := make([]any, len(cols))
	n := 0
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		for i, v := range vals {
			switch x := v.(type) {
			case []byte:
				out[i] = map[string]string{"bytes": base64.StdEncoding.EncodeToString(x)}
			case time.Time: // no column is a timestamp (times are Unix seconds); be safe
				out[i] = x.UTC().Format(time.RFC3339Nano)
			default:
				out[i] = x
			}
		}
		if err := enc.Encode(out); err != nil {
			return n, err
		}
		n++
	}
	return n, rows.Err()
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// LoadOptions says what Load may replace.
type LoadOptions struct {
	// Force loads into a database that already holds a narayanad schema (one made by
	// `narayanad init`, say) by deleting its rows first. A database with ledger rows is
	// refused even so: ledger rows are never deleted.
	Force bool
}

// ErrLoadTarget is Load's refusal of a target that holds data.
var ErrLoadTarget = errors.New("the target database is not empty")

// Load reads a dump made by Dump into d, which must be empty (no schema: Load creates
// it) or, with opts.Force, a narayanad database without ledger rows. The dump's schema
// must be this binary's. Everything is loaded in one transaction: on any error the
// target is left as it was. On PostgreSQL the identity counters are moved past the
// loaded ids, so that new rows do not collide with them.
func (d *DB) Load(ctx context.Context, r io.Reader, opts LoadOptions) (DumpStats, error) {
	start := time.Now()
	zr, err := gzip.NewReader(r)
	if err != nil {
		return DumpStats{}, fmt.Errorf("not a narayanad dump (gzip: %w)", err)
	}
	lr := &lineReader{dec: json.NewDecoder(bufio.NewReaderSize(zr, 1<<16))}
	lr.dec.UseNumber()
	var h DumpHeader
	if line, err := lr.next(); err != nil || json.Unmarshal(line, &h) != nil || h.Format != DumpFormat {
		return DumpStats{}, fmt.Errorf("not a narayanad dump (want a first line with format %q)", DumpFormat)
	}
	if want := d.LatestVersion(); h.Schema != want {
		if h.Schema < want {
			return DumpStats{}, fmt.Errorf("the dump holds schema version %d and this binary's is %d: run `narayanad migrate` on the source database with this binary, then dump it again", h.Schema, want)
		}
		return DumpStats{}, fmt.Errorf("the dump holds schema version %d, newer than this binary's %d: load it with the narayanad that made it", h.Schema, want)
	}
	v, err := d.SchemaVersion(ctx)
	if err != nil {
		return DumpStats{}, err
	}
	if v != 0 {
		if !opts.Force {
			return DumpStats{}, fmt.Errorf("%w: it holds a narayanad schema (version %d); load only into an empty database, or --force to replace one that has no ledger rows yet (as `narayanad init` leaves it)", ErrLoadTarget, v)
		}
		if err := d.CheckSchema(ctx); err != nil {
			return DumpStats{}, err
		}
		var n int
		if err := d.GetContext(ctx, &n, `SELECT COUNT(*) FROM ledger`); err != nil {
			return DumpStats{}, err
		}
		if n > 0 {
			return DumpStats{}, fmt.Errorf("%w: it holds %d ledger rows, which are never deleted; load into a new, empty database", ErrLoadTarget, n)
		}
	}
	st := DumpStats{Schema: h.Schema, Rows: map[string]int{}}
	err = d.InTx(ctx, func(tx *Tx) error {
		if v == 0 {
			// The schema is created in the load's transaction: a failed load leaves
			// the target as empty as it was (PostgreSQL's DDL is transactional; SQLite's too).
			if err := d.migrateIn(ctx, tx); err != nil {
				return err
			}
		}
		if d.Dialect == SQLite {
			// Foreign keys are checked at COMMIT, over the whole load.
			if _, err := tx.tx.ExecContext(ctx, `PRAGMA defer_foreign_keys = ON`); err != nil {
				return err
			}
		}
		order, self, err := d.tables(ctx, tx.tx)
		if err != nil {
			return err
		}
		// Empty the target: the rows its migrations seeded (currencies, bill types, the
		// version rows) or `init` made; the dump brings its own.
		for i := len(order) - 1; i >= 0; i-- {
			if _, err := tx.tx.ExecContext(ctx, `DELETE FROM `+quoteIdent(order[i])); err != nil {
				return fmt.Errorf("empty %s: %w", order[i], err)
			}
		}
		pos := map[string]int{}
		for i, t := range order {
			pos[t] = i + 1
		}
		last := 0
		for {
			line, err := lr.next()
			if err != nil {
				return err
			}
			var tl struct {
				dumpTable
				dumpEnd
			}
			if err := json.Unmarshal(line, &tl); err != nil {
				return fmt.Errorf("the dump is damaged: expected a table line, got %.60s", line)
			}
			if tl.End {
				for t, n := range tl.Rows {
					if st.Rows[t] != n {
						return fmt.Errorf("the dump is damaged: %s has %d rows, its end line says %d", t, st.Rows[t], n)
					}
				}
				break
			}
			switch {
			case tl.Table == "" || len(tl.Columns) == 0:
				return fmt.Errorf("the dump is damaged: expected a table line, got %.60s", line)
			case pos[tl.Table] == 0:
				return fmt.Errorf("the dump has a table %q that this schema lacks", tl.Table)
			case pos[tl.Table] <= last:
				return fmt.Errorf("the dump is damaged: table %s twice or out of order", tl.Table)
			}
			last = pos[tl.Table]
			n, err := loadTable(ctx, tx, lr, tl.dumpTable, self[tl.Table])
			if err != nil {
				return fmt.Errorf("load %s: %w", tl.Table, err)
			}
			st.Rows[tl.Table] = n
		}
		// Whoever caches the directory or the rating starts over.
		for _, q := range []string{`UPDATE directory_version SET version = version + 1`, `UPDATE rating_version SET version = version + 1`} {
			if _, err := tx.tx.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		if d.Dialect == Postgres {
			return resetIdentities(ctx, tx)
		}
		return nil
	})
	if err != nil {
		return DumpStats{}, err
	}
	st.Took = time.Since(start)
	return st, nil
}

// lineReader reads a dump's lines one JSON value at a time, with one line of lookahead.
type lineReader struct {
	dec  *json.Decoder
	back json.RawMessage
}

func (l *lineReader) next() (json.RawMessage, error) {
	if l.back != nil {
		line := l.back
		l.back = nil
		return line, nil
	}
	var line json.RawMessage
	if err := l.dec.Decode(&line); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("the dump is truncated (no end line)")
		}
		return nil, fmt.Errorf("the dump is damaged: %w", err)
	}
	return line, nil
}

func (l *lineReader) unread(line json.RawMessage) { l.back = line }

// loadTable inserts a table's rows, read up to the next table or end line, in multi-row
// INSERTs. Self-referencing columns are inserted NULL and set once the table is in, so
// that a row may name one that comes after it.
func loadTable(ctx context.Context, tx *Tx, lr *lineReader, tl dumpTable, self []string) (int, error) {
	cols := make([]string, len(tl.Columns))
	selfAt := map[int]bool{}
	idAt := -1
	for i, c := range tl.Columns {
		cols[i] = quoteIdent(c)
		if c == "id" {
			idAt = i
		}
		for _, s := range self {
			if s == c {
				selfAt[i] = true
			}
		}
	}
	if len(selfAt) > 0 && idAt < 0 {
		return 0, fmt.Errorf("a self-reference without an id column")
	}
	// Rows per INSERT: within both drivers' limits on parameters (SQLite 32766,
	// PostgreSQL 65535), and large enough that a million rows take few round trips.
	per := max(1, min(500, 30000/len(cols)))
	head := `INSERT INTO ` + quoteIdent(tl.Table) + ` (` + strings.Join(cols, ", ") + `) VALUES `
	one := `(` + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + `)`
	var args []any
	type ref struct {
		col     string
		id, val any
	}
	var later []ref // self-references, set once the table is in
	n, batched := 0, 0
	flush := func() error {
		if batched == 0 {
			return nil
		}
		q := head + strings.TrimSuffix(strings.Repeat(one+", ", batched), ", ")
		if _, err := tx.tx.ExecContext(ctx, tx.tx.Rebind(q), args...); err != nil {
			return Translate(err)
		}
		args, batched = args[:0], 0
		return nil
	}
	for {
		line, err := lr.next()
		if err != nil {
			return n, err
		}
		if len(line) > 0 && line[0] == '{' {
			lr.unread(line)
			break
		}
		var row []any
		rd := json.NewDecoder(bytes.NewReader(line))
		rd.UseNumber() // ids and money are int64: never through float64
		if err := rd.Decode(&row); err != nil || len(row) != len(cols) {
			return n, fmt.Errorf("the dump is damaged: row %d is not %d values", n+1, len(cols))
		}
		for i, v := range row {
			x, err := dumpValue(v)
			if err != nil {
				return n, fmt.Errorf("row %d, %s: %w", n+1, tl.Columns[i], err)
			}
			if selfAt[i] && x != nil {
				id, _ := dumpValue(row[idAt])
				later = append(later, ref{tl.Columns[i], id, x})
				x = nil
			}
			args = append(args, x)
		}
		n++
		if batched++; batched == per {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := flush(); err != nil {
		return n, err
	}
	for _, l := range later {
		q := `UPDATE ` + quoteIdent(tl.Table) + ` SET ` + quoteIdent(l.col) + ` = ? WHERE id = ?`
		if _, err := tx.tx.ExecContext(ctx, tx.tx.Rebind(q), l.val, l.id); err != nil {
			return n, Translate(err)
		}
	}
	return n, nil
}

// dumpValue turns a decoded JSON value back into a driver value: a whole number into
// int64 (a float column takes it as well), a fraction into float64, {"bytes":…} into
// []byte.
func dumpValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, string:
		return x, nil
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i, nil
		}
		return x.Float64()
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	case map[string]any:
		if b, ok := x["bytes"].(string); ok && len(x) == 1 {
			return base64.StdEncoding.DecodeString(b)
		}
	}
	return nil, fmt.Errorf("unexpected value %v", v)
}

// resetIdentities moves every identity (or serial) counter of the schema past the
// largest id loaded, so that the next INSERT does not collide with a loaded row.
func resetIdentities(ctx context.Context, tx *Tx) error {
	var cols []struct {
		Table  string `db:"table_name"`
		Column string `db:"column_name"`
	}
	if err := tx.tx.SelectContext(ctx, &cols, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')`); err != nil {
		return err
	}
	for _, c := range cols {
		// An empty table keeps its counter where it is (accounts start at 100000001).
		q := fmt.Sprintf(`SELECT setval(pg_get_serial_sequence(%s, %s), m, true)
			FROM (SELECT MAX(%s) AS m FROM %s) x WHERE m IS NOT NULL`,
			quoteLiteral(quoteIdent(c.Table)), quoteLiteral(c.Column), quoteIdent(c.Column), quoteIdent(c.Table))
		if _, err := tx.tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("identity of %s.%s: %w", c.Table, c.Column, err)
		}
	}
	return nil
}

func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
