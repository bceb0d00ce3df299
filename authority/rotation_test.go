package authority

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// ocspStatus asks the authority's OCSP responder about cert and checks
// that the answer is signed by issuer.
func (ta *testAuthority) ocspStatus(t *testing.T, cert, issuer *x509.Certificate) int {
	t.Helper()
	der, err := ocsp.CreateRequest(cert, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ta.client("").HTTP.Post(ta.url+"/ocsp", "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r, err := ocsp.ParseResponseForCert(b, cert, issuer)
	if err != nil {
		t.Fatalf("OCSP about %s: %v", cert.Subject.CommonName, err)
	}
	return r.Status
}

// crlFor fetches the CRL a certificate names and checks it is signed by
// issuer; it returns the revoked serials.
func (ta *testAuthority) crlFor(t *testing.T, cert, issuer *x509.Certificate) map[string]bool {
	t.Helper()
	if len(cert.CRLDistributionPoints) != 1 {
		t.Fatalf("CRL distribution points %v", cert.CRLDistributionPoints)
	}
	der := ta.get(t, strings.TrimPrefix(cert.CRLDistributionPoints[0], ta.url))
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(issuer); err != nil {
		t.Fatalf("CRL at %s not signed by the certificate's issuer: %v", cert.CRLDistributionPoints[0], err)
	}
	out := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		out[e.SerialNumber.Text(16)] = true
	}
	return out
}

// TestCARotation: prepare, activate and retire a new instance CA. During
// the overlap the configuration lists both, new certificates come from
// the new one, and OCSP and each CA's CRL answer for the certificates of
// both; a restart keeps the rotation where it was; retirement refuses
// while a registered gateway's or a member's certificate still chains to
// the old CA, naming them, and succeeds once they are re-issued or
// revoked, after which the old CA is no longer listed.
func TestCARotation(t *testing.T) {
	dir := t.TempDir()
	ta := startAuthority(t, dir, "")
	api := registerMOF(t, ta)
	ctx := t.Context()
	gid, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	sub := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "registry"}

	oldCA := ta.a.CACert()
	oldAuth := issueGateway(t, ta, api)
	register := func(c *x509.Certificate) {
		t.Helper()
		if err := api.PutGateway(ctx, GatewayInput{ID: gid, Address: "127.0.0.1:8443", Clients: []ident.ClientID{sub}, AuthFP: pki.Fingerprint(c.Raw)}); err != nil {
			t.Fatal(err)
		}
	}
	register(oldAuth.c)
	signCSR := csrPEM(t, newKey(t), pkix.Name{CommonName: "VN/GOV/MPS"}, nil, nil)
	oldSign, err := api.Issue(ctx, IssueInput{Profile: "sign", Subject: "VN/GOV/MPS", CSR: signCSR})
	if err != nil {
		t.Fatal(err)
	}

	st, err := api.Rotate(ctx, "ca", "prepare", RotateInput{})
	if err != nil {
		t.Fatal(err)
	}
	if st.CA.Next == "" || len(ta.a.Current().CACerts) != 2 {
		t.Fatalf("after prepare: %+v, %d CA certificates published", st.CA, len(ta.a.Current().CACerts))
	}
	for _, name := range []string{"ca-next.key"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", name, fi, err)
		}
	}
	if _, err := api.Rotate(ctx, "ca", "activate", RotateInput{}); err == nil || !strings.Contains(err.Error(), "one configuration validity") {
		t.Errorf("early activation: %v", err)
	}
	if c := ta.a.CACert(); !c.Equal(oldCA) {
		t.Fatal("a refused activation changed the issuing CA")
	}
	if _, err := api.Rotate(ctx, "ca", "activate", RotateInput{Force: true}); err != nil {
		t.Fatal(err)
	}
	newCA := ta.a.CACert()
	if newCA.Equal(oldCA) {
		t.Fatal("activation left the old CA issuing")
	}
	if got := ta.a.Current().CACerts; len(got) != 2 || got[0] != string(pki.EncodeCert(newCA.Raw)) || got[1] != string(pki.EncodeCert(oldCA.Raw)) {
		t.Errorf("ca_certs after activation are not [new, old]")
	}

	// A restart keeps the rotation where it stands.
	listen := ta.cfg.Listen
	ta.stop()
	ta = startAuthority(t, dir, listen)
	api = ta.client(adminToken)
	if !ta.a.CACert().Equal(newCA) || len(ta.a.Current().CACerts) != 2 {
		t.Fatal("after a restart the rotation is not where it was")
	}

	newAuth := issueGateway(t, ta, api)
	if err := newAuth.c.CheckSignatureFrom(newCA); err != nil {
		t.Fatalf("certificate issued after activation: %v", err)
	}
	// Revocation answers for both CAs' certificates, each signed by the
	// certificate's own CA.
	for _, tc := range []struct {
		name         string
		cert, issuer *x509.Certificate
	}{{"old CA", oldAuth.c, oldCA}, {"new CA", newAuth.c, newCA}} {
		if got := ta.ocspStatus(t, tc.cert, tc.issuer); got != ocsp.Good {
			t.Errorf("%s: OCSP status %d, want good", tc.name, got)
		}
		ta.crlFor(t, tc.cert, tc.issuer)
	}

	// Retirement refuses while what matters chains to the old CA.
	_, err = api.Rotate(ctx, "ca", "retire", RotateInput{})
	if err == nil || !strings.Contains(err.Error(), "auth VN/GOV/MOF/gw1 serial "+oldAuth.serial) || !strings.Contains(err.Error(), "sign VN/GOV/MPS serial "+oldSign.Serial) {
		t.Fatalf("retirement with old certificates in use: %v", err)
	}
	register(newAuth.c) // the gateway re-keyed: its old certificate no longer matters
	_, err = api.Rotate(ctx, "ca", "retire", RotateInput{})
	if err == nil || strings.Contains(err.Error(), "auth VN/GOV/MOF/gw1") || !strings.Contains(err.Error(), "sign VN/GOV/MPS serial "+oldSign.Serial) {
		t.Fatalf("retirement with the old signing certificate in use: %v", err)
	}
	if _, err := api.Issue(ctx, IssueInput{Profile: "sign", Subject: "VN/GOV/MPS", CSR: signCSR}); err != nil {
		t.Fatalf("re-issue the signing certificate under the new CA: %v", err)
	}
	if err := api.Revoke(ctx, oldSign.Serial); err != nil {
		t.Fatal(err)
	}
	oldSignCert, _ := pki.ParseCertPEM([]byte(oldSign.Certificate))
	if got := ta.ocspStatus(t, oldSignCert, oldCA); got != ocsp.Revoked {
		t.Errorf("OCSP about the revoked old signing certificate: %d", got)
	}
	if !ta.crlFor(t, oldSignCert, oldCA)[oldSign.Serial] {
		t.Error("the old CA's CRL does not list the revoked certificate")
	}
	if _, err := api.Rotate(ctx, "ca", "retire", RotateInput{}); err != nil {
		t.Fatalf("retirement once nothing chains to the old CA: %v", err)
	}
	if got := ta.a.Current().CACerts; len(got) != 1 || got[0] != string(pki.EncodeCert(newCA.Raw)) {
		t.Error("the retired CA is still published")
	}
	c, err := conf.Verify(ta.a.current.Load().doc, ta.a.Anchor())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oldAuth.c.Verify(x509.VerifyOptions{Roots: c.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
		t.Error("a certificate of the retired CA still chains to the published CAs")
	}
	if code, _ := ta.raw(t, http.MethodGet, strings.TrimPrefix(oldAuth.c.CRLDistributionPoints[0], ta.url), "", ""); code != http.StatusNotFound {
		t.Errorf("CRL of the retired CA: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca-prev.key")); !os.IsNotExist(err) {
		t.Errorf("retired CA key still on disk: %v", err)
	}
	var steps int
	for _, row := range ta.auditRows(t) {
		if strings.Contains(row, "instance CA") {
			steps++
		}
	}
	if steps != 3 {
		t.Errorf("%d CA rotation steps audited, want 3", steps)
	}
}

