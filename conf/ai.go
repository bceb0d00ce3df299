package conf

import (
	"fmt"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/sampan-exchange/sampan/ai/obligations"
	"github.com/sampan-exchange/sampan/ident"
)

// AIService is a registered AI service as the gateways enforce it: its
// effective risk tier (obligations.TierUnclassified when the provider's
// classification was made for another model version), the model version
// registered, and the obligations met.
type AIService struct {
	// ID is the service (instance/class/member/subsystem/code).
	ID           string `json:"id"`
	Tier         string `json:"tier"`
	ModelVersion string `json:"model_version"`
	// ModelCardDigest is the SHA-256 of the registered model card
	// (authority's canonical JSON of it): an evaluation counts only for
	// the card it evaluated, and the gateways tell clients which card
	// answered (Ai-Model-Card).
	ModelCardDigest string `json:"model_card_digest"`
	// Evaluated is the SHA-256 of the accepted passing evaluation report
	// for ModelVersion and the model card; empty when there is none.
	// EvaluatedBy is the accredited testing body that signed it.
	Evaluated   string         `json:"evaluated,omitempty"`
	EvaluatedBy ident.ClientID `json:"evaluated_by,omitzero"`
	// Notified says the service was notified (registered) to the
	// authority.
	Notified bool `json:"notified"`
	// Notice is the transparency notice every answer carries, when the
	// tier requires one.
	Notice string `json:"transparency_notice,omitempty"`
}

// Limits of the AI entries.
const (
	MaxAIServices      = 1000
	MaxAITestingBodies = 100
	MaxModelVersion    = 128
	MaxAINotice        = 512
)

// ValidNotice checks a transparency notice: it travels as a header
// value, so one line of printable text.
func ValidNotice(s string) error {
	if len(s) > MaxAINotice {
		return fmt.Errorf("longer than %d bytes", MaxAINotice)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("not UTF-8")
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("holds a control character")
		}
	}
	return nil
}

func isHexDigest(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// aiKey keys an AI service by provider and service code, any version:
// a struct, so that the look-up on every call allocates nothing.
type aiKey struct {
	provider ident.ClientID
	code     string
}

func aiKeyOf(s ident.ServiceID) aiKey { return aiKey{s.Provider, s.Code} }

func (c *Config) validateAI(ix *index) error {
	ix.ai, ix.testers = map[aiKey]*AIService{}, map[ident.ClientID]bool{}
	if r := c.AIObligations; r != nil {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("ai_obligations: %w", err)
		}
		if r.Country != c.Instance {
			return fmt.Errorf("ai_obligations.country: %q is not this instance, %s", r.Country, c.Instance)
		}
	}
	if len(c.AIServices) > MaxAIServices {
		return fmt.Errorf("ai_services: more than %d", MaxAIServices)
	}
	if len(c.AITestingBodies) > MaxAITestingBodies {
		return fmt.Errorf("ai_testing_bodies: more than %d", MaxAITestingBodies)
	}
	for i, m := range c.AITestingBodies {
		if m.IsSubsystem() || ix.members[m] == nil {
			return fmt.Errorf("ai_testing_bodies[%d]: %s is not a registered member", i, m)
		}
		if ix.testers[m] {
			return fmt.Errorf("ai_testing_bodies[%d]: %s twice", i, m)
		}
		ix.testers[m] = true
	}
	for i := range c.AIServices {
		a := &c.AIServices[i]
		sid, err := ident.ParseService(a.ID)
		if err != nil || sid.Version != "" || sid.Provider.Instance != c.Instance || !ix.subsys[sid.Provider] {
			return fmt.Errorf("ai_services[%d].id: %q is not a service of a registered subsystem of %s", i, a.ID, c.Instance)
		}
		if ix.ai[aiKeyOf(sid)] != nil {
			return fmt.Errorf("ai_services[%d].id: %s twice", i, a.ID)
		}
		if a.Tier != obligations.TierUnclassified && !slices.Contains(obligations.Tiers, a.Tier) {
			return fmt.Errorf("ai_services[%d].tier: %q is not high, medium, low or unclassified", i, a.Tier)
		}
		if a.ModelVersion == "" || len(a.ModelVersion) > MaxModelVersion || ValidNotice(a.ModelVersion) != nil {
			return fmt.Errorf("ai_services[%d].model_version: want 1 to %d bytes of printable text", i, MaxModelVersion)
		}
		if !isHexDigest(a.ModelCardDigest) {
			return fmt.Errorf("ai_services[%d].model_card_digest: want 64 hex digits", i)
		}
		if a.Evaluated != "" && !isHexDigest(a.Evaluated) {
			return fmt.Errorf("ai_services[%d].evaluated: want 64 hex digits", i)
		}
		if (a.Evaluated != "") != !a.EvaluatedBy.IsZero() {
			return fmt.Errorf("ai_services[%d].evaluated_by: set exactly when evaluated is", i)
		}
		if !a.EvaluatedBy.IsZero() && (a.EvaluatedBy.IsSubsystem() || ix.members[a.EvaluatedBy] == nil) {
			return fmt.Errorf("ai_services[%d].evaluated_by: %s is not a registered member", i, a.EvaluatedBy)
		}
		if err := ValidNotice(a.Notice); err != nil {
			return fmt.Errorf("ai_services[%d].transparency_notice: %w", i, err)
		}
		ix.ai[aiKeyOf(sid)] = a
	}
	return nil
}

// AIService returns the AI service entry of svc (any version of it), or
// nil when svc is not a registered AI service.
func (c *Config) AIService(svc ident.ServiceID) *AIService {
	return c.index.ai[aiKeyOf(svc)]
}

// IsAITestingBody reports whether member is an accredited AI testing
// body.
func (c *Config) IsAITestingBody(member ident.ClientID) bool {
	return c.index.testers[member]
}
