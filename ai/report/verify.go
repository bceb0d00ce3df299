package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ai/runner"
	"github.com/sampan-exchange/sampan/ai/score"
	"github.com/sampan-exchange/sampan/ai/suite"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
)

// VerifyOptions say what to check a report against.
type VerifyOptions struct {
	// Roots are the instance CA(s) the signer's and the TSA's
	// certificates must chain to (required).
	Roots *x509.CertPool
	// Suite, when set, is the suite directory (SuiteFile in it, default
	// "suite.json"): its lock must be the report's, and every item of
	// the recipes run must have exactly one sample.
	Suite     fs.FS
	SuiteFile string
	// LogDir, when set, is the evaluator gateway's message log (LogDSN
	// its PostgreSQL index, if any): every exchange of every sample must
	// be a consumer-side record there, included in its signed checkpoint,
	// with the client, service, status and body digests the report
	// implies.
	LogDir, LogDSN string
	// Bundles, instead of LogDir, is a directory of the exchanges'
	// evidence bundles as ExportEvidence writes them.
	Bundles string
}

// Verified is what Verify established.
type Verified struct {
	Report *Report
	// Signer is the member whose key signed the report; StampedAt the
	// time-stamp's time.
	Signer    string
	StampedAt time.Time
	// SuiteChecked and LogChecked say whether the suite and the log were
	// checked; Exchanges counts the exchanges found in the log.
	SuiteChecked, LogChecked bool
	Exchanges                int
}

// clockSkew is how far the evaluator's and its gateway's clocks may run
// ahead of the TSA's (whose tokens are also to the second).
const clockSkew = time.Minute

// MaxReportSize bounds the report file.
const MaxReportSize = 256 << 20

// Verify checks a report directory offline: the time-stamp over the
// signature, the signature and the signer's certificate at the stamped
// time, that the signer is the evaluator the report names, the inputs'
// digests and perturbations, the aggregates recomputed from the
// samples, the suite lock (against the suite when given) and each
// exchange in the evaluator gateway's log (when given). It returns the
// first fault.
func Verify(ctx context.Context, dir string, o VerifyOptions) (*Verified, error) {
	if o.Roots == nil {
		return nil, errors.New("verify report: no CA to check the signer against")
	}
	read := func(name string, max int64) ([]byte, error) {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("verify report: %w", err)
		}
		if fi.Size() > max {
			return nil, fmt.Errorf("verify report: %s is larger than %d bytes", name, max)
		}
		return os.ReadFile(p)
	}
	body, err := read(ReportFile, MaxReportSize)
	if err != nil {
		return nil, err
	}
	sig, err := read(SignatureFile, 64<<10)
	if err != nil {
		return nil, err
	}
	signerPEM, err := read(SignerFile, 64<<10)
	if err != nil {
		return nil, err
	}
	tok, err := read(TokenFile, 64<<10)
	if err != nil {
		return nil, err
	}
	v, err := verifySigned(ctx, Files{Report: body, Signature: sig, Signer: signerPEM, Token: tok}, o)
	if err != nil {
		return nil, err
	}
	rep := v.Report
	if err := checkViews(rep, dir); err != nil {
		return nil, err
	}
	if err := verifyAgainst(ctx, v, o); err != nil {
		return nil, err
	}
	return v, nil
}

// Files are a report's signed files, as Write leaves them: report.json,
// report.jws, signer.pem and report.tsr.
type Files struct {
	Report, Signature, Signer, Token []byte
}

// VerifyFiles is Verify for a report held in memory, without its views
// (which carry no signature): what an authority receiving a report
// checks.
func VerifyFiles(ctx context.Context, f Files, o VerifyOptions) (*Verified, error) {
	if o.Roots == nil {
		return nil, errors.New("verify report: no CA to check the signer against")
	}
	if len(f.Report) > MaxReportSize {
		return nil, fmt.Errorf("verify report: %s is larger than %d bytes", ReportFile, MaxReportSize)
	}
	v, err := verifySigned(ctx, f, o)
	if err != nil {
		return nil, err
	}
	if err := verifyAgainst(ctx, v, o); err != nil {
		return nil, err
	}
	return v, nil
}

