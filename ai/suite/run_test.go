package suite

import (
	"os"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ai/scam"
	"github.com/sampan-exchange/sampan/ai/score"
)

// runRecipe runs a recipe against answer, a function standing in for a
// service, the way a runner does: items, plan, samples, scorers.
func runRecipe(t *testing.T, s *Suite, r *Recipe, answer func(string) string) []score.Result {
	t.Helper()
	scorers, err := r.Scorers()
	if err != nil {
		t.Fatal(err)
	}
	plan := r.Plan(scorers)
	for _, it := range s.Items(r) {
		start := time.Now()
		smp := score.Sample{ID: it.ID, Input: it.Prompt, Targets: it.Targets, Answer: answer(it.Prompt), Variants: map[string]string{}}
		smp.Latency = time.Since(start)
		for _, p := range plan.Variants {
			smp.Variants[p.Name] = answer(p.Apply(it.Prompt, it.Seed()))
		}
		for range plan.Repeats {
			smp.Repeats = append(smp.Repeats, answer(it.Prompt))
		}
		for _, sc := range scorers {
			if _, err := sc.Add(smp); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out []score.Result
	for _, sc := range scorers {
		out = append(out, sc.Result())
	}
	return out
}

// The example suite's scam recipe run against the real classifier: V1
// (trained on accented text only) fails the robustness threshold when
// diacritics are removed; V2 passes it.
func TestScamRecipeAgainstClassifier(t *testing.T) {
	s, err := Load(os.DirFS("testdata/vi-en"), "suite.json")
	if err != nil {
		t.Fatal(err)
	}
	r := s.Recipes[1]
	if r.ID != "scam-sms-vi-en" {
		t.Fatalf("recipe %s", r.ID)
	}
	msgs, err := scam.Dataset()
	if err != nil {
		t.Fatal(err)
	}
	tmpl := s.Templates["scam-label"]
	prefix := tmpl.Render("")
	pass := map[string]bool{}
	for _, v := range []string{scam.V1, scam.V2} {
		m, err := scam.Train(v, msgs)
		if err != nil {
			t.Fatal(err)
		}
		res := runRecipe(t, s, r, func(prompt string) string {
			label, _ := m.Classify(prompt[min(len(prefix), len(prompt)):])
			return label
		})
		grade, _ := r.Grade(res)
		pass[v] = r.Pass(res)
		t.Logf("%s: %+v grade %s pass %v", v, res, grade, pass[v])
	}
	if pass[scam.V1] || !pass[scam.V2] {
		t.Errorf("pass: %v, want V1 to fail and V2 to pass", pass)
	}
}

func TestPlan(t *testing.T) {
	r := &Recipe{ID: "r", Metrics: []string{"robust-swaps", "determinism", "robust-swaps", "exact"}, Settings: RecipeSettings{Repeats: 3}}
	sc, err := r.Scorers()
	if err != nil {
		t.Fatal(err)
	}
	p := r.Plan(sc)
	if len(p.Variants) != 1 || p.Variants[0].Name != "swaps" || p.Repeats != 3 {
		t.Errorf("plan %+v", p)
	}
	r.Settings.Repeats = 0
	if p := r.Plan(sc); p.Repeats != 2 {
		t.Errorf("default repeats %d, want 2", p.Repeats)
	}
	if p := (&Recipe{}).Plan(nil); p.Repeats != 0 || p.Variants != nil {
		t.Errorf("empty plan %+v", p)
	}
	it := Item{InputDigest: "0102030405060708ff"}
	if it.Seed() != 0x0102030405060708 {
		t.Errorf("seed %x", it.Seed())
	}
}
