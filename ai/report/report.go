// Package report makes and checks the report of an AI evaluation run
// through the exchange: what was run (the suite's lock), against what
// (the service and the model version it reported), every sample with
// the X-Road-Id of its exchanges, the aggregates, grades and pass/fail
// against the suite's thresholds. The report is signed with the testing
// body's member signing key and time-stamped by the authority's TSA;
// Verify checks it offline, down to each exchange's place in the
// evaluator gateway's message log.
package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ai/runner"
	"github.com/sampan-exchange/sampan/ai/score"
	"github.com/sampan-exchange/sampan/ai/suite"
)

// Format names the report's format and version.
const Format = "sampan-ai-report/1"

// Report is an evaluation's result.
type Report struct {
	Format string    `json:"format"`
	Suite  SuiteInfo `json:"suite"`
	// Service is the AI service evaluated; ModelVersion the model
	// version its answers named and ModelCardDigest the SHA-256 of the
	// model card registered for it when it answered (each several,
	// comma-separated, if they differed: the authority then accepts the
	// report for neither).
	Service         string    `json:"service"`
	ModelVersion    string    `json:"model_version"`
	ModelCardDigest string    `json:"model_card_digest"`
	Evaluator       Evaluator `json:"evaluator"`
	Request         Request   `json:"request"`
	StartedAt       time.Time `json:"started_at"`
	FinishedAt      time.Time `json:"finished_at"`
	Recipes         []Recipe  `json:"recipes"`
	// Errors counts samples whose exchanges failed; a report with any
	// fails.
	Errors int  `json:"errors"`
	Pass   bool `json:"pass"`
	// Samples are in suite order.
	Samples []runner.Sample `json:"samples"`
}

// SuiteInfo pins the suite run.
type SuiteInfo struct {
	Name string     `json:"name"`
	Lock suite.Lock `json:"lock"`
	// Datasets maps each dataset id to the SHA-256 of its file.
	Datasets map[string]string `json:"datasets"`
}

// Evaluator is who ran the evaluation: the testing body (the member
// whose key signs the report), its evaluator subsystem (the client of
// every exchange) and its gateway.
type Evaluator struct {
	Member     string `json:"member"`
	Client     string `json:"client"`
	GatewayURL string `json:"gateway_url"`
	Purpose    string `json:"purpose,omitempty"`
}

// Request is how prompts were sent and answers read: a POST to Path
// under the service with a JSON object holding the prompt in
// InputField; the answer is the response's AnswerField, the model
// version its VersionField (runner.Options).
type Request struct {
	Path         string `json:"path"`
	InputField   string `json:"input_field"`
	AnswerField  string `json:"answer_field"`
	VersionField string `json:"version_field"`
}

// Recipe is one recipe's definition as run and its results.
type Recipe struct {
	ID           string               `json:"id"`
	Name         string               `json:"name,omitempty"`
	Metrics      []string             `json:"metrics"`
	Settings     suite.RecipeSettings `json:"settings"`
	GradingScale score.GradingScale   `json:"grading_scale,omitempty"`
	Samples      int                  `json:"samples"`
	Results      []score.Result       `json:"results"`
	Grade        string               `json:"grade,omitempty"`
	Pass         bool                 `json:"pass"`
}

func (r Recipe) suiteRecipe() *suite.Recipe {
	return &suite.Recipe{ID: r.ID, Name: r.Name, Metrics: r.Metrics, Settings: r.Settings, GradingScale: r.GradingScale}
}

