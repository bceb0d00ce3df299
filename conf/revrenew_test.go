package conf

import (
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
)

// TestNextAuthFingerprintOfAnother: a gateway's next fingerprint can be
// neither another gateway's current nor next one, in either order.
func TestNextAuthFingerprintOfAnother(t *testing.T) {
	c, _, _ := testWorld(t)
	c.Gateways = append(c.Gateways, Gateway{ID: c.Gateways[0].ID, Address: "127.0.0.1:9443", AuthFP: strings.Repeat("ef", 32), Clients: []ident.ClientID{}})
	c.Gateways[1].ID.Name = "gw2"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	g0, g1 := &c.Gateways[0], &c.Gateways[1]
	a0, a1 := g0.AuthFP, g1.AuthFP
	for _, tc := range []struct {
		name         string
		next0, next1 string
	}{
		{"next of the first is the second's current", a1, ""},
		{"next of the second is the first's current", "", a0},
		{"both next the same", strings.Repeat("cd", 32), strings.Repeat("cd", 32)},
	} {
		g0.NextAuthFP, g1.NextAuthFP = tc.next0, tc.next1
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "duplicates") {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
}
