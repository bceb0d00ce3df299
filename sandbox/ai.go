package sandbox

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"

	"github.com/sampan-exchange/sampan/ai/scam"
	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/policy"
)

// The sandbox's AI services: the scam-message classifier of ai/scam,
// served by MPS's cybercrime department, and a testing body (the
// Vietnam AI testing centre) whose evaluator subsystem calls it through
// its own gateway, as any information system calls a service.

// Identifiers of the AI part of the world.
const (
	// EvaluatorClient is the testing body's evaluator subsystem.
	EvaluatorClient = "VN/ORG/VNTESTLAB/evaluator"
	// EvaluatorGateway is the testing body's gateway.
	EvaluatorGateway = "VN/ORG/VNTESTLAB/gw1"
	// EvaluationPurpose is the purpose the evaluator declares.
	EvaluationPurpose = "ai-evaluation"
	// ClassifierService is the scam classifier the anti-scam flows use:
	// HCMC's one-stop shop (domestic) and Singapore's police
	// (cross-border) call it, once it is evaluated.
	ClassifierService = "VN/GOV/MPS/cybercrime/scam-classifier"
)

// aiServiceDef is a classifier service and the model version it serves.
type aiServiceDef struct {
	id      string
	version string
	// suites are the suites (name#recipe) that apply to it.
	suites []string
}

var aiServices = []aiServiceDef{
	{id: ClassifierService, version: scam.V2, suites: []string{"sampan-vi-en#scam-sms-vi-en"}},
	{id: "VN/GOV/MPS/cybercrime/scam-classifier-v1", version: scam.V1, suites: []string{"sampan-vi-en#scam-sms-vi-en"}},
}

var aiMember = memberDef{"VN/ORG/VNTESTLAB", "Vietnam AI Testing Centre", []string{"evaluator"}}

var aiGateway = gatewayDef{id: EvaluatorGateway, clients: []string{EvaluatorClient}}

// aiServiceDefs are the classifiers as services of MPS's gateway: the
// messages they classify may hold personal data, so the evaluator calls
// under an agreement and declares its purpose.
func aiServiceDefs() []serviceDef {
	var out []serviceDef
	for _, s := range aiServices {
		access := []gateway.AccessRight{{Subject: EvaluatorClient, Endpoint: "GET /"}, {Subject: EvaluatorClient, Endpoint: "POST /"}}
		if s.id == ClassifierService {
			access = append(access, gateway.AccessRight{Subject: "VN/GOV/HCMC/one-stop", Endpoint: "POST /"}, gateway.AccessRight{Subject: "SG/GOV/SPF/anti-scam", Endpoint: "POST /"})
		}
		out = append(out, serviceDef{
			id: s.id, title: "Scam-message classifier (" + s.version + ")",
			backendPath: "/ai/scam-classifier/" + s.version, openAPIPath: "/", example: "/", exampleClient: EvaluatorClient,
			examplePurpose: EvaluationPurpose,
			dataClass:      "confidential", flags: []string{"personal"},
			endpoints: []string{"GET /", "POST /"},
			access:    access,
		})
	}
	return append(out, ocrServiceDef())
}

var aiAgreement = policy.Agreement{
	ID: "VN-TESTLAB-AI-2026", Consumers: []string{EvaluatorClient},
	Services:  services(aiServiceIDs()...),
	Purposes:  []string{EvaluationPurpose},
	ValidFrom: agreementsFrom, Status: policy.StatusActive,
	Responsible: []string{"MPS Department of Cybersecurity and High-Tech Crime Prevention"},
}

// classifierAgreement lets the anti-scam flows use the classifier: a
// one-stop shop checks a message a citizen reports, Singapore's police
// one from a cross-border case (the answer, a label, goes to Singapore).
var classifierAgreement = policy.Agreement{
	ID: "VN-SCAM-CLASSIFIER-2026", Consumers: []string{"VN/GOV/HCMC/one-stop", "SG/GOV/SPF/anti-scam"},
	Services:     services(ClassifierService),
	Purposes:     []string{"citizen-report", "scam-investigation"},
	LegalBasis:   []string{"decree-13-2023-art25"},
	Destinations: []string{"SG"}, ValidFrom: agreementsFrom, RetentionDays: 90,
	References:  []policy.Reference{{Kind: policy.RefTransferAssessment, Ref: "MPS-TIA-2026-021 (scam classifier, dossier filed with A05)"}},
	Responsible: []string{"MPS Department of Cybersecurity and High-Tech Crime Prevention"},
	Status:      policy.StatusActive,
}

