package rating

import (
	"errors"
	"sync"
	"testing"

	"github.com/narayana/narayanad/money"
)

// testSnapshot: tariff 1 (base, byminute), option 2 (by_second, Germany only), option 3
// (unknown bill type), routes 10, 11 enabled, 12 disabled.
func testSnapshot(t *testing.T) *Snapshot {
	t.Helper()
	b := NewBuilder().
		SetDirections(testDirections()).
		SetBillType(BillType{Name: "custom", FreeThreshold: 36, Step: 10}).
		SetRoute(Route{ID: 10, Name: "route1-cli", Prefix: "outline/", Enabled: true}).
		SetRoute(Route{ID: 11, Name: "route2", Prefix: "outline2/", Enabled: true}).
		SetRoute(Route{ID: 12, Name: "route3-off", Prefix: "outline3/", Enabled: false}).
		SetTariff(Tariff{ID: 1, Name: "base", BillType: "byminute", Multiplier: money.One, DIDMultiplier: 2 * money.One, SwitchPrice: 10_000}).
		SetTariff(Tariff{ID: 2, Name: "germany option", BillType: "by_second", IsOption: true, Multiplier: 1_200_000, DIDMultiplier: money.One}).
		SetTariff(Tariff{ID: 3, Name: "odd option", BillType: "gone", IsOption: true, Multiplier: money.One, DIDMultiplier: money.One}).
		SetTariff(Tariff{ID: 4, Name: "empty option", BillType: "custom", IsOption: true, Multiplier: money.One})
	must := func(tariff int64, e Entry) {
		if err := b.AddEntry(tariff, e); err != nil {
			t.Fatal(err)
		}
	}
	// Russia Mobile - Megafon (3): three routes, the middle one disabled.
	must(1, Entry{DirectionID: 3, Priority: 3, Cost: 300_000, RouteID: 11})
	must(1, Entry{DirectionID: 3, Priority: 1, Cost: 100_000, RouteID: 10})
	must(1, Entry{DirectionID: 3, Priority: 2, Cost: 200_000, RouteID: 12})
	// Russia (1): one entry through a disabled route.
	must(1, Entry{DirectionID: 1, Priority: 1, Cost: 50_000, RouteID: 12})
	// Germany (5): base and option.
	must(1, Entry{DirectionID: 5, Priority: 1, Cost: 90_000, RouteID: 10})
	must(2, Entry{DirectionID: 5, Priority: 1, Cost: 60_000, RouteID: 11})
	// Germany Berlin (6): only option 3; duplicate priority, last wins.
	must(3, Entry{DirectionID: 6, Priority: 1, Cost: 1, RouteID: 10})
	must(3, Entry{DirectionID: 6, Priority: 1, Cost: 40_000, RouteID: 10})
	// Russia Mobile (2): an unknown route.
	must(1, Entry{DirectionID: 2, Priority: 1, Cost: 70_000, RouteID: 99})
	if err := b.AddEntry(42, Entry{DirectionID: 1, Priority: 1}); !errors.Is(err, ErrUnknownTariff) {
		t.Fatalf("AddEntry to unknown tariff: %v", err)
	}
	return b.Build()
}

