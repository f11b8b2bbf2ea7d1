package db

import (
	"context"
	"errors"
	"sync"
)

// idBlocks hands out PostgreSQL ids for InsertDeferred: a row whose id the job needs
// (a call record's, which its ledger row names) can then go out with the group's next
// round instead of a round trip of its own. Ids are taken from the table's identity
// sequence a block at a time, outside any transaction (sequences are not transactional):
// the ids of a block lost with its daemon are a gap, as a rolled-back insert leaves one.
// With several daemons, ids follow each daemon's blocks, not the order of the inserts.
type idBlocks struct {
	mu        sync.Mutex
	free      map[string][]int64 // by table
	refilling map[string]bool    // a block is on its way
}

// idBlock is how many ids one round trip takes; the next block is fetched in the
// background when half of one is left, so a job seldom waits for it.
const idBlock = 64

func (d *DB) newID(ctx context.Context, table string) (int64, error) {
	b := &d.ids
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.free == nil {
		b.free, b.refilling = map[string][]int64{}, map[string]bool{}
	}
	if len(b.free[table]) == 0 {
		ids, err := d.idsAhead(ctx, table)
		if err != nil {
			return 0, err
		}
		b.free[table] = append(b.free[table], ids...)
	}
	id := b.free[table][0]
	b.free[table] = b.free[table][1:]
	if len(b.free[table]) < idBlock/2 && !b.refilling[table] {
		b.refilling[table] = true
		go func() {
			ids, _ := d.idsAhead(context.WithoutCancel(ctx), table) // on error the next newID fetches
			b.mu.Lock()
			b.free[table] = append(b.free[table], ids...)
			b.refilling[table] = false
			b.mu.Unlock()
		}()
	}
	return id, nil
}

// idsAhead takes a block of ids from table's identity sequence.
func (d *DB) idsAhead(ctx context.Context, table string) ([]int64, error) {
	var ids []int64
	// The sequence is looked up once, not per id (pg_get_serial_sequence parses names).
	err := d.SelectContext(ctx, &ids, `SELECT nextval(s.seq) FROM (SELECT pg_get_serial_sequence($1, 'id')::regclass AS seq
		OFFSET 0) s, generate_series(1, $2)`, table, idBlock)
	return ids, Translate(err)
}

// InsertDeferred inserts a row into table and returns its id, for a job that needs the
// id but not to wait for the row. query names the id column first, with a ? for it:
// SQLite is given NULL and numbers the row itself (its last insert rowid). On PostgreSQL
// the id is NewID's and, in a group, the INSERT goes out with the group's next round,
// like ExecDeferred.
func (t *Tx) InsertDeferred(ctx context.Context, table, query string, args ...any) (int64, error) {
	if t.dialect == SQLite {
		return lastInsertID(t.Exec(ctx, query, append([]any{nil}, args...)...))
	}
	id, err := t.NewID(ctx, table)
	if err != nil {
		return 0, err
	}
	return id, t.ExecDeferred(ctx, query, append([]any{id}, args...)...)
}

// NewID is, on PostgreSQL, an id of table's sequence for a row the job inserts with it
// named: in a group one taken ahead (idBlocks); alone (a group failed, perhaps on an id
// that a new primary's sequence handed out again after a failover) one taken now.
func (t *Tx) NewID(ctx context.Context, table string) (int64, error) {
	if t.dialect != Postgres {
		return 0, errors.New("db: NewID is for PostgreSQL; SQLite numbers a row as it inserts it")
	}
	if t.Grouped() {
		return t.d.newID(ctx, table)
	}
	var id int64
	err := t.Get(ctx, &id, `SELECT nextval(pg_get_serial_sequence(?, 'id'))`, table)
	return id, err
}
