// Package runner runs an evaluation suite against an AI service through
// the exchange: every call is an r1 request of a registered client
// (the testing body's evaluator subsystem) to its own gateway, so each
// one is signed, decided by policy and logged by both gateways. It
// records, per sample, what a report needs to be checked later: the
// input digest, the answers, the scores, the latency and the X-Road-Id
// and request hash of each exchange.
package runner

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sampan-exchange/sampan/ai/score"
	"github.com/sampan-exchange/sampan/ai/suite"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
)

// Options say where and how to call the service. Zero values of the
// optional fields are documented defaults.
type Options struct {
	// GatewayURL is the client side of the evaluator's gateway
	// (http://host:port).
	GatewayURL string
	// Client is the evaluator's subsystem (X-Road-Client).
	Client string
	// Service is the AI service's identifier.
	Service string
	// Path is appended to the service in the r1 URL (default "/").
	Path string
	// Purpose, when set, is declared in X-Road-Purpose.
	Purpose string
	// InputField and AnswerField name the JSON fields of the request
	// and the response that carry the prompt and the answer; VersionField
	// the response field naming the model version. Defaults "text",
	// "label" and "model_version".
	InputField, AnswerField, VersionField string
	// HTTP is the client (default: a client with a 60 s timeout).
	HTTP *http.Client
	// Rate limits the samples started per second (0: no limit).
	Rate float64
	// Concurrency is the number of samples in flight (default 1).
	Concurrency int
	// Recipes, when set, restricts the run to these recipes.
	Recipes []string
	// ProgressFile, when set, records every finished sample; a run with
	// the same file skips the samples it holds, once it has checked that
	// the suite and the service are those it was started with.
	ProgressFile string
	// RunID prefixes the X-Road-Ids of the exchanges (default: the
	// first 12 hex digits of the suite digest and the start time).
	RunID string
	// OnSample, when set, is called after each sample with the number
	// done (skipped ones included) and the total.
	OnSample func(done, total int)
}

// Call is one exchange of a sample.
type Call struct {
	// Role is "answer", "variant/<perturbation>" or "repeat/<n>".
	Role string `json:"role"`
	// InputDigest is the SHA-256 of the prompt sent, in hex.
	InputDigest string `json:"input_digest"`
	// Answer is the answer field of the response.
	Answer string `json:"answer"`
	// ModelVersion is the model version the response names.
	ModelVersion string `json:"model_version,omitempty"`
	// ModelCard is the SHA-256 of the model card registered for the
	// service, as the evaluator's gateway gave it with the answer
	// (Ai-Model-Card, from the published configuration).
	ModelCard string `json:"model_card,omitempty"`
	// ResponseBody is the response body as received, so that a checker
	// can compare its digest with the one the gateway logged.
	ResponseBody string `json:"response_body,omitempty"`
	// LatencyMS is the time from sending the request to having the
	// whole response, in milliseconds.
	LatencyMS float64 `json:"latency_ms"`
	// XRoadID and RequestHash identify the exchange in the message logs.
	XRoadID     string `json:"x_road_id"`
	RequestHash string `json:"request_hash,omitempty"`
	// Status is the HTTP status; Error the r1 error or transport error.
	Status int    `json:"status"`
	Error  string `json:"error,omitempty"`
}

// Sample is one item of the suite with its exchanges and scores.
type Sample struct {
	ID          string `json:"id"`
	Recipe      string `json:"recipe"`
	InputDigest string `json:"input_digest"`
	// Input is the prompt as sent (its SHA-256 is InputDigest).
	Input   string   `json:"input"`
	Targets []string `json:"targets"`
	Calls   []Call   `json:"calls"`
	// Scores are the sample's own scores, by metric.
	Scores map[string]float64 `json:"scores,omitempty"`
	// Error, when set, says why the sample could not be scored.
	Error string `json:"error,omitempty"`
}

// Failed reports whether an exchange of the sample failed.
func (s *Sample) Failed() bool {
	for _, c := range s.Calls {
		if c.Error != "" {
			return true
		}
	}
	return false
}

// ScoreSample turns a sample's calls into the scorers' input.
func (s *Sample) ScoreSample() score.Sample {
	out := score.Sample{ID: s.ID, Input: s.Input, Targets: s.Targets, Variants: map[string]string{}}
	for _, c := range s.Calls {
		switch {
		case c.Role == "answer":
			out.Answer = c.Answer
			out.Latency = time.Duration(c.LatencyMS * float64(time.Millisecond))
		case strings.HasPrefix(c.Role, "variant/"):
			out.Variants[strings.TrimPrefix(c.Role, "variant/")] = c.Answer
		case strings.HasPrefix(c.Role, "repeat/"):
			out.Repeats = append(out.Repeats, c.Answer)
		}
	}
	return out
}

