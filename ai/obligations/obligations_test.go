package obligations

import (
	"strings"
	"testing"
)

func TestCountries(t *testing.T) {
	vn, err := For("VN")
	if err != nil {
		t.Fatal(err)
	}
	if !vn.Requires(TierHigh, ConformityEvaluation) || !vn.Requires(TierHigh, HumanOversight) || vn.Requires(TierLow, ConformityEvaluation) {
		t.Errorf("VN high/low: %+v", vn.Tiers)
	}
	if !vn.Requires(TierMedium, TransparencyNotice) || vn.Requires(TierMedium, ConformityEvaluation) {
		t.Errorf("VN medium: %+v", vn.Tiers)
	}
	// Unclassified and unknown tiers are held to the highest tier.
	if !vn.Requires(TierUnclassified, ConformityEvaluation) || !vn.Requires("bogus", ConformityEvaluation) {
		t.Error("unclassified is not held to the high tier")
	}
	if _, err := For("SG"); err != nil {
		t.Error(err)
	}
	if _, err := For("XX"); err == nil {
		t.Error("a country without rules has rules")
	}
}

func TestCompileRefuses(t *testing.T) {
	for _, c := range []struct{ doc, want string }{
		{`{"country":"VN","tiers":{"high":["conformity-evaluation","be-nice"],"medium":[],"low":[]}}`, `unknown obligation "be-nice"`},
		{`{"country":"VN","tiers":{"extreme":[],"high":[],"medium":[],"low":[]}}`, "tiers.extreme: unknown tier"},
		{`{"country":"VN","tiers":{"high":[],"medium":[]}}`, "tiers.low: missing"},
		{`{"country":"VN","tiers":{"high":["notification","notification"],"medium":[],"low":[]}}`, "twice"},
		{`{"country":"VN","tier":{}}`, "unknown field"},
		{`{"tiers":{"high":[],"medium":[],"low":[]}}`, "country: want 1 to 32 bytes"},
		{`{"country":"VN","tiers":{"high":[],"medium":[],"low":[]},"recognised_evaluations":["S G"]}`, "not an instance code"},
	} {
		_, err := Compile([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.doc, err, c.want)
		}
	}
}
