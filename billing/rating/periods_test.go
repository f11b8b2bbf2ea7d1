package rating

import (
	"bytes"
	"encoding/gob"
	"math/big"
	"math/rand"
	"strconv"
	"testing"
	"time"

	"github.com/narayana/narayanad/money"
)

// --- an independent model: every second looked up on its own wall clock ---

// refCostAt is the cost per minute in force at unix second t: the first period whose
// window holds the local time, on its weekday or one of its dates, else the base cost.
func refCostAt(ps *Periods, loc *time.Location, base money.Micro, t int64) money.Micro {
	lt := time.Unix(t, 0).In(loc)
	sod := lt.Hour()*3600 + lt.Minute()*60 + lt.Second()
	date, _ := strconv.Atoi(lt.Format("20060102"))
	for _, p := range ps.List {
		if sod < p.From || sod >= p.To {
			continue
		}
		day := p.Days>>uint(lt.Weekday())&1 == 1
		for _, d := range p.Dates {
			day = day || int(d) == date
		}
		if day {
			return p.Cost
		}
	}
	return base
}

// refSecondCosts is the cost per minute of each of the first n seconds of a call.
func refSecondCosts(p Price, n int) []money.Micro {
	loc, err := time.LoadLocation(p.Periods.Zone)
	if err != nil {
		panic(err)
	}
	out := make([]money.Micro, n)
	for i := range out {
		out[i] = refCostAt(p.Periods, loc, p.Cost, p.Start+int64(i))
	}
	return out
}

// refChargeSum is the charge of billed seconds whose costs per minute sum to sum.
func refChargeSum(p Price, billed int64, sum *big.Int) money.Micro {
	if billed == 0 {
		return 0
	}
	x := new(big.Rat).SetFrac(sum, big.NewInt(60))
	x.Mul(x, big.NewRat(int64(p.Multiplier), int64(money.One)))
	if p.IsDID {
		x.Mul(x, big.NewRat(int64(p.DIDMultiplier), int64(money.One)))
	}
	x.Add(x, new(big.Rat).SetInt64(int64(p.SwitchPrice)))
	return money.Micro(refRoundHalfUp(x))
}

func refPeriodCharge(p Price, length int) money.Micro {
	billed := refBilled(length, max(p.BillType.FreeThreshold, 0), p.BillType.FirstStep, p.BillType.Step)
	sum := new(big.Int)
	for _, c := range refSecondCosts(p, int(billed)) {
		sum.Add(sum, big.NewInt(int64(c)))
	}
	return refChargeSum(p, billed, sum)
}

// refPeriodMaxCallTime scans every billed length up to the cap, with no assumption that
// the charge grows, and keeps the longest affordable one.
func refPeriodMaxCallTime(p Price, available money.Micro, caps Caps) (int, bool) {
	limit := caps.Limit()
	if available < 0 {
		return 0, false
	}
	if refPeriodCharge(p, limit) <= available {
		return limit, true
	}
	step := max(p.BillType.Step, 1)
	first := p.BillType.FirstStep
	if first < 1 {
		first = step
	}
	costs := refSecondCosts(p, limit)
	sum, best := new(big.Int), -1
	for i, c := range costs {
		sum.Add(sum, big.NewInt(int64(c)))
		l := i + 1
		if l < first || (l-first)%step != 0 {
			continue
		}
		billed := int64(l)
		if l <= max(p.BillType.FreeThreshold, 0) {
			billed = 0
		}
		if refChargeSum(p, billed, sum) <= available {
			best = l
		}
	}
	if best < 0 {
		return 0, false
	}
	return best, true
}

var testZones = []string{"UTC", "Europe/Moscow", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"}

func randomPeriods(rng *rand.Rand, start int64) *Periods {
	ps := &Periods{Zone: testZones[rng.Intn(len(testZones))]}
	loc, _ := time.LoadLocation(ps.Zone)
	for range rng.Intn(5) {
		p := Period{Name: "p", Days: uint8(rng.Intn(128)), Cost: money.Micro(rng.Int63n(3 * int64(money.One)))}
		a, b := rng.Intn(86401), rng.Intn(86401)
		if rng.Intn(2) == 0 { // on the hour, as operators set them
			a, b = a/3600*3600, b/3600*3600
		}
		p.From, p.To = min(a, b), max(a, b)
		if p.From == p.To {
			p.From, p.To = 0, 86400
		}
		if rng.Intn(3) == 0 { // a holiday near the call
			p.Days = 0
			for range 1 + rng.Intn(2) {
				p.Dates = append(p.Dates, Date(time.Unix(start+int64(rng.Intn(3*86400))-86400, 0).In(loc)))
			}
			slicesSort(p.Dates)
		}
		if rng.Intn(8) == 0 {
			p.Cost = money.Micro(rng.Int63n(100))
		}
		ps.List = append(ps.List, p)
	}
	return ps
}

func slicesSort(d []int32) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

// randomStart is a start time in 2026, often close to a daylight-saving change.
func randomStart(rng *rand.Rand) int64 {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	switch rng.Intn(3) {
	case 0: // New York: 8 March and 1 November 2026, 02:00 local
		ts := []int64{time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC).Unix(), time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC).Unix(),
			time.Date(2026, 4, 4, 15, 0, 0, 0, time.UTC).Unix()} // Lord Howe: 5 April, 02:00 local
		return ts[rng.Intn(len(ts))] - int64(rng.Intn(4*3600))
	default:
		return base + rng.Int63n(365*86400)
	}
}

