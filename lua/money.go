package lua

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Money is handled in integer micro-units (1e-6 of the currency), as everywhere in the
// billing (DECISIONS §4). These helpers back narayana.money.* and never use floats for
// the arithmetic itself.

const microPerUnit = 1_000_000

// maxExact is the largest integer a Lua number (float64) holds exactly.
const maxExact = 1 << 53

var errMoneyRange = errors.New("amount out of range")

// parseMoney reads a decimal amount such as "1.25", "-0.5" or "+3" into micro-units.
// Digits past the sixth decimal are rounded half away from zero.
func parseMoney(s string) (int64, error) {
	s = strings.TrimSpace(s)
	neg := false
	switch {
	case strings.HasPrefix(s, "-"):
		neg, s = true, s[1:]
	case strings.HasPrefix(s, "+"):
		s = s[1:]
	}
	intPart, frac, hasDot := strings.Cut(s, ".")
	if intPart == "" && frac == "" || !digits(intPart) || !digits(frac) || hasDot && frac == "" && intPart == "" {
		return 0, fmt.Errorf("invalid amount %q", s)
	}
	var v int64
	if intPart != "" {
		n, err := strconv.ParseInt(intPart, 10, 64)
		if err != nil || n > math.MaxInt64/microPerUnit-1 {
			return 0, errMoneyRange
		}
		v = n * microPerUnit
	}
	mul := int64(microPerUnit / 10)
	for i := 0; i < len(frac); i++ {
		d := int64(frac[i] - '0')
		if mul == 0 {
			if d >= 5 {
				v++
			}
			break
		}
		v += d * mul
		mul /= 10
	}
	if neg {
		v = -v
	}
	return v, nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// roundMoney rounds micro to the given number of decimals (0..6), half away from zero.
func roundMoney(micro int64, decimals int) int64 {
	if decimals >= 6 {
		return micro
	}
	if decimals < 0 {
		decimals = 0
	}
	step := int64(1)
	for i := decimals; i < 6; i++ {
		step *= 10
	}
	neg := micro < 0
	if neg {
		micro = -micro
	}
	r := (micro + step/2) / step * step
	if neg {
		r = -r
	}
	return r
}

// formatMoney prints micro with exactly `decimals` decimals (0..6), rounding half away
// from zero: formatMoney(1234567, 2) == "1.23".
func formatMoney(micro int64, decimals int) string {
	if decimals < 0 {
		decimals = 0
	}
	if decimals > 6 {
		decimals = 6
	}
	micro = roundMoney(micro, decimals)
	sign := ""
	u := uint64(micro)
	if micro < 0 {
		sign = "-"
		u = uint64(-micro)
	}
	whole := u / microPerUnit
	frac := fmt.Sprintf("%06d", u%microPerUnit)[:decimals]
	if decimals == 0 {
		return sign + strconv.FormatUint(whole, 10)
	}
	return sign + strconv.FormatUint(whole, 10) + "." + frac
}

// mulDivRound returns a*b/c rounded half away from zero, or an error when it does not fit.
func mulDivRound(a, b, c int64) (int64, error) {
	if c == 0 {
		return 0, errors.New("division by zero")
	}
	n := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
	d := big.NewInt(c)
	neg := n.Sign()*d.Sign() < 0
	n.Abs(n)
	d.Abs(d)
	q, r := new(big.Int).QuoRem(n, d, new(big.Int))
	if r.Lsh(r, 1).Cmp(d) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if neg {
		q.Neg(q)
	}
	if !q.IsInt64() {
		return 0, errMoneyRange
	}
	return q.Int64(), nil
}

// mulMoney multiplies an amount by a factor, both in micro-units:
// mulMoney(2_000_000, 1_500_000) == 3_000_000 (2.00 × 1.5). Half away from zero.
func mulMoney(micro, factorMicro int64) (int64, error) {
	return mulDivRound(micro, factorMicro, microPerUnit)
}

// divMoney divides an amount by a divisor in micro-units: divMoney(3_000_000, 2_000_000)
// == 1_500_000. Half away from zero.
func divMoney(micro, divisorMicro int64) (int64, error) {
	return mulDivRound(micro, microPerUnit, divisorMicro)
}
