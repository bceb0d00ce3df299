package conf

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestNextAuthFingerprint: while a gateway's certificates are renewed,
// its current and its next authentication certificate both identify it
// and both serve its clients; no other fingerprint does, and a next
// fingerprint that is malformed or another gateway's is refused. A
// document without one is unchanged on the wire.
func TestNextAuthFingerprint(t *testing.T) {
	c, _, _ := testWorld(t)
	cur, next, other := strings.Repeat("ab", 32), strings.Repeat("cd", 32), strings.Repeat("ef", 32)
	b, _ := json.Marshal(c)
	if strings.Contains(string(b), "next_auth_cert_sha256") {
		t.Errorf("a document without a renewal names next_auth_cert_sha256: %s", b)
	}
	client := c.Gateways[0].Clients[0]
	if c.GatewayByFingerprint(next) != nil || c.Serves(next, client) {
		t.Fatal("the next fingerprint is accepted before it is published")
	}

	c.Gateways[0].NextAuthFP = next
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, fp := range []string{cur, next} {
		if g := c.GatewayByFingerprint(fp); g == nil || g.ID != c.Gateways[0].ID {
			t.Errorf("GatewayByFingerprint(%.8s…) = %v, want %s", fp, g, c.Gateways[0].ID)
		}
		if !c.Serves(fp, client) {
			t.Errorf("Serves(%.8s…, %s) = false", fp, client)
		}
		if !c.Gateways[0].HasAuthFP(fp) {
			t.Errorf("HasAuthFP(%.8s…) = false", fp)
		}
	}
	if c.GatewayByFingerprint(other) != nil || c.Serves(other, client) || c.Gateways[0].HasAuthFP(other) || c.Gateways[0].HasAuthFP("") {
		t.Error("a fingerprint that is neither the current nor the next one is accepted")
	}

	// Renewal completed: the old fingerprint is no longer accepted.
	c.Gateways[0].AuthFP, c.Gateways[0].NextAuthFP = next, ""
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.GatewayByFingerprint(cur) != nil || c.Serves(cur, client) || c.Gateways[0].HasAuthFP(cur) || c.Gateways[0].HasAuthFP("") {
		t.Error("the old fingerprint is still accepted after the renewal completed")
	}

	for _, tc := range []struct{ name, next, want string }{
		{"malformed", "abcd", "gateways[0].next_auth_cert_sha256: want 64 hex digits"},
		{"the current one", next, "gateways[0].next_auth_cert_sha256 duplicates the certificate of gateways[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.Gateways[0].NextAuthFP = tc.next
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
