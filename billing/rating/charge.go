package rating

import (
	"math"
	"math/big"
	"math/bits"

	"github.com/narayana/narayanad/money"
)

// BillType is a tarification type: calls up to FreeThreshold seconds are free, longer calls
// are billed an initial block of FirstStep seconds and then whole steps of Step seconds
// (DECISIONS §5: 60/6, 30/6, 1/1). A FirstStep below 1 means Step: the reference's rule.
type BillType struct {
	Name          string
	FreeThreshold int
	Step          int
	FirstStep     int
}

// The built-in bill types.
var (
	BySecond = BillType{Name: "by_second", FreeThreshold: 0, Step: 1}
	ByMinute = BillType{Name: "byminute", FreeThreshold: 0, Step: 60}
)

// DefaultMaxCallTime is the max_call_time setting's default, in seconds.
const DefaultMaxCallTime = 7200

func (bt BillType) step() int {
	if bt.Step < 1 {
		return 1
	}
	return bt.Step
}

func (bt BillType) first() int {
	if bt.FirstStep < 1 {
		return bt.step()
	}
	return bt.FirstStep
}

func (bt BillType) threshold() int {
	if bt.FreeThreshold < 0 {
		return 0
	}
	return bt.FreeThreshold
}

// BilledSeconds is 0 when length <= FreeThreshold; else FirstStep when length <= FirstStep;
// else FirstStep plus the rest rounded up to a multiple of Step. A Step below 1 counts as
// 1, a FirstStep below 1 as Step, a negative FreeThreshold as 0.
func (bt BillType) BilledSeconds(length int) int {
	// Written to stay within the inliner's budget: Charge inlines it.
	if length <= 0 || length <= bt.FreeThreshold { // a negative threshold counts as 0 here too
		return 0
	}
	s := bt.step()
	f := bt.FirstStep
	if f < 1 {
		f = s
	}
	if length <= f {
		return f
	}
	if r := (length - f) % s; r != 0 {
		return length + s - r
	}
	return length
}

// Price is everything needed to charge a call: the entry's cost per minute, the tariff's
// multipliers, switch price and bill type. Callers may keep it with a reservation so that
// callFinish charges with the prices callPrepare saw.
type Price struct {
	BillType      BillType
	Cost          money.Micro // the entry's cost per minute
	Multiplier    money.Micro // tariff multiplier, money.One = 1.0
	DIDMultiplier money.Micro // applied on top when IsDID
	IsDID         bool
	SwitchPrice   money.Micro // added once when billed seconds > 0
	// Periods, when not nil, price each second at the cost in force at that second
	// (time-of-day and day-of-week rates, periods.go); Start is the call's first second,
	// unix time. A plain entry has none and pays one nil check for them.
	Periods *Periods
	Start   int64
}

// rate is the cost per second as num/den with den = 60e6 (or 60e12 for DID calls);
// num is cost × multiplier (× DID multiplier) held in 128 bits when it fits and is
// non-negative, else in big.
const (
	denPlain = 60 * 1_000_000
	denDID   = 60 * 1_000_000 * 1_000_000
)

// perSecond returns the cost per second as an exact fraction num/den.
func (p Price) perSecond() (num *big.Int, den int64) {
	num = new(big.Int).Mul(big.NewInt(int64(p.Cost)), big.NewInt(int64(p.Multiplier)))
	den = denPlain
	if p.IsDID {
		num.Mul(num, big.NewInt(int64(p.DIDMultiplier)))
		den = denDID
	}
	return num, den
}

// CostPerMinute is the exact cost per minute, cost × multiplier (× DID multiplier), in
// micro-units (a fraction: 0.000001 × 1.5 is 3/2).
func (p Price) CostPerMinute() *big.Rat {
	num, den := p.perSecond()
	return new(big.Rat).SetFrac(num, big.NewInt(den/60))
}

// CostPerMinuteMicro is the cost per minute rounded half-up to a micro-unit, for display
// only: charges never use it.
func (p Price) CostPerMinuteMicro() money.Micro {
	num, den := p.perSecond()
	return money.Micro(money.DivRound(num, big.NewInt(den/60)))
}

// Charge is the cost of a call of length seconds (DECISIONS §5): billed seconds × cost per
// minute / 60, plus the switch price when billed seconds > 0, rounded half-up to a
// micro-unit once. It is exact; a result beyond the int64 range saturates.
func (p Price) Charge(length int) money.Micro {
	if p.Periods != nil {
		return p.chargePeriods(p.BillType.BilledSeconds(length))
	}
	return p.chargeBilled(p.BillType.BilledSeconds(length))
}

func (p Price) chargeBilled(billed int) money.Micro {
	if billed <= 0 {
		return 0
	}
	if v, ok := p.chargeFast(uint64(billed)); ok {
		return satAdd(v, p.SwitchPrice)
	}
	num, den := p.perSecond()
	num.Mul(num, big.NewInt(int64(billed)))
	return satAdd(money.Micro(money.DivRound(num, big.NewInt(den))), p.SwitchPrice)
}

