package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ai/ocr"
	"github.com/sampan-exchange/sampan/ai/report"
	"github.com/sampan-exchange/sampan/sandbox"
)

const ocrSuite = "../../ai/suite/testdata/ocr-vi-en"

// The sandbox's OCR service (tesseract, Vietnamese and English) is
// evaluated through the testing body's and MPS's gateways on the OCR
// suite's rendered images: every image is sent as the request body,
// the answers score under the suite's CER and WER thresholds, and the
// report verifies against the suite and the evaluator gateway's log
// (the logged request bodies are the locked images).
func TestAIEvaluateOCRThroughTheExchange(t *testing.T) {
	if _, err := ocr.Find(t.Context()); err != nil {
		if os.Getenv("SAMPAN_REQUIRE_TESSERACT") == "1" {
			t.Fatalf("SAMPAN_REQUIRE_TESSERACT=1 but: %v", err)
		}
		t.Skipf("skipped (install tesseract-ocr tesseract-ocr-vie tesseract-ocr-eng): %v", err)
	}
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb"), TimestampInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	var svc sandbox.ManifestAIService
	for _, a := range sb.Manifest.AIServices {
		if a.ID == sandbox.OCRService {
			svc = a
		}
	}
	if svc.ID == "" || !strings.HasPrefix(svc.ModelVersion, "tesseract-") {
		t.Fatalf("ai_services lists no OCR service: %+v", sb.Manifest.AIServices)
	}
	out := filepath.Join(t.TempDir(), "report")
	var log bytes.Buffer
	c := &AIEvaluateCmd{Suite: ocrSuite, SuiteFile: "suite.json", Service: svc.ID, Sandbox: sb.Dir,
		Path: "/", Input: "text", Answer: "text", Version: "model_version", Conc: 2, Out: out}
	start := time.Now()
	if err := c.run(t.Context(), &log); err != nil {
		t.Fatalf("evaluate: %v\n%s", err, log.String())
	}
	t.Logf("evaluate %s in %s:\n%s", svc.ID, time.Since(start).Round(time.Millisecond), log.String())
	b, err := os.ReadFile(filepath.Join(out, report.ReportFile))
	if err != nil {
		t.Fatal(err)
	}
	var rep report.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	res := map[string]float64{}
	for _, r := range rep.Recipes[0].Results {
		res[r.Metric] = r.Value
	}
	t.Logf("CER %.4f WER %.4f, grade %s", res["cer"], res["wer"], rep.Recipes[0].Grade)
	if !rep.Pass || rep.Errors != 0 || len(rep.Samples) != 12 || res["cer"] > 0.05 || res["wer"] > 0.15 {
		t.Fatalf("pass %v, %d errors, %d samples, %v", rep.Pass, rep.Errors, len(rep.Samples), res)
	}
	if rep.ModelVersion != svc.ModelVersion {
		t.Errorf("model version %q, manifest %q", rep.ModelVersion, svc.ModelVersion)
	}
	for _, s := range rep.Samples {
		if len(s.Calls) != 1 || s.Calls[0].Status != 200 || s.Calls[0].RequestHash == "" {
			t.Fatalf("sample %s: %+v", s.ID, s.Calls)
		}
	}
	verify := func(dir string) error {
		return (&AIVerifyReportCmd{Dir: dir, CA: svc.CAFile, Suite: ocrSuite, SuiteFile: "suite.json", LogDir: svc.LogDir}).run(t.Context(), &bytes.Buffer{})
	}
	deadline := time.Now().Add(15 * time.Second)
	for err := verify(out); err != nil; err = verify(out) {
		if time.Now().After(deadline) {
			t.Fatalf("verify: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// An image edited after the run: the suite is not the one run.
	edited := filepath.Join(t.TempDir(), "suite")
	if err := os.CopyFS(edited, os.DirFS(ocrSuite)); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(edited, "images", "vi-04.png")
	ib, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	ib[len(ib)-20] ^= 1
	if err := os.WriteFile(img, ib, 0o644); err != nil {
		t.Fatal(err)
	}
	err = (&AIVerifyReportCmd{Dir: out, CA: svc.CAFile, Suite: edited, SuiteFile: "suite.json"}).run(t.Context(), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "images/vi-04.png") {
		t.Fatalf("an edited image: %v", err)
	}
}
