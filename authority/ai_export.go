package authority

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// HuggingFaceCard renders the registration as a Hugging Face model card:
// a README.md whose YAML front matter carries the metadata Hugging Face
// reads (language, license, tags) and whose sections hold the card's
// texts. Values are written as JSON strings, which YAML reads as they
// are, so no field can break out of the front matter.
func (s *AIServiceInfo) HuggingFaceCard() []byte {
	c := s.ModelCard
	var b bytes.Buffer
	q := strconv.Quote
	b.WriteString("---\n")
	fmt.Fprintf(&b, "model_name: %s\n", q(c.ModelName))
	fmt.Fprintf(&b, "model_version: %s\n", q(c.ModelVersion))
	b.WriteString("language:\n")
	for _, l := range c.Languages {
		fmt.Fprintf(&b, "- %s\n", q(l))
	}
	if c.License != "" {
		fmt.Fprintf(&b, "license: %s\n", q(c.License))
	}
	fmt.Fprintf(&b, "tags:\n- %s\n- %s\n", q("sampan:"+s.ID), q("risk-tier:"+s.Tier))
	b.WriteString("---\n\n")
	fmt.Fprintf(&b, "# %s %s\n\n", oneLine(c.ModelName), oneLine(c.ModelVersion))
	for _, sec := range [][2]string{
		{"Provider", c.Provider},
		{"Intended uses", c.IntendedUse},
		{"Intended users", c.IntendedUsers},
		{"Out-of-scope use", c.OutOfScopeUses},
		{"Training data", c.TrainingData},
		{"Limitations", c.Limitations},
		{"Human oversight", c.HumanOversight},
		{"Risk classification", fmt.Sprintf("%s (classified %s for model version %s): %s", s.Tier, s.Classification.ClassifiedOn, s.Classification.ModelVersion, strings.Join(s.Classification.Reasons, "; "))},
		{"Contact", c.Contact},
	} {
		if sec[1] == "" {
			continue
		}
		fmt.Fprintf(&b, "## %s\n\n%s\n\n", sec[0], sec[1])
	}
	return b.Bytes()
}

// oneLine keeps a heading on one line.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// CycloneDX renders the registration as a CycloneDX 1.6 ML-BOM: one
// machine-learning-model component with its model card's considerations
// (users, use cases, technical limitations) and the rest as properties.
func (s *AIServiceInfo) CycloneDX() ([]byte, error) {
	c := s.ModelCard
	type prop struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	props := []prop{{"sampan:service", s.ID}, {"sampan:risk_tier", s.Tier}, {"sampan:classified_on", s.Classification.ClassifiedOn}}
	for _, l := range c.Languages {
		props = append(props, prop{"sampan:language", l})
	}
	for _, p := range [][2]string{{"sampan:out_of_scope_uses", c.OutOfScopeUses}, {"sampan:training_data", c.TrainingData}, {"sampan:human_oversight", c.HumanOversight}, {"sampan:contact", c.Contact}, {"sampan:evaluated", s.Evaluated}} {
		if p[1] != "" {
			props = append(props, prop{p[0], p[1]})
		}
	}
	model := map[string]any{
		"type":       "machine-learning-model",
		"bom-ref":    s.ID,
		"name":       c.ModelName,
		"version":    c.ModelVersion,
		"supplier":   map[string]string{"name": c.Provider},
		"modelCard":  map[string]any{"considerations": map[string]any{"users": []string{c.IntendedUsers}, "useCases": []string{c.IntendedUse}, "technicalLimitations": []string{c.Limitations}}},
		"properties": props,
	}
	if c.License != "" {
		model["licenses"] = []map[string]map[string]string{{"license": {"name": c.License}}}
	}
	bom := map[string]any{"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": []map[string]any{model}}
	return json.MarshalIndent(bom, "", "  ")
}
