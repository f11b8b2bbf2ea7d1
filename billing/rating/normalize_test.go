package rating

import "testing"

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want string }{
		{"79271871234", "79271871234"},
		{"+79271871234", "79271871234"},
		{"0079271871234", "79271871234"},
		{"+7 927 187-12-34", "79271871234"},
		{"00 7 (927)", "7(927)"},
		{" +7-927", "7927"},
		{"0 0 49", "49"},
		{"0049", "49"},
		{"049", "049"},
		{"0", "0"},
		{"00", ""},
		{"+", ""},
		{"", ""},
		{"---", ""},
		{"+0049", "0049"}, // only one prefix goes
		{"*100#", "*100#"},
		{"7\t927", "7927"},
	}
	for _, tt := range tests {
		if got := Normalize(tt.in); got != tt.want {
			t.Errorf("Normalize(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNormalizeNoAlloc(t *testing.T) {
	for _, in := range []string{"79271871234", "+79271871234", "0079271871234"} {
		if n := testing.AllocsPerRun(100, func() { _ = Normalize(in) }); n != 0 {
			t.Errorf("Normalize(%q) allocates %v times", in, n)
		}
	}
}