// verifySigned checks the time-stamp, the signature, the signer and the
// report's content.
func verifySigned(ctx context.Context, f Files, o VerifyOptions) (*Verified, error) {
	body, sig, signerPEM, tok := f.Report, f.Signature, f.Signer, f.Token
	v := &Verified{}

	// The time-stamp dates the signature.
	ts, err := msglog.ParseToken(tok)
	if err != nil {
		return nil, fmt.Errorf("verify report: time-stamp %s does not verify: %w", TokenFile, err)
	}
	sum := sha256.Sum256(sig)
	if !bytes.Equal(ts.HashedMessage, sum[:]) {
		return nil, fmt.Errorf("verify report: time-stamp %s does not cover %s", TokenFile, SignatureFile)
	}
	if len(ts.Certificates) == 0 {
		return nil, fmt.Errorf("verify report: time-stamp %s carries no certificate", TokenFile)
	}
	if err := pki.VerifyChain(ts.Certificates[0], o.Roots, x509.ExtKeyUsageTimeStamping, ts.Time); err != nil {
		return nil, fmt.Errorf("verify report: time-stamp %s: the TSA's certificate: %w", TokenFile, err)
	}
	v.StampedAt = ts.Time.UTC()

	// The signature, by a member signing certificate of the instance CA
	// valid at the stamped time.
	cert, err := pki.ParseCertPEM(signerPEM)
	if err != nil {
		return nil, fmt.Errorf("verify report: %s: %w", SignerFile, err)
	}
	member, err := pki.VerifySigningCert(cert, o.Roots, ts.Time)
	if err != nil {
		return nil, fmt.Errorf("verify report: signer %s: %w", SignerFile, err)
	}
	if err := pki.VerifyDetached(strings.TrimSpace(string(sig)), body, cert.PublicKey); err != nil {
		return nil, fmt.Errorf("verify report: the signature %s does not verify over %s (edited after signing?): %w", SignatureFile, ReportFile, err)
	}
	v.Signer = member

	rep, err := decode(body)
	if err != nil {
		return nil, err
	}
	v.Report = rep
	if rep.Evaluator.Member != member {
		return nil, fmt.Errorf("verify report: signed by %s, but the report names the evaluator %s", member, rep.Evaluator.Member)
	}
	if c, err := ident.ParseSubsystem(rep.Evaluator.Client); err != nil || c.Member().String() != member {
		return nil, fmt.Errorf("verify report: the evaluator client %q is not a subsystem of the signer %s", rep.Evaluator.Client, member)
	}
	if rep.FinishedAt.Before(rep.StartedAt) || rep.FinishedAt.After(v.StampedAt.Add(clockSkew)) {
		return nil, fmt.Errorf("verify report: the run (%s to %s) did not end before its time-stamp (%s)", rep.StartedAt.Format(time.RFC3339), rep.FinishedAt.Format(time.RFC3339), v.StampedAt.Format(time.RFC3339))
	}
	if err := checkContent(rep, body); err != nil {
		return nil, err
	}
	return v, nil
}

// verifyAgainst checks a verified report against the suite and the log,
// as o asks.
func verifyAgainst(ctx context.Context, v *Verified, o VerifyOptions) error {
	rep := v.Report
	if o.Suite != nil {
		if err := checkSuite(rep, o.Suite, o.SuiteFile); err != nil {
			return err
		}
		v.SuiteChecked = true
	}
	if o.LogDir != "" || o.Bundles != "" {
		n, err := checkLog(ctx, rep, o.LogDir, o.LogDSN, o.Bundles, o.Roots, v.StampedAt)
		if err != nil {
			return err
		}
		v.LogChecked, v.Exchanges = true, n
	}
	return nil
}

func decode(b []byte) (*Report, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rep Report
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("verify report: %s: %w", ReportFile, err)
	}
	if rep.Format != Format {
		return nil, fmt.Errorf("verify report: %s: format %q, want %q", ReportFile, rep.Format, Format)
	}
	return &rep, nil
}