func randomPeriodPrice(rng *rand.Rand) Price {
	p := randomPrice(rng)
	if p.Cost > 100*money.One || p.Multiplier > 100*money.One {
		p.Cost, p.Multiplier, p.DIDMultiplier = money.Micro(rng.Int63n(int64(money.One))), money.One, money.One
	}
	p.Start = randomStart(rng)
	p.Periods = randomPeriods(rng, p.Start)
	return p
}

func TestPeriodChargeProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(14))
	for i := range 1500 {
		p := randomPeriodPrice(rng)
		length := rng.Intn(20000) - 10
		if got, want := p.Charge(length), refPeriodCharge(p, length); got != want {
			t.Fatalf("case %d: %+v %+v Charge(%d) = %d, want %d", i, p, p.Periods.List, length, got, want)
		}
	}
}

func TestPeriodMaxCallTimeProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(15))
	var declined, capped, limited int
	for i := range 700 {
		p := randomPeriodPrice(rng)
		var available money.Micro
		switch rng.Intn(3) {
		case 0:
			available = money.Micro(rng.Int63n(int64(money.One)) - 1000)
		case 1:
			available = money.Micro(rng.Int63n(20 * int64(money.One)))
		default:
			available = money.Micro(rng.Int63n(200 * int64(money.One)))
		}
		caps := Caps{MaxCallTime: rng.Intn(14000) + 1}
		secs, reserve, ok := p.MaxCallTime(available, caps)
		wantSecs, wantOK := refPeriodMaxCallTime(p, available, caps)
		if secs != wantSecs || ok != wantOK {
			t.Fatalf("case %d: %+v %+v MaxCallTime(%d, %+v) = %d, %v; want %d, %v", i, p, p.Periods.List, available, caps,
				secs, ok, wantSecs, wantOK)
		}
		switch {
		case !ok:
			declined++
		case secs == caps.Limit():
			capped++
		default:
			limited++
		}
		if ok && reserve != refPeriodCharge(p, secs) {
			t.Fatalf("case %d: reserve %d, want %d", i, reserve, refPeriodCharge(p, secs))
		}
	}
	t.Logf("declined %d, capped %d, limited by money %d", declined, capped, limited)
	if declined < 50 || capped < 50 || limited < 50 {
		t.Errorf("the random cases miss a branch: declined %d, capped %d, limited %d", declined, capped, limited)
	}
}

// A call across a boundary: 22:59:00 to 23:01:00 Moscow time, peak 1.00/min until 23:00,
// off-peak 0.40 after; 60/6 billing counted over the whole call.
func TestPeriodChargeAcrossBoundary(t *testing.T) {
	loc, _ := time.LoadLocation("Europe/Moscow")
	start := time.Date(2026, 12, 7, 22, 59, 0, 0, loc).Unix() // a Monday
	p := Price{BillType: BillType{FirstStep: 60, Step: 6}, Cost: 400_000, Multiplier: money.One, Start: start,
		Periods: &Periods{Zone: "Europe/Moscow", List: []Period{{Name: "peak", Days: 0b0111110, From: 8 * 3600, To: 23 * 3600, Cost: money.One}}}}
	// 61 s billed 66 s: 60 s at 1.00 and 6 s at 0.40 = 1.00 + 0.04.
	if got := p.Charge(61); got != 1_040_000 {
		t.Errorf("Charge(61) = %d, want 1040000", got)
	}
	// 1.10 buys 60 s at peak and 6·k s at 0.40: k = 2 (1.08), not 3 (1.12).
	if secs, res, ok := p.MaxCallTime(1_100_000, Caps{}); secs != 72 || res != 1_080_000 || !ok {
		t.Errorf("MaxCallTime(1.10) = %d, %d, %v; want 72, 1080000, true", secs, res, ok)
	}
}

// Reservation windows keep a call's Price gob-encoded: its periods and start survive.
func TestPeriodPriceGob(t *testing.T) {
	rng := rand.New(rand.NewSource(3))
	for range 50 {
		p := randomPeriodPrice(rng)
		var b bytes.Buffer
		if err := gob.NewEncoder(&b).Encode(p); err != nil {
			t.Fatal(err)
		}
		var q Price
		if err := gob.NewDecoder(&b).Decode(&q); err != nil {
			t.Fatal(err)
		}
		if q.Periods == nil && len(p.Periods.List) > 0 || q.Start != p.Start {
			t.Fatalf("decoded %+v from %+v", q, p)
		}
		for _, l := range []int{1, 60, 3000, 9000} {
			if q.Charge(l) != p.Charge(l) {
				t.Fatalf("Charge(%d) %d after gob, %d before", l, q.Charge(l), p.Charge(l))
			}
		}
	}
}
