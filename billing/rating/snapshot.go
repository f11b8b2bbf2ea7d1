package rating

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/narayana/narayanad/money"
)

// Errors of Rate. Callers compare with errors.Is: the returned errors wrap these with the
// number or tariff concerned.
var (
	// ErrUnroutable: no direction for the number, the tariff has no entry for the direction,
	// or no enabled route at the requested priority (callPrepare: Declined E_UNROUTABLE).
	ErrUnroutable = errors.New("unroutable")
	// ErrUnknownTariff: the query's base tariff is not in the snapshot.
	ErrUnknownTariff = errors.New("unknown tariff")
)

// Entry is one row of a tariff: the cost per minute of a direction through a route at a
// priority (1 first).
type Entry struct {
	DirectionID int64
	Priority    int
	Cost        money.Micro // per minute
	RouteID     int64
	Periods     *Periods // prices by period; nil for a plain entry
}

// Route is what rating needs of a route.
type Route struct {
	ID      int64
	Name    string
	Prefix  string
	Enabled bool
}

// Tariff is a tariff or tariff option with its entries. A Tariff reached through a Snapshot
// is shared and must not be modified.
type Tariff struct {
	ID            int64
	Name          string
	BillType      string
	IsOption      bool
	SwitchPrice   money.Micro
	Multiplier    money.Micro // money.One = 1.0
	DIDMultiplier money.Micro // money.One = 1.0

	entries []Entry          // sorted by direction ID, then priority
	spans   map[int64]uint64 // direction ID → start<<32 | count in entries
}

// Entries returns the tariff's entries for a direction, in priority order. The slice is
// shared: do not modify it.
func (t *Tariff) Entries(directionID int64) []Entry {
	if t == nil {
		return nil
	}
	s, ok := t.spans[directionID]
	if !ok {
		return nil
	}
	start, end := s>>32, s>>32+s&0xffffffff
	return t.entries[start:end:end]
}

// AllEntries returns every entry, ordered by direction ID then priority (getRates). The
// slice is shared: do not modify it.
func (t *Tariff) AllEntries() []Entry {
	if t == nil {
		return nil
	}
	return t.entries[:len(t.entries):len(t.entries)]
}

// Snapshot is an immutable view of everything callPrepare needs: directions, tariffs,
// routes and bill types. Build one with a Builder; publish it with Live. Its maps must not
// be modified.
type Snapshot struct {
	Index     *Index
	Tariffs   map[int64]*Tariff
	Routes    map[int64]*Route
	BillTypes map[string]BillType
}

var emptySnapshot = &Snapshot{
	Index:     NewIndex(nil),
	Tariffs:   map[int64]*Tariff{},
	Routes:    map[int64]*Route{},
	BillTypes: map[string]BillType{BySecond.Name: BySecond, ByMinute.Name: ByMinute},
}

// Live publishes the current Snapshot to any number of readers without locks. The zero
// value is ready to use.
type Live struct {
	p atomic.Pointer[Snapshot]
}

// Load returns the current snapshot, or an empty one (no directions, no tariffs, the
// built-in bill types) before the first Store.
func (l *Live) Load() *Snapshot {
	if s := l.p.Load(); s != nil {
		return s
	}
	return emptySnapshot
}

// Store publishes s; readers that already loaded the previous snapshot keep using it.
func (l *Live) Store(s *Snapshot) { l.p.Store(s) }

// Query is what callPrepare and callFinish ask of a snapshot.
type Query struct {
	Number   string  // as dialled; normalised by Rate
	TariffID int64   // the extension's sip_rates_id, else the user's tariff
	Options  []int64 // sip_rates_options, first wins
	Prior    int     // 1 = first enabled route; values below 1 count as 1
	IsDID    bool
}

// Quote is the answer to a Query. Its embedded Price gives Charge and MaxCallTime.
type Quote struct {
	Number    string // normalised
	Direction Direction
	Tariff    *Tariff // the tariff or option whose entry was used
	Entry     Entry
	Route     *Route
	Price
	// BillTypeFallback is set when the tariff's bill type is unknown to the snapshot and
	// ByMinute was used instead; worth a log line.
	BillTypeFallback bool
}