// TestConfKeyRotationFiles: the configuration announces the prepared key,
// the anchor file lists it, the step survives a restart, and a stop in
// the middle of an activation's file steps is finished at start.
func TestConfKeyRotationFiles(t *testing.T) {
	dir := t.TempDir()
	ta := startAuthority(t, dir, "")
	api := ta.client(adminToken)
	ctx := t.Context()
	k1 := ta.a.Rotation().ConfKey.Current
	st, err := api.Rotate(ctx, "conf-key", "prepare", RotateInput{})
	if err != nil {
		t.Fatal(err)
	}
	k2 := st.ConfKey.Next
	if nk := ta.a.Current().NextKeys; len(nk) != 1 || nk[0].KeyID != k2 {
		t.Errorf("published next_keys %v, want %s", nk, k2)
	}
	if code, body := ta.raw(t, http.MethodPost, "/api/v1/rotation/conf-key/prepare", auditorToken, ""); code != http.StatusForbidden {
		t.Errorf("an auditor prepared a key: %d %s", code, body)
	}
	if code, body := ta.raw(t, http.MethodPost, "/api/v1/rotation/conf-key/activate", adminToken, `{"forse": true}`); code != http.StatusBadRequest {
		t.Errorf("misspelt option: %d %s", code, body)
	}
	// A stop between the two file steps of an activation: the old key
	// already linked as the previous one.
	// rotation.json lost too: the wait runs again from the restart.
	ta.stop()
	if err := os.Link(filepath.Join(dir, confSignKey), filepath.Join(dir, confSignPrevKey)); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, rotationFile)); err != nil {
		t.Fatal(err)
	}
	ta = startAuthority(t, dir, "")
	got := ta.a.Rotation().ConfKey
	if got.Current != k1 || got.Next != k2 || got.Previous != "" || got.PreparedAt == nil {
		t.Fatalf("after the restart: %+v", got)
	}
	an, err := conf.ReadAnchor(ta.a.AnchorPath())
	if err != nil {
		t.Fatal(err)
	}
	if ids := an.KeyIDs(); len(ids) != 2 || ids[0] != k1 || ids[1] != k2 {
		t.Errorf("anchor lists %v", ids)
	}
	if _, err := conf.Verify(ta.a.current.Load().doc, an); err != nil {
		t.Errorf("published configuration does not verify under the anchor file: %v", err)
	}
	if _, err := ta.client(adminToken).Rotate(ctx, "conf-key", "activate", RotateInput{}); err == nil {
		t.Error("activation allowed without waiting after the step times were lost")
	}
}