// checkContent checks what the report says of itself: the lock's
// digest, inputs and their perturbations, answers read from the
// responses, and the aggregates recomputed from the samples.
func checkContent(rep *Report, body []byte) error {
	if got := lockDigest(rep.Suite.Lock.Files); got != rep.Suite.Lock.Suite {
		return fmt.Errorf("verify report: the suite lock's digest %s is not that of its files (%s)", rep.Suite.Lock.Suite, got)
	}
	for d, h := range rep.Suite.Datasets {
		if rep.Suite.Lock.Files[suite.DatasetDir+"/"+d+".json"] != h {
			return fmt.Errorf("verify report: dataset %s's digest is not the lock's", d)
		}
	}
	if v := distinct(rep.Samples, func(c runner.Call) string { return c.ModelVersion }); v != rep.ModelVersion {
		return fmt.Errorf("verify report: the report names model version %q, its answers %q", rep.ModelVersion, v)
	}
	if v := answeredCards(rep.Samples); v != rep.ModelCardDigest {
		return fmt.Errorf("verify report: the report names model card %q, its answers %q", rep.ModelCardDigest, v)
	}
	perturb := map[string]score.Perturbation{}
	for _, p := range score.Perturbations {
		perturb[p.Name] = p
	}
	seen := map[string]bool{}
	for _, smp := range rep.Samples {
		if seen[smp.ID] {
			return fmt.Errorf("verify report: sample %s appears twice", smp.ID)
		}
		seen[smp.ID] = true
		if digest(smp.Input) != smp.InputDigest {
			return fmt.Errorf("verify report: sample %s: its input is not the one its digest names", smp.ID)
		}
		it := suite.Item{InputDigest: smp.InputDigest}
		for _, c := range smp.Calls {
			want := smp.InputDigest
			if name, ok := strings.CutPrefix(c.Role, "variant/"); ok {
				p, ok := perturb[name]
				if !ok {
					return fmt.Errorf("verify report: sample %s: unknown perturbation %q", smp.ID, name)
				}
				want = digest(p.Apply(smp.Input, it.Seed()))
			}
			if c.InputDigest != want {
				return fmt.Errorf("verify report: sample %s, %s: the input sent is not the one the suite implies", smp.ID, c.Role)
			}
			if c.Error == "" {
				a, ver, err := runner.Answer([]byte(c.ResponseBody), rep.Request.AnswerField, rep.Request.VersionField)
				if err != nil || a != c.Answer || ver != c.ModelVersion {
					return fmt.Errorf("verify report: sample %s, %s: the answer %q is not the one in the response received", smp.ID, c.Role, c.Answer)
				}
			}
		}
	}
	again, err := decode(body)
	if err != nil {
		return err
	}
	if err := again.Score(); err != nil {
		return fmt.Errorf("verify report: %w", err)
	}
	for i, r := range again.Recipes {
		was := rep.Recipes[i]
		a, _ := json.Marshal(r)
		b, _ := json.Marshal(was)
		if !bytes.Equal(a, b) {
			return fmt.Errorf("verify report: recipe %s: the recorded results are not those recomputed from the samples (recorded %s, recomputed %s)", r.ID, results(was), results(r))
		}
	}
	a, _ := again.Marshal()
	if !bytes.Equal(a, body) {
		return errors.New("verify report: the per-sample scores, error count or verdict are not those recomputed from the samples")
	}
	return nil
}

func results(r Recipe) string {
	var parts []string
	for _, res := range r.Results {
		parts = append(parts, fmt.Sprintf("%s=%.4g/%d", res.Metric, res.Value, res.Count))
	}
	return fmt.Sprintf("%s grade %q pass %v", strings.Join(parts, " "), r.Grade, r.Pass)
}

func digest(s string) string {
	d := sha256.Sum256([]byte(s))
	return hex.EncodeToString(d[:])
}

// lockDigest is suite.Lock's digest: SHA-256 of "<hex>  <path>\n" lines
// sorted by path.
func lockDigest(files map[string]string) string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(files[n] + "  " + n + "\n")
	}
	return digest(b.String())
}

