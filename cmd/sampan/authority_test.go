package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// TestAuthorityCommandsTrustOnlyTheAuthorityTLSCA: the CLI issues and
// revokes at the authority it is given the TLS CA of, and refuses a
// server presenting a gateway's certificate — valid, of the instance CA,
// for the address — in the authority's place.
func TestAuthorityCommandsTrustOnlyTheAuthorityTLSCA(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const token = "operator-token"
	c := &authority.Config{Instance: "VN", Listen: ln.Addr().String(), Operators: []authority.Operator{{Name: "op", TokenSHA256: authority.HashToken(token), Role: authority.RoleAdmin}}}
	c.SetDefaults()
	a, err := authority.New(t.Context(), c, filepath.Join(dir, "authority"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	defer func() { cancel(); <-done; a.Close() }()

	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(token+"\n"), 0o600)
	instanceCA := filepath.Join(dir, "ca.pem")
	os.WriteFile(instanceCA, pki.EncodeCert(a.CACert().Raw), 0o644)
	api := authority.NewClient(c.PublicURL, token, a.TLSCACert())
	mof := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF"}
	gid, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	if err := api.AddMember(t.Context(), authority.MemberInput{ID: mof, Name: "MOF"}); err != nil {
		t.Fatal(err)
	}
	if err := api.PutGateway(t.Context(), authority.GatewayInput{ID: gid, Address: "127.0.0.1:8443"}); err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(key, gid.String())
	csrFile := filepath.Join(dir, "auth.csr")
	os.WriteFile(csrFile, csr, 0o644)

	flags := func(url, ca string) authorityAPI { return authorityAPI{URL: url, TLSCA: ca, TokenFile: tokenFile} }
	g := &Globals{LogLevel: "error", LogFormat: "text"}
	certFile := filepath.Join(dir, "auth.crt")
	issue := &AuthorityIssueCmd{authorityAPI: flags(c.PublicURL, a.TLSCAPath()), Profile: "auth", Subject: gid.String(), CSR: csrFile, Out: certFile}
	if err := issue.Run(g); err != nil {
		t.Fatalf("sampan authority issue: %v", err)
	}
	cert, err := pki.ReadCert(certFile)
	if err != nil {
		t.Fatal(err)
	}

	// A server holding the gateway's certificate, in the authority's
	// place.
	var hits atomic.Int64
	im := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("{}"))
	}))
	im.Config.ErrorLog = log.New(io.Discard, "", 0)
	im.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}}}
	im.StartTLS()
	defer im.Close()
	serial := pki.Fingerprint(cert.Raw)[:8] // any serial: the call must not get that far
	err = (&AuthorityRevokeCmd{authorityAPI: flags(im.URL, a.TLSCAPath()), Serial: serial}).Run(g)
	if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
		t.Errorf("revoke at a server with a gateway's certificate: err = %v, want an untrusted certificate", err)
	}
	if hits.Load() != 0 {
		t.Error("the CLI sent its request (and token) to the impostor")
	}
	// The certificate would pass for the address with the instance CA:
	// only the choice of CA keeps it out.
	if err := (&AuthorityRevokeCmd{authorityAPI: flags(im.URL, instanceCA), Serial: serial}).Run(g); err != nil || hits.Load() != 1 {
		t.Fatalf("control: the impostor was not reachable with the instance CA trusted: %v", err)
	}

	// At the authority itself, the revocation goes through.
	sn := cert.SerialNumber.Text(16)
	if err := (&AuthorityRevokeCmd{authorityAPI: flags(c.PublicURL, a.TLSCAPath()), Serial: sn}).Run(g); err != nil {
		t.Fatalf("sampan authority revoke: %v", err)
	}
	if !slices.Contains(a.Current().Revoked, sn) {
		t.Errorf("serial %s not in the published revocations %v", sn, a.Current().Revoked)
	}

	// The read commands: the certificate, revoked; the audit log with
	// the revocation.
	var certs, audit strings.Builder
	if err := (&AuthorityCertificatesCmd{authorityAPI: flags(c.PublicURL, a.TLSCAPath())}).print(&certs); err != nil {
		t.Fatalf("sampan authority certificates: %v", err)
	}
	if !strings.Contains(certs.String(), `"serial":"`+sn+`"`) || !strings.Contains(certs.String(), `"status":"revoked"`) {
		t.Errorf("sampan authority certificates:\n%s", certs.String())
	}
	if err := (&AuthorityAuditCmd{authorityAPI: flags(c.PublicURL, a.TLSCAPath())}).print(&audit); err != nil {
		t.Fatalf("sampan authority audit: %v", err)
	}
	if lines := strings.Split(strings.TrimSpace(audit.String()), "\n"); len(lines) < 4 || !strings.Contains(audit.String(), sn) {
		t.Errorf("sampan authority audit:\n%s", audit.String())
	}
}

