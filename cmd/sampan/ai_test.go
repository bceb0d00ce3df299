package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ai/report"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/sandbox"
)

const exampleSuite = "../../ai/suite/testdata/vi-en"

// The scam classifier, v1 and v2, evaluated with the example suite
// through two gateways (the testing body's and MPS's): v1 fails the
// robustness threshold because Vietnamese without diacritics defeats
// it, v2 passes; both reports verify against the suite and the
// evaluator gateway's log, and each kind of tampering is caught.
func TestAIEvaluateThroughTheExchange(t *testing.T) {
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb"), TimestampInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	m := sb.Manifest
	var scams []sandbox.ManifestAIService
	for _, a := range m.AIServices {
		if a.ID != sandbox.OCRService {
			scams = append(scams, a)
		}
	}
	if len(scams) != 2 {
		t.Fatalf("ai_services: %+v", m.AIServices)
	}
	var vn sandbox.ManifestAuthority
	for _, a := range m.Authorities {
		if a.Instance == "VN" {
			vn = a
		}
	}
	evaluate := func(t *testing.T, svc sandbox.ManifestAIService, out string) *report.Report {
		t.Helper()
		var log bytes.Buffer
		c := &AIEvaluateCmd{
			Suite: exampleSuite, SuiteFile: "suite.json", Recipe: []string{"scam-sms-vi-en"},
			Service: svc.ID, Client: svc.EvaluatorClient, Gateway: svc.EvaluatorClientURL, Purpose: svc.Purpose,
			Path: "/", Input: "text", Answer: "label", Version: "model_version",
			SignKey: svc.SignKeyFile, SignCert: svc.SignCertFile,
			TSA: svc.TSAURL, TSACA: svc.TSATLSCAFile,
			Conc: 4, Out: out,
		}
		if svc.ModelVersion == "scam-nb-v1" {
			// The same from the sandbox's manifest.
			c = &AIEvaluateCmd{Suite: exampleSuite, SuiteFile: "suite.json", Recipe: []string{"scam-sms-vi-en"},
				Service: svc.ID, Sandbox: sb.Dir, Path: "/", Input: "text", Answer: "label", Version: "model_version", Conc: 4, Out: out}
		}
		if err := c.run(t.Context(), &log); err != nil {
			t.Fatalf("evaluate %s: %v\n%s", svc.ID, err, log.String())
		}
		t.Logf("evaluate %s:\n%s", svc.ID, log.String())
		b, err := os.ReadFile(filepath.Join(out, report.ReportFile))
		if err != nil {
			t.Fatal(err)
		}
		var rep report.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		return &rep
	}
	verify := func(dir, suiteDir string) error {
		return (&AIVerifyReportCmd{Dir: dir, CA: m.AIServices[0].CAFile, Suite: suiteDir, SuiteFile: "suite.json", LogDir: m.AIServices[0].LogDir}).run(t.Context(), &bytes.Buffer{})
	}
	// verifyEventually waits for the log's checkpoint to cover the
	// run's exchanges.
	verifyEventually := func(t *testing.T, dir string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			err := verify(dir, exampleSuite)
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("verify %s: %v", dir, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	dirs := map[string]string{}
	for _, svc := range scams {
		out := filepath.Join(t.TempDir(), "report")
		rep := evaluate(t, svc, out)
		dirs[svc.ModelVersion] = out
		if rep.ModelVersion != svc.ModelVersion {
			t.Errorf("%s: model version %q, manifest %q", svc.ID, rep.ModelVersion, svc.ModelVersion)
		}
		res := map[string]float64{}
		for _, r := range rep.Recipes[0].Results {
			res[r.Metric] = r.Value
		}
		switch svc.ModelVersion {
		case "scam-nb-v1":
			if rep.Pass || res["robust-no-diacritics"] <= 0.05 {
				t.Errorf("v1 passes or does not drop without diacritics: pass %v, %v", rep.Pass, res)
			}
		case "scam-nb-v2":
			if !rep.Pass || res["robust-no-diacritics"] > 0.05 || res["classification"] < 0.9 {
				t.Errorf("v2 fails: %v", res)
			}
		}
		if rep.Errors != 0 || len(rep.Samples) == 0 {
			t.Errorf("%s: %d errors, %d samples", svc.ID, rep.Errors, len(rep.Samples))
		}
		for _, c := range rep.Samples[0].Calls {
			if c.XRoadID == "" || c.RequestHash == "" || c.Status != 200 {
				t.Errorf("call %+v", c)
			}
		}
		verifyEventually(t, out)
		checkViews(t, out, rep)
	}

	// The evaluator's key, to sign tampered reports with as a dishonest
	// testing body could; MPS's key, as another member.
	svc := m.AIServices[0]
	hc, err := tsaClient(vn.TLSCAFile)
	if err != nil {
		t.Fatal(err)
	}
	signing := func(t *testing.T, keyFile, certFile string) report.Signing {
		key, err := pki.ReadKey(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := pki.ReadCert(certFile)
		if err != nil {
			t.Fatal(err)
		}
		return report.Signing{Key: key, Cert: cert, TSAURL: strings.TrimSuffix(vn.URL, "/") + "/tsa", HTTP: hc}
	}
	evaluator := signing(t, svc.SignKeyFile, svc.SignCertFile)
	var mpsDir string
	for _, g := range m.Gateways {
		if g.ID == "VN/GOV/MPS/gw1" {
			mpsDir = g.DataDir
		}
	}
	mps := signing(t, filepath.Join(mpsDir, "sign", "VN_GOV_MPS.key"), filepath.Join(mpsDir, "sign", "VN_GOV_MPS.crt"))

	// tampered copies v2's report, changes it and, when sg is set, signs
	// it again.
	tampered := func(t *testing.T, edit func(*report.Report), sg *report.Signing) string {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "r")
		os.MkdirAll(dir, 0o755)
		for _, f := range []string{report.ReportFile, report.SignatureFile, report.SignerFile, report.TokenFile} {
			b, err := os.ReadFile(filepath.Join(dirs["scam-nb-v2"], f))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, f), b, 0o644)
		}
		b, _ := os.ReadFile(filepath.Join(dir, report.ReportFile))
		var rep report.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		edit(&rep)
		if sg != nil {
			if err := report.Write(t.Context(), dir, &rep, *sg); err != nil {
				t.Fatal(err)
			}
			return dir
		}
		nb, _ := rep.Marshal()
		os.WriteFile(filepath.Join(dir, report.ReportFile), nb, 0o644)
		return dir
	}
	editedSuite := filepath.Join(t.TempDir(), "suite")
	if err := os.CopyFS(editedSuite, os.DirFS(exampleSuite)); err != nil {
		t.Fatal(err)
	}
	ds := filepath.Join(editedSuite, "datasets", "scam-sms-vi-en.json")
	b, _ := os.ReadFile(ds)
	os.WriteFile(ds, bytes.Replace(b, []byte(`"target": "scam"`), []byte(`"target": "legit"`), 1), 0o644)

	flip := func(a string) string {
		if a == "scam" {
			return "legit"
		}
		return "scam"
	}
	cases := []struct {
		name  string
		dir   func(t *testing.T) string
		suite string
		want  string
	}{
		{"edited answer", func(t *testing.T) string {
			return tampered(t, func(r *report.Report) { r.Samples[0].Calls[0].Answer = flip(r.Samples[0].Calls[0].Answer) }, nil)
		}, exampleSuite, "signature report.jws does not verify"},
		{"edited answer, signed again by the evaluator", func(t *testing.T) string {
			return tampered(t, func(r *report.Report) { r.Samples[0].Calls[0].Answer = flip(r.Samples[0].Calls[0].Answer) }, &evaluator)
		}, exampleSuite, "is not the one in the response received"},
		{"edited answer and response, signed again by the evaluator", func(t *testing.T) string {
			return tampered(t, func(r *report.Report) {
				c := &r.Samples[0].Calls[0]
				was := c.Answer
				c.Answer = flip(was)
				c.ResponseBody = strings.Replace(c.ResponseBody, `"`+was+`"`, `"`+c.Answer+`"`, 1)
				if err := r.Score(); err != nil {
					t.Fatal(err)
				}
			}, &evaluator)
		}, exampleSuite, "the response the log holds is not the one the report records"},
		{"edited aggregate, signed again", func(t *testing.T) string {
			return tampered(t, func(r *report.Report) { r.Recipes[0].Results[0].Value = 0.5 }, &evaluator)
		}, exampleSuite, "not those recomputed from the samples"},
		{"edited suite", func(t *testing.T) string { return dirs["scam-nb-v2"] }, editedSuite, "the suite is not the one run"},
		{"removed sample, rescored and signed again", func(t *testing.T) string {
			return tampered(t, func(r *report.Report) {
				r.Samples = r.Samples[1:]
				if err := r.Score(); err != nil {
					t.Fatal(err)
				}
			}, &evaluator)
		}, exampleSuite, "missing from the report"},
		{"removed sample", func(t *testing.T) string {
			return tampered(t, func(r *report.Report) { r.Samples = r.Samples[1:] }, nil)
		}, "", "signature report.jws does not verify"},
		{"time-stamp of another report", func(t *testing.T) string {
			dir := tampered(t, func(*report.Report) {}, nil)
			b, _ := os.ReadFile(filepath.Join(dirs["scam-nb-v1"], report.TokenFile))
			os.WriteFile(filepath.Join(dir, report.TokenFile), b, 0o644)
			return dir
		}, exampleSuite, "does not cover report.jws"},
		{"edited HTML view", func(t *testing.T) string {
			dir := tampered(t, func(*report.Report) {}, nil)
			for _, f := range []string{report.HTMLFile} {
				b, _ := os.ReadFile(filepath.Join(dirs["scam-nb-v2"], f))
				os.WriteFile(filepath.Join(dir, f), bytes.Replace(b, []byte(">pass<"), []byte(">PASS (certified)<"), 1), 0o644)
			}
			return dir
		}, exampleSuite, "report.html is not the view of the signed report.json"},
		{"run claimed to end after its time-stamp", func(t *testing.T) string {
			return tampered(t, func(r *report.Report) { r.FinishedAt = r.FinishedAt.Add(time.Hour) }, &evaluator)
		}, exampleSuite, "did not end before its time-stamp"},
		{"wrong signer", func(t *testing.T) string { return tampered(t, func(*report.Report) {}, &mps) }, exampleSuite,
			"signed by VN/GOV/MPS, but the report names the evaluator VN/ORG/VNTESTLAB"},
		{"wrong signer claiming to be the evaluator", func(t *testing.T) string {
			return tampered(t, func(r *report.Report) { r.Evaluator.Member = "VN/GOV/MPS" }, &mps)
		}, exampleSuite, "is not a subsystem of the signer"},
		{"exchange not in the log", func(t *testing.T) string {
			return tampered(t, func(r *report.Report) { r.Samples[2].Calls[0].XRoadID = "never-sent" }, &evaluator)
		}, exampleSuite, "the exchange is not in the evaluator gateway's log"},
		{"exchange of another sample", func(t *testing.T) string {
			return tampered(t, func(r *report.Report) {
				r.Samples[2].Calls[0].XRoadID, r.Samples[2].Calls[0].RequestHash = r.Samples[3].Calls[0].XRoadID, r.Samples[3].Calls[0].RequestHash
			}, &evaluator)
		}, exampleSuite, "the request the log holds is not the sample's input"},
		{"v1's report verifies", func(t *testing.T) string { return dirs["scam-nb-v1"] }, exampleSuite, ""},
	}
	// The evidence exported as bundles checks without the log; a bundle
	// of another exchange does not.
	bundles := filepath.Join(t.TempDir(), "evidence")
	if err := (&AIEvidenceCmd{Dir: dirs["scam-nb-v2"], LogDir: m.AIServices[0].LogDir, Out: bundles}).run(t.Context(), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	withBundles := func(dir string) error {
		return (&AIVerifyReportCmd{Dir: dir, CA: m.AIServices[0].CAFile, Suite: exampleSuite, SuiteFile: "suite.json", Bundles: bundles}).run(t.Context(), &bytes.Buffer{})
	}
	if err := withBundles(dirs["scam-nb-v2"]); err != nil {
		t.Fatalf("verify with bundles: %v", err)
	}
	a, b2 := filepath.Join(bundles, report.BundleName(0, 0)), filepath.Join(bundles, report.BundleName(1, 0))
	os.Rename(a, a+".x")
	os.Rename(b2, a)
	if err := withBundles(dirs["scam-nb-v2"]); err == nil || !strings.Contains(err.Error(), "the evidence is of another exchange") {
		t.Errorf("swapped bundles: %v", err)
	}
	os.RemoveAll(a)
	if err := withBundles(dirs["scam-nb-v2"]); err == nil || !strings.Contains(err.Error(), "its evidence does not verify") {
		t.Errorf("missing bundle: %v", err)
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := verify(tc.dir(t), tc.suite)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("verify: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("verify passed, want an error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("verify: %v\nwant an error with %q", err, tc.want)
			}
			if err != nil {
				t.Logf("%v", err)
			}
		})
	}
}

