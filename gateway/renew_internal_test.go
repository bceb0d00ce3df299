package gateway

import (
	"net/http"
	"os"
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

// TestInstallRenewal: renewed certificates are installed only beside
// the next key they certify and only when they name this gateway or
// the member; a switch cut short between moving a key and its
// certificate is finished at the next load.
func TestInstallRenewal(t *testing.T) {
	ca, err := pki.NewCA("VN test CA")
	if err != nil {
		t.Fatal(err)
	}
	gid := ident.GatewayID{Instance: "VN", Class: "GOV", Code: "MOF", Name: "gw1"}
	mof := gid.Owner()
	issue := func(keyPath string, p pki.Profile, subject, uri string) []byte {
		t.Helper()
		k, err := pki.ReadKey(keyPath)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ca.Issue(k.Public(), p, pki.Template{CommonName: subject, URIs: []string{uri}})
		if err != nil {
			t.Fatal(err)
		}
		return pki.EncodeCert(c.Raw)
	}
	dir := t.TempDir()
	p, err := Init(dir, gid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := PrepareRenewal(dir, gid); err == nil {
		t.Fatal("a renewal prepared for a gateway without a certificate")
	}
	if err := os.WriteFile(p.AuthCert, issue(p.AuthKey, pki.ProfileAuth, gid.String(), pki.GatewayURI(gid.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.Sign[mof][2], issue(p.Sign[mof][0], pki.ProfileSign, mof.String(), pki.MemberURI(mof.String())), 0o644); err != nil {
		t.Fatal(err)
	}
	next, err := PrepareRenewal(dir, gid)
	if err != nil {
		t.Fatal(err)
	}
	if len(next.Sign) != 1 || next.Sign[mof][0] == p.Sign[mof][0] || next.AuthKey == p.AuthKey {
		t.Fatalf("next keys: %+v", next)
	}
	other := ident.GatewayID{Instance: "VN", Class: "GOV", Code: "MPS", Name: "gw1"}
	for _, tc := range []struct {
		name string
		auth []byte
		sign map[ident.ClientID][]byte
		want string
	}{
		{"auth certificate of the current key", issue(p.AuthKey, pki.ProfileAuth, gid.String(), pki.GatewayURI(gid.String())), nil, "not of the next key"},
		{"auth certificate of another gateway", issue(next.AuthKey, pki.ProfileAuth, other.String(), pki.GatewayURI(other.String())), nil, `names "VN/GOV/MPS/gw1"`},
		{"signing certificate of another member", nil, map[ident.ClientID][]byte{mof: issue(next.Sign[mof][0], pki.ProfileSign, "VN/GOV/MPS", pki.MemberURI("VN/GOV/MPS"))}, "not VN/GOV/MOF"},
		{"not a certificate", []byte("junk"), nil, "install renewed authentication certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := InstallRenewal(dir, gid, tc.auth, tc.sign); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
			if _, err := os.Stat(next.AuthCert); err == nil {
				t.Error("a refused certificate was installed")
			}
		})
	}
	auth := issue(next.AuthKey, pki.ProfileAuth, gid.String(), pki.GatewayURI(gid.String()))
	if err := InstallRenewal(dir, gid, auth, map[ident.ClientID][]byte{mof: issue(next.Sign[mof][0], pki.ProfileSign, mof.String(), pki.MemberURI(mof.String()))}); err != nil {
		t.Fatal(err)
	}

	// A switch stopped after moving the keys, before their certificates.
	if err := os.Rename(next.AuthKey, p.AuthKey); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(next.Sign[mof][0], p.Sign[mof][0]); err != nil {
		t.Fatal(err)
	}
	kr, err := loadKeys(dir, gid, func() bool { return false }, time.Millisecond)
	if err != nil {
		t.Fatalf("load after a switch cut short: %v", err)
	}
	if c, _ := pki.ParseCertPEM(auth); kr.authFP != pki.Fingerprint(c.Raw) || kr.sign[mof] == nil {
		t.Errorf("after a switch cut short the gateway holds %s, want the renewed certificate", kr.authFP)
	}
}
