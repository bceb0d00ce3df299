package authority

import (
	"encoding/json"
	"strings"
	"testing"
)

func exportService() *AIServiceInfo {
	return &AIServiceInfo{
		AIServiceInput: AIServiceInput{
			ID: "VN/GOV/MPS/cybercrime/scam-classifier",
			ModelCard: ModelCard{
				Provider: "Ministry of Public Security", ModelName: "scam-nb\n---\nlicense: stolen", ModelVersion: "v2",
				IntendedUse: "Flag scam messages", IntendedUsers: "Anti-scam analysts", OutOfScopeUses: "Decisions about people",
				Languages: []string{"vi", "en"}, TrainingData: "446 written messages", Limitations: "Short messages only",
				HumanOversight: "An analyst reviews every flag", Contact: "ai@mps.example",
			},
			Classification: RiskClassification{Tier: "high", ModelVersion: "v2", ClassifiedOn: "2026-12-01", Reasons: []string{"public security"}},
		},
		Tier: "high", Evaluated: "ab12",
	}
}

// TestHuggingFaceCard: the front matter carries the metadata, quoted so
// that a field holding a newline and "---" stays inside its value.
func TestHuggingFaceCard(t *testing.T) {
	out := string(exportService().HuggingFaceCard())
	front, body, ok := strings.Cut(strings.TrimPrefix(out, "---\n"), "\n---\n")
	if !strings.HasPrefix(out, "---\n") || !ok {
		t.Fatalf("no front matter:\n%s", out)
	}
	for _, want := range []string{`model_name: "scam-nb\n---\nlicense: stolen"`, `model_version: "v2"`, "language:\n- \"vi\"\n- \"en\"", `- "risk-tier:high"`} {
		if !strings.Contains(front, want) {
			t.Errorf("front matter lacks %q:\n%s", want, front)
		}
	}
	if strings.Contains(front, "\nlicense:") {
		t.Errorf("a field's text became a key of the front matter:\n%s", front)
	}
	for _, want := range []string{"## Intended uses\n\nFlag scam messages", "## Out-of-scope use\n\nDecisions about people", "## Risk classification\n\nhigh (classified 2026-12-01 for model version v2): public security"} {
		if !strings.Contains(body, want) {
			t.Errorf("card lacks %q:\n%s", want, body)
		}
	}
}

// TestCycloneDX: one machine-learning-model component whose model card
// holds the considerations, and no licence when none is declared.
func TestCycloneDX(t *testing.T) {
	b, err := exportService().CycloneDX()
	if err != nil {
		t.Fatal(err)
	}
	var bom struct {
		BOMFormat   string `json:"bomFormat"`
		SpecVersion string `json:"specVersion"`
		Components  []struct {
			Type      string            `json:"type"`
			Name      string            `json:"name"`
			Version   string            `json:"version"`
			Supplier  map[string]string `json:"supplier"`
			Licenses  []any             `json:"licenses"`
			ModelCard struct {
				Considerations struct {
					Users, UseCases, TechnicalLimitations []string
				} `json:"considerations"`
			} `json:"modelCard"`
			Properties []struct{ Name, Value string } `json:"properties"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &bom); err != nil {
		t.Fatal(err)
	}
	if bom.BOMFormat != "CycloneDX" || bom.SpecVersion != "1.6" || len(bom.Components) != 1 {
		t.Fatalf("%s", b)
	}
	m := bom.Components[0]
	cons := m.ModelCard.Considerations
	if m.Type != "machine-learning-model" || m.Version != "v2" || m.Supplier["name"] != "Ministry of Public Security" || m.Licenses != nil ||
		len(cons.Users) != 1 || cons.Users[0] != "Anti-scam analysts" || cons.UseCases[0] != "Flag scam messages" || cons.TechnicalLimitations[0] != "Short messages only" {
		t.Errorf("component: %+v", m)
	}
	props := map[string]string{}
	for _, p := range m.Properties {
		props[p.Name] += p.Value + ";"
	}
	if props["sampan:risk_tier"] != "high;" || props["sampan:language"] != "vi;en;" || props["sampan:evaluated"] != "ab12;" {
		t.Errorf("properties: %v", props)
	}
}