// Rate resolves q's number and picks the entry and route: the first option in q.Options
// that has entries for the direction replaces the base tariff's entries for it (even when
// none of its routes is enabled), and q.Prior selects the N-th entry, in priority order,
// whose route is enabled. It does not allocate on success.
func (s *Snapshot) Rate(q Query) (Quote, error) {
	num := Normalize(q.Number)
	base := s.Tariffs[q.TariffID]
	if base == nil {
		return Quote{}, fmt.Errorf("%w %d", ErrUnknownTariff, q.TariffID)
	}
	dir, ok := s.Index.Resolve(num)
	if !ok {
		return Quote{}, fmt.Errorf("%w: no direction for %q", ErrUnroutable, num)
	}
	t := base
	entries := base.Entries(dir.ID)
	for _, id := range q.Options {
		if o := s.Tariffs[id]; o != nil {
			if es := o.Entries(dir.ID); len(es) > 0 {
				t, entries = o, es
				break
			}
		}
	}
	if len(entries) == 0 {
		return Quote{}, fmt.Errorf("%w: tariff %d has no entry for direction %d (%s)", ErrUnroutable, t.ID, dir.ID, dir.Name)
	}
	prior := max(q.Prior, 1)
	for _, e := range entries {
		r := s.Routes[e.RouteID]
		if r == nil || !r.Enabled {
			continue
		}
		if prior--; prior > 0 {
			continue
		}
		bt, known := s.BillTypes[t.BillType]
		if !known {
			bt = ByMinute
		}
		return Quote{
			Number:    num,
			Direction: dir,
			Tariff:    t,
			Entry:     e,
			Route:     r,
			Price: Price{
				BillType:      bt,
				Cost:          e.Cost,
				Multiplier:    t.Multiplier,
				DIDMultiplier: t.DIDMultiplier,
				IsDID:         q.IsDID,
				SwitchPrice:   t.SwitchPrice,
				Periods:       e.Periods,
			},
			BillTypeFallback: !known,
		}, nil
	}
	return Quote{}, fmt.Errorf("%w: tariff %d has no enabled route at priority %d for direction %d (%s)",
		ErrUnroutable, t.ID, max(q.Prior, 1), dir.ID, dir.Name)
}

// Builder assembles a Snapshot. It is not safe for concurrent use.
type Builder struct {
	index     *Index
	tariffs   map[int64]*draft
	routes    map[int64]*Route
	billTypes map[string]BillType
}

// draft is a tariff being built: either unchanged from a previous snapshot (orig, entries
// shared) or with its own entries.
type draft struct {
	t       Tariff
	orig    *Tariff
	entries []Entry
}

// NewBuilder starts an empty snapshot with the built-in bill types.
func NewBuilder() *Builder {
	return &Builder{
		tariffs:   map[int64]*draft{},
		routes:    map[int64]*Route{},
		billTypes: map[string]BillType{BySecond.Name: BySecond, ByMinute.Name: ByMinute},
	}
}

// Edit starts a builder from s: same index, routes, bill types and tariffs. Tariffs that are
// not touched keep sharing their entries with s, so replacing one tariff or one route does
// not copy a million entries.
func (s *Snapshot) Edit() *Builder {
	b := NewBuilder()
	b.index = s.Index
	for id, t := range s.Tariffs {
		b.tariffs[id] = &draft{t: *t, orig: t}
	}
	for id, r := range s.Routes {
		b.routes[id] = r
	}
	for n, bt := range s.BillTypes {
		b.billTypes[n] = bt
	}
	return b
}

// SetIndex uses an already built index.
func (b *Builder) SetIndex(ix *Index) *Builder { b.index = ix; return b }

// SetDirections builds the index from dirs (see NewIndex).
func (b *Builder) SetDirections(dirs []Direction) *Builder { b.index = NewIndex(dirs); return b }

