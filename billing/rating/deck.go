package rating

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/narayana/narayanad/money"
)

// DeckRow is one row of a carrier's rate deck: a dialling prefix, the carrier's name for
// it and the price per minute.
type DeckRow struct {
	Prefix      string // normalised
	Description string
	Rate        money.Micro
	Line        int // the row's line in the file
}

// Column names a deck's header may use, matched case-insensitively as substrings of a
// header cell, in this order ("Destination code" is a prefix, "Destination" a
// description). A deck without such a header has prefix, description and rate in its
// first three columns.
var (
	deckPrefixNames = []string{"prefix", "code", "dial"}
	deckRateNames   = []string{"rate", "price", "cost", "tariff"}
	deckDescNames   = []string{"desc", "destination", "direction", "name", "country", "zone"}
)

// ReadDeck streams a carrier's rate deck to fn and returns the number of rows fn accepted.
// The separator is the first line's: `;` when it has one, else a tab when it has one, else
// `,`. The first line is a header when it names a prefix column and a rate column (see
// deckPrefixNames…); the description column is then the one named so, or empty. Without a
// header, the columns are prefix, description, rate; extra columns are ignored. A rate is
// a decimal with `.` or `,` as the decimal mark (no thousands separator), not negative.
// Empty lines are skipped. The first bad row, or the first error of fn, stops the read
// with a *LineError naming its line.
func ReadDeck(r io.Reader, fn func(DeckRow) error) (int, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := br.Peek(4096)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return 0, err
	}
	first = bytes.TrimPrefix(first, []byte("\ufeff"))
	if i := bytes.IndexByte(first, '\n'); i >= 0 {
		first = first[:i]
	}
	if len(bytes.TrimSpace(first)) == 0 {
		return 0, &LineError{Line: 1, Err: errors.New("the deck is empty, or its first line is")}
	}
	cr := csv.NewReader(br)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.LazyQuotes = true // carriers' decks quote loosely ("Congo, Dem. Rep." or Côte d"Ivoire)
	switch {
	case bytes.IndexByte(first, ';') >= 0:
		cr.Comma = ';'
	case bytes.IndexByte(first, '\t') >= 0:
		cr.Comma = '\t'
	}

	cols := [3]int{0, 1, 2} // prefix, description, rate
	n := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, lineError(err)
		}
		line, _ := cr.FieldPos(0)
		if line == 1 {
			rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
			if h, ok := deckHeader(rec); ok {
				cols = h
				continue
			}
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		row, err := parseDeckRow(rec, cols)
		row.Line = line
		if err == nil {
			err = fn(row)
		}
		if err != nil {
			return n, &LineError{Line: line, Err: err}
		}
		n++
	}
}

// deckHeader finds the columns named in a header line: ok when it names a prefix and a
// rate column. A missing description column is -1.
func deckHeader(rec []string) ([3]int, bool) {
	cols := [3]int{-1, -1, -1}
	for i, cell := range rec {
		c := strings.ToLower(strings.TrimSpace(cell))
		switch {
		case c == "":
		case cols[0] < 0 && containsAny(c, deckPrefixNames):
			cols[0] = i
		case cols[2] < 0 && containsAny(c, deckRateNames):
			cols[2] = i
		case cols[1] < 0 && containsAny(c, deckDescNames):
			cols[1] = i
		}
	}
	return cols, cols[0] >= 0 && cols[2] >= 0
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func parseDeckRow(rec []string, cols [3]int) (DeckRow, error) {
	var row DeckRow
	need := max(cols[0], cols[1], cols[2]) + 1
	if len(rec) < need {
		return row, fmt.Errorf("%d columns, want at least %d", len(rec), need)
	}
	raw := strings.TrimSpace(rec[cols[0]])
	row.Prefix = Normalize(raw)
	switch {
	case row.Prefix == "":
		return row, fmt.Errorf("prefix %q is empty", raw)
	case len(row.Prefix) > MaxCodeLen:
		return row, fmt.Errorf("prefix %q is longer than %d characters", raw, MaxCodeLen)
	}
	for i := 0; i < len(row.Prefix); i++ {
		if c := row.Prefix[i]; c < '0' || c > '9' {
			return row, fmt.Errorf("prefix %q is not a number", raw)
		}
	}
	if cols[1] >= 0 {
		row.Description = strings.Join(strings.Fields(rec[cols[1]]), " ")
	}
	if row.Description == "" {
		row.Description = row.Prefix
	}
	rate, err := ParseDecimal(rec[cols[2]])
	if err != nil {
		return row, fmt.Errorf("rate %q: %w", strings.TrimSpace(rec[cols[2]]), err)
	}
	if rate < 0 {
		return row, fmt.Errorf("rate %q is negative", strings.TrimSpace(rec[cols[2]]))
	}
	row.Rate = rate
	return row, nil
}

// ParseDecimal parses an amount written with `.` or `,` as the decimal mark ("0,0123",
// "0.0123", ",5"); a value with both marks is refused rather than guessed.
func ParseDecimal(s string) (money.Micro, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, ",") {
		if strings.Contains(s, ".") || strings.Count(s, ",") > 1 {
			return 0, errors.New("want one decimal mark, `.` or `,`")
		}
		s = strings.Replace(s, ",", ".", 1)
	}
	return money.Parse(s)
}
