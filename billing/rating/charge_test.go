package rating

import (
	"math"
	"math/big"
	"math/rand"
	"testing"

	"github.com/narayana/narayanad/money"
)

func TestBilledSeconds(t *testing.T) {
	custom := BillType{Name: "custom", FreeThreshold: 36, Step: 10}
	tests := []struct {
		bt     BillType
		length int
		want   int
	}{
		{BySecond, 0, 0},
		{BySecond, 1, 1},
		{BySecond, 59, 59},
		{BySecond, -5, 0},
		{ByMinute, 0, 0},
		{ByMinute, 1, 60},
		{ByMinute, 60, 60},
		{ByMinute, 61, 120},
		{custom, 36, 0},
		{custom, 37, 40},
		{custom, 40, 40},
		{custom, 41, 50},
		{BillType{Step: 0}, 7, 7}, // step < 1 counts as 1
		{BillType{FreeThreshold: -3, Step: 30}, 1, 30}, // negative threshold counts as 0
		{BillType{FreeThreshold: 100, Step: 30}, 100, 0},
		{BillType{FreeThreshold: 100, Step: 30}, 101, 120},
		// Initial blocks (DECISIONS §5): 60/6, 30/6.
		{BillType{FirstStep: 60, Step: 6}, 1, 60},
		{BillType{FirstStep: 60, Step: 6}, 60, 60},
		{BillType{FirstStep: 60, Step: 6}, 61, 66},
		{BillType{FirstStep: 60, Step: 6}, 66, 66},
		{BillType{FirstStep: 60, Step: 6}, 67, 72},
		{BillType{FirstStep: 30, Step: 6}, 31, 36},
		{BillType{FirstStep: 30, Step: 6, FreeThreshold: 5}, 5, 0},
		{BillType{FirstStep: 30, Step: 6, FreeThreshold: 5}, 6, 30},
		{BillType{FirstStep: 1, Step: 60}, 1, 1}, // an odd block: 1 then whole minutes
		{BillType{FirstStep: 1, Step: 60}, 2, 61},
		{BillType{FirstStep: 0, Step: 60}, 61, 120}, // no block: the step
	}
	for _, tt := range tests {
		if got := tt.bt.BilledSeconds(tt.length); got != tt.want {
			t.Errorf("%+v.BilledSeconds(%d) = %d, want %d", tt.bt, tt.length, got, tt.want)
		}
	}
}

func TestCharge(t *testing.T) {
	const one = money.One
	tests := []struct {
		name   string
		p      Price
		length int
		want   money.Micro
	}{
		{"zero length, no switch price", Price{BillType: BySecond, Cost: one, Multiplier: one, SwitchPrice: 500_000}, 0, 0},
		{"free threshold, no switch price", Price{BillType: BillType{FreeThreshold: 5, Step: 1}, Cost: one, Multiplier: one, SwitchPrice: 500_000}, 5, 0},
		{"one second", Price{BillType: BySecond, Cost: 600_000, Multiplier: one}, 1, 10_000},
		{"switch price when billed", Price{BillType: BySecond, Cost: 600_000, Multiplier: one, SwitchPrice: 50_000}, 1, 60_000},
		{"by minute rounds up", Price{BillType: ByMinute, Cost: 150_000, Multiplier: one}, 61, 300_000},
		{"multiplier 1.2", Price{BillType: ByMinute, Cost: 150_000, Multiplier: 1_200_000}, 60, 180_000},
		{"DID multiplier ignored when not DID", Price{BillType: ByMinute, Cost: 150_000, Multiplier: one, DIDMultiplier: 2 * one}, 60, 150_000},
		{"DID multiplier", Price{BillType: ByMinute, Cost: 150_000, Multiplier: one, DIDMultiplier: 2 * one, IsDID: true}, 60, 300_000},
		{"DID multiplier and multiplier", Price{BillType: BySecond, Cost: 100_000, Multiplier: 1_500_000, DIDMultiplier: 500_000, IsDID: true}, 60, 75_000},
		// 1 s at 0.000001/min = 1/60 µ → 0; 30 s = 0.5 µ → 1 (half-up)
		{"below half rounds down", Price{BillType: BySecond, Cost: 1, Multiplier: one}, 1, 0},
		{"half rounds up", Price{BillType: BySecond, Cost: 1, Multiplier: one}, 30, 1},
		{"just below half", Price{BillType: BySecond, Cost: 1, Multiplier: one}, 29, 0},
		// Rounded once: 0.000001 × 1.4 = 1.4 µ/min; 60 s → 1.4 → 1; per-minute rounding first
		// would also give 1, but 30 min: 42 µ exactly, rounding per minute first would give 30.
		{"no intermediate rounding", Price{BillType: ByMinute, Cost: 1, Multiplier: 1_400_000}, 1800, 42},
		{"no float drift", Price{BillType: BySecond, Cost: 100_000, Multiplier: 1_100_000}, 3, 5_500},
		{"free direction", Price{BillType: BySecond, Cost: 0, Multiplier: one, SwitchPrice: 20_000}, 10, 20_000},
		{"zero multiplier is free", Price{BillType: BySecond, Cost: one, Multiplier: 0}, 10, 0},
		{"huge values saturate", Price{BillType: BySecond, Cost: math.MaxInt64, Multiplier: math.MaxInt64}, 1000, math.MaxInt64},
	}
	for _, tt := range tests {
		if got := tt.p.Charge(tt.length); got != tt.want {
			t.Errorf("%s: Charge(%d) = %d, want %d", tt.name, tt.length, got, tt.want)
		}
	}
}

