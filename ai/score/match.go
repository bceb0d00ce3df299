package score

import (
	"fmt"
	"regexp"
	"strings"
)

// MatchFunc scores one answer against a sample's targets: 1 for a match,
// 0 otherwise.
type MatchFunc func(answer string, targets []string) (float64, error)

// ExactMatch is 1 when the answer equals one of the targets after
// Normalize (NFC, surrounding space trimmed); case counts.
func ExactMatch(answer string, targets []string) (float64, error) {
	a := Normalize(answer)
	for _, t := range targets {
		if a == Normalize(t) {
			return 1, nil
		}
	}
	return 0, nil
}

// Contains is 1 when one of the targets occurs in the answer, both
// normalised and lower-cased. An empty target matches nothing.
func Contains(answer string, targets []string) (float64, error) {
	a := fold(answer)
	for _, t := range targets {
		if t := fold(t); t != "" && strings.Contains(a, t) {
			return 1, nil
		}
	}
	return 0, nil
}

// MaxPattern is the longest regular expression RegexMatch compiles.
const MaxPattern = 4096

// RegexMatch is 1 when one of the targets, read as a Go (RE2) regular
// expression, matches somewhere in the normalised answer. Anchor the
// pattern (^…$) for a whole-answer match.
func RegexMatch(answer string, targets []string) (float64, error) {
	a := Normalize(answer)
	for _, t := range targets {
		if len(t) > MaxPattern {
			return 0, fmt.Errorf("regex target longer than %d bytes", MaxPattern)
		}
		re, err := regexp.Compile(t)
		if err != nil {
			return 0, fmt.Errorf("compile regex target: %w", err)
		}
		if re.MatchString(a) {
			return 1, nil
		}
	}
	return 0, nil
}

// Matcher is a Scorer whose value is the share of samples matched.
type Matcher struct {
	name    string
	match   MatchFunc
	hits, n int
}

// NewMatcher returns a Scorer named name that scores with match.
func NewMatcher(name string, match MatchFunc) *Matcher {
	return &Matcher{name: name, match: match}
}

// Name returns the scorer's name.
func (m *Matcher) Name() string { return m.name }

// Add scores the sample's answer: 1 matched, 0 not.
func (m *Matcher) Add(s Sample) (float64, error) {
	v, err := m.match(s.Answer, s.Targets)
	if err != nil {
		return 0, fmt.Errorf("score sample %s: %w", s.ID, err)
	}
	m.n++
	if v == 1 {
		m.hits++
	}
	return v, nil
}

// Result is the share of samples matched (accuracy).
func (m *Matcher) Result() Result {
	return Result{Metric: m.name, Value: ratio(float64(m.hits), float64(m.n)), Count: m.n}
}
