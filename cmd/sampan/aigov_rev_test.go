package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ai/report"
	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/sandbox"
)

// A passing report signed with a member signing certificate the
// authority has since revoked (a testing body's key compromised) is
// refused and changes nothing: the service stays unevaluated.
func TestAIReportRevokedSigner(t *testing.T) {
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb"), TimestampInterval: 200 * time.Millisecond, ConfRefresh: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	var vn sandbox.ManifestAuthority
	for _, a := range sb.Manifest.Authorities {
		if a.Instance == "VN" {
			vn = a
		}
	}
	var v2 sandbox.ManifestAIService
	for _, s := range sb.Manifest.AIServices {
		if s.ModelVersion == "scam-nb-v2" {
			v2 = s
		}
	}
	api := authorityAPI{URL: vn.URL, TLSCA: vn.TLSCAFile, TokenFile: vn.TokenFile}
	admin, err := api.client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	f := filepath.Join(t.TempDir(), "card.json")
	b, _ := json.Marshal(registration(v2.ID, "scam-nb-v2", "high", "scam-nb-v2"))
	os.WriteFile(f, b, 0o644)
	if err := (&AIRegisterCmd{authorityAPI: api, File: f}).run(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	lab, _ := ident.ParseMember("VN/ORG/VNTESTLAB")
	if err := admin.PutAITestingBodies(ctx, authority.TestingBodiesInput{Members: []ident.ClientID{lab}}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "report")
	var log bytes.Buffer
	var evalErr error
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		c := &AIEvaluateCmd{Suite: exampleSuite, SuiteFile: "suite.json", Recipe: []string{"scam-sms-vi-en"},
			Service: v2.ID, Sandbox: sb.Dir, Path: "/", Input: "text", Answer: "label", Version: "model_version", Conc: 4, Out: out}
		log.Reset()
		if evalErr = c.run(ctx, &log); evalErr == nil && readReport(t, out).Pass || time.Now().After(deadline) {
			break
		}
	}
	if evalErr != nil || !readReport(t, out).Pass {
		t.Fatalf("evaluate: %v\n%s", evalErr, log.String())
	}
	pemb, err := os.ReadFile(filepath.Join(out, report.SignerFile))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM(pemb)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Revoke(ctx, fmt.Sprintf("%x", cert.SerialNumber)); err != nil {
		t.Fatal(err)
	}
	err = (&AISubmitReportCmd{authorityAPI: api, Dir: out}).run(ctx, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("a report signed with a revoked certificate: %v", err)
	}
	one, err := admin.AIService(ctx, v2.ID)
	if err != nil || one.Evaluated != "" || len(one.Reports) != 0 {
		t.Errorf("after the refusal: evaluated %q, %d reports, %v", one.Evaluated, len(one.Reports), err)
	}
}

// A service whose classification names another model version is
// unclassified, held to every obligation of the highest tier: its
// registration must declare human oversight even when the stale
// classification says low risk, or an evaluation alone would serve it.
func TestAIUnclassifiedNeedsOversight(t *testing.T) {
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb"), TimestampInterval: 200 * time.Millisecond, ConfRefresh: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	var vn sandbox.ManifestAuthority
	for _, a := range sb.Manifest.Authorities {
		if a.Instance == "VN" {
			vn = a
		}
	}
	svc := sb.Manifest.AIServices[0]
	api := authorityAPI{URL: vn.URL, TLSCA: vn.TLSCAFile, TokenFile: vn.TokenFile}
	admin, err := api.client()
	if err != nil {
		t.Fatal(err)
	}
	in := registration(svc.ID, "scam-nb-v9", "low", "scam-nb-v8")
	in.ModelCard.HumanOversight = ""
	if err := admin.PutAIService(t.Context(), in); err == nil || !strings.Contains(err.Error(), "model_card.human_oversight") {
		t.Errorf("an unclassified service without human oversight: %v", err)
	}
	if got, err := admin.AIService(t.Context(), svc.ID); err != nil || got.ModelCard.ModelVersion != svc.ModelVersion || got.ModelCard.HumanOversight == "" {
		t.Errorf("the refused registration changed the registered one: %+v, %v", got, err)
	}
}
