package rating

import (
	"math/rand"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func testDirections() []Direction {
	return []Direction{
		{ID: 1, Code: "7", Name: "Russia"},
		{ID: 2, Code: "79", Name: "Russia Mobile", MinLen: 11, MaxLen: 11},
		{ID: 3, Code: "7927", Name: "Russia Mobile - Megafon", MinLen: 11, MaxLen: 11},
		{ID: 3, Code: "7937", Name: "Russia Mobile - Megafon", MinLen: 11, MaxLen: 11},
		{ID: 4, Code: "79271", Name: "Russia Mobile - Short", MinLen: 5, MaxLen: 8},
		{ID: 5, Code: "+49", Name: "Germany"},
		{ID: 6, Code: "49 30", Name: "Germany Berlin", MinLen: 10, MaxLen: 12},
		{ID: 7, Code: "*100#", Name: "Service"},
		{ID: 8, Code: "*1", Name: "Star"},
		{ID: 9, Code: "sip:", Name: "SIP URI"},
		{ID: 10, Code: "sip:ab", Name: "SIP AB"},
		{ID: 11, Code: "1", Name: "NANP", MinLen: 11},
		{ID: 12, Code: "1", Name: "NANP replaced", MinLen: 11, MaxLen: 11}, // same code: last wins
		{ID: 13, Code: "", Name: "empty is ignored"},
		{ID: 14, Code: "00", Name: "normalises to empty"},
	}
}

func TestResolve(t *testing.T) {
	ix := NewIndex(testDirections())
	tests := []struct {
		number string
		id     int64
		code   string
	}{
		{"79271871234", 3, "7927"},  // longest prefix
		{"79371871234", 3, "7937"},  // shared ID, other code
		{"79991871234", 2, "79"},    // next shorter
		{"7927187123", 1, "7"},      // 10 digits: 7927 and 79 excluded by length
		{"7927123", 4, "79271"},     // short window of the longest code
		{"792712345", 1, "7"},       // 9 digits: 79271 window is 5-8, 7927/79 are 11
		{"74951234567", 1, "7"},     // no mobile prefix
		{"7", 1, "7"},               // the code itself
		{"4930123456", 6, "4930"},   // normalised code
		{"49301234567890", 5, "49"}, // too long for Berlin
		{"491", 5, "49"},            // code "+49"
		{"*100#", 7, "*100#"},       // non-digit symbols
		{"*100", 8, "*1"},           // prefix of "*100#" fails, falls back
		{"*1", 8, "*1"},             //
		{"sip:abc", 10, "sip:ab"},   // bytes outside the bitmap
		{"sip:x", 9, "sip:"},        //
		{"12125551234", 12, "1"},    // duplicate code: last wins
		{"121255512345", 0, ""},     // replaced window 11-11 excludes 12 digits
		{"", 0, ""},                 // empty
		{"3", 0, ""},                // no code
		{"sip", 0, ""},              // shorter than "sip:"
		{"8800", 0, ""},             //
		{"7x", 1, "7"},              // unknown byte after a match
	}
	for _, tt := range tests {
		d, ok := ix.Resolve(tt.number)
		if ok != (tt.id != 0) || d.ID != tt.id || d.Code != tt.code {
			t.Errorf("Resolve(%q) = %+v, %v; want id %d code %q", tt.number, d, ok, tt.id, tt.code)
		}
	}
	if got, want := ix.Len(), 12; got != want { // 15 rows, 2 empty codes, 1 duplicate
		t.Errorf("Len = %d, want %d", got, want)
	}
}

func TestResolveFields(t *testing.T) {
	ix := NewIndex(testDirections())
	d, ok := ix.Resolve("79271871234")
	want := Direction{ID: 3, Code: "7927", Name: "Russia Mobile - Megafon", MinLen: 11, MaxLen: 11}
	if !ok || d != want {
		t.Errorf("Resolve = %+v, want %+v", d, want)
	}
	d, _ = ix.Resolve("49")
	if want := (Direction{ID: 5, Code: "49", Name: "Germany"}); d != want {
		t.Errorf("Resolve(49) = %+v, want %+v (MaxLen 0 = no bound)", d, want)
	}
}

func TestIndexEmptyAndNil(t *testing.T) {
	for _, ix := range []*Index{nil, NewIndex(nil), NewIndex([]Direction{{ID: 1, Code: ""}})} {
		if _, ok := ix.Resolve("7"); ok {
			t.Error("empty index resolved a number")
		}
		if _, ok := ix.Lookup("7"); ok {
			t.Error("empty index looked up a code")
		}
		if ix.Len() != 0 || ix.NumIDs() != 0 {
			t.Error("empty index has entries")
		}
		for range ix.All() {
			t.Error("empty index yields")
		}
	}
}

func TestIndexListing(t *testing.T) {
	ix := NewIndex(testDirections())
	var codes []string
	for d := range ix.All() {
		codes = append(codes, d.Code)
	}
	if !slices.IsSorted(codes) {
		t.Errorf("All not in code order: %v", codes)
	}
	if !slices.Equal(codes, []string{"*1", "*100#", "1", "49", "4930", "7", "79", "7927", "79271", "7937", "sip:", "sip:ab"}) {
		t.Errorf("All codes = %v", codes)
	}
	var ids []int64
	for d := range ix.Distinct() {
		ids = append(ids, d.ID)
	}
	if !slices.Equal(ids, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12}) {
		t.Errorf("Distinct ids = %v", ids)
	}
	if ix.NumIDs() != 11 {
		t.Errorf("NumIDs = %d", ix.NumIDs())
	}
	d, ok := ix.ByID(3)
	if !ok || d.Code != "7927" || d.Name != "Russia Mobile - Megafon" {
		t.Errorf("ByID(3) = %+v, %v", d, ok)
	}
	if _, ok := ix.ByID(11); ok {
		t.Error("ByID(11): replaced direction still present")
	}
	if got := slices.Collect(ix.Codes(3)); !slices.Equal(got, []string{"7927", "7937"}) {
		t.Errorf("Codes(3) = %v", got)
	}
	if d, ok := ix.Lookup("+7 9"); !ok || d.ID != 2 {
		t.Errorf("Lookup(+7 9) = %+v, %v", d, ok)
	}
	if _, ok := ix.Lookup("792"); ok {
		t.Error("Lookup(792) found an inner node")
	}
}