func TestRate(t *testing.T) {
	s := testSnapshot(t)
	tests := []struct {
		name    string
		q       Query
		err     error
		tariff  int64
		route   int64
		cost    money.Micro
		dir     int64
		bt      string
		fallbck bool
	}{
		{"first priority", Query{Number: "+7 927 187-12-34", TariffID: 1}, nil, 1, 10, 100_000, 3, "byminute", false},
		{"prior 0 counts as 1", Query{Number: "79271871234", TariffID: 1, Prior: 0}, nil, 1, 10, 100_000, 3, "byminute", false},
		{"failover skips the disabled route", Query{Number: "79271871234", TariffID: 1, Prior: 2}, nil, 1, 11, 300_000, 3, "byminute", false},
		{"no third enabled route", Query{Number: "79271871234", TariffID: 1, Prior: 3}, ErrUnroutable, 0, 0, 0, 0, "", false},
		{"only route disabled", Query{Number: "74951234567", TariffID: 1}, ErrUnroutable, 0, 0, 0, 0, "", false},
		{"unknown route counts as disabled", Query{Number: "79991234567", TariffID: 1}, ErrUnroutable, 0, 0, 0, 0, "", false},
		{"no direction", Query{Number: "3312345", TariffID: 1}, ErrUnroutable, 0, 0, 0, 0, "", false},
		{"tariff has no entry", Query{Number: "*100#", TariffID: 1}, ErrUnroutable, 0, 0, 0, 0, "", false},
		{"unknown tariff", Query{Number: "79271871234", TariffID: 9}, ErrUnknownTariff, 0, 0, 0, 0, "", false},
		{"base without options", Query{Number: "0049891234", TariffID: 1}, nil, 1, 10, 90_000, 5, "byminute", false},
		{"option overrides", Query{Number: "0049891234", TariffID: 1, Options: []int64{2}}, nil, 2, 11, 60_000, 5, "by_second", false},
		{"first option with entries wins", Query{Number: "0049891234", TariffID: 1, Options: []int64{99, 4, 3, 2}}, nil, 2, 11, 60_000, 5, "by_second", false},
		{"options without entries leave the base", Query{Number: "79271871234", TariffID: 1, Options: []int64{2, 4}}, nil, 1, 10, 100_000, 3, "byminute", false},
		{"option gives a direction the base lacks", Query{Number: "4930123456", TariffID: 1, Options: []int64{3}}, nil, 3, 10, 40_000, 6, "byminute", true},
		{"option is replaced, not merged", Query{Number: "0049891234", TariffID: 1, Options: []int64{2}, Prior: 2}, ErrUnroutable, 0, 0, 0, 0, "", false},
		{"base missing Berlin", Query{Number: "4930123456", TariffID: 1}, ErrUnroutable, 0, 0, 0, 0, "", false},
	}
	for _, tt := range tests {
		q, err := s.Rate(tt.q)
		if tt.err != nil {
			if !errors.Is(err, tt.err) {
				t.Errorf("%s: err = %v, want %v", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if q.Tariff.ID != tt.tariff || q.Route.ID != tt.route || q.Entry.Cost != tt.cost || q.Cost != tt.cost ||
			q.Direction.ID != tt.dir || q.BillType.Name != tt.bt || q.BillTypeFallback != tt.fallbck {
			t.Errorf("%s: got tariff %d route %d cost %d/%d dir %d bill type %q fallback %v; want %d %d %d %d %q %v",
				tt.name, q.Tariff.ID, q.Route.ID, q.Entry.Cost, q.Cost, q.Direction.ID, q.BillType.Name, q.BillTypeFallback,
				tt.tariff, tt.route, tt.cost, tt.dir, tt.bt, tt.fallbck)
		}
	}
}

func TestRateQuote(t *testing.T) {
	s := testSnapshot(t)
	q, err := s.Rate(Query{Number: "+7 927 187-12-34", TariffID: 1, IsDID: true})
	if err != nil {
		t.Fatal(err)
	}
	if q.Number != "79271871234" || q.Direction.Name != "Russia Mobile - Megafon" || q.Route.Prefix != "outline/" || q.Route.Name != "route1-cli" {
		t.Errorf("quote = %+v", q)
	}
	// 0.10/min × 1 × DID 2 = 0.20/min, byminute: 61 s → 120 s = 0.40 + 0.01 switch price.
	if got := q.Charge(61); got != 410_000 {
		t.Errorf("Charge(61) = %d, want 410000", got)
	}
	if got := q.Charge(0); got != 0 {
		t.Errorf("Charge(0) = %d", got)
	}
	secs, reserve, ok := q.MaxCallTime(1_000_000, Caps{})
	// (1.00 − 0.01) / 0.20 = 4.95 min → 4 whole minutes, 0.81.
	if secs != 240 || reserve != 810_000 || !ok {
		t.Errorf("MaxCallTime = %d, %d, %v", secs, reserve, ok)
	}
	q2, _ := s.Rate(Query{Number: "0049891234", TariffID: 1, Options: []int64{2}})
	// 0.06 × 1.2 = 0.072/min by_second; no switch price on the option.
	if got := q2.Charge(10); got != 12_000 {
		t.Errorf("option Charge(10) = %d, want 12000", got)
	}
}

func TestRateNoAlloc(t *testing.T) {
	s := testSnapshot(t)
	q := Query{Number: "79271871234", TariffID: 1, Options: []int64{2}, Prior: 2}
	if n := testing.AllocsPerRun(100, func() { _, _ = s.Rate(q) }); n != 0 {
		t.Errorf("Rate allocates %v times", n)
	}
}

func TestEdit(t *testing.T) {
	s := testSnapshot(t)
	// Disable route 10 and reprice Germany in the base tariff; everything else is shared.
	b := s.Edit().SetRoute(Route{ID: 10, Name: "route1-cli", Prefix: "outline/", Enabled: false})
	if err := b.AddEntry(1, Entry{DirectionID: 5, Priority: 1, Cost: 95_000, RouteID: 11}); err != nil {
		t.Fatal(err)
	}
	b.SetTariff(Tariff{ID: 2, Name: "renamed", BillType: "by_second", IsOption: true, Multiplier: money.One})
	s2 := b.Build()

	if q, err := s2.Rate(Query{Number: "79271871234", TariffID: 1}); err != nil || q.Route.ID != 11 {
		t.Errorf("after disabling route 10: %+v, %v", q.Route, err)
	}
	if q, err := s2.Rate(Query{Number: "491234", TariffID: 1}); err != nil || q.Cost != 95_000 {
		t.Errorf("repriced Germany: %+v, %v", q.Entry, err)
	}
	if q, err := s2.Rate(Query{Number: "491234", TariffID: 1, Options: []int64{2}}); err != nil || q.Tariff.Name != "renamed" || q.Cost != 60_000 || q.Multiplier != money.One {
		t.Errorf("renamed option kept its entries: %+v %+v, %v", q.Tariff, q.Entry, err)
	}
	// The old snapshot is untouched.
	if q, err := s.Rate(Query{Number: "79271871234", TariffID: 1}); err != nil || q.Route.ID != 10 {
		t.Errorf("old snapshot changed: %+v, %v", q.Route, err)
	}
	if q, err := s.Rate(Query{Number: "491234", TariffID: 1}); err != nil || q.Cost != 90_000 {
		t.Errorf("old snapshot changed: %+v, %v", q.Entry, err)
	}
	if a, b := s.Tariffs[3].AllEntries(), s2.Tariffs[3].AllEntries(); len(b) != 1 || &a[0] != &b[0] {
		t.Errorf("untouched tariff's entries not shared")
	}
	// ClearEntries and DeleteTariff.
	b = s2.Edit()
	if err := b.ClearEntries(1); err != nil {
		t.Fatal(err)
	}
	s3 := b.DeleteTariff(2).DeleteBillType("by_second").Build()
	if _, err := s3.Rate(Query{Number: "491234", TariffID: 1, Options: []int64{2}}); !errors.Is(err, ErrUnroutable) {
		t.Errorf("cleared: %v", err)
	}
	if len(s2.Tariffs[1].AllEntries()) == 0 {
		t.Error("ClearEntries changed the previous snapshot")
	}
}

func TestTariffEntries(t *testing.T) {
	s := testSnapshot(t)
	es := s.Tariffs[1].Entries(3)
	if len(es) != 3 || es[0].Priority != 1 || es[1].Priority != 2 || es[2].Priority != 3 {
		t.Errorf("Entries(3) = %+v", es)
	}
	if es := s.Tariffs[1].Entries(77); es != nil {
		t.Errorf("Entries(77) = %+v", es)
	}
	all := s.Tariffs[1].AllEntries()
	if len(all) != 6 {
		t.Errorf("AllEntries = %+v", all)
	}
	if es := s.Tariffs[3].Entries(6); len(es) != 1 || es[0].Cost != 40_000 {
		t.Errorf("duplicate priority: %+v", es)
	}
	var nilT *Tariff
	if nilT.Entries(1) != nil || nilT.AllEntries() != nil {
		t.Error("nil tariff has entries")
	}
}

func TestLive(t *testing.T) {
	var live Live
	if s := live.Load(); s == nil || s.Index.Len() != 0 || len(s.BillTypes) != 2 {
		t.Fatalf("zero Live: %+v", s)
	}
	if _, err := live.Load().Rate(Query{Number: "7", TariffID: 1}); !errors.Is(err, ErrUnknownTariff) {
		t.Errorf("empty snapshot: %v", err)
	}
	s1 := testSnapshot(t)
	s2 := s1.Edit().SetRoute(Route{ID: 10, Name: "other", Enabled: true}).Build()
	live.Store(s1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 2000 {
				q, err := live.Load().Rate(Query{Number: "79271871234", TariffID: 1})
				if err != nil || (q.Route.Name != "route1-cli" && q.Route.Name != "other") {
					t.Errorf("concurrent Rate: %+v, %v", q.Route, err)
					return
				}
			}
		}()
	}
	for i := range 200 {
		if i%2 == 0 {
			live.Store(s2)
		} else {
			live.Store(s1)
		}
	}
	wg.Wait()
}
