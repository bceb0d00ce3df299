package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"sort"
	"strings"

	"github.com/sampan-exchange/sampan/ai/score"
)

// Views of a report for other tools and for people. They are derived
// from the signed report.json alone (deterministically, so that Verify
// can regenerate and compare them) and carry no signature of their own.
const (
	// MoonshotFile is the result in the shape Project Moonshot writes
	// for a benchmark run (metadata, results.recipes with details and
	// evaluation_summary).
	MoonshotFile = "moonshot-result.json"
	// InspectFile is an evaluation log in the shape of inspect_ai's
	// EvalLog (version, status, eval, results, stats, samples).
	InspectFile = "inspect-log.json"
	// HTMLFile is a page for people.
	HTMLFile = "report.html"
)

// Views returns the derived files by name.
func (rep *Report) Views() (map[string][]byte, error) {
	out := map[string][]byte{}
	for name, v := range map[string]any{MoonshotFile: rep.moonshot(), InspectFile: rep.inspect()} {
		b, err := marshalIndent(v)
		if err != nil {
			return nil, err
		}
		out[name] = b
	}
	var h bytes.Buffer
	if err := page.Execute(&h, rep.pageData()); err != nil {
		return nil, fmt.Errorf("render %s: %w", HTMLFile, err)
	}
	out[HTMLFile] = h.Bytes()
	return out, nil
}

func marshalIndent(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode view: %w", err)
	}
	return b.Bytes(), nil
}

// moonshot is the report as a Moonshot benchmark result: the service
// stands where Moonshot names its connector endpoint.
func (rep *Report) moonshot() any {
	type datum struct {
		Prompt          string  `json:"prompt"`
		PredictedResult string  `json:"predicted_result"`
		Target          any     `json:"target"`
		Duration        float64 `json:"duration"`
		XRoadID         string  `json:"x_road_id"`
		Scores          any     `json:"scores,omitempty"`
	}
	type detail struct {
		ModelID          string  `json:"model_id"`
		DatasetID        string  `json:"dataset_id"`
		PromptTemplateID string  `json:"prompt_template_id"`
		Data             []datum `json:"data"`
		Metrics          []any   `json:"metrics"`
	}
	type summary struct {
		ModelID       string  `json:"model_id"`
		NumOfPrompts  int     `json:"num_of_prompts"`
		AvgGradeValue float64 `json:"avg_grade_value"`
		Grade         string  `json:"grade"`
	}
	type recipe struct {
		ID                string                `json:"id"`
		Details           []detail              `json:"details"`
		EvaluationSummary []summary             `json:"evaluation_summary"`
		GradingScale      map[string][2]float64 `json:"grading_scale"`
		TotalNumOfPrompts int                   `json:"total_num_of_prompts"`
	}
	var recipes []recipe
	var ids []string
	total := 0
	for _, rr := range rep.Recipes {
		ids = append(ids, rr.ID)
		r := recipe{ID: rr.ID, GradingScale: map[string][2]float64(rr.GradingScale), TotalNumOfPrompts: rr.Samples}
		if r.GradingScale == nil {
			r.GradingScale = map[string][2]float64{}
		}
		byKey := map[string]*detail{}
		var keys []string
		for _, s := range rep.Samples {
			if s.Recipe != rr.ID {
				continue
			}
			// Item ids are recipe/dataset/template/index.
			parts := strings.Split(s.ID, "/")
			ds, tmpl := "", ""
			if len(parts) == 4 {
				ds, tmpl = parts[1], parts[2]
			}
			k := ds + "\x00" + tmpl
			d := byKey[k]
			if d == nil {
				d = &detail{ModelID: rep.Service, DatasetID: ds, PromptTemplateID: tmpl, Data: []datum{}, Metrics: []any{}}
				byKey[k] = d
				keys = append(keys, k)
			}
			dt := datum{Prompt: s.Input}
			for _, c := range s.Calls {
				if c.Role == "answer" {
					dt.PredictedResult, dt.Duration, dt.XRoadID = c.Answer, c.LatencyMS/1000, c.XRoadID
				}
			}
			switch len(s.Targets) {
			case 0:
				dt.Target = ""
			case 1:
				dt.Target = s.Targets[0]
			default:
				dt.Target = s.Targets
			}
			if len(s.Scores) > 0 {
				dt.Scores = s.Scores
			}
			d.Data = append(d.Data, dt)
		}
		for _, res := range rr.Results {
			m := map[string]any{res.Metric: res.Value, "count": res.Count}
			for k, v := range res.Details {
				m[res.Metric+"/"+k] = v
			}
			for _, k := range keys {
				byKey[k].Metrics = append(byKey[k].Metrics, m)
			}
		}
		for _, k := range keys {
			r.Details = append(r.Details, *byKey[k])
		}
		avg := 0.0
		for _, res := range rr.Results {
			if len(rr.Metrics) > 0 && res.Metric == rr.Metrics[0] {
				avg = score.Percent(res)
			}
		}
		r.EvaluationSummary = []summary{{ModelID: rep.Service, NumOfPrompts: rr.Samples, AvgGradeValue: avg, Grade: rr.Grade}}
		total += rr.Samples
		recipes = append(recipes, r)
	}
	return map[string]any{
		"metadata": map[string]any{
			"id":             "sampan-" + prefix(rep.Suite.Lock.Suite, 16),
			"start_time":     rep.StartedAt.Format("2006-01-02 15:04:05"),
			"end_time":       rep.FinishedAt.Format("2006-01-02 15:04:05"),
			"duration":       int(rep.FinishedAt.Sub(rep.StartedAt).Seconds()),
			"status":         "completed",
			"recipes":        ids,
			"cookbooks":      nil,
			"endpoints":      []string{rep.Service},
			"num_of_prompts": total,
			"random_seed":    0,
			"system_prompt":  "",
		},
		"results": map[string]any{"recipes": recipes},
	}
}