// AIRegistrations are the model cards and risk classifications MPS
// registers for its AI services when the sandbox starts: both scam
// classifiers high risk (law-enforcement triage of citizens' reports),
// so they are served only once evaluated; the OCR service (when
// tesseract is installed; ocrVersion is then its model version) medium
// risk, so its answers carry a notice.
func AIRegistrations(ocrVersion string) []authority.AIServiceInput {
	var out []authority.AIServiceInput
	for _, s := range aiServices {
		out = append(out, authority.AIServiceInput{
			ID: s.id,
			ModelCard: authority.ModelCard{
				Provider: "MPS Department of Cybersecurity and High-Tech Crime Prevention", ModelName: "scam-nb", ModelVersion: s.version,
				IntendedUse:    "Flag SMS and chat messages that citizens report as likely scams, for an analyst to review",
				IntendedUsers:  "Anti-scam analysts of MPS, provincial one-stop shops and partner police forces",
				OutOfScopeUses: "Any decision about a person without an analyst's review; messages other than SMS and chat",
				Languages:      []string{"vi", "en"},
				TrainingData:   "The project's labelled Vietnamese and English scam and legitimate messages (ai/scam/data, CC0)",
				Limitations:    "Naive Bayes on words: short messages and new scam wordings are missed; " + s.version + " is trained on text with its diacritics only",
				HumanOversight: "An analyst reviews every message flagged before any action is taken",
				Contact:        "ai-registry@mps.example", License: "CC0-1.0",
			},
			Classification: authority.RiskClassification{
				Tier: "high", ModelVersion: s.version, ClassifiedOn: "2026-12-01",
				Reasons:             []string{"Used in law-enforcement triage of citizens' reports (Law 134/2025/QH15: high risk)", "Errors affect people's access to help against fraud"},
				ProhibitedUseScreen: "Screened: no manipulation, no social scoring, no biometric identification, no exploitation of vulnerabilities",
			},
		})
	}
	if ocrVersion != "" {
		out = append(out, authority.AIServiceInput{
			ID: OCRService,
			ModelCard: authority.ModelCard{
				Provider: "MPS Department of Administrative Police for Social Order", ModelName: "tesseract", ModelVersion: ocrVersion,
				IntendedUse:    "Digitise printed Vietnamese and English documents attached to administrative procedures",
				IntendedUsers:  "Officers of MPS and one-stop shops handling residents' documents",
				OutOfScopeUses: "Handwriting; identity verification",
				Languages:      []string{"vi", "en"},
				TrainingData:   "Tesseract's published vie and eng LSTM models (Debian packages tesseract-ocr-vie, tesseract-ocr-eng)",
				Limitations:    "Printed text only; low-resolution scans lose diacritics",
				HumanOversight: "The officer checks the text against the document before it is used",
				Contact:        "ai-registry@mps.example", License: "Apache-2.0",
			},
			Classification: authority.RiskClassification{
				Tier: "medium", ModelVersion: ocrVersion, ClassifiedOn: "2026-12-01",
				Reasons:             []string{"Generates content (text) that officers rely on; people are not classified or scored"},
				ProhibitedUseScreen: "Screened: no biometric identification, no scoring of people",
				TransparencyNotice:  "Văn bản do hệ thống AI nhận dạng, cần đối chiếu với bản gốc / text recognised by an AI system, check it against the original",
			},
		})
	}
	return out
}

// registerAI registers the AI services and accredits the testing body
// with Vietnam's authority.
func registerAI(ctx context.Context, api *authority.Client, ocrVersion string) error {
	for _, in := range AIRegistrations(ocrVersion) {
		if err := api.PutAIService(ctx, in); err != nil {
			return fmt.Errorf("register AI service %s: %w", in.ID, err)
		}
	}
	id, err := ident.ParseMember(aiMember.id)
	if err != nil {
		return err
	}
	return api.PutAITestingBodies(ctx, authority.TestingBodiesInput{Members: []ident.ClientID{id}})
}

func aiServiceIDs() []string {
	var out []string
	for _, s := range aiServices {
		out = append(out, s.id)
	}
	return append(out, OCRService)
}

// ManifestAIService describes an AI service for `sampan ai evaluate`.
type ManifestAIService struct {
	ID string `json:"id"`
	// Tier is the risk tier the sandbox registers.
	Tier         string `json:"tier"`
	ModelVersion string `json:"model_version"`
	// Suites are the suites that apply, as "suite#recipe".
	Suites []string `json:"suites"`
	// EvaluatorClient calls the service through EvaluatorGateway, whose
	// client side is at EvaluatorClientURL, declaring Purpose.
	EvaluatorClient    string `json:"evaluator_client"`
	EvaluatorGateway   string `json:"evaluator_gateway"`
	EvaluatorClientURL string `json:"evaluator_client_url"`
	Purpose            string `json:"purpose"`
	// SignKeyFile and SignCertFile are the testing body's member signing
	// key and certificate, at its gateway; a report is signed with them.
	SignKeyFile  string `json:"sign_key_file"`
	SignCertFile string `json:"sign_cert_file"`
	// LogDir is the evaluator gateway's message log, where every sample's
	// exchange is recorded.
	LogDir string `json:"log_dir"`
	// TSAURL is the authority's time-stamping endpoint, reached over TLS
	// of TSATLSCAFile; CAFile is the instance CA a report's signer and
	// time-stamp chain to.
	TSAURL       string `json:"tsa_url"`
	TSATLSCAFile string `json:"tsa_tls_ca_file"`
	CAFile       string `json:"ca_file"`
}