// checkSuite checks the report against the suite: the same lock, the
// same recipe definitions and exactly the suite's items.
func checkSuite(rep *Report, fsys fs.FS, name string) error {
	if name == "" {
		name = "suite.json"
	}
	s, err := suite.Load(fsys, name)
	if err != nil {
		return fmt.Errorf("verify report: %w", err)
	}
	if err := s.Lock.Check(rep.Suite.Lock); err != nil {
		return fmt.Errorf("verify report: the suite is not the one run: %w", err)
	}
	samples := map[string]runner.Sample{}
	for _, smp := range rep.Samples {
		samples[smp.ID] = smp
	}
	for _, rr := range rep.Recipes {
		var r *suite.Recipe
		for _, x := range s.Recipes {
			if x.ID == rr.ID {
				r = x
			}
		}
		if r == nil {
			return fmt.Errorf("verify report: recipe %s is not in the suite", rr.ID)
		}
		a, _ := json.Marshal(Recipe{ID: r.ID, Name: r.Name, Metrics: r.Metrics, Settings: r.Settings, GradingScale: r.GradingScale})
		b, _ := json.Marshal(Recipe{ID: rr.ID, Name: rr.Name, Metrics: rr.Metrics, Settings: rr.Settings, GradingScale: rr.GradingScale})
		if !bytes.Equal(a, b) {
			return fmt.Errorf("verify report: recipe %s is not defined as in the suite", rr.ID)
		}
		items := s.Items(r)
		for _, it := range items {
			smp, ok := samples[it.ID]
			if !ok {
				return fmt.Errorf("verify report: sample %s of the suite is missing from the report", it.ID)
			}
			if smp.InputDigest != it.InputDigest || !slices.Equal(smp.Targets, it.Targets) {
				return fmt.Errorf("verify report: sample %s: input or targets differ from the suite's", it.ID)
			}
			delete(samples, it.ID)
		}
		if rr.Samples != len(items) {
			return fmt.Errorf("verify report: recipe %s has %d samples, the suite %d", rr.ID, rr.Samples, len(items))
		}
	}
	for id := range samples {
		return fmt.Errorf("verify report: sample %s is not an item of the suite", id)
	}
	return nil
}

// BundleName is the name of the evidence bundle of a sample's call in
// a directory of bundles (ExportEvidence): sample and call index.
func BundleName(sample, call int) string { return fmt.Sprintf("%05d-%d", sample, call) }

// ExportEvidence writes the evidence bundle of every exchange of the
// report from the evaluator gateway's log into out/BundleName(i, j), so
// that a report can be checked without the log (VerifyOptions.Bundles).
func ExportEvidence(ctx context.Context, rep *Report, logDir, dsn, out string) (int, error) {
	n := 0
	for i, smp := range rep.Samples {
		for j, c := range smp.Calls {
			sel := msglog.Selection{XRoadID: c.XRoadID, RequestHash: c.RequestHash, Side: "consumer"}
			if err := msglog.Export(ctx, logDir, dsn, sel, filepath.Join(out, BundleName(i, j))); err != nil {
				return n, fmt.Errorf("export evidence of sample %s, %s (X-Road-Id %s): %w", smp.ID, c.Role, c.XRoadID, err)
			}
			n++
		}
	}
	return n, nil
}

