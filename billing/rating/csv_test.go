package rating

import (
	"bytes"
	"encoding/csv"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/narayana/narayanad/money"
)

func readDirs(t *testing.T, in string) ([]Direction, int, error) {
	t.Helper()
	var got []Direction
	n, err := ReadDirections(strings.NewReader(in), func(d Direction) error {
		got = append(got, d)
		return nil
	})
	return got, n, err
}

func TestReadDirections(t *testing.T) {
	in := "\ufeff id , code ,Direction, min_len,max_len\n" +
		"1,7,Russia,,\n" +
		"\n" + // blank lines are skipped
		"3, +7 927 ,\"Russia Mobile - Megafon, MSK\",11,11\n" +
		"4,00 49,Germany,0,0\n" +
		"5,*100#,Service,3,\n"
	got, n, err := readDirs(t, in)
	if err != nil {
		t.Fatal(err)
	}
	want := []Direction{
		{ID: 1, Code: "7", Name: "Russia", MinLen: 0, MaxLen: 32},
		{ID: 3, Code: "7927", Name: "Russia Mobile - Megafon, MSK", MinLen: 11, MaxLen: 11},
		{ID: 4, Code: "49", Name: "Germany", MinLen: 0, MaxLen: 0},
		{ID: 5, Code: "*100#", Name: "Service", MinLen: 3, MaxLen: 32},
	}
	if n != len(want) || len(got) != len(want) {
		t.Fatalf("n = %d, got %+v", n, got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReadDirectionsErrors(t *testing.T) {
	const header = "id,code,direction,min_len,max_len\n"
	tests := []struct {
		name string
		in   string
		line int
		n    int
		msg  string
	}{
		{"empty file", "", 1, 0, "empty"},
		{"wrong header", "id,code,name,min_len,max_len\n1,7,R,,\n", 1, 0, `column 3 is "name"`},
		{"short header", "id,code,direction\n", 1, 0, "3 columns"},
		{"bad id", header + "1,7,R,,\nx,8,R,,\n", 3, 1, `id "x"`},
		{"zero id", header + "0,7,R,,\n", 2, 0, `id "0"`},
		{"empty code", header + "1,7,R,,\n2,7,R,,\n3, - ,R,,\n", 4, 2, "code"},
		{"code 00", header + "3,00,R,,\n", 2, 0, "empty"},
		{"bad min_len", header + "1,7,R,-1,\n", 2, 0, "min_len"},
		{"bad max_len", header + "1,7,R,,x\n", 2, 0, "max_len"},
		{"min above max", header + "1,7,R,12,11\n", 2, 0, "min_len 12 > max_len 11"},
		{"columns", header + "1,7,R,,\n2,8,R\n", 3, 1, "wrong number of fields: 3, want 5"},
		{"quote", header + "1,7,R,,\n\n2,8,\"R,,\n", 4, 1, "quote"},
		{"multi-line field counts from its start", header + "1,7,\"R\nX\",,\n2,x,R,,9999999\n", 4, 1, "max_len"},
	}
	for _, tt := range tests {
		_, n, err := readDirs(t, tt.in)
		var le *LineError
		if !errors.As(err, &le) {
			t.Errorf("%s: err = %v, want a *LineError", tt.name, err)
			continue
		}
		if le.Line != tt.line || n != tt.n || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: line %d, n %d, err %q; want line %d, n %d, containing %q", tt.name, le.Line, n, err, tt.line, tt.n, tt.msg)
		}
		if !strings.HasPrefix(err.Error(), "line "+strconv.Itoa(tt.line)+": ") {
			t.Errorf("%s: message %q does not start with the line", tt.name, err)
		}
	}
	_, _, err := readDirs(t, "id,code\n")
	if !errors.Is(err, ErrHeader) {
		t.Errorf("short header: %v is not ErrHeader", err)
	}
	_, _, err = readDirs(t, header+"1,7,R,,\n2,8\n")
	if !errors.Is(err, csv.ErrFieldCount) {
		t.Errorf("short row: %v is not csv.ErrFieldCount", err)
	}
}

func TestReadDirectionsCallbackError(t *testing.T) {
	stop := errors.New("database is down")
	calls := 0
	n, err := ReadDirections(strings.NewReader("id,code,direction,min_len,max_len\n1,7,R,,\n2,8,R,,\n3,9,R,,\n"), func(d Direction) error {
		if calls++; d.ID == 2 {
			return stop
		}
		return nil
	})
	var le *LineError
	if n != 1 || calls != 2 || !errors.Is(err, stop) || !errors.As(err, &le) || le.Line != 3 {
		t.Errorf("n %d, calls %d, err %v", n, calls, err)
	}
}

func TestReadRateEntries(t *testing.T) {
	in := "direction, cost ,route,priority\n" +
		"600,0.15,10,\n" +
		"600,0.18,11,2\n" +
		"601, 1.000001 ,10,1\n" +
		"602,0,10,3\n"
	var got []RateRow
	n, err := ReadRateEntries(strings.NewReader(in), func(r RateRow) error { got = append(got, r); return nil })
	if err != nil {
		t.Fatal(err)
	}
	want := []RateRow{
		{DirectionID: 600, Cost: 150_000, RouteID: 10, Priority: 1},
		{DirectionID: 600, Cost: 180_000, RouteID: 11, Priority: 2},
		{DirectionID: 601, Cost: money.One + 1, RouteID: 10, Priority: 1},
		{DirectionID: 602, Cost: 0, RouteID: 10, Priority: 3},
	}
	if n != 4 || len(got) != 4 {
		t.Fatalf("n = %d, got %+v", n, got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestReadRateEntriesErrors(t *testing.T) {
	const header = "direction,cost,route,priority\n"
	tests := []struct {
		name string
		in   string
		line int
		msg  string
	}{
		{"header", "direction,price,route,priority\n", 1, "column 2"},
		{"bad cost", header + "1,0.1,1,1\n1,abc,1,2\n", 3, `cost "abc"`},
		{"empty cost", header + "1,,1,1\n", 2, "cost"},
		{"negative cost", header + "1,-0.1,1,1\n", 2, "negative"},
		{"cost too big", header + "1,99999999999999999,1,1\n", 2, "out of range"},
		{"bad route", header + "1,0.1,r,1\n", 2, "route"},
		{"bad direction", header + "-1,0.1,1,1\n", 2, "direction"},
		{"priority 0", header + "1,0.1,1,0\n", 2, "priority"},
		{"columns", header + "1,0.1,1,1,5\n", 2, "want 4"},
	}
	for _, tt := range tests {
		_, err := ReadRateEntries(strings.NewReader(tt.in), func(RateRow) error { return nil })
		var le *LineError
		if !errors.As(err, &le) || le.Line != tt.line || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: err = %v; want line %d containing %q", tt.name, err, tt.line, tt.msg)
		}
	}
}

// The directions a CSV describes load into an index that resolves them.
func TestReadDirectionsIntoIndex(t *testing.T) {
	var b bytes.Buffer
	b.WriteString("id,code,direction,min_len,max_len\n")
	for i := range 1000 {
		b.WriteString(strconv.Itoa(i/10+1) + ",7" + strconv.Itoa(1000+i) + ",Dir " + strconv.Itoa(i/10) + ",,\n")
	}
	ib := NewIndexBuilder(0)
	if _, err := ReadDirections(&b, func(d Direction) error { ib.Add(d); return nil }); err != nil {
		t.Fatal(err)
	}
	if ib.Len() != 1000 {
		t.Errorf("builder Len = %d", ib.Len())
	}
	ix := ib.Build()
	if ix.Len() != 1000 || ix.NumIDs() != 100 {
		t.Errorf("Len %d, NumIDs %d", ix.Len(), ix.NumIDs())
	}
	if d, ok := ix.Resolve("7123456789"); !ok || d.Code != "71234" || d.ID != 24 || d.Name != "Dir 23" {
		t.Errorf("Resolve = %+v, %v", d, ok)
	}
}