// aiManifest lists the AI services once the gateways are up.
func (s *Sandbox) aiManifest() []ManifestAIService {
	var gw ManifestGateway
	for _, g := range s.Manifest.Gateways {
		if g.ID == EvaluatorGateway {
			gw = g
		}
	}
	var vn ManifestAuthority
	for _, a := range s.Manifest.Authorities {
		if a.Instance == "VN" {
			vn = a
		}
	}
	key, crt := memberSignPaths(gw.DataDir, aiMember.id)
	var out []ManifestAIService
	for _, a := range aiServices {
		out = append(out, ManifestAIService{
			ID: a.id, Tier: "high", ModelVersion: a.version, Suites: a.suites,
			EvaluatorClient: EvaluatorClient, EvaluatorGateway: EvaluatorGateway, EvaluatorClientURL: gw.ClientURL,
			Purpose: EvaluationPurpose, SignKeyFile: key, SignCertFile: crt, LogDir: filepath.Join(gw.DataDir, "log"),
			TSAURL: strings.TrimSuffix(vn.URL, "/") + "/tsa", TSATLSCAFile: vn.TLSCAFile, CAFile: vn.CAFile,
		})
	}
	if s.ocr != nil {
		e := out[0]
		e.ID, e.Tier, e.ModelVersion, e.Suites = OCRService, "medium", s.ocr.ModelVersion(), []string{ocrSuite}
		out = append(out, e)
	}
	return out
}

// memberSignPaths are where a gateway keeps a member's signing key and
// certificate (gateway.Init).
func memberSignPaths(gdir, member string) (key, cert string) {
	base := filepath.Join(gdir, "sign", strings.ReplaceAll(member, "/", "_"))
	return base + ".key", base + ".crt"
}

// classifierRequest and classifierResponse are the classifier's API.
type classifierRequest struct {
	Text string `json:"text"`
}

type classifierResponse struct {
	Label        string  `json:"label"`
	Score        float64 `json:"score"`
	ModelVersion string  `json:"model_version"`
}

// aiHandler trains both classifier versions on the shipped dataset and
// serves them under /ai/scam-classifier/{version}; other paths go to
// next. Training both takes about 0.1 s.
func aiHandler(next http.Handler) (http.Handler, error) {
	msgs, err := scam.Dataset()
	if err != nil {
		return nil, err
	}
	models := map[string]*scam.Model{}
	for _, v := range []string{scam.V1, scam.V2} {
		m, err := scam.Train(v, msgs)
		if err != nil {
			return nil, fmt.Errorf("train the scam classifier %s: %w", v, err)
		}
		models[v] = m
	}
	mux := http.NewServeMux()
	mux.Handle("/", next)
	classify := func(w http.ResponseWriter, r *http.Request) {
		m, ok := models[r.PathValue("version")]
		if !ok {
			sendJSON(w, http.StatusNotFound, map[string]string{"error": "no model version " + r.PathValue("version")})
			return
		}
		var in classifierRequest
		dec := json.NewDecoder(io.LimitReader(r.Body, scam.MaxMessageSize+1024))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&in); err != nil || strings.TrimSpace(in.Text) == "" {
			sendJSON(w, http.StatusBadRequest, map[string]string{"error": `want a JSON object {"text": "…"} with a non-empty text`})
			return
		}
		label, p := m.Classify(messageOf(in.Text))
		sendJSON(w, http.StatusOK, classifierResponse{Label: label, Score: p, ModelVersion: m.Version})
	}
	describe := func(w http.ResponseWriter, r *http.Request) {
		m, ok := models[r.PathValue("version")]
		if !ok {
			sendJSON(w, http.StatusNotFound, map[string]string{"error": "no model version " + r.PathValue("version")})
			return
		}
		sendJSON(w, http.StatusOK, map[string]any{
			"model_version": m.Version, "model_digest": m.Digest(), "labels": []string{scam.Scam, scam.Legit},
			"usage": `POST {"text": "<message>"} → {"label": "scam"|"legit", "score": <P(scam)>, "model_version": "…"}`,
		})
	}
	mux.HandleFunc("POST /ai/scam-classifier/{version}", classify)
	mux.HandleFunc("POST /ai/scam-classifier/{version}/{$}", classify)
	mux.HandleFunc("GET /ai/scam-classifier/{version}", describe)
	mux.HandleFunc("GET /ai/scam-classifier/{version}/{$}", describe)
	return mux, nil
}

