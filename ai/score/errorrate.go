package score

import (
	"fmt"
	"strings"
)

// MaxEditUnits bounds the units (runes or words) of a reference or
// hypothesis the error rates compare: the distance takes time and memory
// proportional to their product.
const MaxEditUnits = 20000

// Levenshtein returns the edit distance between a and b: the fewest
// insertions, deletions and substitutions that turn a into b.
func Levenshtein[T comparable](a, b []T) int {
	if len(a) < len(b) {
		a, b = b, a
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ErrorRate is the character or word error rate over a corpus: the sum
// of the edit distances between each reference (the first target) and
// hypothesis (the answer), divided by the sum of the references'
// lengths. Both are Normalize'd (NFC) first; characters are runes, words
// are runs of non-space. When the references are empty in total, the
// rate is 0 without edits and 1 with.
type ErrorRate struct {
	name         string
	split        func(string) []string
	edits, units int
	n            int
}

// NewCER returns the character error rate scorer, "cer".
func NewCER() *ErrorRate {
	return &ErrorRate{name: "cer", split: func(s string) []string {
		r := []rune(s)
		out := make([]string, len(r))
		for i, c := range r {
			out[i] = string(c)
		}
		return out
	}}
}

// NewWER returns the word error rate scorer, "wer".
func NewWER() *ErrorRate { return &ErrorRate{name: "wer", split: strings.Fields} }

// Name returns "cer" or "wer".
func (e *ErrorRate) Name() string { return e.name }

// Add returns the sample's own rate (edits / reference length, or as the
// corpus rate for an empty reference).
func (e *ErrorRate) Add(s Sample) (float64, error) {
	if len(s.Targets) == 0 {
		return 0, fmt.Errorf("score sample %s: %s needs a reference target", s.ID, e.name)
	}
	ref, hyp := e.split(Normalize(s.Targets[0])), e.split(Normalize(s.Answer))
	if len(ref) > MaxEditUnits || len(hyp) > MaxEditUnits {
		return 0, fmt.Errorf("score sample %s: %s compares at most %d units", s.ID, e.name, MaxEditUnits)
	}
	d := Levenshtein(ref, hyp)
	e.edits += d
	e.units += len(ref)
	e.n++
	return rate(d, len(ref)), nil
}

// Result returns the corpus error rate, with "edits" and "units" in
// Details.
func (e *ErrorRate) Result() Result {
	return Result{Metric: e.name, Value: rate(e.edits, e.units), Count: e.n,
		Details: map[string]float64{"edits": float64(e.edits), "units": float64(e.units)}}
}

func rate(edits, units int) float64 {
	if units == 0 {
		if edits == 0 {
			return 0
		}
		return 1
	}
	return float64(edits) / float64(units)
}
