package keys

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/narayana/narayanad/db"
)

// Directory caches who is who for the hot path: users, SIP accounts, SIP servers and
// currencies, as their readers shape them. Triggers bump directory_version in the
// transaction of every change to those tables, whoever makes it (this daemon, another
// on the same database, an operator with psql), and the cache starts over when the
// version moved. The gate checks it on every request, but reads it only when this
// daemon has written since the last read (db.Writes), or ForeignEvery has passed: so a
// change made through this daemon is seen by the very next request, one made by another
// process within ForeignEvery, and the call path reads no row of who is who at all.
//
// On PostgreSQL a LISTEN connection (db.Listener) tells of other processes' changes
// instead: while it listens (Listening(true)) the version is read only after a
// notification (Changed) or this daemon's own writes, never on a timer; when it drops,
// ForeignEvery's polling takes over until it listens again.
type Directory struct {
	db *db.DB
	// ForeignEvery bounds how long a change made by another process goes unseen.
	ForeignEvery time.Duration

	mu      sync.RWMutex
	version int64 // the newest version read; 0 until the first Check
	entries map[string]any

	readWrites atomic.Uint64 // db.Writes() before the last version read (+1: 0 is "never")
	readAt     atomic.Int64  // when the last version read began (monotonic ns since start)

	listening atomic.Bool // a LISTEN connection announces other processes' changes
	changed   atomic.Bool // one was announced (or may have been missed) since the last read
}

// Listening says whether other processes' changes are announced (a LISTEN connection is
// up): then the version is read after an announcement rather than every ForeignEvery.
// Either way the next request reads it once, for what went unannounced meanwhile.
func (d *Directory) Listening(up bool) {
	d.changed.Store(true)
	d.listening.Store(up)
}

// Changed reports a change announced by another process: the next request reads the
// version.
func (d *Directory) Changed() { d.changed.Store(true) }

// DefaultForeignEvery is Directory.ForeignEvery unless set.
const DefaultForeignEvery = 10 * time.Millisecond

var monoStart = time.Now()

func monoNow() int64 { return int64(time.Since(monoStart)) }

// maxDirectoryEntries bounds the cache; past it, it starts over.
const maxDirectoryEntries = 200_000

// NewDirectory returns an empty directory cache over d.
func NewDirectory(d *db.DB) *Directory {
	return &Directory{db: d, ForeignEvery: DefaultForeignEvery, entries: map[string]any{}}
}

// Check drops the cache when the directory version moved, reading it when it may have:
// after a write through this daemon (every request that follows reads it until one
// has), or once ForeignEvery has passed (one request reads it, the others go on).
func (d *Directory) Check(ctx context.Context) error {
	w, last := d.db.Writes()+1, d.readAt.Load()
	if w == d.readWrites.Load() {
		if d.listening.Load() {
			if !d.changed.Load() || !d.changed.CompareAndSwap(true, false) {
				return nil
			}
			d.readAt.Store(monoNow())
		} else if now := monoNow(); now-last < int64(d.ForeignEvery) || !d.readAt.CompareAndSwap(last, now) {
			return nil
		}
	} else {
		d.readAt.Store(monoNow())
	}
	var v int64
	if err := d.db.Q().Get(ctx, &v, `SELECT version FROM directory_version WHERE id = 1`); err != nil {
		d.readWrites.Store(0) // the next request tries again
		d.changed.Store(true)
		return err
	}
	// Writes counted after w began may not be in v: only w is known to be read.
	for seen := d.readWrites.Load(); w > seen && !d.readWrites.CompareAndSwap(seen, w); {
		seen = d.readWrites.Load()
	}
	d.mu.Lock()
	if v > d.version { // never backwards: a slower request may have read an older one
		d.version = v
		d.entries = map[string]any{}
	}
	d.mu.Unlock()
	return nil
}

// Remember returns the cached value of key, or loads it. A value is kept only when the
// version did not move while it loaded: data read after the version was read is at
// least as new as that version, so nothing older than the cache's version is kept.
func (d *Directory) Remember(key string, load func() (any, error)) (any, error) {
	d.mu.RLock()
	v, ok := d.entries[key]
	version := d.version
	d.mu.RUnlock()
	if ok {
		return v, nil
	}
	v, err := load()
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	if version != 0 && d.version == version {
		if len(d.entries) >= maxDirectoryEntries {
			d.entries = map[string]any{}
		}
		d.entries[key] = v
	}
	d.mu.Unlock()
	return v, nil
}
