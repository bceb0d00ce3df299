package authority

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestAIObligationsPublishedOnlyWhenUsed: docs/upgrading.md,
// "Order" point 3: a newer authority's configuration stays readable by
// an older gateway (strict decoding refuses unknown fields) as long as
// no new feature is used. An authority with no AI service registered
// must not publish ai_obligations, a field gateways before this release
// do not know: upgrading the authority first would otherwise stop every
// older gateway (and every partner's) once its copy expires.
func TestAIObligationsPublishedOnlyWhenUsed(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	b, err := json.Marshal(ta.a.Current())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"ai_obligations"`) {
		t.Errorf("no AI service registered, yet the configuration carries ai_obligations, which older gateways refuse (unknown field)")
	}
}
