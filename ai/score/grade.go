package score

import (
	"fmt"
	"math"
	"sort"
)

// GradingScale maps a grade to its band [min, max] of a score in
// percent, as Moonshot recipes write it: {"A": [80, 100], "B": [60, 79]}.
type GradingScale map[string][2]float64

// Validate checks that every band has min ≤ max and that no two bands
// share a min.
func (g GradingScale) Validate() error {
	mins := map[float64]string{}
	for name, b := range g {
		if name == "" {
			return fmt.Errorf("grading_scale: empty grade name")
		}
		if math.IsNaN(b[0]) || math.IsNaN(b[1]) || b[0] > b[1] {
			return fmt.Errorf("grading_scale.%s: min %v is above max %v", name, b[0], b[1])
		}
		if o, ok := mins[b[0]]; ok {
			return fmt.Errorf("grading_scale.%s: starts where %s does (%v)", name, o, b[0])
		}
		mins[b[0]] = name
	}
	return nil
}

// Grade returns the grade of a score in percent: the band with the
// highest min at or below it. Moonshot's bands are integer ranges with
// gaps between them (B ends at 79, A starts at 80); a score in a gap
// (79.5) takes the lower band. A score below every band or above every
// max has no grade.
func (g GradingScale) Grade(percent float64) (string, bool) {
	type band struct {
		name     string
		min, max float64
	}
	var bs []band
	top := math.Inf(-1)
	for n, b := range g {
		bs = append(bs, band{n, b[0], b[1]})
		top = max(top, b[1])
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].min > bs[j].min })
	if math.IsNaN(percent) || percent > top {
		return "", false
	}
	for _, b := range bs {
		if percent >= b.min {
			return b.name, true
		}
	}
	return "", false
}

// Threshold is a pass mark for one metric's Value: it passes when Value
// is at least Min and at most Max (either may be absent).
type Threshold struct {
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

// Pass reports whether v meets the threshold. NaN never does.
func (t Threshold) Pass(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	return (t.Min == nil || v >= *t.Min) && (t.Max == nil || v <= *t.Max)
}

// Percent puts a result on a 0–100 scale where higher is better, for
// grading: 100·Value for the shares; 100·(1 − Value), clamped to 0–100,
// for the error rates and robustness drops, where lower is better.
func Percent(r Result) float64 {
	v := r.Value
	if lowerIsBetter(r.Metric) {
		v = 1 - v
	}
	return 100 * math.Max(0, math.Min(1, v))
}

func lowerIsBetter(metric string) bool {
	return metric == "cer" || metric == "wer" || len(metric) > 7 && metric[:7] == "robust-"
}