// checkLog finds every exchange of the report in the evaluator
// gateway's log, with an evidence bundle as `sampan log export` writes
// it (or, when bundles is set, takes the bundle from there), checks the
// bundle (inclusion in the signed checkpoint, both message signatures,
// the signers) and compares the record with the report.
func checkLog(ctx context.Context, rep *Report, logDir, dsn, bundles string, roots *x509.CertPool, stampedAt time.Time) (int, error) {
	tmp, err := os.MkdirTemp("", "sampan-verify-report-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	n := 0
	for i, smp := range rep.Samples {
		it := suite.Item{InputDigest: smp.InputDigest}
		for j, c := range smp.Calls {
			where := fmt.Sprintf("sample %s, %s (X-Road-Id %s)", smp.ID, c.Role, c.XRoadID)
			if c.RequestHash == "" {
				return n, fmt.Errorf("verify report: %s: no request hash: the exchange did not complete", where)
			}
			out := filepath.Join(bundles, BundleName(i, j))
			if bundles == "" {
				out = filepath.Join(tmp, fmt.Sprint(n))
				err := msglog.Export(ctx, logDir, dsn, msglog.Selection{XRoadID: c.XRoadID, RequestHash: c.RequestHash, Side: "consumer"}, out)
				if err != nil {
					return n, fmt.Errorf("verify report: %s: the exchange is not in the evaluator gateway's log: %w", where, err)
				}
			}
			b, err := msglog.VerifyBundle(out)
			if err != nil {
				return n, fmt.Errorf("verify report: %s: its evidence does not verify: %w", where, err)
			}
			if b.Record.XRoadID != c.XRoadID || b.Record.RequestHash != c.RequestHash || b.Record.Side != "consumer" {
				return n, fmt.Errorf("verify report: %s: the evidence is of another exchange", where)
			}
			if b.Record.ResponseAt.After(stampedAt.Add(clockSkew)) {
				return n, fmt.Errorf("verify report: %s: the exchange ended at %s, after the report's time-stamp", where, b.Record.ResponseAt.Format(time.RFC3339Nano))
			}
			rec := b.Record
			if err := checkSigners(out, rec, rep, roots); err != nil {
				return n, fmt.Errorf("verify report: %s: %w", where, err)
			}
			prompt := smp.Input
			if name, ok := strings.CutPrefix(c.Role, "variant/"); ok {
				for _, p := range score.Perturbations {
					if p.Name == name {
						prompt = p.Apply(smp.Input, it.Seed())
					}
				}
			}
			switch {
			case rec.Client != rep.Evaluator.Client:
				return n, fmt.Errorf("verify report: %s: the log's client is %s, not the evaluator %s", where, rec.Client, rep.Evaluator.Client)
			case rec.Service != rep.Service:
				return n, fmt.Errorf("verify report: %s: the log's service is %s, not %s", where, rec.Service, rep.Service)
			case rec.Status != c.Status:
				return n, fmt.Errorf("verify report: %s: the log's status is %d, the report's %d", where, rec.Status, c.Status)
			case rec.RequestBodySHA256 != requestDigest(rep, smp.Recipe, prompt):
				return n, fmt.Errorf("verify report: %s: the request the log holds is not the sample's input", where)
			case rec.ResponseBodySHA256 != digest(c.ResponseBody):
				return n, fmt.Errorf("verify report: %s: the response the log holds is not the one the report records", where)
			}
			if bundles == "" {
				os.RemoveAll(out)
			}
			n++
		}
	}
	return n, nil
}

// checkViews regenerates each view present in dir from the verified
// report and compares: a view edited to say something else fails.
func checkViews(rep *Report, dir string) error {
	views, err := rep.Views()
	if err != nil {
		return fmt.Errorf("verify report: %w", err)
	}
	for name, want := range views {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("verify report: %w", err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("verify report: %s is not the view of the signed %s (edited?)", name, ReportFile)
		}
	}
	return nil
}

// checkSigners checks who signed an exchange, from the certificates in
// its evidence bundle: the request by the evaluator's member and the
// response by the service provider's member, both with signing
// certificates of the instance CA valid when the exchange happened. The
// provider's signature over the response digest is what the testing
// body cannot make itself.
func checkSigners(bundle string, rec *msglog.Record, rep *Report, roots *x509.CertPool) error {
	sid, err := ident.ParseService(rep.Service)
	if err != nil {
		return fmt.Errorf("service: %w", err)
	}
	for _, s := range []struct{ file, want, what string }{
		{"request-signer.pem", rep.Evaluator.Member, "request"},
		{"response-signer.pem", sid.Provider.Member().String(), "response"},
	} {
		b, err := os.ReadFile(filepath.Join(bundle, s.file))
		if err != nil {
			return fmt.Errorf("the %s signer's certificate is not in the log: %w", s.what, err)
		}
		c, err := pki.ParseCertPEM(b)
		if err != nil {
			return fmt.Errorf("the %s signer's certificate: %w", s.what, err)
		}
		m, err := pki.VerifySigningCert(c, roots, rec.RequestAt)
		if err != nil {
			return fmt.Errorf("the %s signer: %w", s.what, err)
		}
		if m != s.want {
			return fmt.Errorf("the %s was signed by %s, not %s", s.what, m, s.want)
		}
	}
	return nil
}

// requestDigest is the SHA-256 (hex) of the request body a prompt was
// sent as: the JSON object runner.RequestBody makes, or, for a recipe
// whose input is an image, the image the prompt names, whose digest the
// report's lock holds (a missing one gives "", which matches no record).
func requestDigest(rep *Report, recipe, prompt string) string {
	for _, r := range rep.Recipes {
		if r.ID == recipe && r.Settings.Input == suite.InputImage {
			return rep.Suite.Lock.Files[prompt]
		}
	}
	return digest(string(runner.RequestBody(rep.Request.InputField, prompt)))
}
