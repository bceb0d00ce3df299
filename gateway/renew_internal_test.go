package gateway

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// TestFollowConfRetiresConnections: the transport to provider gateways
// is replaced, before the next request leaves, by the first
// configuration that no longer lists an authentication certificate the
// one before listed — connections opened to a provider under its old
// certificate are never used again — and kept otherwise, so that
// connections survive ordinary publications.
func TestFollowConfRetiresConnections(t *testing.T) {
	ca, err := pki.NewCA("VN test CA")
	if err != nil {
		t.Fatal(err)
	}
	a, b := strings.Repeat("aa", 32), strings.Repeat("bb", 32)
	mof := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF"}
	state := func(serial uint64, cur, next string) *confState {
		now := time.Now().UTC()
		c := &conf.Config{FormatVersion: conf.FormatVersion, Instance: "VN", Serial: serial, GeneratedAt: now, ExpiresAt: now.Add(time.Hour),
			CACerts: []string{string(pki.EncodeCert(ca.Cert.Raw))},
			Members: []conf.Member{{ID: mof, Name: "MOF", Subsystems: []string{}}},
			Gateways: []conf.Gateway{{ID: ident.GatewayID{Instance: "VN", Class: "GOV", Code: "MOF", Name: "gw1"}, Address: "127.0.0.1:1",
				AuthFP: cur, NextAuthFP: next, Clients: []ident.ClientID{}}},
		}
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		return &confState{cfg: c}
	}
	g := &Gateway{cfg: &Config{}}
	g.peers.Store(g.newPeerTransport())
	t0 := g.peers.Load()
	for _, step := range []struct {
		name     string
		st       *confState
		replaced bool
	}{
		{"first configuration", state(1, a, ""), false},
		{"renewal under way: next certificate added", state(2, a, b), false},
		{"stale configuration", state(1, a, ""), false},
		{"renewal completed: old certificate dropped", state(3, b, ""), true},
		{"same certificates", state(4, b, ""), false},
	} {
		before := g.peers.Load()
		// The next request follows the configuration before it leaves.
		g.conf.Store(step.st)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://127.0.0.1:1/", nil)
		resp, err := peerTransport{g}.RoundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		if got := g.peers.Load() != before; got != step.replaced {
			t.Errorf("%s: transport replaced = %v, want %v", step.name, got, step.replaced)
		}
	}
	if !slices.Contains(g.retired, t0) {
		t.Error("the replaced transport is not kept for closing")
	}
}