// inspect is the report as an inspect_ai-style evaluation log: one
// task per report (the suite), the service as the model, the recipes'
// metrics as scores.
func (rep *Report) inspect() any {
	type metric struct {
		Name  string  `json:"name"`
		Value float64 `json:"value"`
	}
	type evalScore struct {
		Name    string            `json:"name"`
		Scorer  string            `json:"scorer"`
		Metrics map[string]metric `json:"metrics"`
	}
	var scores []evalScore
	for _, rr := range rep.Recipes {
		for _, res := range rr.Results {
			es := evalScore{Name: rr.ID + "/" + res.Metric, Scorer: res.Metric, Metrics: map[string]metric{"value": {Name: "value", Value: res.Value}}}
			for k, v := range res.Details {
				es.Metrics[k] = metric{Name: k, Value: v}
			}
			scores = append(scores, es)
		}
	}
	type sampleScore struct {
		Value  float64 `json:"value"`
		Answer string  `json:"answer"`
	}
	type message struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	type sample struct {
		ID        string                 `json:"id"`
		Epoch     int                    `json:"epoch"`
		Input     string                 `json:"input"`
		Target    []string               `json:"target"`
		Messages  []message              `json:"messages"`
		Output    any                    `json:"output"`
		Scores    map[string]sampleScore `json:"scores"`
		Metadata  map[string]any         `json:"metadata"`
		TotalTime float64                `json:"total_time"`
		Error     string                 `json:"error,omitempty"`
	}
	completed := 0
	var samples []sample
	for _, s := range rep.Samples {
		var ans string
		var lat float64
		ids := map[string]string{}
		for _, c := range s.Calls {
			if c.Role == "answer" {
				ans, lat = c.Answer, c.LatencyMS/1000
			}
			ids[c.Role] = c.XRoadID
		}
		sm := sample{ID: s.ID, Epoch: 1, Input: s.Input, Target: s.Targets, TotalTime: lat, Error: s.Error,
			Messages: []message{{Role: "user", Content: s.Input}, {Role: "assistant", Content: ans}},
			Output:   map[string]any{"model": rep.Service, "choices": []any{map[string]any{"message": message{Role: "assistant", Content: ans}, "stop_reason": "stop"}}},
			Scores:   map[string]sampleScore{}, Metadata: map[string]any{"recipe": s.Recipe, "input_digest": s.InputDigest, "x_road_ids": ids}}
		if sm.Target == nil {
			sm.Target = []string{}
		}
		for m, v := range s.Scores {
			sm.Scores[m] = sampleScore{Value: v, Answer: ans}
		}
		if s.Error == "" {
			completed++
		}
		samples = append(samples, sm)
	}
	status := "success"
	if rep.Errors > 0 {
		status = "error"
	}
	return map[string]any{
		"version": 2,
		"status":  status,
		"eval": map[string]any{
			"run_id":  prefix(rep.Suite.Lock.Suite, 22),
			"created": rep.StartedAt,
			"task":    rep.Suite.Name,
			"task_id": rep.Suite.Lock.Suite,
			"dataset": map[string]any{"name": rep.Suite.Name, "samples": len(rep.Samples)},
			"model":   rep.Service,
			"metadata": map[string]any{
				"model_version": rep.ModelVersion, "evaluator": rep.Evaluator.Member, "client": rep.Evaluator.Client, "pass": rep.Pass,
			},
		},
		"results": map[string]any{"total_samples": len(rep.Samples), "completed_samples": completed, "scores": scores},
		"stats":   map[string]any{"started_at": rep.StartedAt, "completed_at": rep.FinishedAt},
		"samples": samples,
	}
}

