package score

import (
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// label puts a class label in the form classification compares:
// normalised, lower-cased, without surrounding punctuation ("Scam." is
// "scam").
func label(s string) string {
	return strings.TrimFunc(fold(s), func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSpace(r) })
}

// LabelMatch is 1 when the answer, read as a class label, is the first
// target's label (the classification scorer's comparison).
func LabelMatch(answer string, targets []string) (float64, error) {
	if len(targets) > 0 && label(answer) == label(targets[0]) {
		return 1, nil
	}
	return 0, nil
}

// Classification scores answers as class labels: the first target is
// the true label, the answer the predicted one, both normalised,
// lower-cased and stripped of surrounding punctuation.
// Its Result has accuracy as Value, and in Details macro precision,
// recall and F1 ("macro_precision", "macro_recall", "macro_f1") and per
// class ("precision/<label>", "recall/<label>", "f1/<label>").
type Classification struct {
	labels  []string // fixed class set, folded; empty: the labels seen
	fixed   map[string]bool
	n, hits int
	tp, fp  map[string]int
	fn      map[string]int
	seen    map[string]bool
}

// NewClassification returns a classification scorer. With labels, the
// class set is fixed (a prediction outside it is wrong and counts for no
// class); without, it is every label seen as truth or prediction.
func NewClassification(labels []string) *Classification {
	c := &Classification{fixed: map[string]bool{}, tp: map[string]int{}, fp: map[string]int{},
		fn: map[string]int{}, seen: map[string]bool{}}
	for _, l := range labels {
		l = label(l)
		if !c.fixed[l] {
			c.fixed[l] = true
			c.labels = append(c.labels, l)
		}
	}
	return c
}

// Name returns "classification".
func (c *Classification) Name() string { return "classification" }

// Add scores one prediction: 1 correct, 0 wrong.
func (c *Classification) Add(s Sample) (float64, error) {
	if len(s.Targets) == 0 {
		return 0, fmt.Errorf("score sample %s: classification needs a target label", s.ID)
	}
	truth, pred := label(s.Targets[0]), label(s.Answer)
	if len(c.labels) > 0 && !c.fixed[truth] {
		return 0, fmt.Errorf("score sample %s: label %q is not among the classes", s.ID, truth)
	}
	c.n++
	c.seen[truth] = true
	if len(c.labels) == 0 || c.fixed[pred] {
		c.seen[pred] = true
	}
	if truth == pred {
		c.hits++
		c.tp[truth]++
		return 1, nil
	}
	c.fn[truth]++
	if len(c.labels) == 0 || c.fixed[pred] {
		c.fp[pred]++
	}
	return 0, nil
}

// Result returns accuracy and the per-class and macro figures.
func (c *Classification) Result() Result {
	classes := c.labels
	if len(classes) == 0 {
		for l := range c.seen {
			classes = append(classes, l)
		}
		sort.Strings(classes)
	}
	d := map[string]float64{}
	var sp, sr, sf float64
	for _, l := range classes {
		tp, fp, fn := float64(c.tp[l]), float64(c.fp[l]), float64(c.fn[l])
		p, r := ratio(tp, tp+fp), ratio(tp, tp+fn)
		f := ratio(2*p*r, p+r)
		d["precision/"+l], d["recall/"+l], d["f1/"+l] = p, r, f
		sp, sr, sf = sp+p, sr+r, sf+f
	}
	k := float64(len(classes))
	d["macro_precision"], d["macro_recall"], d["macro_f1"] = ratio(sp, k), ratio(sr, k), ratio(sf, k)
	return Result{Metric: "classification", Value: ratio(float64(c.hits), float64(c.n)), Count: c.n, Details: d}
}