func TestCostPerMinute(t *testing.T) {
	p := Price{Cost: 150_000, Multiplier: 1_200_000, DIDMultiplier: 1_500_000, IsDID: true}
	if got, want := p.CostPerMinute(), big.NewRat(270_000, 1); got.Cmp(want) != 0 {
		t.Errorf("CostPerMinute = %v, want %v", got, want)
	}
	if got := p.CostPerMinuteMicro(); got != 270_000 {
		t.Errorf("CostPerMinuteMicro = %d", got)
	}
	p = Price{Cost: 1, Multiplier: 1_500_000}
	if got, want := p.CostPerMinute(), big.NewRat(3, 2); got.Cmp(want) != 0 {
		t.Errorf("CostPerMinute = %v, want %v", got, want)
	}
	if got := p.CostPerMinuteMicro(); got != 2 {
		t.Errorf("CostPerMinuteMicro(1.5 µ) = %d, want 2", got)
	}
}

func TestCapsLimit(t *testing.T) {
	tests := []struct {
		c    Caps
		want int
	}{
		{Caps{}, 7200},
		{Caps{MaxCallTime: 3600}, 3600},
		{Caps{AllowedCallLen: 600}, 600},
		{Caps{AllowedCallLen: 600, SIPMaxCallLen: 300}, 300},
		{Caps{AllowedCallLen: -1, SIPMaxCallLen: 0, MaxCallTime: 100}, 100},
		{Caps{AllowedCallLen: 9000}, 7200},
		{Caps{SIPMaxCallLen: 9000, MaxCallTime: 10000}, 9000},
	}
	for _, tt := range tests {
		if got := tt.c.Limit(); got != tt.want {
			t.Errorf("%+v.Limit() = %d, want %d", tt.c, got, tt.want)
		}
	}
}