// chargeFast computes round(billed × num / den) in 128-bit arithmetic when every factor is
// non-negative and nothing overflows.
func (p Price) chargeFast(billed uint64) (money.Micro, bool) {
	if p.Cost < 0 || p.Multiplier < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(p.Cost), uint64(p.Multiplier))
	var den uint64 = denPlain
	if p.IsDID {
		if p.DIDMultiplier < 0 {
			return 0, false
		}
		var ok bool
		if hi, lo, ok = mul128(hi, lo, uint64(p.DIDMultiplier)); !ok {
			return 0, false
		}
		den = denDID
	}
	hi, lo, ok := mul128(hi, lo, billed)
	if !ok {
		return 0, false
	}
	if hi >= den { // quotient would not fit in 64 bits
		return 0, false
	}
	q, r := bits.Div64(hi, lo, den)
	if r >= den-r { // 2r >= den: half-up
		q++
	}
	if q > math.MaxInt64 {
		return 0, false
	}
	return money.Micro(q), true
}

// mul128 multiplies the 128-bit hi:lo by m, reporting overflow.
func mul128(hi, lo, m uint64) (uint64, uint64, bool) {
	h1, l1 := bits.Mul64(lo, m)
	h2, l2 := bits.Mul64(hi, m)
	if h2 != 0 {
		return 0, 0, false
	}
	h, c := bits.Add64(h1, l2, 0)
	if c != 0 {
		return 0, 0, false
	}
	return h, l1, true
}

func satAdd(a, b money.Micro) money.Micro {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}

// Caps limit MaxCallTime. AllowedCallLen and SIPMaxCallLen of 0 or less mean no cap;
// MaxCallTime of 0 or less means the setting's default, DefaultMaxCallTime.
type Caps struct {
	AllowedCallLen int // the user's allowed_call_len
	SIPMaxCallLen  int // the extension's sip_max_call_len
	MaxCallTime    int // the max_call_time setting
}

// Limit is the smallest positive cap, in seconds.
func (c Caps) Limit() int {
	l := c.MaxCallTime
	if l <= 0 {
		l = DefaultMaxCallTime
	}
	if c.AllowedCallLen > 0 && c.AllowedCallLen < l {
		l = c.AllowedCallLen
	}
	if c.SIPMaxCallLen > 0 && c.SIPMaxCallLen < l {
		l = c.SIPMaxCallLen
	}
	return l
}

// MaxCallTime is callPrepare's MaxCallTime: the longest billed length, in seconds, whose
// Charge fits in available (balance + overdraft − reservations of the user's other open
// calls), capped by caps.Limit(); reserve is Charge(secs), the amount to hold. The billed
// lengths are FirstStep + k·Step (k >= 0), so the answer is one of them unless it is the
// cap. ok is false when not even the initial block is affordable (Declined
// E_INSUFFICIENT_MONEY).
//
// Guarantees: Charge(secs) <= available, and Charge(secs+step) > available unless secs is
// the cap. A free direction gets the cap (as long as its switch price is affordable).
// Billed lengths inside the free threshold cost nothing and so are always affordable. A
// negative available allows nothing.
func (p Price) MaxCallTime(available money.Micro, caps Caps) (secs int, reserve money.Micro, ok bool) {
	if available < 0 {
		return 0, 0, false
	}
	limit := caps.Limit()
	if c := p.Charge(limit); c <= available {
		return limit, c, true
	}
	if p.Periods != nil {
		return p.maxCallTimePeriods(available, limit)
	}
	step, first := p.BillType.step(), p.BillType.first()
	num, den := p.perSecond()
	k := int64(-1) // the largest affordable k: FirstStep + k·Step seconds; -1 = none
	a := new(big.Int).Sub(big.NewInt(int64(available)), big.NewInt(int64(p.SwitchPrice)))
	if num.Sign() > 0 && a.Sign() >= 0 {
		// The longest affordable billed length x: round(x·num/den) <= a ⟺ 2·x·num < (2a+1)·den,
		// x = floor(((2a+1)·den − 1) / (2·num)); then k = floor((x − first) / step).
		a.Lsh(a, 1).Add(a, big.NewInt(1)).Mul(a, big.NewInt(den)).Sub(a, big.NewInt(1))
		d := new(big.Int).Lsh(num, 1)
		a.Quo(a, d)
		switch {
		case !a.IsInt64():
			k = math.MaxInt64 // more than any cap
		case a.Int64() >= int64(first):
			k = (a.Int64() - int64(first)) / int64(step)
		}
	}
	// Billed lengths within the free threshold are charged nothing.
	if thr := p.BillType.threshold(); thr >= first {
		k = max(k, int64((thr-first)/step))
	}
	if k < 0 || first > limit {
		return 0, 0, false
	}
	if k >= int64((limit-first)/step)+1 { // cannot happen given Charge(limit) > available; be safe
		return limit, p.Charge(limit), true
	}
	secs = first + int(k)*step
	return secs, p.Charge(secs), true
}
