package rating

import (
	"bytes"
	"math/rand"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/narayana/narayanad/money"
)

// countryCodes is a realistic spread of 1-, 2- and 3-digit country codes.
func countryCodes() []string {
	cc := []string{"1", "7"}
	for _, p := range []int{20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49,
		51, 52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98} {
		cc = append(cc, strconv.Itoa(p))
	}
	for _, p := range []int{21, 22, 23, 24, 25, 26, 29, 35, 37, 38, 42, 50, 59, 67, 68, 69, 85, 88, 96, 97, 99} {
		for d := range 10 {
			cc = append(cc, strconv.Itoa(p*10+d))
		}
	}
	return cc
}

var (
	bigDirsOnce sync.Once
	bigDirs     []Direction
	bigNumbers  []string
)

// million returns 1,000,000 distinct codes (country code + 3-7 digits), sharing about 20,000
// direction IDs and names, and 4096 numbers to resolve (mostly hits, some misses).
func million() ([]Direction, []string) {
	bigDirsOnce.Do(func() {
		rng := rand.New(rand.NewSource(1))
		ccs := countryCodes()
		seen := make(map[string]struct{}, 1_000_000)
		bigDirs = make([]Direction, 0, 1_000_000)
		buf := make([]byte, 0, 16)
		for len(bigDirs) < 1_000_000 {
			ci := rng.Intn(len(ccs))
			cc := ccs[ci]
			buf = append(buf[:0], cc...)
			for range 3 + rng.Intn(5) {
				buf = append(buf, byte('0'+rng.Intn(10)))
			}
			code := string(buf)
			if _, dup := seen[code]; dup {
				continue
			}
			seen[code] = struct{}{}
			op := int(code[len(cc)]-'0')*10 + int(code[len(cc)+1]-'0') // 100 operators per country
			bigDirs = append(bigDirs, Direction{
				ID:     int64(ci*100 + op + 1),
				Code:   code,
				Name:   "Country " + cc + " operator " + strconv.Itoa(op),
				MinLen: 8,
				MaxLen: 15,
			})
		}
		for range 4096 {
			var n []byte
			if rng.Intn(10) == 0 {
				n = []byte(ccs[rng.Intn(len(ccs))]) // often no code matches
			} else {
				n = []byte(bigDirs[rng.Intn(len(bigDirs))].Code)
			}
			for len(n) < 11+rng.Intn(3) {
				n = append(n, byte('0'+rng.Intn(10)))
			}
			bigNumbers = append(bigNumbers, string(n))
		}
	})
	return bigDirs, bigNumbers
}

var (
	bigIndexOnce sync.Once
	bigIndex     *Index
)

func millionIndex(b *testing.B) *Index {
	dirs, _ := million()
	bigIndexOnce.Do(func() { bigIndex = NewIndex(dirs) })
	if bigIndex.Len() != 1_000_000 {
		b.Fatalf("index has %d codes", bigIndex.Len())
	}
	return bigIndex
}

func BenchmarkResolve(b *testing.B) {
	ix := millionIndex(b)
	_, nums := million()
	hits := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, ok := ix.Resolve(nums[i&4095]); ok {
			hits++
		}
	}
	if hits == 0 {
		b.Fatal("nothing resolved")
	}
}

func BenchmarkResolveParallel(b *testing.B) {
	ix := millionIndex(b)
	_, nums := million()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			ix.Resolve(nums[i&4095])
			i++
		}
	})
}

// BenchmarkIndexMemory builds the 1M-code index and reports the heap it keeps (index-bytes)
// and its build time (ns/op).
func BenchmarkIndexMemory(b *testing.B) {
	dirs, _ := million()
	var kept uint64
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		ix := NewIndex(dirs)
		runtime.GC()
		runtime.ReadMemStats(&m1)
		kept = m1.HeapAlloc - m0.HeapAlloc
		runtime.KeepAlive(ix)
	}
	b.ReportMetric(float64(kept), "index-bytes")
	b.ReportMetric(float64(kept)/1e6, "index-MB")
}

func BenchmarkCharge(b *testing.B) {
	p := Price{BillType: BySecond, Cost: 150_000, Multiplier: 1_200_000, DIDMultiplier: 1_500_000, SwitchPrice: 10_000}
	var sum money.Micro
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.IsDID = i&1 == 0
		sum += p.Charge(i & 4095)
	}
	runtime.KeepAlive(sum)
}

func BenchmarkMaxCallTime(b *testing.B) {
	p := Price{BillType: ByMinute, Cost: 150_000, Multiplier: 1_200_000, SwitchPrice: 10_000}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.MaxCallTime(money.Micro(i&0xfff)*1000, Caps{}) // limited by money: the slow branch
	}
}

var (
	bigSnapOnce sync.Once
	bigSnap     *Snapshot
)

