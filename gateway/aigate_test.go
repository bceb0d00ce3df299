package gateway_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// TestAIGateAtTheProvider: a consumer's gateway that skips its own AI
// gate (a registered gateway under an attacker's control) still gets
// nothing from an unevaluated high-risk service: the provider's gateway
// refuses before it reads the request, and says what is missing. The
// same gateway, same client and same connection reach the signature
// check of a service that is not an AI service.
func TestAIGateAtTheProvider(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	mps := newPeerConn(w.manifestGateway("VN/GOV/MPS/gw1").PeerAddr, w.gatewayTLS(t, "VN/GOV/HCMC/gw1"))
	// The head such a gateway sends: HCMC's signing certificate, a
	// signed time and a nonce, but no signature over what it sends.
	signer, err := pki.ReadCert(filepath.Join(w.manifestGateway("VN/GOV/HCMC/gw1").DataDir, "sign", "VN_GOV_HCMC.crt"))
	if err != nil {
		t.Fatal(err)
	}
	post := func(svc string) (string, string) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://"+mps.addr+"/x/"+svc+"/", strings.NewReader(`{"text":"Quy khach trung thuong"}`))
		req.Header.Set(r1.HeaderClient, hcmcClient)
		req.Header.Set(r1.HeaderPurpose, "citizen-report")
		req.Header.Set(r1.HeaderLegalBasis, "decree-13-2023-art25")
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Sampan-Signer-Cert", base64.StdEncoding.EncodeToString(signer.Raw))
		req.Header.Set("Sampan-Signed-At", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
		nonce := make([]byte, 16)
		rand.Read(nonce)
		req.Header.Set("Sampan-Nonce", hex.EncodeToString(nonce))
		names := append(msglog.RequiredSignedHeaders[:], "content-type")
		slices.Sort(names)
		req.Header.Set("Sampan-Signed-Headers", strings.Join(names, ","))
		sid, _ := ident.ParseService(svc)
		req.Header.Set(r1.HeaderService, sid.Escaped())
		req.Header.Set(r1.HeaderID, "skipped-gate")
		resp, err := mps.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Header.Get(r1.HeaderError), string(b)
	}
	typ, body := post(sandbox.ClassifierService)
	if typ != r1.TypeServerAINotEvaluated || !strings.Contains(body, "is high risk and has no accepted passing evaluation for model version scam-nb-v2, which VN's AI rules require") {
		t.Errorf("unevaluated high-risk service from a gateway that skipped its gate: %s %s", typ, body)
	}
	if typ, body := post("VN/GOV/MPS/cybercrime/scam-reports"); typ != r1.TypeServerSignature {
		t.Errorf("the same unsigned call to a service that is not an AI service: %s %s, want %s", typ, body, r1.TypeServerSignature)
	}
}

// TestAIGateHeadersNotForged: the Ai-Model-Card and
// Ai-Notice a client sees come from the published configuration only
// (docs/ai-governance.md: "set by the consumer's gateway from the
// configuration ... whatever the provider's gateway sent"). A service
// (its backend, or the provider's gateway) must not be able to claim a
// model card or a notice of its own.
func TestAIGateHeadersNotForged(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	fakeCard := strings.Repeat("ab", 32)
	const fakeNotice = "Checked by a human officer, no AI involved"
	answer := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/json")
		rw.Header().Set(r1.HeaderAIModelCard, fakeCard)
		rw.Header().Set(r1.HeaderAINotice, fakeNotice)
		rw.Write([]byte(`{"label":"scam","model_version":"scam-nb-v2"}`))
	})
	w.answer.Store(&answer)
	defer w.answer.Store(nil)

	// A service that is not a registered AI service.
	resp, b := w.do(t, call{path: companies + "/0100109106"})
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if c, n := resp.Header.Get(r1.HeaderAIModelCard), resp.Header.Get(r1.HeaderAINotice); c != "" || n != "" {
		t.Errorf("not an AI service, yet the client got Ai-Model-Card %q and Ai-Notice %q from the provider's side", c, n)
	}

	// A registered AI service whose tier requires no notice in either
	// country (high risk), called by the testing body's evaluator.
	url := w.manifestGateway(sandbox.EvaluatorGateway).ClientURL
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, strings.TrimSuffix(url, "/")+"/r1/"+sandbox.ClassifierService+"/", strings.NewReader(`{"text":"x"}`))
	req.Header.Set(r1.HeaderClient, sandbox.EvaluatorClient)
	req.Header.Set(r1.HeaderPurpose, sandbox.EvaluationPurpose)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("evaluator's call: %d %s", resp.StatusCode, b)
	}
	if c := resp.Header.Get(r1.HeaderAIModelCard); c == fakeCard || c == "" {
		t.Errorf("AI service: Ai-Model-Card %q, want the published card's digest", c)
	}
	if n := resp.Header.Get(r1.HeaderAINotice); n == fakeNotice {
		t.Errorf("AI service whose tier needs no notice: the client got the backend's Ai-Notice %q", n)
	}
}