func TestMaxCallTime(t *testing.T) {
	const one = money.One
	perMin := func(bt BillType, cost money.Micro) Price { return Price{BillType: bt, Cost: cost, Multiplier: one} }
	tests := []struct {
		name      string
		p         Price
		available money.Micro
		caps      Caps
		secs      int
		reserve   money.Micro
		ok        bool
	}{
		{"rich user gets the default cap", perMin(BySecond, one), 1_000 * one, Caps{}, 7200, 120 * one, true},
		{"allowed_call_len caps", perMin(BySecond, one), 1_000 * one, Caps{AllowedCallLen: 600}, 600, 10 * one, true},
		{"sip_max_call_len caps", perMin(BySecond, one), 1_000 * one, Caps{AllowedCallLen: 600, SIPMaxCallLen: 90}, 90, 1_500_000, true},
		{"setting caps", perMin(BySecond, one), 1_000 * one, Caps{MaxCallTime: 100}, 100, 1_666_667, true},
		{"money limits by second", perMin(BySecond, one), one, Caps{}, 60, one, true},
		{"money limits by minute", perMin(ByMinute, one), 2_500_000, Caps{}, 120, 2 * one, true},
		{"rounding counts: 0.99999 buys 59 s", perMin(BySecond, one), 999_990, Caps{}, 59, 983_333, true},
		{"half-up rounding lets the last second through", perMin(BySecond, 1), 0, Caps{}, 29, 0, true},
		{"switch price comes first", Price{BillType: BySecond, Cost: one, Multiplier: one, SwitchPrice: 500_000}, one, Caps{}, 30, one, true},
		{"switch price not affordable", Price{BillType: BySecond, Cost: one, Multiplier: one, SwitchPrice: 500_000}, 400_000, Caps{}, 0, 0, false},
		{"not even one step", perMin(ByMinute, one), 999_999, Caps{}, 0, 0, false},
		{"zero available", perMin(BySecond, one), 0, Caps{}, 0, 0, false},
		{"negative available", perMin(BySecond, 0), -1, Caps{}, 0, 0, false},
		{"free direction gets the cap", perMin(BySecond, 0), 0, Caps{AllowedCallLen: 300}, 300, 0, true},
		{"free direction with switch price", Price{BillType: BySecond, Multiplier: one, SwitchPrice: 10_000}, 10_000, Caps{}, 7200, 10_000, true},
		{"free direction, switch price unaffordable", Price{BillType: BySecond, Multiplier: one, SwitchPrice: 10_000}, 9_999, Caps{}, 0, 0, false},
		{"free threshold steps are free", perMin(BillType{FreeThreshold: 36, Step: 10}, 60*one), 0, Caps{}, 30, 0, true},
		{"free threshold then paid steps", perMin(BillType{FreeThreshold: 36, Step: 10}, 60*one), 49 * one, Caps{}, 40, 40 * one, true},
		{"DID multiplier", Price{BillType: BySecond, Cost: one, Multiplier: one, DIDMultiplier: 2 * one, IsDID: true}, one, Caps{}, 30, one, true},
		{"cap not a multiple of the step", perMin(ByMinute, one), 1_000 * one, Caps{AllowedCallLen: 90}, 90, 2 * one, true},
		{"cap not affordable, rounded down to the step", perMin(ByMinute, one), 1_500_000, Caps{AllowedCallLen: 90}, 60, one, true},
		// 60/6 at 1.00/min: 1.55 buys 90 s (1.50), not 96 s (1.60): a billed length, 60 + 5·6.
		{"initial block then steps", perMin(BillType{FirstStep: 60, Step: 6}, one), 1_550_000, Caps{}, 90, 1_500_000, true},
		{"initial block not affordable", perMin(BillType{FirstStep: 60, Step: 6}, one), 999_999, Caps{}, 0, 0, false},
		{"initial block exactly", perMin(BillType{FirstStep: 60, Step: 6}, one), one, Caps{}, 60, one, true},
		{"initial block inside the free threshold", perMin(BillType{FirstStep: 30, Step: 6, FreeThreshold: 40}, one), 0, Caps{}, 36, 0, true},
		{"initial block above the cap", perMin(BillType{FirstStep: 60, Step: 6}, one), 999_999, Caps{AllowedCallLen: 30}, 0, 0, false},
		{"initial block above the cap, affordable", perMin(BillType{FirstStep: 60, Step: 6}, one), one, Caps{AllowedCallLen: 30}, 30, one, true},
	}
	for _, tt := range tests {
		secs, reserve, ok := tt.p.MaxCallTime(tt.available, tt.caps)
		if secs != tt.secs || reserve != tt.reserve || ok != tt.ok {
			t.Errorf("%s: MaxCallTime(%d, %+v) = %d, %d, %v; want %d, %d, %v",
				tt.name, tt.available, tt.caps, secs, reserve, ok, tt.secs, tt.reserve, tt.ok)
		}
	}
}