// SetBillType adds or replaces a bill type.
func (b *Builder) SetBillType(bt BillType) *Builder { b.billTypes[bt.Name] = bt; return b }

// DeleteBillType removes a bill type; tariffs still naming it are billed ByMinute.
func (b *Builder) DeleteBillType(name string) *Builder { delete(b.billTypes, name); return b }

// SetRoute adds or replaces a route.
func (b *Builder) SetRoute(r Route) *Builder { b.routes[r.ID] = &r; return b }

// DeleteRoute removes a route; entries through it count as disabled.
func (b *Builder) DeleteRoute(id int64) *Builder { delete(b.routes, id); return b }

// SetTariff adds a tariff or replaces its settings, keeping its entries.
func (b *Builder) SetTariff(t Tariff) *Builder {
	t.entries, t.spans = nil, nil
	if d := b.tariffs[t.ID]; d != nil {
		d.t = t
		return b
	}
	b.tariffs[t.ID] = &draft{t: t}
	return b
}

// DeleteTariff removes a tariff and its entries.
func (b *Builder) DeleteTariff(id int64) *Builder { delete(b.tariffs, id); return b }

func (b *Builder) own(tariffID int64) (*draft, error) {
	d := b.tariffs[tariffID]
	if d == nil {
		return nil, fmt.Errorf("%w %d", ErrUnknownTariff, tariffID)
	}
	if d.orig != nil {
		d.entries = slices.Clone(d.orig.entries)
		d.orig = nil
	}
	return d, nil
}

// AddEntry adds an entry to a tariff set before. An entry with the same direction and
// priority as an existing one replaces it when the snapshot is built (last wins).
func (b *Builder) AddEntry(tariffID int64, e Entry) error {
	d, err := b.own(tariffID)
	if err != nil {
		return err
	}
	d.entries = append(d.entries, e)
	return nil
}

// ClearEntries removes every entry of a tariff.
func (b *Builder) ClearEntries(tariffID int64) error {
	d, err := b.own(tariffID)
	if err != nil {
		return err
	}
	d.entries = d.entries[:0]
	return nil
}

// Build returns the snapshot. The builder must not be used afterwards.
func (b *Builder) Build() *Snapshot {
	s := &Snapshot{
		Index:     b.index,
		Tariffs:   make(map[int64]*Tariff, len(b.tariffs)),
		Routes:    b.routes,
		BillTypes: b.billTypes,
	}
	if s.Index == nil {
		s.Index = NewIndex(nil)
	}
	for id, d := range b.tariffs {
		t := d.t
		if d.orig != nil {
			t.entries, t.spans = d.orig.entries, d.orig.spans
		} else {
			t.entries, t.spans = indexEntries(d.entries)
		}
		s.Tariffs[id] = &t
	}
	*b = Builder{}
	return s
}

// indexEntries sorts entries by direction and priority, keeps the last of duplicates, and
// maps each direction to its run.
func indexEntries(es []Entry) ([]Entry, map[int64]uint64) {
	// Stable sort so that among duplicates (same direction and priority) the last added wins.
	slices.SortStableFunc(es, func(a, b Entry) int {
		if c := cmp.Compare(a.DirectionID, b.DirectionID); c != 0 {
			return c
		}
		return cmp.Compare(a.Priority, b.Priority)
	})
	w := 0
	for r := range es {
		if r+1 < len(es) && es[r+1].DirectionID == es[r].DirectionID && es[r+1].Priority == es[r].Priority {
			continue
		}
		es[w] = es[r]
		w++
	}
	es = slices.Clip(es[:w])
	spans := make(map[int64]uint64)
	for start := 0; start < len(es); {
		end := start + 1
		for end < len(es) && es[end].DirectionID == es[start].DirectionID {
			end++
		}
		spans[es[start].DirectionID] = uint64(start)<<32 | uint64(end-start)
		start = end
	}
	return es, spans
}
