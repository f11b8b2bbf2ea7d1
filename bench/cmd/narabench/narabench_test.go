package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestGenCodes(t *testing.T) {
	codes, numbers := genCodes(20_000, 500, 1000)
	seen := map[string]bool{}
	for _, c := range codes {
		if seen[c.code] {
			t.Fatalf("code %s twice", c.code)
		}
		seen[c.code] = true
		if c.dir < 1 || c.dir > 500 || len(c.code) < 4 || len(c.code) > 10 {
			t.Fatalf("code %+v", c)
		}
	}
	for _, n := range numbers {
		if len(n) < 11 || len(n) > 13 {
			t.Fatalf("number %s: want 11-13 digits", n)
		}
		hit := false
		for i := 4; i <= len(n) && !hit; i++ {
			hit = seen[n[:i]]
		}
		if !hit {
			t.Fatalf("number %s matches no code", n)
		}
	}
	again, _ := genCodes(20_000, 500, 1000)
	if again[12345] != codes[12345] {
		t.Fatal("the data set is not deterministic")
	}
}

func TestProcOfSelf(t *testing.T) {
	for i := 0; i < 2_000_000; i++ { // some CPU time to read back
		_ = strings.Repeat("x", i%7)
	}
	cpu, err := procCPU(os.Getpid())
	if err != nil || cpu < 0 {
		t.Fatalf("procCPU: %v %v", cpu, err)
	}
	rss, hwm, err := procMem(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Fatalf("procMem: rss %d hwm %d %v", rss, hwm, err)
	}
}

func TestExpect(t *testing.T) {
	if err := expect(200, []byte("Allowed 60 …"), nil, "Allowed "); err != nil {
		t.Fatal(err)
	}
	if err := expect(200, []byte("Declined E_INSUFFICIENT_MONEY"), nil, "Allowed "); err == nil ||
		!strings.Contains(err.Error(), "Declined") {
		t.Fatalf("a decline passed: %v", err)
	}
	if err := expect(400, []byte("Allowed "), nil, "Allowed "); err == nil {
		t.Fatal("HTTP 400 passed")
	}
	if err := expect(0, nil, errors.New("refused"), "Allowed "); err == nil {
		t.Fatal("a transport error passed")
	}
}

func TestMoneyCheck(t *testing.T) {
	ok := moneyCheck{Calls: 2, Charges: 150, BalanceDrop: 150, CallLedger: -150}
	if !ok.OK() || !strings.HasPrefix(ok.String(), "OK") {
		t.Fatal(ok)
	}
	for _, bad := range []moneyCheck{
		{Charges: 150, BalanceDrop: 149, CallLedger: -150},
		{Charges: 150, BalanceDrop: 150, CallLedger: -149},
		{Charges: 150, BalanceDrop: 150, CallLedger: -150, BadAccounts: 1},
	} {
		if bad.OK() {
			t.Fatalf("%+v passed", bad)
		}
	}
	if eur(-1_500_001) != "-1.500001" {
		t.Fatal(eur(-1_500_001))
	}
}

func TestLevel64(t *testing.T) {
	for _, c := range []struct {
		levels []int
		want   int
	}{{[]int{1, 16, 64, 256}, 64}, {[]int{16}, 16}, {[]int{1, 50, 100}, 50}} {
		if got := level64(c.levels); got != c.want {
			t.Errorf("level64(%v) = %d, want %d", c.levels, got, c.want)
		}
	}
}

// medianRuns keeps the median run of each phase repeated at the targets' level, where
// the first run stood, and leaves the other levels alone.
func TestMedianRuns(t *testing.T) {
	ps := []phase{
		{Name: phFloor, Conc: 16, Rate: 9},
		{Name: phFloor, Conc: 64, Rate: 30},
		{Name: phHealthz, Conc: 64, Rate: 99},
		{Name: phPrepare, Conc: 64, Rate: 12},
		{Name: phFloor, Conc: 64, Rate: 10},
		{Name: phPrepare, Conc: 64, Rate: 11},
		{Name: phFloor, Conc: 64, Rate: 20},
		{Name: phPrepare, Conc: 64, Rate: 13},
	}
	out, note := medianRuns(ps, 64)
	var got []string
	for _, p := range out {
		got = append(got, fmt.Sprintf("%s@%d=%.0f", p.Name, p.Conc, p.Rate))
	}
	want := []string{phFloor + "@16=9", phFloor + "@64=20", phHealthz + "@64=99", phPrepare + "@64=12"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("kept %v, want %v", got, want)
	}
	if !strings.Contains(note, "ran 3 times") || !strings.Contains(note, "30/s") || strings.Contains(note, "99/s") {
		t.Fatalf("note %q", note)
	}
}
