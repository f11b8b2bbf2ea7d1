package rating

import (
	"cmp"
	"iter"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// Direction is one row of the directions table: a code (number prefix) with its direction
// id, name and the window of number lengths it applies to. Several codes may share one ID.
type Direction struct {
	ID     int64
	Code   string
	Name   string
	MinLen int // numbers shorter than this do not match; negative counts as 0
	MaxLen int // numbers longer than this do not match; 0 or negative means no upper bound
}

// Defaults for an empty min_len or max_len in a directions import.
const (
	DefaultMinLen = 0
	DefaultMaxLen = 32
)

// MaxCodeLen is the longest code an Index holds; longer codes are ignored by NewIndex and
// rejected by ReadDirections.
const MaxCodeLen = 255

const noLimit = math.MaxUint16

// node is one trie node: 12 bytes. Children over the symbols 0-9, '*' and '#' are stored
// contiguously from first, in symbol order, and found by popcount of the lower bits.
// Children over any other byte live in Index.extra.
type node struct {
	bits  uint16 // bit s set: child for symbol s (0-9 digits, 10 '*', 11 '#')
	dir   int32  // entry index of the code ending here, or -1
	first int32  // node index of the first child in the bitmap
}

// entry is one code's direction, 24 bytes; the code is a slice of Index.codes and the name
// an interned string.
type entry struct {
	id      int64
	codeOff uint32
	nameIdx uint32
	codeLen uint16
	minLen  uint16
	maxLen  uint16
}

// Index resolves numbers to directions by longest matching code. It is immutable once built
// and safe for any number of concurrent readers. Resolution walks one trie node per digit
// and does not allocate.
type Index struct {
	nodes   []node
	entries []entry // one per code, in code order
	codes   string  // all codes, concatenated in code order
	names   []string
	extra   map[uint64]int32 // node<<8 | byte → child, for bytes outside 0-9 * #
	byID    []int32          // one entry per direction ID (its first code), ordered by ID
}

func symbol(c byte) (uint, bool) {
	switch {
	case c >= '0' && c <= '9':
		return uint(c - '0'), true
	case c == '*':
		return 10, true
	case c == '#':
		return 11, true
	}
	return 0, false
}

// NewIndex builds an index over dirs. Codes are normalised; empty codes and codes longer
// than MaxCodeLen are ignored; when a code appears twice the later direction wins.
func NewIndex(dirs []Direction) *Index {
	b := NewIndexBuilder(len(dirs))
	for i := range dirs {
		b.Add(dirs[i])
	}
	return b.Build()
}

// IndexBuilder collects directions for an Index in compact form (about 24 bytes plus the
// code per direction), so a loader can stream a million rows into it without holding them
// as Direction values. It is not safe for concurrent use.
type IndexBuilder struct {
	codes   strings.Builder
	entries []entry
	names   []string
	nameIdx map[string]uint32
}

// NewIndexBuilder starts a builder; sizeHint is the expected number of directions.
func NewIndexBuilder(sizeHint int) *IndexBuilder {
	b := &IndexBuilder{entries: make([]entry, 0, max(sizeHint, 0)), nameIdx: make(map[string]uint32)}
	b.codes.Grow(max(sizeHint, 0) * 8)
	return b
}

// Add adds one direction (see NewIndex for how codes are treated).
func (b *IndexBuilder) Add(d Direction) {
	c := Normalize(d.Code)
	if c == "" || len(c) > MaxCodeLen || b.codes.Len()+len(c) > math.MaxUint32 {
		return
	}
	ni, ok := b.nameIdx[d.Name]
	if !ok {
		ni = uint32(len(b.names))
		b.names = append(b.names, strings.Clone(d.Name))
		b.nameIdx[b.names[ni]] = ni
	}
	b.entries = append(b.entries, entry{
		id:      d.ID,
		codeOff: uint32(b.codes.Len()),
		nameIdx: ni,
		codeLen: uint16(len(c)),
		minLen:  clampLen(d.MinLen, 0),
		maxLen:  clampLen(d.MaxLen, noLimit),
	})
	b.codes.WriteString(c)
}

// Len is the number of directions added so far (duplicates included).
func (b *IndexBuilder) Len() int { return len(b.entries) }

// Build returns the index. The builder must not be used afterwards.
func (b *IndexBuilder) Build() *Index {
	ix := &Index{codes: b.codes.String(), entries: b.entries, names: slices.Clip(b.names)}
	*b = IndexBuilder{}
	// Sort by code; equal codes keep the order they were added in (codeOff grows with it),
	// and the last one wins.
	slices.SortFunc(ix.entries, func(x, y entry) int {
		if c := strings.Compare(ix.codeOf(&x), ix.codeOf(&y)); c != 0 {
			return c
		}
		return cmp.Compare(x.codeOff, y.codeOff)
	})
	w := 0
	for r := range ix.entries {
		if r+1 < len(ix.entries) && ix.code(r+1) == ix.code(r) {
			continue
		}
		ix.entries[w] = ix.entries[r]
		w++
	}
	if w < len(ix.entries) || cap(ix.entries) > len(ix.entries) {
		ix.entries = slices.Clone(ix.entries[:w])
	}

	// One representative entry (the first code) per direction ID, ordered by ID.
	ix.byID = make([]int32, len(ix.entries))
	for k := range ix.byID {
		ix.byID[k] = int32(k)
	}
	slices.SortFunc(ix.byID, func(x, y int32) int {
		if c := cmp.Compare(ix.entries[x].id, ix.entries[y].id); c != 0 {
			return c
		}
		return cmp.Compare(x, y)
	})
	ix.byID = slices.CompactFunc(ix.byID, func(x, y int32) bool { return ix.entries[x].id == ix.entries[y].id })
	ix.byID = slices.Clone(ix.byID)

	// A trie has one node per distinct prefix: count them to allocate once.
	nodes := 1
	prev := ""
	for k := range ix.entries {
		c := ix.code(k)
		l := 0
		for l < len(c) && l < len(prev) && c[l] == prev[l] {
			l++
		}
		nodes += len(c) - l
		prev = c
	}
	ix.nodes = make([]node, 1, nodes)
	ix.nodes[0] = node{dir: -1}
	ix.build(0, 0, len(ix.entries), 0)
	return ix
}

// clampLen maps a length bound into the uint16 stored per entry; values <= 0 become def.
func clampLen(n int, def uint16) uint16 {
	switch {
	case n <= 0:
		return def
	case n > noLimit:
		return noLimit
	}
	return uint16(n)
}

// build fills node n, which stands for the common prefix of length depth of the sorted,
// distinct codes of entries[lo:hi]. The children of a node are allocated as one block before any of
// them is filled, so siblings stay contiguous.
func (ix *Index) build(n int32, lo, hi, depth int) {
	if lo < hi && int(ix.entries[lo].codeLen) == depth {
		ix.nodes[n].dir = int32(lo)
		lo++
	}
	var set uint16
	for k := lo; k < hi; {
		c := ix.codeByte(k, depth)
		j := k + 1
		for j < hi && ix.codeByte(j, depth) == c {
			j++
		}
		if s, ok := symbol(c); ok {
			set |= 1 << s
		}
		k = j
	}
	first := int32(len(ix.nodes))
	for range bits.OnesCount16(set) {
		ix.nodes = append(ix.nodes, node{dir: -1})
	}
	ix.nodes[n].bits, ix.nodes[n].first = set, first
	for k := lo; k < hi; {
		c := ix.codeByte(k, depth)
		j := k + 1
		for j < hi && ix.codeByte(j, depth) == c {
			j++
		}
		var child int32
		if s, ok := symbol(c); ok {
			child = first + int32(bits.OnesCount16(set&(1<<s-1)))
		} else {
			child = int32(len(ix.nodes))
			ix.nodes = append(ix.nodes, node{dir: -1})
			if ix.extra == nil {
				ix.extra = make(map[uint64]int32)
			}
			ix.extra[uint64(n)<<8|uint64(c)] = child
		}
		ix.build(child, k, j, depth+1)
		k = j
	}
}

func (ix *Index) code(k int) string { return ix.codeOf(&ix.entries[k]) }

func (ix *Index) codeOf(e *entry) string {
	return ix.codes[e.codeOff : e.codeOff+uint32(e.codeLen)]
}

func (ix *Index) codeByte(k, i int) byte { return ix.codes[int(ix.entries[k].codeOff)+i] }

func (ix *Index) direction(k int32) Direction {
	e := &ix.entries[k]
	d := Direction{
		ID:     e.id,
		Code:   ix.codes[e.codeOff : e.codeOff+uint32(e.codeLen)],
		Name:   ix.names[e.nameIdx],
		MinLen: int(e.minLen),
		MaxLen: int(e.maxLen),
	}
	if e.maxLen == noLimit {
		d.MaxLen = 0
	}
	return d
}

// child returns the child of node n over byte c.
func (ix *Index) child(n int32, c byte) (int32, bool) {
	if s, ok := symbol(c); ok {
		nd := &ix.nodes[n]
		if nd.bits&(1<<s) == 0 {
			return 0, false
		}
		return nd.first + int32(bits.OnesCount16(nd.bits&(1<<s-1))), true
	}
	if ix.extra == nil {
		return 0, false
	}
	ch, ok := ix.extra[uint64(n)<<8|uint64(c)]
	return ch, ok
}

// Resolve finds the direction of an already normalised number: the longest code that
// prefixes it among codes whose length window admits len(number). A longer code whose
// window excludes the number gives way to the next shorter matching code.
func (ix *Index) Resolve(number string) (Direction, bool) {
	if ix == nil || len(ix.nodes) == 0 {
		return Direction{}, false
	}
	l := len(number)
	best := int32(-1)
	n := int32(0)
	for i := 0; i < l; i++ {
		ch, ok := ix.child(n, number[i])
		if !ok {
			break
		}
		n = ch
		if d := ix.nodes[n].dir; d >= 0 {
			if e := &ix.entries[d]; l >= int(e.minLen) && l <= int(e.maxLen) {
				best = d
			}
		}
	}
	if best < 0 {
		return Direction{}, false
	}
	return ix.direction(best), true
}

// Lookup finds the direction carrying exactly this code (normalised first).
func (ix *Index) Lookup(code string) (Direction, bool) {
	if ix == nil || len(ix.nodes) == 0 {
		return Direction{}, false
	}
	code = Normalize(code)
	n := int32(0)
	for i := 0; i < len(code); i++ {
		ch, ok := ix.child(n, code[i])
		if !ok {
			return Direction{}, false
		}
		n = ch
	}
	if d := ix.nodes[n].dir; d >= 0 {
		return ix.direction(d), true
	}
	return Direction{}, false
}

// Len is the number of codes in the index.
func (ix *Index) Len() int {
	if ix == nil {
		return 0
	}
	return len(ix.entries)
}

// NumIDs is the number of distinct direction IDs.
func (ix *Index) NumIDs() int {
	if ix == nil {
		return 0
	}
	return len(ix.byID)
}

// All yields every code's direction, in code order (getDirections listing each code).
func (ix *Index) All() iter.Seq[Direction] {
	return func(yield func(Direction) bool) {
		if ix == nil {
			return
		}
		for k := range ix.entries {
			if !yield(ix.direction(int32(k))) {
				return
			}
		}
	}
}

// Distinct yields one direction per ID, ordered by ID; its Code, MinLen and MaxLen are those
// of the ID's first code in code order (getDirections listing each direction once).
func (ix *Index) Distinct() iter.Seq[Direction] {
	return func(yield func(Direction) bool) {
		if ix == nil {
			return
		}
		for _, k := range ix.byID {
			if !yield(ix.direction(k)) {
				return
			}
		}
	}
}

// ByID returns the direction with this ID as Distinct shows it.
func (ix *Index) ByID(id int64) (Direction, bool) {
	if ix == nil {
		return Direction{}, false
	}
	i, ok := slices.BinarySearchFunc(ix.byID, id, func(k int32, id int64) int { return cmp.Compare(ix.entries[k].id, id) })
	if !ok {
		return Direction{}, false
	}
	return ix.direction(ix.byID[i]), true
}

// Codes yields the codes of one direction ID, in code order. It scans the whole index.
func (ix *Index) Codes(id int64) iter.Seq[string] {
	return func(yield func(string) bool) {
		if ix == nil {
			return
		}
		for k := range ix.entries {
			if ix.entries[k].id == id && !yield(ix.code(k)) {
				return
			}
		}
	}
}
