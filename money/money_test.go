package money

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Micro
		err  error
	}{
		{"0", 0, nil}, {"1", 1_000_000, nil}, {"1.5", 1_500_000, nil}, {"-0.000001", -1, nil},
		{".25", 250_000, nil}, {"3.", 3_000_000, nil}, {"+2", 2_000_000, nil},
		{"0.0000005", 1, nil}, {"0.0000004", 0, nil}, {"-0.0000005", -1, nil},
		{"", 0, ErrSyntax}, {"1,5", 0, ErrSyntax}, {"abc", 0, ErrSyntax}, {"1e3", 0, ErrSyntax},
		{".", 0, ErrSyntax}, {"-", 0, ErrSyntax}, {"1.2.3", 0, ErrSyntax},
		{"99999999999999999999", 0, ErrRange},
	} {
		got, err := Parse(tc.in)
		if err != tc.err || got != tc.want {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		m    Micro
		dec  int
		want string
	}{
		{1_500_000, 6, "1.5"}, {0, 6, "0"}, {-1, 6, "-0.000001"}, {1_234_567, 4, "1.2346"},
		{1_234_549, 4, "1.2345"}, {-1_005_000, 2, "-1.01"}, {4_000, 2, "0"}, {-4_000, 2, "0"},
		{10_000_000, 2, "10"},
	} {
		if got := tc.m.Format(tc.dec); got != tc.want {
			t.Errorf("%d.Format(%d) = %q, want %q", tc.m, tc.dec, got, tc.want)
		}
	}
	if got := Micro(1_500_000).Fixed(2); got != "1.50" {
		t.Errorf("Fixed = %q", got)
	}
	if got := Micro(2_000_000).Fixed(2); got != "2.00" {
		t.Errorf("Fixed = %q", got)
	}
}

func TestMulDivAndConvert(t *testing.T) {
	if got := MulDiv(7, 1, 2); got != 4 {
		t.Errorf("MulDiv(7,1,2) = %d", got)
	}
	if got := MulDiv(-7, 1, 2); got != -4 {
		t.Errorf("MulDiv(-7,1,2) = %d", got)
	}
	// 1 EUR → RUB at 68.917
	if got := Convert(One, One, 68_917_000); got != 68_917_000 {
		t.Errorf("Convert = %d", got)
	}
	if got := Convert(68_917_000, 68_917_000, One); got != One {
		t.Errorf("Convert back = %d", got)
	}
}