// Reservations of other open calls are the caller's subtraction; two calls reserving in
// turn can never spend more than the money there is.
func TestMaxCallTimeReservations(t *testing.T) {
	p := Price{BillType: BySecond, Cost: money.One, Multiplier: money.One, SwitchPrice: 100_000}
	balance := money.Micro(5 * money.One)
	var reserved money.Micro
	calls := 0
	for {
		secs, reserve, ok := p.MaxCallTime(balance-reserved, Caps{AllowedCallLen: 120})
		if !ok {
			break
		}
		if p.Charge(secs) != reserve {
			t.Fatalf("reserve %d != Charge(%d) %d", reserve, secs, p.Charge(secs))
		}
		reserved += reserve
		calls++
		if reserved > balance {
			t.Fatalf("reserved %d > balance %d after %d calls", reserved, balance, calls)
		}
	}
	// 2.1 + 2.1 for two 120 s calls, then 0.8 left: 0.1 switch + 42 s = 0.8.
	if calls != 3 || reserved != balance {
		t.Errorf("calls = %d, reserved = %d; want 3, %d", calls, reserved, balance)
	}
}

// --- reference implementation with math/big.Rat ---

// refBilled is the smallest billed length, FirstStep + k·Step with k >= 0, that covers
// length, computed with rationals: first + ceil(max(0, length − first) / step) · step.
func refBilled(length, thr, first, step int) int64 {
	if step < 1 {
		step = 1
	}
	if first < 1 {
		first = step
	}
	if length <= 0 || length <= thr {
		return 0
	}
	over := new(big.Rat).SetFrac64(int64(max(0, length-first)), int64(step))
	k := new(big.Int).Quo(over.Num(), over.Denom())
	if !over.IsInt() {
		k.Add(k, big.NewInt(1))
	}
	return int64(first) + k.Int64()*int64(step)
}

// refRoundHalfUp rounds half away from zero and saturates to int64.
func refRoundHalfUp(x *big.Rat) int64 {
	half := big.NewRat(1, 2)
	y := new(big.Rat).Abs(x)
	y.Add(y, half)
	q := new(big.Int).Quo(y.Num(), y.Denom())
	if x.Sign() < 0 {
		q.Neg(q)
	}
	if !q.IsInt64() {
		if q.Sign() > 0 {
			return math.MaxInt64
		}
		return math.MinInt64
	}
	return q.Int64()
}

func refCharge(p Price, length int) money.Micro {
	billed := refBilled(length, max(p.BillType.FreeThreshold, 0), p.BillType.FirstStep, p.BillType.Step)
	if billed == 0 {
		return 0
	}
	cpm := new(big.Rat).SetFrac(big.NewInt(int64(p.Cost)), big.NewInt(1))
	cpm.Mul(cpm, big.NewRat(int64(p.Multiplier), int64(money.One)))
	if p.IsDID {
		cpm.Mul(cpm, big.NewRat(int64(p.DIDMultiplier), int64(money.One)))
	}
	x := new(big.Rat).Mul(cpm, big.NewRat(billed, 60))
	x.Add(x, new(big.Rat).SetInt64(int64(p.SwitchPrice)))
	return money.Micro(refRoundHalfUp(x))
}

// refMaxCallTime searches by bisection for the largest affordable billed length
// first + k·step, k >= 0.
func refMaxCallTime(p Price, available money.Micro, caps Caps) (int, bool) {
	limit := caps.Limit()
	if available < 0 {
		return 0, false
	}
	if refCharge(p, limit) <= available {
		return limit, true
	}
	step := max(p.BillType.Step, 1)
	first := p.BillType.FirstStep
	if first < 1 {
		first = step
	}
	at := func(k int) int { return first + k*step }
	lo, hi := -1, (limit-first)/step+1 // at(lo) affordable (-1: nothing), at(hi) not
	if limit < first {
		hi = 0
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if refCharge(p, at(mid)) <= available {
			lo = mid
		} else {
			hi = mid
		}
	}
	if lo < 0 {
		return 0, false
	}
	return at(lo), true
}