// messageOf is the message a text asks about: a text that holds an
// instruction and a message, separated by a blank line ("Is the
// following message a scam? …\n\n<message>"), is classified on its last
// paragraph, so that an instruction's own words do not count as
// evidence.
func messageOf(text string) string {
	if i := strings.LastIndex(text, "\n\n"); i >= 0 && strings.TrimSpace(text[i:]) != "" {
		return text[i+2:]
	}
	return text
}

// printAIWelcome shows the gate refusing the classifier, says how to
// evaluate the AI services and how the authority accepts a report;
// curl builds a client's curl command line.
func (s *Sandbox) printAIWelcome(w io.Writer, curl func(gw, client string, purpose ...string) string) {
	if len(s.Manifest.AIServices) == 0 {
		return
	}
	var vn ManifestAuthority
	for _, a := range s.Manifest.Authorities {
		if a.Instance == "VN" {
			vn = a
		}
	}
	a := s.Manifest.AIServices[0]
	msg := `-H 'X-Road-Legal-Basis: decree-13-2023-art25' -H 'Content-Type: application/json' --data '{"text":"Tai khoan cua ban bi khoa, bam vao link de mo khoa"}'`
	fmt.Fprintf(w, "AI services: MPS's scam-message classifier (%s) is registered high risk, so it is served only once an accredited\ntesting body's passing evaluation of that model version is accepted (docs/ai-governance.md):\n\n", a.ModelVersion)
	fmt.Fprintf(w, "  # refused by HCMC's own gateway under Vietnam's AI rules (Server.ClientProxy.AIServiceNotEvaluated)\n  %s%s/ %s\n\n", curl("VN/GOV/HCMC/gw1", "VN/GOV/HCMC/one-stop", "citizen-report"), ClassifierService, msg)
	fmt.Fprintf(w, "  # refused across the border by SPF's gateway under Singapore's AI rules\n  %s%s/ %s\n\n", curl("SG/GOV/SPF/gw1", "SG/GOV/SPF/anti-scam", "scam-investigation"), ClassifierService, msg)
	fmt.Fprintf(w, "The Vietnam AI Testing Centre evaluates it through its gateway, as %s\n(from the source tree, with the example suite; --sandbox takes the client, its gateway, the signing key and the TSA from sandbox.json);\nscam-nb-v1 fails the suite (its accuracy collapses without diacritics), so its report is refused and it stays closed:\n\n", a.EvaluatorClient)
	for _, a := range s.Manifest.AIServices {
		if a.ID == OCRService {
			continue
		}
		out := "report-" + a.ModelVersion
		fmt.Fprintf(w, "  sampan ai evaluate --sandbox %s --service %s \\\n", s.Dir, a.ID)
		fmt.Fprintf(w, "    --suite ai/suite/testdata/vi-en --recipe scam-sms-vi-en --out %s\n", out)
		fmt.Fprintf(w, "  sampan ai verify-report %s --ca %s --suite ai/suite/testdata/vi-en --log-dir %s\n\n", out, a.CAFile, a.LogDir)
	}
	fmt.Fprintf(w, "  # Vietnam's authority accepts the passing report; the two calls above are then served (with Ai-Model-Card)\n")
	fmt.Fprintf(w, "  sampan ai submit-report report-%s --url %s --tls-ca %s --token-file %s\n", a.ModelVersion, vn.URL, vn.TLSCAFile, vn.TokenFile)
	fmt.Fprintf(w, "  sampan ai services --url %s --tls-ca %s --token-file %s\n\n", vn.URL, vn.TLSCAFile, vn.TokenFile)
	if s.ocr == nil {
		fmt.Fprintf(w, "The OCR service %s is not served: %v.\nInstall tesseract-ocr tesseract-ocr-vie tesseract-ocr-eng and start the sandbox afresh to serve and register it.\n\n", OCRService, s.ocrErr)
		return
	}
	fmt.Fprintf(w, "MPS reads documents with tesseract (%s), registered medium risk: its answers carry a transparency notice (Ai-Notice).\nEvaluate it on rendered Vietnamese and English text:\n\n", s.ocr.ModelVersion())
	fmt.Fprintf(w, "  sampan ai evaluate --sandbox %s --service %s --answer-field text \\\n", s.Dir, OCRService)
	fmt.Fprintf(w, "    --suite ai/suite/testdata/ocr-vi-en --out report-ocr\n\n")
}