// Result is a finished run.
type Result struct {
	Started, Finished time.Time
	// Samples are in suite order, one per item of the recipes run.
	Samples []Sample
	// Resumed counts the samples taken from the progress file.
	Resumed int
	// Exchanges counts the calls made by this run.
	Exchanges int
}

// header is the first line of a progress file.
type header struct {
	Suite   string    `json:"suite_digest"`
	Service string    `json:"service"`
	Client  string    `json:"client"`
	Started time.Time `json:"started"`
}

// Run sends every item of the suite's recipes (or of opts.Recipes) to
// the service and returns the samples. A sample whose exchange failed
// is kept with its error (and left out of the progress file, so a
// resumed run tries it again).
func Run(ctx context.Context, s *suite.Suite, o Options) (*Result, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	type job struct {
		i    int
		plan suite.Plan
		it   suite.Item
	}
	var jobs []job
	for _, r := range s.Recipes {
		if len(o.Recipes) > 0 && !slices.Contains(o.Recipes, r.ID) {
			continue
		}
		sc, err := r.Scorers()
		if err != nil {
			return nil, err
		}
		plan := r.Plan(sc)
		for _, it := range s.Items(r) {
			jobs = append(jobs, job{i: len(jobs), plan: plan, it: it})
		}
	}
	for _, want := range o.Recipes {
		if !slices.ContainsFunc(s.Recipes, func(r *suite.Recipe) bool { return r.ID == want }) {
			return nil, fmt.Errorf("run: the suite has no recipe %q", want)
		}
	}
	res := &Result{Started: time.Now().UTC(), Samples: make([]Sample, len(jobs))}
	done := map[string]Sample{}
	var prog *progress
	if o.ProgressFile != "" {
		var err error
		prog, done, err = openProgress(o.ProgressFile, header{Suite: s.Lock.Suite, Service: o.Service, Client: o.Client, Started: res.Started})
		if err != nil {
			return nil, err
		}
		defer prog.close()
		res.Started = prog.started
	}
	if o.RunID == "" {
		o.RunID = s.Lock.Suite[:12] + "-" + res.Started.Format("20060102T150405")
	}
	var todo []job
	for _, j := range jobs {
		if smp, ok := done[j.it.ID]; ok && smp.InputDigest == j.it.InputDigest {
			res.Samples[j.i] = smp
			res.Resumed++
			continue
		}
		todo = append(todo, j)
	}
	var (
		mu    sync.Mutex
		count = res.Resumed
		first error
	)
	if o.OnSample != nil {
		o.OnSample(count, len(jobs))
	}
	ch := make(chan job)
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range ch {
				smp, n := o.sample(ctx, j.it, j.plan)
				mu.Lock()
				res.Samples[j.i] = smp
				res.Exchanges += n
				count++
				if prog != nil && !smp.Failed() {
					if err := prog.add(smp); err != nil && first == nil {
						first = err
					}
				}
				if o.OnSample != nil {
					o.OnSample(count, len(jobs))
				}
				mu.Unlock()
			}
		}()
	}
	var tick <-chan time.Time
	if o.Rate > 0 {
		t := time.NewTicker(time.Duration(float64(time.Second) / o.Rate))
		defer t.Stop()
		tick = t.C
	}
feed:
	for k, j := range todo {
		if tick != nil && k > 0 {
			select {
			case <-tick:
			case <-ctx.Done():
				break feed
			}
		}
		select {
		case ch <- j:
		case <-ctx.Done():
			break feed
		}
	}
	close(ch)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("run: %w (finished samples are in the progress file)", err)
	}
	if first != nil {
		return nil, fmt.Errorf("run: progress file: %w", first)
	}
	res.Finished = time.Now().UTC()
	return res, nil
}