// millionSnapshot: the 1M-code index, a base tariff with two routes per direction ID and an
// option covering every tenth direction ID.
func millionSnapshot(b *testing.B) *Snapshot {
	ix := millionIndex(b)
	bigSnapOnce.Do(func() {
		bl := NewBuilder().SetIndex(ix).
			SetRoute(Route{ID: 1, Name: "r1", Prefix: "outline1/", Enabled: false}).
			SetRoute(Route{ID: 2, Name: "r2", Prefix: "outline2/", Enabled: true}).
			SetRoute(Route{ID: 3, Name: "r3", Prefix: "outline3/", Enabled: true}).
			SetTariff(Tariff{ID: 1, Name: "base", BillType: "by_second", Multiplier: 1_100_000, DIDMultiplier: money.One, SwitchPrice: 10_000}).
			SetTariff(Tariff{ID: 2, Name: "option", BillType: "byminute", IsOption: true, Multiplier: money.One, DIDMultiplier: money.One})
		for d := range ix.Distinct() {
			_ = bl.AddEntry(1, Entry{DirectionID: d.ID, Priority: 1, Cost: money.Micro(d.ID * 1000), RouteID: 1})
			_ = bl.AddEntry(1, Entry{DirectionID: d.ID, Priority: 2, Cost: money.Micro(d.ID * 1100), RouteID: 2})
			if d.ID%10 == 0 {
				_ = bl.AddEntry(2, Entry{DirectionID: d.ID, Priority: 1, Cost: money.Micro(d.ID * 900), RouteID: 3})
			}
		}
		bigSnap = bl.Build()
	})
	return bigSnap
}

// BenchmarkRate: normalise, resolve among 1M codes, pick option/base entry and route.
func BenchmarkRate(b *testing.B) {
	s := millionSnapshot(b)
	_, nums := million()
	opts := []int64{2}
	ok := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.Rate(Query{Number: nums[i&4095], TariffID: 1, Options: opts}); err == nil {
			ok++
		}
	}
	if ok == 0 {
		b.Fatal("nothing rated")
	}
}

// BenchmarkBuildEntries: sort and index a tariff of 1,000,000 entries.
func BenchmarkBuildEntries(b *testing.B) {
	rng := rand.New(rand.NewSource(5))
	src := make([]Entry, 1_000_000)
	for i := range src {
		src[i] = Entry{DirectionID: int64(rng.Intn(500_000) + 1), Priority: rng.Intn(3) + 1, Cost: 1000, RouteID: 1}
	}
	es := make([]Entry, len(src))
	for b.Loop() {
		copy(es, src)
		indexEntries(es)
	}
}

func directionsCSV() []byte {
	dirs, _ := million()
	var buf bytes.Buffer
	buf.Grow(len(dirs) * 48)
	buf.WriteString("id,code,direction,min_len,max_len\n")
	for _, d := range dirs {
		buf.WriteString(strconv.FormatInt(d.ID, 10))
		buf.WriteByte(',')
		buf.WriteString(d.Code)
		buf.WriteByte(',')
		buf.WriteString(d.Name)
		buf.WriteString(",8,15\n")
	}
	return buf.Bytes()
}

// BenchmarkReadDirections parses 1,000,000 rows from memory per op.
func BenchmarkReadDirections(b *testing.B) {
	data := directionsCSV()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var n int
	for b.Loop() {
		var err error
		n, err = ReadDirections(bytes.NewReader(data), func(Direction) error { return nil })
		if err != nil || n != 1_000_000 {
			b.Fatal(n, err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/row")
}

// benchPeriods: a weekday peak 08:00-20:00 and the weekend, in Moscow time, the call
// starting a minute before the peak ends (two segments).
func benchPeriods() Price {
	loc, _ := time.LoadLocation("Europe/Moscow")
	return Price{BillType: ByMinute, Cost: 150_000, Multiplier: 1_200_000, SwitchPrice: 10_000,
		Start: time.Date(2026, 12, 7, 19, 59, 0, 0, loc).Unix(),
		Periods: &Periods{Zone: "Europe/Moscow", List: []Period{
			{Name: "peak", Days: 0b0111110, From: 8 * 3600, To: 20 * 3600, Cost: 300_000},
			{Name: "weekend", Days: 0b1000001, From: 0, To: 86400, Cost: 50_000}}}}
}

func BenchmarkChargePeriods(b *testing.B) {
	p := benchPeriods()
	var sum money.Micro
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sum += p.Charge(i & 4095)
	}
	runtime.KeepAlive(sum)
}

func BenchmarkMaxCallTimePeriods(b *testing.B) {
	p := benchPeriods()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.MaxCallTime(money.Micro(i&0xfff)*1000, Caps{}) // limited by money
	}
}