// testAuthorityAPI runs a real authority on loopback with one admin and
// one auditor, and returns it with the flags of the auditor's calls.
func testAuthorityAPI(t *testing.T) (*authority.Authority, *authority.Client, authorityAPI) {
	t.Helper()
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const admin, auditor = "admin-operator-token", "auditor-operator-token"
	c := &authority.Config{Instance: "VN", Listen: ln.Addr().String(), Operators: []authority.Operator{
		{Name: "op", TokenSHA256: authority.HashToken(admin), Role: authority.RoleAdmin},
		{Name: "aud", TokenSHA256: authority.HashToken(auditor), Role: authority.RoleAuditor},
	}}
	c.SetDefaults()
	a, err := authority.New(t.Context(), c, filepath.Join(dir, "authority"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; a.Close() })
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(auditor+"\n"), 0o600)
	return a, authority.NewClient(c.PublicURL, admin, a.TLSCACert()), authorityAPI{URL: c.PublicURL, TLSCA: a.TLSCAPath(), TokenFile: tokenFile}
}

// TestAuthorityReadCommands: the registry's read commands print, as an
// auditor, a table or lines of JSON of every object, or one (--id), and
// say what the authority answered for an unknown id.
func TestAuthorityReadCommands(t *testing.T) {
	a, api, flags := testAuthorityAPI(t)
	ctx := t.Context()
	mof := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF"}
	sub := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "registry"}
	gid, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	an := *a.Anchor()
	an.Instance = "SG"
	for _, err := range []error{
		api.AddMember(ctx, authority.MemberInput{ID: mof, Name: "Ministry of Finance"}),
		api.AddSubsystem(ctx, authority.SubsystemInput{ID: sub}),
		api.PutGateway(ctx, authority.GatewayInput{ID: gid, Address: "127.0.0.1:8443", Clients: []ident.ClientID{sub}}),
		api.PutGroup(ctx, authority.GroupInput{ID: ident.GroupID{Instance: "VN", Code: "finance"}, Description: "finance bodies", Members: []ident.ClientID{sub}}),
		api.PutFederation(ctx, authority.FederationInput{Anchor: an}),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if err := api.AddMember(ctx, authority.MemberInput{ID: ident.ClientID{Instance: "VN", Class: "COM", Code: fmt.Sprintf("C%d", i)}, Name: fmt.Sprintf("company %d", i)}); err != nil {
			t.Fatal(err)
		}
	}

	type printer interface{ print(io.Writer) error }
	run := func(p printer) string {
		t.Helper()
		var out strings.Builder
		if err := p.print(&out); err != nil {
			t.Fatalf("%T: %v", p, err)
		}
		return out.String()
	}
	rr := func(id string, asJSON bool) registryRead {
		return registryRead{authorityAPI: flags, ID: id, JSON: asJSON}
	}
	for _, tc := range []struct {
		name string
		p    printer
		want []string
	}{
		{"members", &AuthorityMembersCmd{rr("", false)}, []string{"ID  ", "NAME", "VN/GOV/MOF  ", "Ministry of Finance", "VN/COM/C2", "company 2"}},
		{"members --json", &AuthorityMembersCmd{rr("", true)}, []string{`{"id":"VN/GOV/MOF","name":"Ministry of Finance","created_at":"`, `"subsystems":1}`, `"id":"VN/COM/C0"`}},
		{"subsystems", &AuthoritySubsystemsCmd{rr("", false)}, []string{"VN/GOV/MOF/registry", "VN/GOV/MOF/gw1"}},
		{"gateways --id", &AuthorityGatewaysCmd{rr("VN/GOV/MOF/gw1", false)}, []string{"VN/GOV/MOF/gw1", "127.0.0.1:8443", "none", "VN/GOV/MOF/registry"}},
		{"gateways --json", &AuthorityGatewaysCmd{rr("", true)}, []string{`"id":"VN/GOV/MOF/gw1"`, `"owner":"VN/GOV/MOF"`, `"clients":["VN/GOV/MOF/registry"]`}},
		{"groups", &AuthorityGroupsCmd{rr("", false)}, []string{"VN/finance", "finance bodies", "VN/GOV/MOF/registry"}},
		{"federation --id", &AuthorityFederationCmd{rr("SG", true)}, []string{`"instance":"SG"`, `"anchor_url":"` + an.URL + `"`, an.Keys[0].KeyID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := run(tc.p)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
	if out := run(&AuthorityMembersCmd{rr("", true)}); strings.Count(out, "\n") != 4 {
		t.Errorf("members --json: want 4 lines:\n%s", out)
	}
	// --after: from the position after the first member on.
	p, err := authority.NewClient(flags.URL, "", a.TLSCACert()).Members(ctx, 0, 1)
	if err == nil {
		t.Fatalf("members without a token: %+v", p)
	}
	first, err := api.Members(ctx, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	after := registryRead{authorityAPI: flags, After: first.Next, JSON: true}
	if out := run(&AuthorityMembersCmd{after}); strings.Contains(out, `"VN/GOV/MOF"`) || strings.Count(out, "\n") != 3 {
		t.Errorf("members --after %d:\n%s", first.Next, out)
	}
	err = (&AuthorityMembersCmd{rr("VN/GOV/NOPE", false)}).print(io.Discard)
	if err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "VN/GOV/NOPE") {
		t.Errorf("unknown member: %v, want a 404 naming it", err)
	}

	// A refused change is in the audit log, with its outcome.
	if err := api.AddMember(ctx, authority.MemberInput{ID: mof, Name: "again"}); err == nil {
		t.Fatal("a member registered twice")
	}
	out := run(&AuthorityAuditCmd{authorityAPI: flags})
	for _, w := range []string{`"operator":"op","action":"add member","detail":"POST /api/v1/members from `, `"outcome":"refused: member VN/GOV/MOF is already registered"}`, `"outcome":"ok"`} {
		if !strings.Contains(out, w) {
			t.Errorf("sampan authority audit lacks %s:\n%s", w, out)
		}
	}
}

// TestAuthorityRunReloadsOnSIGHUP: sampan authority run reloads its
// configuration file when the process gets SIGHUP: an operator taken
// out of the file is refused from then on, and the process keeps
// serving.
func TestAuthorityRunReloadsOnSIGHUP(t *testing.T) {
	dir := t.TempDir()
	addr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	const admin, auditor = "admin-operator-token", "auditor-operator-token"
	c := authority.Config{Instance: "VN", Listen: addr(), OpsListen: addr(), Operators: []authority.Operator{
		{Name: "op", TokenSHA256: authority.HashToken(admin), Role: authority.RoleAdmin},
		{Name: "aud", TokenSHA256: authority.HashToken(auditor), Role: authority.RoleAuditor},
	}}
	file := filepath.Join(dir, "authority.json")
	write := func() {
		b, _ := json.Marshal(&c)
		if err := os.WriteFile(file, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- (&AuthorityRunCmd{Config: file, Dir: filepath.Join(dir, "data")}).run(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), hup)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("sampan authority run: %v", err)
		}
	}()

	var api *authority.Client
	status := func(token string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+c.Listen+"/api/v1/members", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := api.HTTP.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if ca, err := pki.ReadCert(filepath.Join(dir, "data", authority.TLSCAFile)); err == nil {
			api = authority.NewClient("https://"+c.Listen, admin, ca)
			if status(auditor) == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the authority did not come up")
		}
		time.Sleep(50 * time.Millisecond)
	}

	c.Operators = c.Operators[:1]
	write()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for status(auditor) != 401 {
		if time.Now().After(deadline) {
			t.Fatal("the auditor taken out of the file is still served ten seconds after SIGHUP")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := status(admin); s != 200 {
		t.Errorf("the operator kept: %d after the reload", s)
	}
}