func (o *Options) defaults() error {
	if o.Path == "" {
		o.Path = "/"
	}
	if o.InputField == "" {
		o.InputField = "text"
	}
	if o.AnswerField == "" {
		o.AnswerField = "label"
	}
	if o.VersionField == "" {
		o.VersionField = "model_version"
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 60 * time.Second}
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 1
	}
	if _, err := url.Parse(o.GatewayURL); err != nil || o.GatewayURL == "" {
		return fmt.Errorf("run: gateway URL %q is not a URL", o.GatewayURL)
	}
	if _, err := ident.ParseSubsystem(o.Client); err != nil {
		return fmt.Errorf("run: client: %w", err)
	}
	if _, err := ident.ParseService(o.Service); err != nil {
		return fmt.Errorf("run: service: %w", err)
	}
	if o.Rate < 0 {
		return errors.New("run: rate must not be negative")
	}
	return nil
}

// sample makes the exchanges of one item: the answer, the perturbed
// variants and the repeats. It returns the number of exchanges made.
func (o *Options) sample(ctx context.Context, it suite.Item, plan suite.Plan) (Sample, int) {
	smp := Sample{ID: it.ID, Recipe: it.Recipe, InputDigest: it.InputDigest, Input: it.Prompt, Targets: it.Targets}
	call := func(role, prompt string) {
		smp.Calls = append(smp.Calls, o.call(ctx, it, role, prompt))
	}
	call("answer", it.Prompt)
	for _, p := range plan.Variants {
		call("variant/"+p.Name, p.Apply(it.Prompt, it.Seed()))
	}
	for k := range plan.Repeats {
		call(fmt.Sprintf("repeat/%d", k+1), it.Prompt)
	}
	return smp, len(smp.Calls)
}

// RequestBody is the body sent for a text prompt: a JSON object with the
// prompt in field. (An image recipe's body is the image its prompt
// names.)
func RequestBody(field, prompt string) []byte {
	b, _ := json.Marshal(map[string]string{field: prompt})
	return b
}

// MaxResponse bounds a response body.
const MaxResponse = 1 << 20

func (o *Options) call(ctx context.Context, it suite.Item, role, prompt string) Call {
	sum := sha256.Sum256([]byte(prompt))
	c := Call{Role: role, InputDigest: hex.EncodeToString(sum[:]), XRoadID: strings.ReplaceAll(o.RunID+"/"+it.ID+"/"+role, "/", ".")}
	sid, _ := ident.ParseService(o.Service)
	u := strings.TrimSuffix(o.GatewayURL, "/") + "/r1/" + sid.Escaped() + o.Path
	reqBody, ctype := RequestBody(o.InputField, prompt), "application/json"
	if it.Image != nil {
		// An image recipe's input names the image; the image is the body.
		reqBody, ctype = it.Image, it.ImageType
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(reqBody))
	if err != nil {
		c.Error = err.Error()
		return c
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set(r1.HeaderClient, o.Client)
	req.Header.Set(r1.HeaderID, c.XRoadID)
	if o.Purpose != "" {
		req.Header.Set("X-Road-Purpose", o.Purpose)
	}
	start := time.Now()
	resp, err := o.HTTP.Do(req)
	if err != nil {
		c.Error = err.Error()
		return c
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
	c.LatencyMS = float64(time.Since(start).Microseconds()) / 1000
	c.Status, c.RequestHash = resp.StatusCode, resp.Header.Get(r1.HeaderRequestHash)
	c.ModelCard = resp.Header.Get(r1.HeaderAIModelCard)
	if id := resp.Header.Get(r1.HeaderID); id != "" {
		c.XRoadID = id
	}
	switch {
	case err != nil:
		c.Error = fmt.Sprintf("read the response: %v", err)
		return c
	case len(body) > MaxResponse:
		c.Error = fmt.Sprintf("the response is longer than %d bytes", MaxResponse)
		return c
	}
	c.ResponseBody = string(body)
	if resp.StatusCode != http.StatusOK {
		c.Error = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, clip(strings.TrimSpace(string(body)), 300))
		return c
	}
	c.Answer, c.ModelVersion, err = Answer(body, o.AnswerField, o.VersionField)
	if err != nil {
		c.Error = err.Error()
	}
	return c
}

// Answer extracts the answer and the model version from a response
// body: the string fields answerField and versionField of a JSON object.
func Answer(body []byte, answerField, versionField string) (answer, version string, err error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return "", "", fmt.Errorf("the response is not a JSON object: %w", err)
	}
	raw, ok := m[answerField]
	if !ok {
		return "", "", fmt.Errorf("the response has no %q field", answerField)
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return "", "", fmt.Errorf("the response's %q is not a string", answerField)
	}
	if raw, ok := m[versionField]; ok {
		json.Unmarshal(raw, &version)
	}
	return answer, version, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
