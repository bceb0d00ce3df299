package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ai/report"
	"github.com/sampan-exchange/sampan/ai/runner"
	"github.com/sampan-exchange/sampan/ai/suite"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/sandbox"
)

// AICmd groups the AI evaluation commands.
type AICmd struct {
	Evaluate       AIEvaluateCmd       `cmd:"" help:"Run an evaluation suite against an AI service through the exchange; write a signed, time-stamped report."`
	VerifyReport   AIVerifyReportCmd   `cmd:"" name:"verify-report" help:"Check an evaluation report offline; exit 0 when all holds."`
	Evidence       AIEvidenceCmd       `cmd:"" name:"export-evidence" help:"Write the evidence bundle of every exchange of a report from the evaluator gateway's log."`
	Register       AIRegisterCmd       `cmd:"" help:"Register an AI service's model card and risk classification with the authority (admin)."`
	SubmitReport   AISubmitReportCmd   `cmd:"" name:"submit-report" help:"Submit a signed evaluation report to the authority (admin); it is accepted when it verifies, is signed by an accredited testing body, is for the registered model version and model card, and passed."`
	WithdrawReport AIWithdrawReportCmd `cmd:"" name:"withdraw-report" help:"Withdraw an accepted evaluation report (admin), with the reason; the service's gate closes again if it was the report in force."`
	Services       AIServicesCmd       `cmd:"" help:"List the registered AI services, their tier in force, evaluations and the accredited testing bodies."`
	TestingBodies  AITestingBodiesCmd  `cmd:"" name:"testing-bodies" help:"Set the accredited AI testing bodies (admin; replaces the list)."`
	ModelCard      AIModelCardCmd      `cmd:"" name:"model-card" help:"Export a registered AI service's model card as a Hugging Face model card or a CycloneDX ML-BOM."`
}

// AIEvidenceCmd exports the evidence of a report's exchanges.
type AIEvidenceCmd struct {
	Dir    string `arg:"" help:"The report directory." type:"existingdir"`
	LogDir string `name:"log-dir" help:"The evaluator gateway's data directory (or its log directory)." required:"" type:"existingdir"`
	Out    string `help:"Directory for the bundles (created; must be empty)." required:"" type:"path"`
	indexFlag
}

// Run writes the bundles.
func (c *AIEvidenceCmd) Run(g *Globals) error {
	return c.run(context.Background(), os.Stdout)
}

func (c *AIEvidenceCmd) run(ctx context.Context, w io.Writer) error {
	if entries, err := os.ReadDir(c.Out); err == nil && len(entries) > 0 {
		return fmt.Errorf("--out: %s is not empty", c.Out)
	}
	b, err := os.ReadFile(filepath.Join(c.Dir, report.ReportFile))
	if err != nil {
		return err
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return fmt.Errorf("%s: %w", report.ReportFile, err)
	}
	n, err := report.ExportEvidence(ctx, &rep, logDirOf(c.LogDir), c.IndexDSN, c.Out)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "evidence of %d exchanges written to %s; check with: sampan ai verify-report %s --bundles %s --ca …\n", n, c.Out, c.Dir, c.Out)
	return nil
}

// AIEvaluateCmd runs a suite against a service as an evaluator client.
type AIEvaluateCmd struct {
	Suite     string   `help:"The suite directory (Moonshot layout)." required:"" type:"existingdir"`
	SuiteFile string   `name:"suite-file" help:"Sampan's suite file in the directory." default:"suite.json"`
	Recipe    []string `help:"Run only these recipes (repeatable; default all)."`
	Service   string   `help:"The AI service, INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE." required:""`
	Sandbox   string   `help:"A sandbox directory: take the client, gateway, purpose, signing key and certificate, TSA and its CA from its sandbox.json's ai_services entry for --service." type:"existingdir"`
	Client    string   `help:"The evaluator's client subsystem (X-Road-Client)."`
	Gateway   string   `help:"The client side of the evaluator's gateway (http://host:port)."`
	Purpose   string   `help:"The purpose to declare (X-Road-Purpose)."`
	Path      string   `help:"Path under the service to POST to." default:"/"`
	Input     string   `name:"input-field" help:"JSON field of the request carrying the prompt." default:"text"`
	Answer    string   `name:"answer-field" help:"JSON field of the response carrying the answer." default:"label"`
	Version   string   `name:"version-field" help:"JSON field of the response naming the model version." default:"model_version"`
	SignKey   string   `name:"sign-key" help:"The testing body's member signing key (PEM), e.g. its gateway's sign/<member>.key." type:"path"`
	SignCert  string   `name:"sign-cert" help:"Its signing certificate (PEM)." type:"path"`
	TSA       string   `help:"The authority's time-stamping URL (https://…/tsa)."`
	TSACA     string   `name:"tsa-ca" help:"The CA of the authority's TLS, to trust when reaching the TSA (default: the system's)." type:"path"`
	Rate      float64  `help:"Samples started per second (0: no limit)." default:"0"`
	Conc      int      `name:"concurrency" help:"Samples in flight at once." default:"4"`
	Progress  string   `help:"Progress file; a rerun with it skips the samples done (default OUT/progress.jsonl)." type:"path"`
	Out       string   `help:"Directory for the report." required:"" type:"path"`
}

