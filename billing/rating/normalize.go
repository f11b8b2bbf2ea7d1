package rating

import "strings"

// Normalize strips spaces and '-' anywhere in number, then one leading '+' or, failing that,
// one leading "00" (DECISIONS §5). It does not allocate when nothing but a leading '+' or
// "00" has to go.
func Normalize(number string) string {
	clean := true
	for i := 0; i < len(number); i++ {
		if c := number[i]; c == ' ' || c == '-' || c == '\t' {
			clean = false
			break
		}
	}
	if !clean {
		var b strings.Builder
		b.Grow(len(number))
		for i := 0; i < len(number); i++ {
			if c := number[i]; c != ' ' && c != '-' && c != '\t' {
				b.WriteByte(c)
			}
		}
		number = b.String()
	}
	switch {
	case strings.HasPrefix(number, "+"):
		return number[1:]
	case strings.HasPrefix(number, "00"):
		return number[2:]
	}
	return number
}
