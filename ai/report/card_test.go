package report

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ai/runner"
	"github.com/sampan-exchange/sampan/ai/score"
	"github.com/sampan-exchange/sampan/ai/suite"
)

// TestReportCardOfEveryAnswer: a report names the model card only if
// every answer came with it. Answers that came with no Ai-Model-Card
// (the service was not a registered AI service then, or answered from
// elsewhere) must not be folded into a report bound to card X.
func TestReportCardOfEveryAnswer(t *testing.T) {
	s, err := suite.Load(os.DirFS("../suite/testdata/vi-en"), "suite.json")
	if err != nil {
		t.Fatal(err)
	}
	r := s.Recipes[1]
	card := strings.Repeat("ab", 32)
	res := &runner.Result{Started: time.Unix(1e9, 0), Finished: time.Unix(1e9+5, 0)}
	for i, it := range s.Items(r) {
		a := it.Targets[0]
		body := `{"label":"` + a + `","model_version":"v2"}`
		c := card
		if i%2 == 0 {
			c = "" // answered without a card
		}
		smp := runner.Sample{ID: it.ID, Recipe: r.ID, InputDigest: it.InputDigest, Input: it.Prompt, Targets: it.Targets}
		var nd string
		for _, p := range score.Perturbations {
			if p.Name == "no-diacritics" {
				nd = digest(p.Apply(it.Prompt, suite.Item{InputDigest: it.InputDigest}.Seed()))
			}
		}
		smp.Calls = []runner.Call{{Role: "answer", InputDigest: it.InputDigest, Answer: a, ResponseBody: body, Status: 200, ModelCard: c, ModelVersion: "v2"},
			{Role: "variant/no-diacritics", InputDigest: nd, Answer: a, ResponseBody: body, Status: 200, ModelCard: c, ModelVersion: "v2"}}
		res.Samples = append(res.Samples, smp)
	}
	rep, err := Build(s, res, "VN/GOV/MPS/cybercrime/scam-classifier", Evaluator{Member: "VN/ORG/LAB", Client: "VN/ORG/LAB/eval"}, Request{AnswerField: "label", VersionField: "model_version"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := rep.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	err = checkContent(rep, b)
	if err == nil && rep.ModelCardDigest == card {
		t.Errorf("half the answers came with no model card, yet the report names card %s and checks", card[:8])
	}
}