type pageRecipe struct {
	Recipe
	Verdict string
}

type pageSample struct {
	ID, Recipe, Input, Answer, Targets, XRoadID, Scores, Error string
	LatencyMS                                                  float64
}

type pageView struct {
	R       *Report
	Verdict string
	Recipes []pageRecipe
	Samples []pageSample
}

func verdict(pass bool) string {
	if pass {
		return "pass"
	}
	return "fail"
}

func (rep *Report) pageData() pageView {
	v := pageView{R: rep, Verdict: verdict(rep.Pass)}
	for _, r := range rep.Recipes {
		v.Recipes = append(v.Recipes, pageRecipe{r, verdict(r.Pass)})
	}
	for _, s := range rep.Samples {
		ps := pageSample{ID: s.ID, Recipe: s.Recipe, Input: s.Input, Targets: strings.Join(s.Targets, " | "), Error: s.Error}
		for _, c := range s.Calls {
			if c.Role == "answer" {
				ps.Answer, ps.XRoadID, ps.LatencyMS = c.Answer, c.XRoadID, c.LatencyMS
			}
		}
		var ms []string
		for m, x := range s.Scores {
			ms = append(ms, fmt.Sprintf("%s %.3g", m, x))
		}
		sort.Strings(ms)
		ps.Scores = strings.Join(ms, ", ")
		v.Samples = append(v.Samples, ps)
	}
	return v
}

// page is the human-readable report; html/template escapes every value
// (answers are the service's text).
var page = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Evaluation of {{.R.Service}}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em;text-align:left;vertical-align:top}.pass{color:#060}.fail{color:#a00}code{font-size:.85em}</style>
</head><body>
<h1>Evaluation of {{.R.Service}}: <span class="{{.Verdict}}">{{.Verdict}}</span></h1>
<table>
<tr><th>Model version</th><td>{{.R.ModelVersion}}</td></tr>
<tr><th>Model card digest</th><td><code>{{.R.ModelCardDigest}}</code></td></tr>
<tr><th>Suite</th><td>{{.R.Suite.Name}}, digest <code>{{.R.Suite.Lock.Suite}}</code></td></tr>
<tr><th>Evaluator</th><td>{{.R.Evaluator.Member}} (client {{.R.Evaluator.Client}}, purpose {{.R.Evaluator.Purpose}})</td></tr>
<tr><th>Run</th><td>{{.R.StartedAt.Format "2006-01-02 15:04:05Z07:00"}} to {{.R.FinishedAt.Format "2006-01-02 15:04:05Z07:00"}}</td></tr>
<tr><th>Samples with failed exchanges</th><td>{{.R.Errors}}</td></tr>
</table>
<p>This page is derived from report.json; check the signed report with <code>sampan ai verify-report</code>.</p>
<h2>Recipes</h2>
<table><tr><th>Recipe</th><th>Verdict</th><th>Grade</th><th>Samples</th><th>Results</th></tr>
{{range .Recipes}}<tr><td>{{.ID}}</td><td class="{{.Verdict}}">{{.Verdict}}</td><td>{{.Grade}}</td><td>{{.Samples}}</td><td>{{range .Results}}{{.Metric}} = {{printf "%.4g" .Value}}<br>{{end}}</td></tr>
{{end}}</table>
<h2>Samples</h2>
<table><tr><th>Sample</th><th>Input</th><th>Target</th><th>Answer</th><th>Scores</th><th>Latency (ms)</th><th>X-Road-Id</th></tr>
{{range .Samples}}<tr><td>{{.ID}}</td><td>{{.Input}}</td><td>{{.Targets}}</td><td>{{.Answer}}{{if .Error}} <span class="fail">{{.Error}}</span>{{end}}</td><td>{{.Scores}}</td><td>{{printf "%.1f" .LatencyMS}}</td><td><code>{{.XRoadID}}</code></td></tr>
{{end}}</table>
</body></html>
`))

func prefix(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
