package suite

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/sampan-exchange/sampan/ai/score"
)

// Item is one prompt a runner sends: an example of a dataset of a
// recipe, rendered through one of the recipe's prompt templates.
type Item struct {
	// ID is "recipe/dataset/template/index" (template empty when the
	// recipe has none): stable across runs of the same suite.
	ID       string
	Recipe   string
	Dataset  string
	Template string
	Index    int
	// Prompt is the rendered input; Targets the example's targets.
	Prompt  string
	Targets []string
	// InputDigest is the SHA-256 of Prompt, in hex.
	InputDigest string
	// Image, for a recipe whose input is "image", is the image Prompt
	// names, sent as the request body; ImageType its media type.
	Image     []byte
	ImageType string
}

// Items returns the items of a recipe in order: for each dataset, for
// each template (or none), each example.
func (s *Suite) Items(r *Recipe) []Item {
	var out []Item
	templates := r.PromptTemplates
	if len(templates) == 0 {
		templates = []string{""}
	}
	for _, d := range r.Datasets {
		ds := s.Datasets[d]
		for _, t := range templates {
			for i, e := range ds.Examples {
				p := e.Input
				if t != "" {
					p = s.Templates[t].Render(p)
				}
				sum := sha256.Sum256([]byte(p))
				it := Item{ID: fmt.Sprintf("%s/%s/%s/%d", r.ID, d, t, i), Recipe: r.ID, Dataset: d,
					Template: t, Index: i, Prompt: p, Targets: e.Targets, InputDigest: hex.EncodeToString(sum[:])}
				if r.Settings.Input == InputImage {
					it.Image = s.Images[p]
					it.ImageType = ImageType(it.Image)
				}
				out = append(out, it)
			}
		}
	}
	return out
}

// Scorers returns a fresh scorer for each of the recipe's metrics,
// configured by its settings. The robustness scorers compare answers
// with the recipe's first metric's match (exact by default).
func (r *Recipe) Scorers() ([]score.Scorer, error) {
	var out []score.Scorer
	p := r.Settings.Params()
	if len(r.Metrics) > 0 {
		p.RobustBase = r.Metrics[0]
	}
	for _, m := range r.Metrics {
		sc, err := score.New(m, p)
		if err != nil {
			return nil, fmt.Errorf("recipe %s: %w", r.ID, err)
		}
		out = append(out, sc)
	}
	return out, nil
}

// Pass reports whether every threshold of the recipe is met by results
// (a metric with a threshold but no result fails).
func (r *Recipe) Pass(results []score.Result) bool {
	by := map[string]score.Result{}
	for _, res := range results {
		by[res.Metric] = res
	}
	for m, t := range r.Settings.Thresholds {
		res, ok := by[m]
		if !ok || res.Count == 0 || !t.Pass(res.Value) {
			return false
		}
	}
	return true
}

// Grade grades the recipe by its first metric's result, as a percentage
// (score.Percent), on its grading scale.
func (r *Recipe) Grade(results []score.Result) (string, bool) {
	if len(r.GradingScale) == 0 || len(r.Metrics) == 0 {
		return "", false
	}
	for _, res := range results {
		if res.Metric == r.Metrics[0] {
			return r.GradingScale.Grade(score.Percent(res))
		}
	}
	return "", false
}

// Seed returns the seed for perturbing the item's prompt: the first
// eight bytes of its input digest, so a rerun perturbs identically.
func (it Item) Seed() uint64 {
	b, err := hex.DecodeString(it.InputDigest)
	if err != nil || len(b) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b[:8])
}

// Plan is what a runner collects for each item of a recipe, beyond the
// answer and its latency.
type Plan struct {
	// Variants are the perturbations whose answers the robustness
	// scorers need: send Perturbation.Apply(item.Prompt, item.Seed())
	// and put the answer in Sample.Variants[p.Name].
	Variants []score.Perturbation
	// Repeats is how often to send the prompt again, for the
	// determinism scorer (Sample.Repeats); 0 when no scorer needs it.
	Repeats int
}

// Plan returns what the recipe's scorers need.
func (r *Recipe) Plan(scorers []score.Scorer) Plan {
	var p Plan
	seen := map[string]bool{}
	for _, sc := range scorers {
		switch s := sc.(type) {
		case *score.Robustness:
			if v := s.Perturbation(); !seen[v.Name] {
				seen[v.Name] = true
				p.Variants = append(p.Variants, v)
			}
		case *score.Determinism:
			p.Repeats = r.Settings.Repeats
			if p.Repeats == 0 {
				p.Repeats = 2
			}
		}
	}
	return p
}
