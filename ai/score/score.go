// Package score turns an AI service's answers into metrics. A runner
// sends each sample of a suite to the service, fills in a Sample with
// the answer (and, where a metric needs them, the answers to perturbed
// inputs, repeated answers and the latency), and passes it to the
// suite's scorers one at a time; each scorer returns the sample's own
// score and, at the end, an aggregate Result.
//
// The formulas are in docs/design/ai-evaluation.md.
package score

import (
	"fmt"
	"sort"
	"time"
)

// Sample is one item of a dataset with the service's answers to it.
type Sample struct {
	// ID names the sample within its dataset (its index, or a digest).
	ID string
	// Input is the prompt sent to the service.
	Input string
	// Targets are the acceptable answers (a dataset's target; for
	// classification the first is the label).
	Targets []string
	// Answer is the service's answer to Input.
	Answer string
	// Latency is the time the service took to answer Input.
	Latency time.Duration
	// Repeats are further answers to the same Input, for determinism.
	Repeats []string
	// Variants are answers to perturbed copies of Input, keyed by
	// perturbation name, for robustness.
	Variants map[string]string
}

// Result is a scorer's aggregate over the samples it was given.
type Result struct {
	// Metric is the scorer's name.
	Metric string `json:"metric"`
	// Value is the headline value: a share in [0, 1] for every scorer but
	// the error rates (edits per reference unit, 0 best) and robustness
	// (the drop from the clean score, 0 best, negative when perturbed
	// inputs scored better).
	Value float64 `json:"value"`
	// Count is the number of samples the value is computed over.
	Count int `json:"count"`
	// Details holds the scorer's further figures (per-class F1, p95, …).
	Details map[string]float64 `json:"details,omitempty"`
}

// Scorer scores samples one by one and aggregates them.
type Scorer interface {
	// Name is the metric's name, as suites write it.
	Name() string
	// Add scores one sample and returns its own score (1 or 0 for the
	// matchers; edits for the error rates; see each scorer). An error
	// means the sample could not be scored (for example a target that is
	// not a valid regular expression); the sample is not counted.
	Add(s Sample) (float64, error)
	// Result returns the aggregate over the samples added so far.
	Result() Result
}

// Names lists the scorer names New accepts, sorted.
func Names() []string {
	var out []string
	for n := range constructors {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Params are the settings some scorers take; the zero value gives each
// scorer its defaults.
type Params struct {
	// Labels fixes the class set of the classification scorer (others
	// count as wrong predictions); empty takes the labels seen.
	Labels []string
	// Latency is the latency objective.
	Latency LatencyObjective
	// CountEchoes makes the leakage scorer count identifiers that the
	// input already held.
	CountEchoes bool
	// RobustBase names the match the robustness scorers compare clean
	// and perturbed answers with: "contains", "regex", "classification"
	// (LabelMatch) or, by default, exact.
	RobustBase string
}

func init() {
	for _, p := range Perturbations {
		constructors["robust-"+p.Name] = func(params Params) Scorer {
			return NewRobustness(robustBase(params.RobustBase), p)
		}
	}
}

func robustBase(name string) MatchFunc {
	switch name {
	case "contains":
		return Contains
	case "regex":
		return RegexMatch
	case "classification":
		return LabelMatch
	}
	return ExactMatch
}

var constructors = map[string]func(Params) Scorer{
	"exact":          func(Params) Scorer { return NewMatcher("exact", ExactMatch) },
	"exactstrmatch":  func(Params) Scorer { return NewMatcher("exactstrmatch", ExactMatch) },
	"contains":       func(Params) Scorer { return NewMatcher("contains", Contains) },
	"regex":          func(Params) Scorer { return NewMatcher("regex", RegexMatch) },
	"classification": func(p Params) Scorer { return NewClassification(p.Labels) },
	"cer":            func(Params) Scorer { return NewCER() },
	"wer":            func(Params) Scorer { return NewWER() },
	"refusal":        func(Params) Scorer { return NewRefusal(true) },
	"no-refusal":     func(Params) Scorer { return NewRefusal(false) },
	"latency":        func(p Params) Scorer { return NewLatency(p.Latency) },
	"determinism":    func(Params) Scorer { return NewDeterminism() },
	"leakage":        func(p Params) Scorer { return NewLeakage(p.CountEchoes) },
}

// New returns the scorer with the given name. Names include Moonshot's
// "exactstrmatch" (the exact matcher); any other name Sampan does not
// implement is refused, so a suite never passes on a metric nobody
// computed.
func New(name string, p Params) (Scorer, error) {
	c, ok := constructors[name]
	if !ok {
		return nil, fmt.Errorf("scorer %q is not implemented", name)
	}
	return c(p), nil
}

// Known reports whether New accepts name.
func Known(name string) bool {
	_, ok := constructors[name]
	return ok
}

// ratio is a/b, or 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}
