package score

import (
	"math/rand/v2"
	"strings"
	"unicode"
)

// Perturbation rewrites an input the way a real user or an adversary
// might, to measure how much an answer depends on the exact spelling.
// Apply is deterministic for a given seed.
type Perturbation struct {
	// Name is the perturbation's name ("no-diacritics", …): the key of a
	// Sample's Variants.
	Name  string
	apply func(s string, r *rand.Rand) string
}

// Apply returns s perturbed, with randomness drawn from seed.
func (p Perturbation) Apply(s string, seed uint64) string {
	return p.apply(s, rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)))
}

// The perturbations.
var (
	// NoDiacritics removes every diacritic, đ→d included, as in Vietnamese
	// typed without an input method ("không dấu").
	NoDiacritics = Perturbation{"no-diacritics", func(s string, _ *rand.Rand) string { return StripDiacritics(s) }}
	// Homoglyphs replaces each letter that has a look-alike in another
	// script (Latin ↔ Cyrillic or Greek) with it, with probability 1/2.
	Homoglyphs = Perturbation{"homoglyphs", homoglyphs}
	// Swaps swaps two adjacent letters in each word of three or more
	// letters, with probability 1/2 per word: a typing slip.
	Swaps = Perturbation{"swaps", swaps}
	// Upper and Lower change the whole text's case; RandomCase each
	// letter's with probability 1/2.
	Upper      = Perturbation{"upper", func(s string, _ *rand.Rand) string { return strings.ToUpper(s) }}
	Lower      = Perturbation{"lower", func(s string, _ *rand.Rand) string { return strings.ToLower(s) }}
	RandomCase = Perturbation{"random-case", randomCase}
)

// Perturbations lists every perturbation.
var Perturbations = []Perturbation{NoDiacritics, Homoglyphs, Swaps, Upper, Lower, RandomCase}

// homoglyphPairs are letters and their look-alikes: Latin first, then
// Cyrillic (U+04xx) or Greek (U+03xx).
var homoglyphPairs = [][2]rune{
	{'a', 'а'}, {'c', 'с'}, {'e', 'е'}, {'i', 'і'}, {'j', 'ј'}, {'o', 'о'}, {'p', 'р'},
	{'s', 'ѕ'}, {'x', 'х'}, {'y', 'у'}, {'v', 'ν'},
	{'A', 'А'}, {'B', 'В'}, {'C', 'С'}, {'E', 'Е'}, {'H', 'Н'}, {'I', 'І'}, {'K', 'К'},
	{'M', 'М'}, {'N', 'Ν'}, {'O', 'О'}, {'P', 'Р'}, {'T', 'Т'}, {'X', 'Х'}, {'Z', 'Ζ'},
}

// homoglyphOf maps each letter of a pair to the other, both ways.
var homoglyphOf = func() map[rune]rune {
	m := map[rune]rune{}
	for _, p := range homoglyphPairs {
		m[p[0]], m[p[1]] = p[1], p[0]
	}
	return m
}()

func homoglyphs(s string, r *rand.Rand) string {
	var b strings.Builder
	for _, c := range s {
		if g, ok := homoglyphOf[c]; ok && r.IntN(2) == 0 {
			c = g
		}
		b.WriteRune(c)
	}
	return b.String()
}

func swaps(s string, r *rand.Rand) string {
	rs := []rune(s)
	for i := 0; i < len(rs); {
		if !unicode.IsLetter(rs[i]) {
			i++
			continue
		}
		j := i
		for j < len(rs) && unicode.IsLetter(rs[j]) {
			j++
		}
		if j-i >= 3 && r.IntN(2) == 0 {
			k := i + r.IntN(j-i-1)
			rs[k], rs[k+1] = rs[k+1], rs[k]
		}
		i = j
	}
	return string(rs)
}

func randomCase(s string, r *rand.Rand) string {
	var b strings.Builder
	for _, c := range s {
		if unicode.IsLetter(c) {
			if r.IntN(2) == 0 {
				c = unicode.ToUpper(c)
			} else {
				c = unicode.ToLower(c)
			}
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Robustness measures the drop in a match score when the input is
// perturbed: the mean score of the answers to clean inputs minus the
// mean score of the answers to perturbed inputs (Sample.Variants under
// the perturbation's name). 0 means no drop; the Details hold "clean"
// and "perturbed".
type Robustness struct {
	match       MatchFunc
	p           Perturbation
	clean, pert float64
	n           int
}

// NewRobustness returns the robustness scorer of match under p, named
// "robust-" and p's name.
func NewRobustness(match MatchFunc, p Perturbation) *Robustness {
	return &Robustness{match: match, p: p}
}

// Name returns "robust-<perturbation>".
func (r *Robustness) Name() string { return "robust-" + r.p.Name }

// Perturbation returns the perturbation the runner applies to inputs.
func (r *Robustness) Perturbation() Perturbation { return r.p }

// Add returns the sample's drop: clean score minus perturbed score.
func (r *Robustness) Add(s Sample) (float64, error) {
	v, ok := s.Variants[r.p.Name]
	if !ok {
		return 0, errMissingVariant(s.ID, r.p.Name)
	}
	c, err := r.match(s.Answer, s.Targets)
	if err != nil {
		return 0, err
	}
	p, err := r.match(v, s.Targets)
	if err != nil {
		return 0, err
	}
	r.clean += c
	r.pert += p
	r.n++
	return c - p, nil
}

// Result returns the drop of the mean score.
func (r *Robustness) Result() Result {
	c, p := ratio(r.clean, float64(r.n)), ratio(r.pert, float64(r.n))
	return Result{Metric: r.Name(), Value: c - p, Count: r.n,
		Details: map[string]float64{"clean": c, "perturbed": p}}
}
