package authority

import (
	"crypto/x509/pkix"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// registryState is what a refused renewal must leave as it was.
type registryState struct {
	serial  uint64
	certs   int
	audit   int
	gateway string
}

func (ta *testAuthority) state(t *testing.T) registryState {
	t.Helper()
	certs, err := ta.a.Certificates(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	audit, err := ta.a.Audit(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var gw string
	for _, g := range ta.a.Current().Gateways {
		b, _ := json.Marshal(g)
		gw += string(b)
	}
	changes := 0 // audit entries of changes made; refusals are audited too
	for _, e := range audit.Items {
		if e.Outcome == "ok" {
			changes++
		}
	}
	return registryState{serial: ta.a.Current().Serial, certs: len(certs.Items), audit: changes, gateway: gw}
}

// renewPath is the renewal call of gateway id.
func renewPath(id string, rest string) string {
	return "/api/v1/gateways/" + url.PathEscape(id) + "/renew" + rest
}

// TestRenewRefusals: a renewal is refused for a gateway that is not
// registered, for a CSR naming another subject or host than the
// registry holds, for a member the gateway does not sign for, for a key
// already certified, and for an operator who is not an admin; each
// refusal changes nothing (no certificate, no configuration, no audit
// entry).
func TestRenewRefusals(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	api := registerMOF(t, ta)
	cur := newKey(t)
	issued, err := api.Issue(t.Context(), IssueInput{Profile: "auth", Subject: "VN/GOV/MOF/gw1", CSR: csrPEM(t, cur, pkix.Name{}, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	gid, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	sub := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "registry"}
	if err := api.PutGateway(t.Context(), GatewayInput{ID: gid, Address: "127.0.0.1:8443", AuthFP: issued.SHA256, Clients: []ident.ClientID{sub}}); err != nil {
		t.Fatal(err)
	}
	body := func(in RenewInput) string { b, _ := json.Marshal(in); return string(b) }
	good := csrPEM(t, newKey(t), pkix.Name{CommonName: "VN/GOV/MOF/gw1"}, nil, nil)
	for _, tc := range []struct {
		name, gateway, token, body string
		status                     int
		want                       string
	}{
		{"unregistered gateway", "VN/GOV/MOF/gw9", adminToken, body(RenewInput{AuthCSR: csrPEM(t, newKey(t), pkix.Name{CommonName: "VN/GOV/MOF/gw9"}, nil, nil)}), 404, "gateway VN/GOV/MOF/gw9 is not registered"},
		{"gateway of another instance", "SG/GOV/ACRA/gw1", adminToken, body(RenewInput{AuthCSR: good}), 400, "is not a gateway of VN"},
		{"CSR naming another gateway", "VN/GOV/MOF/gw1", adminToken, body(RenewInput{AuthCSR: csrPEM(t, newKey(t), pkix.Name{CommonName: "VN/GOV/MPS/gw1"}, nil, nil)}), 400, `VN/GOV/MPS/gw1\" is not the subject VN/GOV/MOF/gw1`},
		{"CSR naming another host", "VN/GOV/MOF/gw1", adminToken, body(RenewInput{AuthCSR: csrPEM(t, newKey(t), pkix.Name{}, []string{"evil.example"}, nil)}), 400, "is not the registered host"},
		{"signing CSR naming another member", "VN/GOV/MOF/gw1", adminToken, body(RenewInput{SignCSRs: map[string]string{"VN/GOV/MOF": csrPEM(t, newKey(t), pkix.Name{CommonName: "VN/GOV/MPS"}, nil, nil)}}), 400, "is not the subject VN/GOV/MOF"},
		{"member the gateway does not sign for", "VN/GOV/MOF/gw1", adminToken, body(RenewInput{SignCSRs: map[string]string{"VN/GOV/MPS": csrPEM(t, newKey(t), pkix.Name{CommonName: "VN/GOV/MPS"}, nil, nil)}}), 400, "signs for VN/GOV/MOF only"},
		{"the current key again", "VN/GOV/MOF/gw1", adminToken, body(RenewInput{AuthCSR: csrPEM(t, cur, pkix.Name{}, nil, nil)}), 400, "a renewal needs a new key"},
		{"no CSR", "VN/GOV/MOF/gw1", adminToken, body(RenewInput{}), 400, "give at least one CSR"},
		{"auditor", "VN/GOV/MOF/gw1", auditorToken, body(RenewInput{AuthCSR: good}), 403, "may not do this"},
		{"no token", "VN/GOV/MOF/gw1", "", body(RenewInput{AuthCSR: good}), 401, "operator token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := ta.state(t)
			status, b := ta.raw(t, "POST", renewPath(tc.gateway, ""), tc.token, tc.body)
			if status != tc.status || !strings.Contains(b, tc.want) {
				t.Errorf("got %d %s, want %d with %q", status, b, tc.status, tc.want)
			}
			after := ta.state(t)
			if after != before {
				t.Errorf("a refused renewal changed the registry: %+v → %+v", before, after)
			}
		})
	}
	if status, b := ta.raw(t, "POST", renewPath("VN/GOV/MOF/gw1", "/complete"), adminToken, `{}`); status != 409 || !strings.Contains(b, "no renewal of VN/GOV/MOF/gw1 is under way") {
		t.Errorf("complete without a renewal: %d %s", status, b)
	}
	if status, b := ta.raw(t, "POST", renewPath("VN/GOV/MOF/gw1", "/complete"), auditorToken, `{}`); status != 403 {
		t.Errorf("complete by an auditor: %d %s", status, b)
	}
}

// TestRenewOverlap: a renewal issues certificates named after the
// registry, publishes the new authentication certificate beside the
// current one, refuses a second renewal while one is under way, and on
// completion publishes only the new one and revokes the old one; all of
// it is audited.
func TestRenewOverlap(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	api := registerMOF(t, ta)
	old := issueGateway(t, ta, api)
	oldFP := pki.Fingerprint(old.c.Raw)
	gid, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	sub := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "registry"}
	if err := api.PutGateway(t.Context(), GatewayInput{ID: gid, Address: "127.0.0.1:8443", AuthFP: oldFP, Clients: []ident.ClientID{sub}}); err != nil {
		t.Fatal(err)
	}
	// The CSRs name no subject: the registry does.
	out, err := api.RenewGateway(t.Context(), gid, RenewInput{
		AuthCSR:  csrPEM(t, newKey(t), pkix.Name{}, nil, nil),
		SignCSRs: map[string]string{"VN/GOV/MOF": csrPEM(t, newKey(t), pkix.Name{}, nil, nil)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := pki.ParseCertPEM([]byte(out.Auth.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	if g, ok := pki.GatewayOf(ac); !ok || g != "VN/GOV/MOF/gw1" || len(ac.IPAddresses) != 1 || ac.IPAddresses[0].String() != "127.0.0.1" {
		t.Errorf("renewed auth certificate names %q, IPs %v", g, ac.IPAddresses)
	}
	sc, err := pki.ParseCertPEM([]byte(out.Sign["VN/GOV/MOF"].Certificate))
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := pki.MemberOf(sc); !ok || m != "VN/GOV/MOF" {
		t.Errorf("renewed signing certificate names %q", m)
	}
	g := ta.a.Current().Gateway(gid)
	if g.AuthFP != oldFP || g.NextAuthFP != out.Auth.SHA256 {
		t.Errorf("during the renewal: auth %s next %s, want %s and %s", g.AuthFP, g.NextAuthFP, oldFP, out.Auth.SHA256)
	}
	if c := ta.a.Current(); c.GatewayByFingerprint(oldFP) != g || c.GatewayByFingerprint(out.Auth.SHA256) != g {
		t.Error("during the renewal the configuration does not identify the gateway by both certificates")
	}
	// The read API shows the renewal under way.
	if info, err := api.Gateway(t.Context(), gid.String()); err != nil || info.NextAuthFP != out.Auth.SHA256 {
		t.Errorf("GET the gateway during the renewal: next %q (%v), want %s", info.NextAuthFP, err, out.Auth.SHA256)
	}
	if _, err := api.RenewGateway(t.Context(), gid, RenewInput{AuthCSR: csrPEM(t, newKey(t), pkix.Name{}, nil, nil)}); err == nil || !strings.Contains(err.Error(), "a renewal of VN/GOV/MOF/gw1 is under way") {
		t.Errorf("a second renewal while one is under way: %v", err)
	}

	done, err := api.CompleteRenewal(t.Context(), gid, CompleteInput{RevokeOld: true})
	if err != nil {
		t.Fatal(err)
	}
	if done.AuthFP != out.Auth.SHA256 || done.Revoked != old.serial {
		t.Errorf("complete: %+v, want auth %s and %s revoked", done, out.Auth.SHA256, old.serial)
	}
	c := ta.a.Current()
	g = c.Gateway(gid)
	if g.AuthFP != out.Auth.SHA256 || g.NextAuthFP != "" || c.GatewayByFingerprint(oldFP) != nil {
		t.Errorf("after completion: auth %s next %q; old accepted: %v", g.AuthFP, g.NextAuthFP, c.GatewayByFingerprint(oldFP) != nil)
	}
	if info, err := api.Gateway(t.Context(), gid.String()); err != nil || info.NextAuthFP != "" || info.AuthFP != out.Auth.SHA256 {
		t.Errorf("GET the gateway after completion: %+v (%v)", info, err)
	}
	if !slices.Contains(c.Revoked, old.serial) || !c.IsRevoked(old.c) {
		t.Errorf("the old certificate %s is not revoked: %v", old.serial, c.Revoked)
	}
	audit, err := ta.a.Audit(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range audit.Items {
		if e.Operator == "alice" {
			actions = append(actions, e.Action)
		}
	}
	for _, want := range []string{"renew gateway certificates", "complete gateway renewal", "revoke certificate"} {
		if !slices.Contains(actions, want) {
			t.Errorf("audit log lacks %q: %v", want, actions)
		}
	}

	// Registering the next certificate also completes a renewal.
	out, err = api.RenewGateway(t.Context(), gid, RenewInput{AuthCSR: csrPEM(t, newKey(t), pkix.Name{}, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := api.PutGateway(t.Context(), GatewayInput{ID: gid, Address: "127.0.0.1:8443", AuthFP: out.Auth.SHA256, Clients: []ident.ClientID{sub}}); err != nil {
		t.Fatal(err)
	}
	if g := ta.a.Current().Gateway(gid); g.AuthFP != out.Auth.SHA256 || g.NextAuthFP != "" {
		t.Errorf("after registering the next certificate: auth %s next %q", g.AuthFP, g.NextAuthFP)
	}
}