// checkViews reads the Moonshot result and the inspect-style log back.
func checkViews(t *testing.T, dir string, rep *report.Report) {
	t.Helper()
	var ms struct {
		Metadata struct {
			Endpoints    []string `json:"endpoints"`
			NumOfPrompts int      `json:"num_of_prompts"`
		} `json:"metadata"`
		Results struct {
			Recipes []struct {
				ID      string `json:"id"`
				Details []struct {
					DatasetID string `json:"dataset_id"`
					Data      []struct {
						Prompt, PredictedResult string
					} `json:"data"`
				} `json:"details"`
				EvaluationSummary []struct {
					Grade string `json:"grade"`
				} `json:"evaluation_summary"`
			} `json:"recipes"`
		} `json:"results"`
	}
	b, _ := os.ReadFile(filepath.Join(dir, report.MoonshotFile))
	if err := json.Unmarshal(b, &ms); err != nil {
		t.Fatal(err)
	}
	r := ms.Results.Recipes
	if ms.Metadata.NumOfPrompts != len(rep.Samples) || len(r) != 1 || r[0].ID != "scam-sms-vi-en" || len(r[0].Details) != 1 ||
		len(r[0].Details[0].Data) != len(rep.Samples) || r[0].EvaluationSummary[0].Grade != rep.Recipes[0].Grade {
		t.Errorf("moonshot result: %+v", ms)
	}
	var in struct {
		Status  string `json:"status"`
		Results struct {
			TotalSamples int `json:"total_samples"`
		} `json:"results"`
		Samples []struct {
			Scores map[string]struct{ Value float64 } `json:"scores"`
		} `json:"samples"`
	}
	b, _ = os.ReadFile(filepath.Join(dir, report.InspectFile))
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	if in.Status != "success" || in.Results.TotalSamples != len(rep.Samples) || len(in.Samples) != len(rep.Samples) || len(in.Samples[0].Scores) != 2 {
		t.Errorf("inspect log: %+v", in)
	}
}