// Run evaluates, signs and writes.
func (c *AIEvaluateCmd) Run(g *Globals) error {
	ctx, stop := signalContext()
	defer stop()
	return c.run(ctx, os.Stderr)
}

// fromSandbox fills in what the flags leave empty from the sandbox's
// manifest entry for the service.
func (c *AIEvaluateCmd) fromSandbox() error {
	if c.Sandbox == "" {
		return nil
	}
	var m sandbox.Manifest
	b, err := os.ReadFile(filepath.Join(c.Sandbox, "sandbox.json"))
	if err != nil {
		return fmt.Errorf("--sandbox: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("--sandbox: sandbox.json: %w", err)
	}
	for _, a := range m.AIServices {
		if a.ID != c.Service {
			continue
		}
		for _, f := range []struct {
			dst *string
			v   string
		}{
			{&c.Client, a.EvaluatorClient}, {&c.Gateway, a.EvaluatorClientURL}, {&c.Purpose, a.Purpose},
			{&c.SignKey, a.SignKeyFile}, {&c.SignCert, a.SignCertFile}, {&c.TSA, a.TSAURL}, {&c.TSACA, a.TSATLSCAFile},
		} {
			if *f.dst == "" {
				*f.dst = f.v
			}
		}
		return nil
	}
	return fmt.Errorf("--sandbox: %s lists no AI service %s", c.Sandbox, c.Service)
}

func (c *AIEvaluateCmd) run(ctx context.Context, w io.Writer) error {
	if err := c.fromSandbox(); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{{"--client", c.Client}, {"--gateway", c.Gateway}, {"--sign-key", c.SignKey}, {"--sign-cert", c.SignCert}, {"--tsa", c.TSA}} {
		if f.v == "" {
			return fmt.Errorf("%s is required (or --sandbox)", f.name)
		}
	}
	key, err := pki.ReadKey(c.SignKey)
	if err != nil {
		return fmt.Errorf("--sign-key: %w", err)
	}
	cert, err := pki.ReadCert(c.SignCert)
	if err != nil {
		return fmt.Errorf("--sign-cert: %w", err)
	}
	member, ok := pki.MemberOf(cert)
	if !ok {
		return errors.New("--sign-cert: names no member")
	}
	hc, err := tsaClient(c.TSACA)
	if err != nil {
		return fmt.Errorf("--tsa-ca: %w", err)
	}
	s, err := suite.Load(os.DirFS(c.Suite), c.SuiteFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return err
	}
	if c.Progress == "" {
		c.Progress = filepath.Join(c.Out, "progress.jsonl")
	}
	bar := newProgressBar(w)
	o := runner.Options{
		GatewayURL: c.Gateway, Client: c.Client, Service: c.Service, Path: c.Path, Purpose: c.Purpose,
		InputField: c.Input, AnswerField: c.Answer, VersionField: c.Version,
		Rate: c.Rate, Concurrency: c.Conc, Recipes: c.Recipe, ProgressFile: c.Progress,
		OnSample: bar.update,
	}
	t0 := time.Now()
	res, err := runner.Run(ctx, s, o)
	bar.finish()
	if err != nil {
		return err
	}
	took := time.Since(t0)
	rep, err := report.Build(s, res, c.Service, report.Evaluator{Member: member, Client: c.Client, GatewayURL: c.Gateway, Purpose: c.Purpose},
		report.Request{Path: c.Path, InputField: c.Input, AnswerField: c.Answer, VersionField: c.Version})
	if err != nil {
		return err
	}
	if err := report.Write(ctx, c.Out, rep, report.Signing{Key: key, Cert: cert, TSAURL: c.TSA, HTTP: hc}); err != nil {
		return err
	}
	ran := len(res.Samples) - res.Resumed
	fmt.Fprintf(w, "%d samples (%d resumed), %d exchanges in %s: %.1f samples/s, %.1f exchanges/s\n",
		len(res.Samples), res.Resumed, res.Exchanges, took.Round(time.Millisecond), float64(ran)/took.Seconds(), float64(res.Exchanges)/took.Seconds())
	printSummary(w, rep)
	fmt.Fprintf(w, "report signed by %s and time-stamped: %s\n", member, c.Out)
	return nil
}

func printSummary(w io.Writer, rep *report.Report) {
	fmt.Fprintf(w, "%s, model version %s, suite %s (%s)\n", rep.Service, rep.ModelVersion, rep.Suite.Name, rep.Suite.Lock.Suite)
	for _, r := range rep.Recipes {
		verdict := "FAIL"
		if r.Pass {
			verdict = "pass"
		}
		var ms []string
		for _, res := range r.Results {
			ms = append(ms, fmt.Sprintf("%s %.3f", res.Metric, res.Value))
		}
		fmt.Fprintf(w, "  %-24s %s  grade %-2s %s (%d samples)\n", r.ID, verdict, r.Grade, strings.Join(ms, ", "), r.Samples)
	}
	verdict := "FAIL"
	if rep.Pass {
		verdict = "PASS"
	}
	fmt.Fprintf(w, "%s (%d samples with failed exchanges)\n", verdict, rep.Errors)
}

// tsaClient reaches the TSA, trusting caFile (the system's CAs when
// empty).
func tsaClient(caFile string) (*http.Client, error) {
	hc := &http.Client{Timeout: 60 * time.Second}
	if caFile != "" {
		pool, err := certPool(caFile)
		if err != nil {
			return nil, err
		}
		hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
	}
	return hc, nil
}

func certPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// progressBar draws a bar on a terminal and prints plain lines (every
// tenth of the way) otherwise.
type progressBar struct {
	w     io.Writer
	tty   bool
	start time.Time
	last  int // tenths printed
}

func newProgressBar(w io.Writer) *progressBar {
	b := &progressBar{w: w, start: time.Now(), last: -1}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			b.tty = true
		}
	}
	return b
}

