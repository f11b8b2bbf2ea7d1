package rating

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func readDeck(in string) ([]string, error) {
	var got []string
	_, err := ReadDeck(strings.NewReader(in), func(r DeckRow) error {
		got = append(got, fmt.Sprintf("%s|%s|%s|%d", r.Prefix, r.Description, r.Rate, r.Line))
		return nil
	})
	return got, err
}

func TestReadDeckFormats(t *testing.T) {
	for _, tt := range []struct{ name, in, want string }{
		{"semicolons, decimal commas, header", "\ufeffPrefix;Destination;Rate;Effective date\r\n49;Germany;0,0049;2026-01-01\r\n+49 151;Germany - Mobile;0,04;\r\n",
			"[49|Germany|0.0049|2 49151|Germany - Mobile|0.04|3]"},
		{"commas, decimal points, no header", "7,Russia,0.0125\n79,Russia Mobile,.031\n",
			"[7|Russia|0.0125|1 79|Russia Mobile|0.031|2]"},
		{"header in another order", "Rate,Dial code,Country\n0.5,0033,France\n\n0.1,44,\"United Kingdom, Fixed\"\n",
			"[33|France|0.5|2 44|United Kingdom, Fixed|0.1|4]"},
		{"quoted decimal comma", "code,name,price\n1,\"USA\",\"0,0065\"\n", "[1|USA|0.0065|2]"},
		{"tabs, no description column", "prefix\trate\n380\t0,098\n", "[380|380|0.098|2]"},
	} {
		got, err := readDeck(tt.in)
		if err != nil || fmt.Sprint(got) != tt.want {
			t.Errorf("%s: %v, %v; want %s", tt.name, got, err, tt.want)
		}
	}
}

func TestReadDeckErrors(t *testing.T) {
	for _, tt := range []struct {
		in   string
		line int
	}{
		{"", 1},
		{"\n\n", 1},
		{"Prefix;Destination;Rate\n49;Germany;0,0049\n49;Germany;1.234,5\n", 3},
		{"Prefix;Destination;Rate\n49;Germany;abc\n", 2},
		{"Prefix;Destination;Rate\n49;Germany;-1\n", 2},
		{"Prefix;Destination;Rate\n;Germany;1\n", 2},
		{"Prefix;Destination;Rate\n4x9;Germany;1\n", 2},
		{"Prefix;Destination;Rate\n49;Germany\n", 2},
		{"7;Russia;1\n7;Russia\n", 2},
	} {
		_, err := readDeck(tt.in)
		var le *LineError
		if !errors.As(err, &le) || le.Line != tt.line {
			t.Errorf("%q: %v, want an error at line %d", tt.in, err, tt.line)
		}
	}
}
