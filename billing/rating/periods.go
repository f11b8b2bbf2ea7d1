package rating

import (
	"math/big"
	"slices"
	"sync"
	"time"
	_ "time/tzdata" // zone names resolve in a minimal image too

	"github.com/narayana/narayanad/money"
)

// Period is one time-of-day / day-of-week window of a tariff with the entry's cost per
// minute in it. It is in force at a second whose local wall clock (in Periods.Zone) is in
// [From, To) seconds of the day, on a weekday in Days or on a date in Dates (holidays).
type Period struct {
	Name  string
	Days  uint8       // bit d: applies on time.Weekday(d)
	From  int         // seconds of the local day, 0 ≤ From < To ≤ 86400
	To    int         //
	Dates []int32     // local dates as yyyymmdd, sorted
	Cost  money.Micro // the entry's cost per minute in this period
}

// Periods are an entry's prices by period, in precedence order (the first period in force
// wins; the entry's own cost applies when none is). Zone is the tariff's time zone. A
// Periods is shared by every Price of the entry and must not be modified once used.
type Periods struct {
	Zone string
	List []Period

	once sync.Once // loc is resolved once (a Price decoded by gob carries only Zone)
	loc  *time.Location
}

func (ps *Periods) location() *time.Location {
	ps.once.Do(func() {
		loc, err := time.LoadLocation(ps.Zone)
		if err != nil {
			loc = time.UTC // zones are checked when periods are added; be safe
		}
		ps.loc = loc
	})
	return ps.loc
}

// Date is a local date as yyyymmdd, the form of Period.Dates.
func Date(t time.Time) int32 {
	y, m, d := t.Date()
	return int32(y*10000 + int(m)*100 + d)
}

// in reports whether p is in force at local wall clock sod (seconds of the day) of a day
// with the given weekday and date.
func (p *Period) in(sod int, wd time.Weekday, date int32) bool {
	if sod < p.From || sod >= p.To {
		return false
	}
	if p.Days&(1<<wd) != 0 {
		return true
	}
	_, found := slices.BinarySearch(p.Dates, date)
	return found
}

// segment returns the cost per minute in force at unix second t and the first second
// after t at which it may change: the next From or To of a period or local midnight,
// or the end of the zone offset in force (so that wall-clock arithmetic stays linear
// across daylight-saving changes).
func (ps *Periods) segment(t int64, base money.Micro) (money.Micro, int64) {
	lt := time.Unix(t, 0).In(ps.location())
	h, m, s := lt.Clock()
	sod := h*3600 + m*60 + s
	wd, date := lt.Weekday(), Date(lt)
	cost, found := base, false
	next := 86400
	for i := range ps.List {
		p := &ps.List[i]
		if !found && p.in(sod, wd, date) {
			cost, found = p.Cost, true
		}
		if p.From > sod && p.From < next {
			next = p.From
		}
		if p.To > sod && p.To < next {
			next = p.To
		}
	}
	end := t + int64(next-sod)
	if _, zend := lt.ZoneBounds(); !zend.IsZero() && zend.Unix() > t && zend.Unix() < end {
		end = zend.Unix()
	}
	return cost, end
}

// minuteCost is Σ over the first billed seconds from p.Start of the cost per minute in
// force at each second: the numerator of the charge before multipliers.
func (p Price) minuteCost(billed int) *big.Int {
	sum, n := new(big.Int), new(big.Int)
	t, end := p.Start, p.Start+int64(billed)
	for t < end {
		cost, next := p.Periods.segment(t, p.Cost)
		next = min(next, end)
		n.SetInt64(next - t)
		sum.Add(sum, n.Mul(n, big.NewInt(int64(cost))))
		t = next
	}
	return sum
}

// chargePeriods is chargeBilled for an entry with periods: each billed second is priced at
// the cost in force at that second (seconds billed past the end of the call, to complete
// a block or step, as if the call went on), the multipliers applied to the sum, rounded
// half-up once, plus the switch price.
func (p Price) chargePeriods(billed int) money.Micro {
	if billed <= 0 {
		return 0
	}
	num := p.minuteCost(billed)
	num.Mul(num, big.NewInt(int64(p.Multiplier)))
	den := int64(denPlain)
	if p.IsDID {
		num.Mul(num, big.NewInt(int64(p.DIDMultiplier)))
		den = denDID
	}
	return satAdd(money.Micro(money.DivRound(num, big.NewInt(den))), p.SwitchPrice)
}

// maxCallTimePeriods is MaxCallTime for an entry with periods. The charge of the billed
// lengths FirstStep + k·Step grows with k (period costs are not negative), so the largest
// affordable k is found by bisection, each step an exact Charge.
func (p Price) maxCallTimePeriods(available money.Micro, limit int) (int, money.Micro, bool) {
	step, first := p.BillType.step(), p.BillType.first()
	if first > limit {
		return 0, 0, false
	}
	lo, hi := -1, (limit-first)/step // charge(lo) fits (-1: nothing), charge(hi+1) does not
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if p.Charge(first+mid*step) <= available {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo < 0 {
		return 0, 0, false
	}
	secs := first + lo*step
	return secs, p.Charge(secs), true
}
