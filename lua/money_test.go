package lua

import (
	"context"
	"reflect"
	"testing"
)

func TestParseMoney(t *testing.T) {
	for in, want := range map[string]int64{
		"1.25": 1_250_000, "0": 0, "-0.5": -500_000, "+3": 3_000_000, "5.": 5_000_000, ".5": 500_000,
		"0.0000005": 1, "0.0000004": 0, "-0.0000005": -1, "12.3456789": 12_345_679, " 7 ": 7_000_000,
	} {
		got, err := parseMoney(in)
		if err != nil || got != want {
			t.Errorf("parseMoney(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", ".", "1,5", "abc", "1e3", "--1", "1.2.3", "99999999999999999999"} {
		if _, err := parseMoney(in); err == nil {
			t.Errorf("parseMoney(%q) succeeded", in)
		}
	}
}

func TestFormatAndArithmetic(t *testing.T) {
	fm := []struct {
		micro int64
		dec   int
		want  string
	}{
		{1_234_567, 2, "1.23"}, {1_235_000, 2, "1.24"}, {-1_235_000, 2, "-1.24"}, {5, 6, "0.000005"},
		{999_999, 0, "1"}, {0, 2, "0.00"}, {1_500_000, 4, "1.5000"},
	}
	for _, c := range fm {
		if got := formatMoney(c.micro, c.dec); got != c.want {
			t.Errorf("formatMoney(%d, %d) = %q, want %q", c.micro, c.dec, got, c.want)
		}
	}
	mul := []struct{ a, b, want int64 }{
		{2_000_000, 1_500_000, 3_000_000}, {1, 500_000, 1}, {1, 499_999, 0}, {-1, 500_000, -1}, {333_333, 3_000_000, 999_999},
	}
	for _, c := range mul {
		if got, err := mulMoney(c.a, c.b); err != nil || got != c.want {
			t.Errorf("mulMoney(%d, %d) = %d, %v; want %d", c.a, c.b, got, err, c.want)
		}
	}
	if got, _ := divMoney(1_000_000, 3_000_000); got != 333_333 {
		t.Errorf("div = %d", got)
	}
	if got, _ := divMoney(2_000_000, 3_000_000); got != 666_667 {
		t.Errorf("div = %d", got)
	}
	if _, err := divMoney(1, 0); err == nil {
		t.Error("division by zero succeeded")
	}
	if _, err := mulMoney(1<<62, 1<<40); err == nil {
		t.Error("overflow succeeded")
	}
}

func TestMoneyFromLua(t *testing.T) {
	rt := newRuntime(t, map[string]string{
		"m.lua": methods(map[string]string{
			"all": `local m = narayana.money
return {m.parse("1.25"), m.format(1234567, 2), m.format(1234567), m.mul(2000000, 1500000),
        m.div(1000000, 3000000), m.round(1234567, 2), m.add(1, 2), m.sub(1, 2), m.UNIT}`,
			"frac":  `return narayana.money.mul(1.5, 2)`,
			"bad":   `return narayana.money.parse("1,5")`,
			"zero":  `return narayana.money.div(1, 0)`,
			"range": `return narayana.money.mul(2^52, 2^52)`,
		}),
	}, Options{})
	v, err := rt.CallMethod(context.Background(), "all", Request{})
	want := []any{int64(1_250_000), "1.23", "1.23", int64(3_000_000), int64(333_333), int64(1_230_000), int64(3), int64(-1), int64(1_000_000)}
	if err != nil || !reflect.DeepEqual(v, want) {
		t.Fatalf("all = %#v, %v", v, err)
	}
	for _, m := range []string{"frac", "bad", "zero", "range"} {
		if _, err := rt.CallMethod(context.Background(), m, Request{}); Code(err) != CodeLuaException {
			t.Errorf("%s: %v", m, err)
		}
	}
}
