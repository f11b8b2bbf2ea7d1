package rating

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/narayana/narayanad/money"
)

// LineError is a bad line of a CSV import, or the error the callback returned for it.
type LineError struct {
	Line int // 1-based; the header is line 1
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }
func (e *LineError) Unwrap() error { return e.Err }

// ErrHeader is wrapped by the LineError for a missing or wrong header line.
var ErrHeader = errors.New("bad header")

// Headers of the CSV imports. Spaces around names and letter case are tolerated.
var (
	DirectionsHeader  = []string{"id", "code", "direction", "min_len", "max_len"}
	RateEntriesHeader = []string{"direction", "cost", "route", "priority"}
)

// RateRow is one row of a tariff import.
type RateRow struct {
	DirectionID int64
	Cost        money.Micro // per minute
	RouteID     int64
	Priority    int // 1 when empty
}

// ReadDirections streams a directions CSV (header id,code,direction,min_len,max_len) to fn,
// one row at a time, and returns the number of rows fn accepted. Codes are normalised and
// must not be empty; an empty min_len is DefaultMinLen, an empty max_len DefaultMaxLen; a
// max_len of 0 means no upper bound. The first bad row, or the first error of fn, stops the
// import with a *LineError. The strings handed to fn may be kept.
func ReadDirections(r io.Reader, fn func(Direction) error) (int, error) {
	return readCSV(r, DirectionsHeader, func(rec []string) error {
		d, err := parseDirection(rec)
		if err != nil {
			return err
		}
		return fn(d)
	})
}

func parseDirection(rec []string) (Direction, error) {
	var d Direction
	var err error
	if d.ID, err = parseID("id", rec[0]); err != nil {
		return d, err
	}
	d.Code = Normalize(strings.TrimSpace(rec[1]))
	switch {
	case d.Code == "":
		return d, fmt.Errorf("code %q is empty", rec[1])
	case len(d.Code) > MaxCodeLen:
		return d, fmt.Errorf("code is longer than %d characters", MaxCodeLen)
	}
	for i := 0; i < len(d.Code); i++ {
		if c := d.Code[i]; c < 0x20 || c == 0x7f {
			return d, fmt.Errorf("code %q has a control character", rec[1])
		}
	}
	d.Name = strings.TrimSpace(rec[2])
	if d.MinLen, err = parseLen("min_len", rec[3], DefaultMinLen); err != nil {
		return d, err
	}
	if d.MaxLen, err = parseLen("max_len", rec[4], DefaultMaxLen); err != nil {
		return d, err
	}
	if d.MaxLen > 0 && d.MinLen > d.MaxLen {
		return d, fmt.Errorf("min_len %d > max_len %d", d.MinLen, d.MaxLen)
	}
	return d, nil
}

// ReadRateEntries streams a tariff CSV (header direction,cost,route,priority) to fn and
// returns the number of rows fn accepted. direction and route are IDs, cost a decimal per
// minute (money.Parse, not negative), priority 1 or more (1 when empty). The first bad row,
// or the first error of fn, stops the import with a *LineError.
func ReadRateEntries(r io.Reader, fn func(RateRow) error) (int, error) {
	return readCSV(r, RateEntriesHeader, func(rec []string) error {
		row, err := parseRateRow(rec)
		if err != nil {
			return err
		}
		return fn(row)
	})
}

func parseRateRow(rec []string) (RateRow, error) {
	var row RateRow
	var err error
	if row.DirectionID, err = parseID("direction", rec[0]); err != nil {
		return row, err
	}
	if row.Cost, err = money.Parse(rec[1]); err != nil {
		return row, fmt.Errorf("cost %q: %w", rec[1], err)
	}
	if row.Cost < 0 {
		return row, fmt.Errorf("cost %q is negative", rec[1])
	}
	if row.RouteID, err = parseID("route", rec[2]); err != nil {
		return row, err
	}
	row.Priority = 1
	if p := strings.TrimSpace(rec[3]); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return row, fmt.Errorf("priority %q is not a whole number of 1 or more", rec[3])
		}
		row.Priority = n
	}
	return row, nil
}

func parseID(name, s string) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%s %q is not a positive whole number", name, s)
	}
	return n, nil
}

func parseLen(name, s string, def int) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > noLimit {
		return 0, fmt.Errorf("%s %q is not a whole number from 0 to %d", name, s, noLimit)
	}
	return n, nil
}

// readCSV checks the header, then hands each record to row; the record is reused.
func readCSV(r io.Reader, header []string, row func([]string) error) (int, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = len(header)
	cr.TrimLeadingSpace = true
	want := strings.Join(header, ",")

	rec, err := cr.Read()
	switch {
	case err == io.EOF:
		return 0, &LineError{Line: 1, Err: fmt.Errorf("%w: the file is empty, want %q", ErrHeader, want)}
	case errors.Is(err, csv.ErrFieldCount):
		return 0, &LineError{Line: 1, Err: fmt.Errorf("%w: %d columns, want %q", ErrHeader, len(rec), want)}
	case err != nil:
		return 0, lineError(err)
	}
	for i, h := range header {
		got := rec[i]
		if i == 0 {
			got = strings.TrimPrefix(got, "\ufeff") // a byte order mark from spreadsheets
		}
		got = strings.TrimSpace(got)
		if !strings.EqualFold(got, h) {
			return 0, &LineError{Line: 1, Err: fmt.Errorf("%w: column %d is %q, want %q", ErrHeader, i+1, got, want)}
		}
	}

	n := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return n, nil
		}
		if errors.Is(err, csv.ErrFieldCount) {
			line, _ := cr.FieldPos(0)
			return n, &LineError{Line: line, Err: fmt.Errorf("%w: %d, want %d", csv.ErrFieldCount, len(rec), len(header))}
		}
		if err != nil {
			return n, lineError(err)
		}
		if err := row(rec); err != nil {
			line, _ := cr.FieldPos(0)
			return n, &LineError{Line: line, Err: err}
		}
		n++
	}
}

// lineError turns a csv.ParseError into a LineError; other errors (from the reader) pass.
func lineError(err error) error {
	var pe *csv.ParseError
	if !errors.As(err, &pe) {
		return err
	}
	return &LineError{Line: pe.Line, Err: pe.Err}
}
