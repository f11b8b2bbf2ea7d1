package keys

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/narayana/narayanad/db"
)

// Whitelist is the ban `source` that marks an exemption rather than a ban.
const Whitelist = "whitelist"

// GateSource is the ban `source` of bans the daemon itself places.
const GateSource = "narayanad"

// Ban is a row of the bans list.
type Ban struct {
	ID        int64  `db:"id"`
	Source    string `db:"source"`
	Target    string `db:"target"`
	Reason    string `db:"reason"`
	Permanent int    `db:"permanent"`
	CreatedAt int64  `db:"created_at"`
}

// Bans keeps the banned and whitelisted addresses in memory, reloaded after every change
// made here and at least every TTL (for changes by other daemons), and counts bad keys.
type Bans struct {
	DB        *db.DB
	Threshold int // bad requests from one address before it is banned
	TTL       time.Duration
	Log       *slog.Logger // where a ban is reported; nil: slog's default

	mu          sync.Mutex
	banned      map[netip.Addr]bool
	whitelisted map[netip.Addr]bool
	loaded      time.Time
	bad         map[netip.Addr]int
}

// NewBans returns a ban list; threshold < 1 counts as 1.
func NewBans(d *db.DB, threshold int) *Bans {
	if threshold < 1 {
		threshold = 1
	}
	return &Bans{DB: d, Threshold: threshold, TTL: 5 * time.Second, bad: map[netip.Addr]int{}}
}

func parseTarget(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func (b *Bans) refresh(ctx context.Context) error {
	if b.banned != nil && time.Since(b.loaded) < b.TTL {
		return nil
	}
	var rows []Ban
	if err := b.DB.Q().Select(ctx, &rows, `SELECT id, source, target, reason, permanent, created_at FROM bans`); err != nil {
		return err
	}
	b.banned, b.whitelisted = map[netip.Addr]bool{}, map[netip.Addr]bool{}
	for _, r := range rows {
		a, ok := parseTarget(r.Target)
		if !ok {
			continue
		}
		if r.Source == Whitelist {
			b.whitelisted[a] = true
		} else {
			b.banned[a] = true
		}
	}
	b.loaded = time.Now()
	return nil
}

// IsBanned reports whether addr is banned (and not whitelisted).
func (b *Bans) IsBanned(ctx context.Context, addr netip.Addr) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.refresh(ctx); err != nil {
		return false, err
	}
	addr = addr.Unmap()
	return b.banned[addr] && !b.whitelisted[addr], nil
}

// IsWhitelisted reports whether addr is exempt from bans.
func (b *Bans) IsWhitelisted(ctx context.Context, addr netip.Addr) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.refresh(ctx); err != nil {
		return false, err
	}
	return b.whitelisted[addr.Unmap()], nil
}

// BadKey counts a request with an unknown, disabled or revoked key from addr and bans the
// address once it reaches the threshold, unless it is whitelisted. A ban is logged at WARN
// with the address and the key's first characters, so that an operator who finds an
// Asterisk locked out sees which key did it.
func (b *Bans) BadKey(ctx context.Context, addr netip.Addr, apikey string) error {
	addr = addr.Unmap()
	b.mu.Lock()
	if err := b.refresh(ctx); err != nil {
		b.mu.Unlock()
		return err
	}
	if b.whitelisted[addr] || b.banned[addr] {
		b.mu.Unlock()
		return nil
	}
	if len(b.bad) > 100_000 {
		b.bad = map[netip.Addr]int{}
	}
	b.bad[addr]++
	reached := b.bad[addr] >= b.Threshold
	if reached {
		delete(b.bad, addr)
		b.banned[addr] = true
	}
	b.mu.Unlock()
	if !reached {
		return nil
	}
	if err := AddBan(ctx, b.DB.Q(), GateSource, addr, "invalid API key"); err != nil {
		return err
	}
	log := b.Log
	if log == nil {
		log = slog.Default()
	}
	log.Warn("banned an address that presented a bad API key", "address", addr.String(), "key", Redact(apikey))
	return nil
}

// Invalidate forces a reload on the next check; call it after any change to bans.
func (b *Bans) Invalidate() {
	b.mu.Lock()
	b.banned = nil
	b.mu.Unlock()
}

// The bans list's store: the API (banIP, getBans, unbanIP), the gate and `narayanad bans`
// all go through these.

// AddBan writes a ban of addr, or its exemption when source is Whitelist. Callers with a
// Bans call Invalidate after it.
func AddBan(ctx context.Context, q db.Queryer, source string, addr netip.Addr, reason string) error {
	_, err := q.Exec(ctx, `INSERT INTO bans (source, target, reason, permanent, created_at) VALUES (?, ?, ?, 0, ?)`,
		source, addr.Unmap().String(), reason, time.Now().Unix())
	return err
}

// List returns every row of the bans list, whitelist entries included, oldest first.
func (b *Bans) List(ctx context.Context) ([]Ban, error) {
	var rows []Ban
	err := b.DB.Q().Select(ctx, &rows, `SELECT id, source, target, reason, permanent, created_at FROM bans ORDER BY id`)
	return rows, err
}

// Add bans addr (or whitelists it, with source Whitelist).
func (b *Bans) Add(ctx context.Context, source string, addr netip.Addr, reason string) error {
	err := AddBan(ctx, b.DB.Q(), source, addr, reason)
	b.Invalidate()
	return err
}

// Remove deletes the row id; it reports whether there was one.
func (b *Bans) Remove(ctx context.Context, id int64) (bool, error) {
	res, err := b.DB.Q().Exec(ctx, `DELETE FROM bans WHERE id = ?`, id)
	b.Invalidate()
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}

// Unban lifts every ban of addr, permanent ones too (what a locked-out operator needs),
// and keeps its whitelist entry; it returns how many bans it lifted.
func (b *Bans) Unban(ctx context.Context, addr netip.Addr) (int64, error) {
	res, err := b.DB.Q().Exec(ctx, `DELETE FROM bans WHERE target = ? AND source <> ?`, addr.Unmap().String(), Whitelist)
	b.mu.Lock()
	delete(b.bad, addr.Unmap())
	b.banned = nil
	b.mu.Unlock()
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
