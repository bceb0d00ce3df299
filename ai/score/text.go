package score

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

// Normalize returns s in Unicode NFC with surrounding space trimmed: the
// form every comparison uses, so a precomposed "ế" and "e" with its two
// combining marks compare equal.
func Normalize(s string) string {
	return strings.TrimSpace(norm.NFC.String(s))
}

// fold is Normalize then lower case.
func fold(s string) string {
	return strings.ToLower(Normalize(s))
}

// StripDiacritics removes Vietnamese (and other Latin) diacritics: the
// text is decomposed (NFD), combining marks are dropped, đ and Đ become
// d and D, and the result is recomposed (NFC).
func StripDiacritics(s string) string {
	d := norm.NFD.String(s)
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case r == 'đ':
			b.WriteRune('d')
		case r == 'Đ':
			b.WriteRune('D')
		default:
			b.WriteRune(r)
		}
	}
	return norm.NFC.String(b.String())
}
