// Package money holds amounts as integer micro-units (1e-6) of a currency.
// No float is used to store or compute money (DECISIONS §4).
package money

import (
	"errors"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Micro is an amount in micro-units: 1 EUR = 1_000_000 Micro.
type Micro int64

// One is one whole unit (1.00) in micro-units; rates and multipliers use the same scale.
const One Micro = 1_000_000

// MaxAmount is the largest amount one argument may carry (a payment, a balance, a cost,
// an overdraft): a hundred million units. It refuses typos (an extra zero or two), and
// 92,000 rows of it still fit an int64 sum of micro-units. docs/CHOICES.md says why.
const MaxAmount = 100_000_000 * One

// ErrSyntax is returned for a value that is not a plain decimal number.
var ErrSyntax = errors.New("not a decimal number")

// ErrRange is returned for a value that does not fit or has more than 6 decimals of precision
// that would be lost.
var ErrRange = errors.New("number out of range")

// Parse reads a decimal string with '.' as decimal mark ("12", "-0.5", "1.000001").
// Digits past the sixth decimal are rounded half away from zero.
func Parse(s string) (Micro, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, ErrSyntax
	}
	neg := false
	switch s[0] {
	case '-':
		neg, s = true, s[1:]
	case '+':
		s = s[1:]
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" && (!hasDot || frac == "") {
		return 0, ErrSyntax
	}
	if !allDigits(whole) || !allDigits(frac) {
		return 0, ErrSyntax
	}
	var w int64
	if whole != "" {
		var err error
		if w, err = strconv.ParseInt(whole, 10, 64); err != nil || w > math.MaxInt64/int64(One)-1 {
			return 0, ErrRange
		}
	}
	var f int64
	round := false
	if len(frac) > 6 {
		round = frac[6] >= '5'
		frac = frac[:6]
	}
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 6-len(frac)), 10, 64)
	}
	v := w*int64(One) + f
	if round {
		v++
	}
	if neg {
		v = -v
	}
	return Micro(v), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String renders the amount with up to 6 decimals, trailing zeros trimmed ("1.5", "0", "-0.000001").
func (m Micro) String() string { return m.Format(6) }

// Format renders the amount rounded half-up to at most `decimals` places, trailing zeros trimmed.
func (m Micro) Format(decimals int) string {
	if decimals < 0 {
		decimals = 0
	}
	if decimals > 6 {
		decimals = 6
	}
	v := m.Round(decimals)
	neg := v < 0
	u := uint64(v)
	if neg {
		u = uint64(-v)
	}
	whole, frac := u/uint64(One), u%uint64(One)
	s := strconv.FormatUint(whole, 10)
	if frac != 0 {
		fs := strconv.FormatUint(frac+uint64(One), 10)[1:] // zero-padded to 6
		s += "." + strings.TrimRight(fs, "0")
	}
	if neg && s != "0" {
		s = "-" + s
	}
	return s
}

// Fixed renders the amount with exactly `decimals` places ("1.50"), rounded half-up.
func (m Micro) Fixed(decimals int) string {
	s := m.Format(decimals)
	if decimals <= 0 {
		return s
	}
	whole, frac, _ := strings.Cut(s, ".")
	return whole + "." + frac + strings.Repeat("0", decimals-len(frac))
}

// Round rounds to `decimals` places, half away from zero.
func (m Micro) Round(decimals int) Micro {
	if decimals >= 6 {
		return m
	}
	unit := Micro(math.Pow10(6 - decimals))
	return Micro(DivRound(big.NewInt(int64(m)), big.NewInt(int64(unit)))) * unit
}

// MarshalJSON shows the amount as a JSON decimal number, as the API reference does.
func (m Micro) MarshalJSON() ([]byte, error) { return []byte(m.String()), nil }

// MulDiv computes a×b/c rounded half away from zero, exactly (no overflow in between).
// It panics when c is zero, as integer division does.
func MulDiv(a, b, c int64) int64 {
	p := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
	return DivRound(p, big.NewInt(c))
}

// DivRound divides n by d, rounding half away from zero; a quotient beyond the int64
// range saturates rather than wrapping.
func DivRound(n, d *big.Int) int64 {
	q, r := new(big.Int).QuoRem(n, d, new(big.Int))
	r.Abs(r).Lsh(r, 1)
	if r.CmpAbs(d) >= 0 {
		if (n.Sign() < 0) != (d.Sign() < 0) {
			q.Sub(q, big.NewInt(1))
		} else {
			q.Add(q, big.NewInt(1))
		}
	}
	switch {
	case q.IsInt64():
		return q.Int64()
	case q.Sign() > 0:
		return math.MaxInt64
	}
	return math.MinInt64
}

// Convert changes an amount between currencies given as units per 1 EUR in micro-units
// (eur_course × 1e6): EUR→RUB multiplies by the RUB course, RUB→EUR divides by it.
func Convert(m Micro, fromCourse, toCourse Micro) Micro {
	if fromCourse == toCourse || fromCourse == 0 {
		return m
	}
	return Micro(MulDiv(int64(m), int64(toCourse), int64(fromCourse)))
}
