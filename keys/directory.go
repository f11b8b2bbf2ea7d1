package keys

import (
	"context"
	"sync"

	"github.com/narayana/narayanad/db"
)

// Directory caches who is who for the hot path: users, SIP accounts, SIP servers and
// currencies, as their readers shape them. Triggers bump directory_version in the
// transaction of every change to those tables, whoever makes it (this daemon, another
// on the same database, an operator with psql); the gate reads the version once per
// request and the cache starts over when it moved. So a change is seen by the very next
// request, and the call path reads one row instead of several joins.
type Directory struct {
	db *db.DB

	mu      sync.RWMutex
	version int64 // the newest version read; 0 until the first Check
	entries map[string]any
}

// maxDirectoryEntries bounds the cache; past it, it starts over.
const maxDirectoryEntries = 200_000

// NewDirectory returns an empty directory cache over d.
func NewDirectory(d *db.DB) *Directory { return &Directory{db: d, entries: map[string]any{}} }

// Check reads the directory version and drops the cache when it moved.
func (d *Directory) Check(ctx context.Context) error {
	var v int64
	if err := d.db.Q().Get(ctx, &v, `SELECT version FROM directory_version WHERE id = 1`); err != nil {
		return err
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