// TestResolveRandom compares the trie with a linear scan over random codes and numbers.
func TestResolveRandom(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	alphabet := "0123456789*#a"
	randStr := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[rng.Intn(len(alphabet))])
		}
		return b.String()
	}
	var dirs []Direction
	for i := range 3000 {
		d := Direction{ID: int64(rng.Intn(500) + 1), Code: randStr(1 + rng.Intn(4)), Name: "n" + strconv.Itoa(i)}
		if rng.Intn(3) == 0 {
			d.MinLen = rng.Intn(6)
			d.MaxLen = d.MinLen + rng.Intn(4)
		}
		dirs = append(dirs, d)
	}
	// Reference: last direction per code wins.
	last := map[string]Direction{}
	for _, d := range dirs {
		if d.Code = Normalize(d.Code); d.Code != "" {
			last[d.Code] = d
		}
	}
	ix := NewIndex(dirs)
	if ix.Len() != len(last) {
		t.Fatalf("Len = %d, want %d", ix.Len(), len(last))
	}
	for range 20000 {
		num := randStr(rng.Intn(8))
		var want Direction
		found := false
		for code, d := range last {
			max := d.MaxLen
			if max <= 0 {
				max = 1 << 30
			}
			if strings.HasPrefix(num, code) && len(num) >= d.MinLen && len(num) <= max && (!found || len(code) > len(want.Code)) {
				want, found = d, true
			}
		}
		got, ok := ix.Resolve(num)
		if ok != found || (found && (got.Code != want.Code || got.ID != want.ID || got.Name != want.Name)) {
			t.Fatalf("Resolve(%q) = %+v, %v; want %+v, %v", num, got, ok, want, found)
		}
	}
}

func TestResolveNoAlloc(t *testing.T) {
	ix := NewIndex(testDirections())
	if n := testing.AllocsPerRun(100, func() { ix.Resolve("79271871234") }); n != 0 {
		t.Errorf("Resolve allocates %v times", n)
	}
}
