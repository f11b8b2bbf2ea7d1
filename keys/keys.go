// Package keys is the gate in front of every API method: API keys and their source
// masks, bans of addresses that present bad keys, password checks, and who manages whom.
package keys

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"strings"
	"sync"
	"time"

	"github.com/narayana/narayanad/db"
)

// Key is an API key (the reference's "API access" section).
type Key struct {
	ID             int64         `db:"id"`
	Name           string        `db:"name"`
	APIKey         string        `db:"apikey"`
	AuthBy         string        `db:"auth_by"`
	Source         string        `db:"source"`
	AccessLevel    int           `db:"access_level"`
	DefaultUser    string        `db:"default_user"`
	AllowedMethods string        `db:"allowed_methods"`
	SecureOnly     int           `db:"secure_only"`
	Enabled        int           `db:"enabled"`
	Revoked        int           `db:"revoked"`
	OwnerID        sql.NullInt64 `db:"owner_id"`
	DNSName        string        `db:"dnsname"`
	Maintenance    int64         `db:"maintenance"`
	CreatedAt      int64         `db:"created_at"`

	source  Source
	methods map[string]bool
}

// IsServer reports a server key: one with an access level above 0.
func (k *Key) IsServer() bool { return k.AccessLevel > 0 }

// Usable reports a key that is enabled and not revoked.
func (k *Key) Usable() bool { return k.Enabled == 1 && k.Revoked == 0 }

// Allows reports whether the key's allowed_methods admits method (empty means all).
func (k *Key) Allows(method string) bool { return len(k.methods) == 0 || k.methods[method] }

func (k *Key) prepare() {
	k.source, _ = ParseSource(k.Source) // an unparsable stored source allows nobody
	k.methods = nil
	for _, m := range strings.Split(k.AllowedMethods, ",") {
		if m = strings.TrimSpace(m); m != "" {
			if k.methods == nil {
				k.methods = map[string]bool{}
			}
			k.methods[m] = true
		}
	}
}

// KeyColumns lists the api_keys columns in Key's order.
const KeyColumns = `id, name, apikey, auth_by, source, access_level, default_user, allowed_methods,
	secure_only, enabled, revoked, owner_id, dnsname, maintenance, created_at`

// Keys looks API keys up through an in-memory cache. A change made here invalidates it at
// once; a change made by another daemon sharing the database is seen within TTL.
type Keys struct {
	DB  *db.DB
	TTL time.Duration

	mu     sync.RWMutex
	cache  map[string]cachedKey
	loaded time.Time
}

type cachedKey struct {
	key     *Key // nil: no such key
	fetched time.Time
}

// NewKeys returns a key store with a five-second cache.
func NewKeys(d *db.DB) *Keys {
	return &Keys{DB: d, TTL: 5 * time.Second, cache: map[string]cachedKey{}}
}

// Lookup finds the key whose secret is apikey; nil when there is none.
func (ks *Keys) Lookup(ctx context.Context, apikey string) (*Key, error) {
	now := time.Now()
	ks.mu.RLock()
	c, ok := ks.cache[apikey]
	ks.mu.RUnlock()
	if ok && now.Sub(c.fetched) < ks.TTL {
		return c.key, nil
	}
	var k Key
	err := ks.DB.Q().Get(ctx, &k, `SELECT `+KeyColumns+` FROM api_keys WHERE apikey = ?`, apikey)
	var found *Key
	switch {
	case err == nil:
		// The index found the row; compare in constant time all the same, so the
		// answer's timing does not depend on how much of a guess was right.
		if subtle.ConstantTimeCompare([]byte(k.APIKey), []byte(apikey)) == 1 {
			k.prepare()
			found = &k
		}
	case db.IsNotFound(err):
	default:
		return nil, err
	}
	ks.mu.Lock()
	if len(ks.cache) > 10_000 { // a flood of random keys must not grow memory
		ks.cache = map[string]cachedKey{}
	}
	ks.cache[apikey] = cachedKey{key: found, fetched: now}
	ks.mu.Unlock()
	return found, nil
}

// ByName returns the key named name.
func (ks *Keys) ByName(ctx context.Context, q db.Queryer, name string) (*Key, error) {
	var k Key
	if err := q.Get(ctx, &k, `SELECT `+KeyColumns+` FROM api_keys WHERE name = ?`, name); err != nil {
		return nil, err
	}
	k.prepare()
	return &k, nil
}

// List returns every key, by name.
func (ks *Keys) List(ctx context.Context) ([]Key, error) {
	var out []Key
	err := ks.DB.Q().Select(ctx, &out, `SELECT `+KeyColumns+` FROM api_keys ORDER BY name`)
	return out, err
}

// Revoke revokes the key id for good (it is also disabled); the gate then refuses it.
func (ks *Keys) Revoke(ctx context.Context, id int64) error {
	_, err := ks.DB.Q().Exec(ctx, `UPDATE api_keys SET revoked = 1, enabled = 0 WHERE id = ?`, id)
	ks.Invalidate()
	return err
}

// Redact shows the first characters of a secret, enough to tell keys apart in a log line
// or a listing, and never more than half of it.
func Redact(secret string) string {
	r := []rune(secret)
	return string(r[:min(4, len(r)/2)]) + "…"
}

// Invalidate drops the cache; call it after any change to api_keys.
func (ks *Keys) Invalidate() {
	ks.mu.Lock()
	ks.cache = map[string]cachedKey{}
	ks.mu.Unlock()
}
