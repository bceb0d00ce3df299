package policy

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"strings"
)

//go:embed national/*.json
var nationalFS embed.FS

// National returns the reference rule set published for an instance
// ("VN", "SG"): the rules of Vietnam's Law on Data and Decree 13/2023
// and of Singapore's PDPA transfer limitation obligation as this
// exchange enforces them. Authorities publish them (or their own) through
// their management API.
func National(instance string) ([]Rule, error) {
	b, err := nationalFS.ReadFile("national/" + strings.ToLower(instance) + ".json")
	if err != nil {
		return nil, fmt.Errorf("no reference rules for instance %q", instance)
	}
	return DecodeRules(b)
}

// DecodeRules reads a rule list strictly: an unknown field is an error.
func DecodeRules(b []byte) ([]Rule, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var rs []Rule
	if err := dec.Decode(&rs); err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("rules: trailing data")
	}
	return rs, nil
}

// DecodeDocument reads a policy document strictly.
func DecodeDocument(b []byte) (*Document, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d Document
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("policy: trailing data")
	}
	return &d, nil
}