func randomPrice(rng *rand.Rand) Price {
	steps := []int{1, 1, 6, 10, 30, 60, 60, 0, -5}
	p := Price{
		BillType:      BillType{FreeThreshold: 0, Step: steps[rng.Intn(len(steps))]},
		Cost:          money.Micro(rng.Int63n(10 * int64(money.One))),
		Multiplier:    money.Micro(rng.Int63n(5 * int64(money.One))),
		DIDMultiplier: money.Micro(rng.Int63n(5 * int64(money.One))),
		IsDID:         rng.Intn(2) == 0,
	}
	if rng.Intn(3) == 0 {
		p.BillType.FreeThreshold = rng.Intn(90) - 5
	}
	if rng.Intn(5) == 0 {
		p.BillType.Step = rng.Intn(300) + 1
	}
	switch rng.Intn(4) { // an initial block: carriers' 60/6, 30/6, 1/1 and odd ones
	case 0:
		p.BillType.FirstStep = []int{60, 30, 1, 0, -3}[rng.Intn(5)]
	case 1:
		p.BillType.FirstStep = rng.Intn(400) + 1
	}
	if rng.Intn(2) == 0 {
		p.SwitchPrice = money.Micro(rng.Int63n(int64(money.One)))
	}
	switch rng.Intn(10) {
	case 0:
		p.Cost = money.Micro(rng.Int63n(100)) // tiny: rounding matters
	case 1:
		p.Cost = 0 // free direction
	case 2: // huge: exercise the big.Int paths
		p.Cost = money.Micro(rng.Int63())
		p.Multiplier = money.Micro(rng.Int63())
		p.DIDMultiplier = money.Micro(rng.Int63())
	case 3:
		p.Multiplier = money.One
		p.DIDMultiplier = money.One
	}
	return p
}

func TestChargeProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(42))
	for i := range 20000 {
		p := randomPrice(rng)
		length := rng.Intn(10000) - 10
		if rng.Intn(10) == 0 {
			length = rng.Intn(1 << 30)
		}
		if got, want := p.Charge(length), refCharge(p, length); got != want {
			t.Fatalf("case %d: %+v Charge(%d) = %d, want %d", i, p, length, got, want)
		}
	}
}

func TestMaxCallTimeProperty(t *testing.T) {
	rng := rand.New(rand.NewSource(7))
	var declined, capped, limited int
	defer func() {
		t.Logf("declined %d, capped %d, limited by money %d", declined, capped, limited)
		if declined < 200 || capped < 200 || limited < 200 {
			t.Errorf("the random cases miss a branch: declined %d, capped %d, limited %d", declined, capped, limited)
		}
	}()
	for i := range 5000 {
		p := randomPrice(rng)
		var available money.Micro
		switch rng.Intn(4) {
		case 0:
			available = money.Micro(rng.Int63n(int64(money.One)) - 1000)
		case 1:
			available = money.Micro(rng.Int63n(100 * int64(money.One)))
		case 2:
			available = money.Micro(rng.Int63n(10_000))
		default:
			available = money.Micro(rng.Int63n(1_000_000 * int64(money.One)))
		}
		caps := Caps{}
		if rng.Intn(2) == 0 {
			caps.AllowedCallLen = rng.Intn(20000) - 100
		}
		if rng.Intn(2) == 0 {
			caps.SIPMaxCallLen = rng.Intn(20000) - 100
		}
		if rng.Intn(2) == 0 {
			caps.MaxCallTime = rng.Intn(20000) - 100
		}
		secs, reserve, ok := p.MaxCallTime(available, caps)
		wantSecs, wantOK := refMaxCallTime(p, available, caps)
		if secs != wantSecs || ok != wantOK {
			t.Fatalf("case %d: %+v MaxCallTime(%d, %+v) = %d, %v; want %d, %v", i, p, available, caps, secs, ok, wantSecs, wantOK)
		}
		if !ok {
			declined++
			if secs != 0 || reserve != 0 {
				t.Fatalf("case %d: declined with %d s, reserve %d", i, secs, reserve)
			}
			continue
		}
		if want := refCharge(p, secs); reserve != want {
			t.Fatalf("case %d: reserve %d, want Charge(%d) = %d", i, reserve, secs, want)
		}
		if reserve > available {
			t.Fatalf("case %d: reserve %d > available %d", i, reserve, available)
		}
		step, first := max(p.BillType.Step, 1), p.BillType.FirstStep
		if first < 1 {
			first = step
		}
		if limit := caps.Limit(); secs == limit {
			capped++
		} else {
			limited++
			if secs < first || (secs-first)%step != 0 {
				t.Fatalf("case %d: %d s is not the initial block %d plus steps of %d", i, secs, first, step)
			}
			if next := refCharge(p, secs+step); next <= available {
				t.Fatalf("case %d: Charge(%d+%d) = %d <= available %d, not the longest", i, secs, step, next, available)
			}
		}
	}
}
