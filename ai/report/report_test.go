package report

import (
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ai/runner"
	"github.com/sampan-exchange/sampan/ai/suite"
)

// build makes a report of the example suite's scam recipe whose
// answers are the targets, but for answer overrides by sample index.
func build(t *testing.T, answers map[int]string, failed int) *Report {
	t.Helper()
	s, err := suite.Load(os.DirFS("../suite/testdata/vi-en"), "suite.json")
	if err != nil {
		t.Fatal(err)
	}
	r := s.Recipes[1]
	res := &runner.Result{Started: time.Unix(1e9, 0), Finished: time.Unix(1e9+5, 0)}
	for i, it := range s.Items(r) {
		a := it.Targets[0]
		if x, ok := answers[i]; ok {
			a = x
		}
		smp := runner.Sample{ID: it.ID, Recipe: r.ID, InputDigest: it.InputDigest, Input: it.Prompt, Targets: it.Targets}
		body := `{"label":"` + a + `"}`
		smp.Calls = []runner.Call{{Role: "answer", Answer: a, ResponseBody: body, Status: 200}, {Role: "variant/no-diacritics", Answer: a, ResponseBody: body, Status: 200}}
		if i == failed {
			smp.Calls[1] = runner.Call{Role: "variant/no-diacritics", Status: 502, Error: "HTTP 502"}
		}
		res.Samples = append(res.Samples, smp)
	}
	rep, err := Build(s, res, "VN/GOV/MPS/cybercrime/scam-classifier", Evaluator{Member: "VN/ORG/LAB", Client: "VN/ORG/LAB/eval"}, Request{AnswerField: "label"})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestScore(t *testing.T) {
	rep := build(t, nil, -1)
	if !rep.Pass || rep.Errors != 0 || rep.Recipes[0].Grade != "A" || rep.Recipes[0].Results[0].Value != 1 {
		t.Errorf("all right: %+v", rep.Recipes[0])
	}
	// Two wrong of twelve: accuracy 10/12 < 0.9 fails, grade B (83.3).
	rep = build(t, map[int]string{0: "wrong", 1: "wrong"}, -1)
	if rep.Pass || rep.Recipes[0].Grade != "B" || rep.Recipes[0].Results[0].Value != 10.0/12 || rep.Samples[0].Scores["classification"] != 0 {
		t.Errorf("two wrong: %+v", rep.Recipes[0])
	}
	// A failed exchange fails the report and its sample is not scored.
	rep = build(t, nil, 2)
	if rep.Pass || rep.Errors != 1 || rep.Recipes[0].Results[0].Count != 11 || rep.Samples[2].Error == "" {
		t.Errorf("failed exchange: errors %d, %+v", rep.Errors, rep.Recipes[0])
	}
}

// The HTML view escapes what the service answered.
func TestHTMLEscapes(t *testing.T) {
	rep := build(t, map[int]string{0: `<script>alert("x")</script>`}, -1)
	v, err := rep.Views()
	if err != nil {
		t.Fatal(err)
	}
	h := v[HTMLFile]
	if bytes.Contains(h, []byte("<script>alert")) || !bytes.Contains(h, []byte("&lt;script&gt;alert")) {
		t.Errorf("answer not escaped:\n%s", h)
	}
	again, _ := rep.Views()
	for name := range v {
		if !bytes.Equal(v[name], again[name]) {
			t.Errorf("%s is not deterministic", name)
		}
	}
}
