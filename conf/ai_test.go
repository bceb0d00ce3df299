package conf

import (
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ai/obligations"
	"github.com/sampan-exchange/sampan/ident"
)

// TestValidateAIServices: AI entries name registered subsystems and
// members, known tiers, bounded versions and one-line notices; the
// look-up finds a service under any version of its id.
func TestValidateAIServices(t *testing.T) {
	const svc = "VN/GOV/MOF/business-registry/classifier"
	mof := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF"}
	ok := AIService{ID: svc, Tier: "high", ModelVersion: "m1", ModelCardDigest: strings.Repeat("cd", 32), Evaluated: strings.Repeat("ab", 32), EvaluatedBy: mof, Notified: true}
	c, _, _ := testWorld(t)
	c.AIServices, c.AITestingBodies = []AIService{ok}, []ident.ClientID{mof}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	sid, _ := ident.ParseService(svc + "/v2")
	if a := c.AIService(sid); a == nil || a.ModelVersion != "m1" {
		t.Errorf("AIService(%s) = %+v", sid, a)
	}
	if !c.IsAITestingBody(mof) || c.IsAITestingBody(ident.ClientID{Instance: "VN", Class: "GOV", Code: "MPS"}) {
		t.Error("testing bodies")
	}
	for _, tc := range []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"unknown tier", func(c *Config) { c.AIServices[0].Tier = "critical" }, `ai_services[0].tier: "critical"`},
		{"unregistered subsystem", func(c *Config) { c.AIServices[0].ID = "VN/GOV/MOF/other/classifier" }, "ai_services[0].id"},
		{"versioned id", func(c *Config) { c.AIServices[0].ID = svc + "/v1" }, "ai_services[0].id"},
		{"twice", func(c *Config) { c.AIServices = append(c.AIServices, c.AIServices[0]) }, "ai_services[1].id"},
		{"no model version", func(c *Config) { c.AIServices[0].ModelVersion = "" }, "ai_services[0].model_version"},
		{"bad digest", func(c *Config) { c.AIServices[0].Evaluated = "abc" }, "ai_services[0].evaluated"},
		{"upper-case digest", func(c *Config) { c.AIServices[0].Evaluated = strings.Repeat("AB", 32) }, "ai_services[0].evaluated"},
		{"no model card digest", func(c *Config) { c.AIServices[0].ModelCardDigest = "" }, "ai_services[0].model_card_digest"},
		{"evaluated by nobody", func(c *Config) { c.AIServices[0].EvaluatedBy = ident.ClientID{} }, "ai_services[0].evaluated_by"},
		{"evaluator without evaluation", func(c *Config) { c.AIServices[0].Evaluated = "" }, "ai_services[0].evaluated_by"},
		{"evaluated by an unregistered member", func(c *Config) { c.AIServices[0].EvaluatedBy.Code = "NOBODY" }, "ai_services[0].evaluated_by"},
		{"obligations of another country", func(c *Config) {
			c.AIObligations = &obligations.Rules{Country: "SG", Tiers: map[string][]string{"high": {}, "medium": {}, "low": {}}}
		}, "ai_obligations.country"},
		{"obligations with an unknown term", func(c *Config) {
			c.AIObligations = &obligations.Rules{Country: "VN", Tiers: map[string][]string{"high": {"be-nice"}, "medium": {}, "low": {}}}
		}, `ai_obligations: obligations VN: tiers.high[0]: unknown obligation "be-nice"`},
		{"notice with a line break", func(c *Config) { c.AIServices[0].Notice = "AI\r\nX-Injected: 1" }, "ai_services[0].transparency_notice"},
		{"testing body not a member", func(c *Config) { c.AITestingBodies[0].Code = "NOBODY" }, "ai_testing_bodies[0]"},
		{"testing body a subsystem", func(c *Config) { c.AITestingBodies[0].Subsystem = "business-registry" }, "ai_testing_bodies[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, _ := testWorld(t)
			c.AIServices, c.AITestingBodies = []AIService{ok}, []ident.ClientID{mof}
			tc.mod(c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
