package pii

// Singapore NRIC and FIN numbers: a series letter, seven digits, a check
// letter. The check letter is a weighted sum modulo 11:
//
//	sum = 2·d1 + 7·d2 + 6·d3 + 5·d4 + 4·d5 + 3·d6 + 2·d7
//	      + 4 for the T and G series (born or issued from 2000)
//	      + 3 for the M series (FINs issued from 2022)
//	r   = sum mod 11
//
// and the letter is the r-th of JZIHGFEDCBA for S and T (citizens and
// permanent residents), of XWUTRQPNMLK for F and G, and of XWUTRQPNJLK
// for M (the F/G table with J in place of M). Read from the other end,
// with p = 11 − r, the tables are A B C D E F G H I Z J and K L M N P Q R
// T U W X (K L J N P Q R T U W X for M): the form in which the series'
// issuers state them.

const nricWeights = "\x02\x07\x06\x05\x04\x03\x02"

// NRICCheckLetter returns the check letter for a series letter (S, T, F,
// G or M) and seven digits, and false if either is malformed.
func NRICCheckLetter(series byte, digits string) (byte, bool) {
	if len(digits) != 7 {
		return 0, false
	}
	sum := 0
	for i := 0; i < 7; i++ {
		d := digits[i]
		if d < '0' || d > '9' {
			return 0, false
		}
		sum += int(d-'0') * int(nricWeights[i])
	}
	var table string
	switch series {
	case 'S':
		table = "JZIHGFEDCBA"
	case 'T':
		table, sum = "JZIHGFEDCBA", sum+4
	case 'F':
		table = "XWUTRQPNMLK"
	case 'G':
		table, sum = "XWUTRQPNMLK", sum+4
	case 'M':
		table, sum = "XWUTRQPNJLK", sum+3
	default:
		return 0, false
	}
	return table[sum%11], true
}

// ValidNRIC reports whether s is a Singapore NRIC or FIN number with the
// right check letter. Letters may be in either case.
func ValidNRIC(s string) bool {
	if len(s) != 9 {
		return false
	}
	want, ok := NRICCheckLetter(upper(s[0]), s[1:8])
	return ok && upper(s[8]) == want
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}