func (b *progressBar) update(done, total int) {
	if total == 0 {
		return
	}
	rate := float64(done) / max(time.Since(b.start).Seconds(), 1e-3)
	if b.tty {
		const width = 30
		n := done * width / total
		fmt.Fprintf(b.w, "\r[%s%s] %d/%d %.1f samples/s ", strings.Repeat("#", n), strings.Repeat(".", width-n), done, total, rate)
		return
	}
	if t := done * 10 / total; t != b.last {
		b.last = t
		fmt.Fprintf(b.w, "%d/%d samples (%.1f/s)\n", done, total, rate)
	}
}

func (b *progressBar) finish() {
	if b.tty {
		fmt.Fprintln(b.w)
	}
}

// AIVerifyReportCmd checks a report.
type AIVerifyReportCmd struct {
	Dir       string `arg:"" help:"The report directory." type:"existingdir"`
	CA        string `help:"The instance CA (PEM) the signer's and the TSA's certificates chain to." required:"" type:"existingfile"`
	Suite     string `help:"The suite directory: its lock must be the report's and its items the report's samples." type:"existingdir"`
	SuiteFile string `name:"suite-file" help:"Sampan's suite file in the suite directory." default:"suite.json"`
	LogDir    string `name:"log-dir" help:"The evaluator gateway's data directory (or its log directory): every exchange must be in its log." type:"existingdir" xor:"evidence"`
	Bundles   string `help:"Instead of --log-dir: the exchanges' evidence bundles (sampan ai export-evidence)." type:"existingdir" xor:"evidence"`
	indexFlag
}

// Run verifies and says what was checked.
func (c *AIVerifyReportCmd) Run(g *Globals) error {
	return c.run(context.Background(), os.Stdout)
}

func (c *AIVerifyReportCmd) run(ctx context.Context, w io.Writer) error {
	pool, err := certPool(c.CA)
	if err != nil {
		return fmt.Errorf("--ca: %w", err)
	}
	o := report.VerifyOptions{Roots: pool, SuiteFile: c.SuiteFile, LogDSN: c.IndexDSN}
	if c.Suite != "" {
		o.Suite = os.DirFS(c.Suite)
	}
	if c.LogDir != "" {
		o.LogDir = logDirOf(c.LogDir)
	}
	o.Bundles = c.Bundles
	v, err := report.Verify(ctx, c.Dir, o)
	if err != nil {
		return fmt.Errorf("report %s: %w", c.Dir, err)
	}
	fmt.Fprintf(w, "report %s: signed by %s, time-stamped %s; %d samples, aggregates recomputed", c.Dir, v.Signer, v.StampedAt.Format(time.RFC3339), len(v.Report.Samples))
	if v.SuiteChecked {
		fmt.Fprint(w, "; suite lock and items match")
	} else {
		fmt.Fprint(w, "; suite not checked (no --suite)")
	}
	if v.LogChecked {
		fmt.Fprintf(w, "; %d exchanges in the evaluator gateway's log", v.Exchanges)
	} else {
		fmt.Fprint(w, "; log not checked (no --log-dir or --bundles)")
	}
	fmt.Fprintln(w)
	printSummary(w, v.Report)
	return nil
}