// Build makes a report from a suite and a run. Aggregates, grades and
// pass/fail are computed from the samples alone (score), as Verify
// recomputes them.
func Build(s *suite.Suite, res *runner.Result, service string, ev Evaluator, rq Request) (*Report, error) {
	rep := &Report{
		Format: Format, Service: service, Evaluator: ev, Request: rq,
		StartedAt: res.Started.UTC(), FinishedAt: res.Finished.UTC(),
		Suite:   SuiteInfo{Name: s.Name, Lock: s.Lock, Datasets: map[string]string{}},
		Samples: res.Samples,
	}
	ran := map[string]bool{}
	for _, smp := range res.Samples {
		ran[smp.Recipe] = true
	}
	for _, r := range s.Recipes {
		if !ran[r.ID] {
			continue
		}
		rep.Recipes = append(rep.Recipes, Recipe{ID: r.ID, Name: r.Name, Metrics: r.Metrics, Settings: r.Settings, GradingScale: r.GradingScale})
		for _, d := range r.Datasets {
			rep.Suite.Datasets[d] = s.Lock.Files[suite.DatasetDir+"/"+d+".json"]
		}
	}
	rep.ModelVersion = distinct(res.Samples, func(c runner.Call) string { return c.ModelVersion })
	rep.ModelCardDigest = answeredCards(res.Samples)
	if err := rep.Score(); err != nil {
		return nil, err
	}
	return rep, nil
}

// distinct joins the distinct non-empty values of a field of the calls,
// sorted, with commas.
func distinct(samples []runner.Sample, field func(runner.Call) string) string {
	seen := map[string]bool{}
	for _, smp := range samples {
		for _, c := range smp.Calls {
			if v := field(c); v != "" {
				seen[v] = true
			}
		}
	}
	vs := make([]string, 0, len(seen))
	for v := range seen {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	return strings.Join(vs, ",")
}

// answeredCards joins, sorted, with commas, the model card digests the
// answered calls came with, an answer without one counting as the empty
// digest: a run whose answers did not all come with the same card names
// several (",<digest>" when some had none), which no registered card
// matches.
func answeredCards(samples []runner.Sample) string {
	seen := map[string]bool{}
	for _, smp := range samples {
		for _, c := range smp.Calls {
			if c.Error == "" {
				seen[c.ModelCard] = true
			}
		}
	}
	vs := make([]string, 0, len(seen))
	for v := range seen {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	return strings.Join(vs, ",")
}

// Score computes each sample's scores, the recipes' results, grades and
// pass marks, the error count and the verdict from the samples and the
// recipes' definitions.
func (rep *Report) Score() error {
	rep.Errors = 0
	rep.Pass = len(rep.Recipes) > 0
	for i := range rep.Recipes {
		rr := &rep.Recipes[i]
		r := rr.suiteRecipe()
		scorers, err := r.Scorers()
		if err != nil {
			return fmt.Errorf("score: %w", err)
		}
		rr.Samples = 0
		for k := range rep.Samples {
			smp := &rep.Samples[k]
			if smp.Recipe != rr.ID {
				continue
			}
			rr.Samples++
			smp.Scores, smp.Error = nil, ""
			if smp.Failed() {
				rep.Errors++
				smp.Error = "an exchange failed"
				continue
			}
			in := smp.ScoreSample()
			for _, sc := range scorers {
				v, err := sc.Add(in)
				if err != nil {
					smp.Error = err.Error()
					continue
				}
				if smp.Scores == nil {
					smp.Scores = map[string]float64{}
				}
				smp.Scores[sc.Name()] = v
			}
		}
		rr.Results = nil
		for _, sc := range scorers {
			rr.Results = append(rr.Results, sc.Result())
		}
		rr.Grade, _ = r.Grade(rr.Results)
		rr.Pass = r.Pass(rr.Results)
		rep.Pass = rep.Pass && rr.Pass
	}
	for _, smp := range rep.Samples {
		if !rep.hasRecipe(smp.Recipe) {
			return fmt.Errorf("score: sample %s belongs to no recipe of the report", smp.ID)
		}
	}
	rep.Pass = rep.Pass && rep.Errors == 0
	return nil
}

func (rep *Report) hasRecipe(id string) bool {
	for _, r := range rep.Recipes {
		if r.ID == id {
			return true
		}
	}
	return false
}

// Marshal is the report's canonical encoding: the bytes that are signed.
func (rep *Report) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(rep); err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	return b.Bytes(), nil
}
