package authority

import (
	"bytes"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/store"
)

// registerMOF registers member MOF, its subsystem and gateway gw1 at
// 127.0.0.1:8443 (no certificate yet), and member MPS.
func registerMOF(t *testing.T, ta *testAuthority) *Client {
	t.Helper()
	api := ta.client(adminToken)
	ctx := t.Context()
	for _, m := range []string{"MOF", "MPS"} {
		if err := api.AddMember(ctx, MemberInput{ID: ident.ClientID{Instance: "VN", Class: "GOV", Code: m}, Name: m}); err != nil {
			t.Fatal(err)
		}
	}
	sub := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "registry"}
	if err := api.AddSubsystem(ctx, SubsystemInput{ID: sub}); err != nil {
		t.Fatal(err)
	}
	gid, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	if err := api.PutGateway(ctx, GatewayInput{ID: gid, Address: "127.0.0.1:8443", Clients: []ident.ClientID{sub}}); err != nil {
		t.Fatal(err)
	}
	return api
}

// csrPEM makes a CSR for key with the given subject and names.
func csrPEM(t *testing.T, key crypto.Signer, subject pkix.Name, dns []string, ips []net.IP) string {
	t.Helper()
	der, err := x509.CreateCertificateRequest(nil, &x509.CertificateRequest{Subject: subject, DNSNames: dns, IPAddresses: ips}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func newKey(t *testing.T) crypto.Signer {
	t.Helper()
	k, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestIssueOnlyWhatIsRegistered: an authentication certificate names
// only a registered gateway and its registered host; a signing
// certificate only the member named; a key serves one subject. Every
// refusal leaves the registry as it was.
func TestIssueOnlyWhatIsRegistered(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	api := registerMOF(t, ta)
	ctx := t.Context()
	cn := func(s string) pkix.Name { return pkix.Name{CommonName: s} }
	loopback := []net.IP{net.IPv4(127, 0, 0, 1)}

	good := newKey(t)
	issued, err := api.Issue(ctx, IssueInput{Profile: "auth", Subject: "VN/GOV/MOF/gw1", CSR: csrPEM(t, good, cn("VN/GOV/MOF/gw1"), nil, loopback)})
	if err != nil {
		t.Fatalf("registered gateway: %v", err)
	}
	cert, _ := pki.ParseCertPEM([]byte(issued.Certificate))
	if len(cert.DNSNames) != 0 || len(cert.IPAddresses) != 1 || !cert.IPAddresses[0].Equal(loopback[0]) || cert.Subject.CommonName != "VN/GOV/MOF/gw1" {
		t.Errorf("certificate names %v %v %q, want the registered host alone", cert.DNSNames, cert.IPAddresses, cert.Subject.CommonName)
	}
	// Renewal: the same key again for the same gateway.
	if _, err := api.Issue(ctx, IssueInput{Profile: "auth", Subject: "VN/GOV/MOF/gw1", CSR: csrPEM(t, good, cn("VN/GOV/MOF/gw1"), nil, nil)}); err != nil {
		t.Errorf("renewal with the same key: %v", err)
	}
	signKey := newKey(t)
	if _, err := api.Issue(ctx, IssueInput{Profile: "sign", Subject: "VN/GOV/MOF", CSR: csrPEM(t, signKey, cn("VN/GOV/MOF"), nil, nil)}); err != nil {
		t.Errorf("signing certificate of a registered member: %v", err)
	}

	// A second gateway, of another member, registered without a
	// certificate.
	gw2, _ := ident.ParseGateway("VN/GOV/MPS/gw1")
	if err := api.PutGateway(ctx, GatewayInput{ID: gw2, Address: "gw.mps.example:8443"}); err != nil {
		t.Fatal(err)
	}
	if ta.a.Current().Gateway(gw2) != nil {
		t.Error("a gateway without a certificate is published")
	}

	serial := ta.a.Current().Serial
	certs := countCerts(t, ta)
	other := newKey(t)
	for _, tc := range []struct {
		name string
		in   IssueInput
		want string
	}{
		{"gateway not registered", IssueInput{Profile: "auth", Subject: "VN/GOV/MOF/gw9", CSR: csrPEM(t, other, cn("VN/GOV/MOF/gw9"), nil, nil)}, "400"},
		{"CSR names another gateway", IssueInput{Profile: "auth", Subject: "VN/GOV/MOF/gw1", CSR: csrPEM(t, other, cn("VN/GOV/MPS/gw1"), nil, nil)}, "400"},
		{"CSR names another member", IssueInput{Profile: "sign", Subject: "VN/GOV/MOF", CSR: csrPEM(t, other, cn("VN/GOV/MPS"), nil, nil)}, "400"},
		{"CSR subject carries an organisation", IssueInput{Profile: "auth", Subject: "VN/GOV/MOF/gw1", CSR: csrPEM(t, other, pkix.Name{CommonName: "VN/GOV/MOF/gw1", Organization: []string{"MPS"}}, nil, nil)}, "400"},
		{"CSR asks for a host not registered", IssueInput{Profile: "auth", Subject: "VN/GOV/MOF/gw1", CSR: csrPEM(t, other, cn("VN/GOV/MOF/gw1"), []string{"authority.example"}, nil)}, "400"},
		{"CSR asks for an address not registered", IssueInput{Profile: "auth", Subject: "VN/GOV/MOF/gw1", CSR: csrPEM(t, other, cn("VN/GOV/MOF/gw1"), nil, []net.IP{net.IPv4(10, 0, 0, 1)})}, "400"},
		{"another gateway's host", IssueInput{Profile: "auth", Subject: "VN/GOV/MOF/gw1", CSR: csrPEM(t, other, cn("VN/GOV/MOF/gw1"), nil, nil), Hosts: []string{"gw.mps.example"}}, "400"},
		{"signing certificate with a host", IssueInput{Profile: "sign", Subject: "VN/GOV/MOF", CSR: csrPEM(t, other, cn("VN/GOV/MOF"), []string{"gw.mof.example"}, nil)}, "400"},
		{"one key for two members' gateways", IssueInput{Profile: "auth", Subject: "VN/GOV/MPS/gw1", CSR: csrPEM(t, good, cn("VN/GOV/MPS/gw1"), nil, nil)}, "409"},
		{"a gateway's key for signing", IssueInput{Profile: "sign", Subject: "VN/GOV/MOF", CSR: csrPEM(t, good, cn("VN/GOV/MOF"), nil, nil)}, "409"},
		{"a signing key for a gateway", IssueInput{Profile: "auth", Subject: "VN/GOV/MOF/gw1", CSR: csrPEM(t, signKey, cn("VN/GOV/MOF/gw1"), nil, nil)}, "409"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := api.Issue(ctx, tc.in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want status %s", err, tc.want)
			}
			if got := ta.a.Current().Serial; got != serial {
				t.Errorf("serial moved from %d to %d", serial, got)
			}
			if got := countCerts(t, ta); got != certs {
				t.Errorf("%d certificates issued, want %d", got, certs)
			}
		})
	}
	// The other member's gateway gets its own key certified, for its
	// registered name.
	c2, err := api.Issue(ctx, IssueInput{Profile: "auth", Subject: "VN/GOV/MPS/gw1", CSR: csrPEM(t, other, cn(""), nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if cert, _ := pki.ParseCertPEM([]byte(c2.Certificate)); len(cert.DNSNames) != 1 || cert.DNSNames[0] != "gw.mps.example" || len(cert.IPAddresses) != 0 {
		t.Errorf("names %v %v, want gw.mps.example", cert.DNSNames, cert.IPAddresses)
	}
}

func countCerts(t *testing.T, ta *testAuthority) int {
	t.Helper()
	var n int
	if err := ta.a.db.QueryRowContext(t.Context(), `SELECT count(*) FROM certificates`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPublicTLS: the authority speaks TLS 1.3, and TLS 1.2 with ECDHE
// and an AEAD only, under a certificate of its own TLS CA, never of the
// instance CA.
func TestPublicTLS(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	host := strings.TrimPrefix(ta.url, "https://")
	roots := x509.NewCertPool()
	roots.AddCert(ta.a.TLSCACert())
	for _, tc := range []struct {
		name   string
		min    uint16
		max    uint16
		suites []uint16
		ok     bool
	}{
		{"TLS 1.3", tls.VersionTLS13, tls.VersionTLS13, nil, true},
		{"TLS 1.2 AES-GCM", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}, true},
		{"TLS 1.2 ChaCha20", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}, true},
		{"TLS 1.2 AES-CBC", tls.VersionTLS12, tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA}, false},
		{"TLS 1.1", tls.VersionTLS10, tls.VersionTLS11, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", host, &tls.Config{RootCAs: roots, MinVersion: tc.min, MaxVersion: tc.max, CipherSuites: tc.suites})
			if err == nil {
				c.Close()
			}
			if (err == nil) != tc.ok {
				t.Errorf("handshake error %v, want success %v", err, tc.ok)
			}
		})
	}
	// The instance CA does not vouch for the authority.
	instance := x509.NewCertPool()
	instance.AddCert(ta.a.CACert())
	if c, err := tls.Dial("tcp", host, &tls.Config{RootCAs: instance}); err == nil {
		c.Close()
		t.Error("the authority's TLS certificate chains to the instance CA")
	}
	if tlsCA, err := pki.ParseCertPEM([]byte(ta.a.Anchor().TLSCA)); err != nil {
		t.Fatal(err)
	} else if bytes.Equal(tlsCA.RawSubject, ta.a.CACert().RawSubject) || tlsCA.Equal(ta.a.CACert()) {
		t.Error("the anchor's tls_ca is the instance CA")
	}
}

// issueGateway issues MOF's gateway an authentication certificate and
// writes it, the instance CA and the CRL as files for openssl.
type pkiFiles struct {
	dir, ca, cert string
	serial        string
	c             *x509.Certificate
}

func issueGateway(t *testing.T, ta *testAuthority, api *Client) pkiFiles {
	t.Helper()
	dir := t.TempDir()
	key := newKey(t)
	issued, err := api.Issue(t.Context(), IssueInput{Profile: "auth", Subject: "VN/GOV/MOF/gw1", CSR: csrPEM(t, key, pkix.Name{CommonName: "VN/GOV/MOF/gw1"}, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	f := pkiFiles{dir: dir, ca: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "gw.pem"), serial: issued.Serial}
	f.c, _ = pki.ParseCertPEM([]byte(issued.Certificate))
	os.WriteFile(f.ca, pki.EncodeCert(ta.a.CACert().Raw), 0o644)
	os.WriteFile(f.cert, []byte(issued.Certificate), 0o644)
	return f
}

// get fetches an authority path over its TLS.
func (ta *testAuthority) get(t *testing.T, path string) []byte {
	t.Helper()
	resp, err := ta.client("").HTTP.Get(ta.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s", path, resp.Status)
	}
	return b
}

// TestRevocationWithOpenSSL: issued certificates point at the CRL and the
// OCSP responder, and OpenSSL, given those, accepts a valid gateway
// certificate and rejects it once revoked.
func TestRevocationWithOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not installed")
	}
	ta := startAuthority(t, t.TempDir(), "")
	api := registerMOF(t, ta)
	f := issueGateway(t, ta, api)
	// Each CA's CRL has a path of its own (docs/design/rotation.md).
	if got := f.c.CRLDistributionPoints; len(got) != 1 || !strings.HasPrefix(got[0], ta.url+"/crl/") {
		t.Fatalf("CRL distribution points %v, want %s/crl/{ca}", got, ta.url)
	}
	if got := f.c.OCSPServer; len(got) != 1 || got[0] != ta.url+"/ocsp" {
		t.Errorf("OCSP responders %v, want %s/ocsp", got, ta.url)
	}
	verify := func() (string, error) {
		crl := filepath.Join(f.dir, "crl.pem")
		os.WriteFile(crl, pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: ta.get(t, strings.TrimPrefix(f.c.CRLDistributionPoints[0], ta.url))}), 0o644)
		out, err := exec.CommandContext(t.Context(), "openssl", "verify", "-crl_check", "-CAfile", f.ca, "-CRLfile", crl, f.cert).CombinedOutput()
		return string(out), err
	}
	ocspCheck := func() string {
		out, err := exec.CommandContext(t.Context(), "openssl", "ocsp", "-issuer", f.ca, "-cert", f.cert, "-url", f.c.OCSPServer[0], "-CAfile", f.ca).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl ocsp: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "Response verify OK") {
			t.Errorf("openssl ocsp did not verify the response:\n%s", out)
		}
		return string(out)
	}
	if out, err := verify(); err != nil || !strings.Contains(out, ": OK") {
		t.Errorf("openssl verify of a valid certificate: %v\n%s", err, out)
	}
	if out := ocspCheck(); !strings.Contains(out, f.cert+": good") {
		t.Errorf("openssl ocsp of a valid certificate:\n%s", out)
	}
	if err := api.Revoke(t.Context(), f.serial); err != nil {
		t.Fatal(err)
	}
	if out, err := verify(); err == nil || !strings.Contains(out, "certificate revoked") {
		t.Errorf("openssl verify of a revoked certificate: %v\n%s", err, out)
	}
	if out := ocspCheck(); !strings.Contains(out, f.cert+": revoked") {
		t.Errorf("openssl ocsp of a revoked certificate:\n%s", out)
	}
}

// TestOCSP: the responder answers GET and POST, signed by the instance
// CA, good, revoked or unknown; malformed requests and other CAs'
// certificates get OCSP's own errors.
func TestOCSP(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	api := registerMOF(t, ta)
	f := issueGateway(t, ta, api)
	ca := ta.a.CACert()
	hc := ta.client("").HTTP
	ask := func(t *testing.T, method string, der []byte) (*http.Response, []byte) {
		t.Helper()
		var req *http.Request
		if method == http.MethodGet {
			req, _ = http.NewRequestWithContext(t.Context(), method, ta.url+"/ocsp/"+url.PathEscape(base64.StdEncoding.EncodeToString(der)), nil)
		} else {
			req, _ = http.NewRequestWithContext(t.Context(), method, ta.url+"/ocsp", bytes.NewReader(der))
			req.Header.Set("Content-Type", "application/ocsp-request")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	status := func(t *testing.T, method string, cert *x509.Certificate) int {
		t.Helper()
		der, err := ocsp.CreateRequest(cert, ca, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, b := ask(t, method, der)
		if ct := resp.Header.Get("Content-Type"); ct != "application/ocsp-response" {
			t.Errorf("content type %q", ct)
		}
		r, err := ocsp.ParseResponseForCert(b, cert, ca)
		if err != nil {
			t.Fatalf("%s: response: %v", method, err)
		}
		if err := r.CheckSignatureFrom(ca); err != nil {
			t.Errorf("%s: response not signed by the CA: %v", method, err)
		}
		return r.Status
	}
	// A certificate of this CA that the registry never recorded.
	stranger, err := ta.a.issuingCA().Issue(newKey(t).Public(), pki.ProfileAuth, pki.Template{CommonName: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if got := status(t, m, f.c); got != ocsp.Good {
			t.Errorf("%s: valid certificate: status %d, want good", m, got)
		}
		if got := status(t, m, stranger); got != ocsp.Unknown {
			t.Errorf("%s: certificate never issued: status %d, want unknown", m, got)
		}
	}
	if err := api.Revoke(t.Context(), f.serial); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		if got := status(t, m, f.c); got != ocsp.Revoked {
			t.Errorf("%s: revoked certificate: status %d, want revoked", m, got)
		}
	}
	// Another CA's certificate, and requests that are not OCSP.
	other, _ := pki.NewCA("other")
	oc, _ := other.Issue(newKey(t).Public(), pki.ProfileAuth, pki.Template{CommonName: "x"})
	der, _ := ocsp.CreateRequest(oc, other.Cert, nil)
	if _, b := ask(t, http.MethodPost, der); !bytes.Equal(b, ocsp.UnauthorizedErrorResponse) {
		t.Errorf("another CA's certificate: %x, want unauthorized", b)
	}
	for name, der := range map[string][]byte{"empty": nil, "junk": []byte("junk"), "huge": bytes.Repeat([]byte{0x30}, pki.MaxOCSPRequest+1)} {
		for _, m := range []string{http.MethodGet, http.MethodPost} {
			if m == http.MethodGet && name == "empty" {
				continue
			}
			resp, b := ask(t, m, der)
			if resp.StatusCode != http.StatusBadRequest || !bytes.Equal(b, ocsp.MalformedRequestErrorResponse) {
				t.Errorf("%s %s: %s %x, want 400 malformedRequest", m, name, resp.Status, b)
			}
		}
	}
}

// FuzzOCSPRequest: whatever arrives, by POST or GET, the responder
// answers with a well-formed OCSP response (a signed one only for a
// request that parses) and never panics.
func FuzzOCSPRequest(f *testing.F) {
	dir := f.TempDir()
	c := &Config{Instance: "VN", Operators: []Operator{{Name: "a", TokenSHA256: HashToken("t"), Role: RoleAdmin}}}
	c.SetDefaults()
	a, err := New(f.Context(), c, dir, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { a.Close() })
	leaf, err := a.issuingCA().Issue(mustKey(f).Public(), pki.ProfileAuth, pki.Template{CommonName: "x"})
	if err != nil {
		f.Fatal(err)
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		der, err := ocsp.CreateRequest(leaf, a.issuingCA().Cert, &ocsp.RequestOptions{Hash: h})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(der, false)
		f.Add([]byte(base64.StdEncoding.EncodeToString(der)), true)
		f.Add([]byte(url.PathEscape(base64.StdEncoding.EncodeToString(der))), true)
		f.Add(der[:len(der)/2], false)
	}
	f.Add([]byte{}, false)
	f.Add([]byte{0x30, 0x03, 0x0a, 0x01, 0x06}, false)
	f.Add([]byte("%zz"), true)
	f.Add([]byte("a//b"), true)
	h := a.Handler()
	f.Fuzz(func(t *testing.T, data []byte, get bool) {
		var req *http.Request
		if get {
			req = httptest.NewRequest(http.MethodGet, "/ocsp/", nil)
			req.URL.RawPath = "/ocsp/" + string(data)
			req.URL.Path = "/ocsp/" + string(data)
		} else {
			req = httptest.NewRequest(http.MethodPost, "/ocsp", bytes.NewReader(data))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		body := rec.Body.Bytes()
		var outer struct {
			Status asn1.Enumerated
			Rest   asn1.RawValue `asn1:"explicit,tag:0,optional"`
		}
		if rest, err := asn1.Unmarshal(body, &outer); err != nil || len(rest) > 0 {
			t.Fatalf("answer %x (status %d) is not an OCSP response: %v", body, rec.Code, err)
		}
		if outer.Status == 0 {
			r, err := ocsp.ParseResponse(body, a.issuingCA().Cert)
			if err != nil {
				t.Fatalf("successful answer does not parse or verify: %v", err)
			}
			if fmt.Sprintf("%x", r.SerialNumber) == "" {
				t.Fatal("no serial")
			}
		}
	})
}

func mustKey(f *testing.F) crypto.Signer {
	k, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		f.Fatal(err)
	}
	return k
}

// TestUpgradeKeepsRegistry: a data directory of the version before the
// authority had a TLS CA of its own, and before gateways could be
// registered uncertified, opens with its gateways, their clients and
// certificates intact, the issued keys' fingerprints filled in, and a
// TLS certificate re-issued under the new TLS CA.
func TestUpgradeKeepsRegistry(t *testing.T) {
	dir := t.TempDir()
	ca, err := pki.LoadOrCreateCA(dir, "VN Sampan CA")
	if err != nil {
		t.Fatal(err)
	}
	tlsKey := newKey(t)
	if err := pki.WriteKey(filepath.Join(dir, tlsKeyFile), tlsKey); err != nil {
		t.Fatal(err)
	}
	old, err := ca.Issue(tlsKey.Public(), pki.ProfileServer, pki.Template{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	pki.WriteCert(filepath.Join(dir, tlsCertFile), old.Raw)
	gwKey := newKey(t)
	gwCert, _ := ca.Issue(gwKey.Public(), pki.ProfileAuth, pki.Template{CommonName: "VN/GOV/MOF/gw1"})
	fp := pki.Fingerprint(gwCert.Raw)
	db, err := store.Open(t.Context(), filepath.Join(dir, registryFile), migrations[:slices.IndexFunc(migrations, func(m store.Migration) bool { return m.Up == pkiMigration })])
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO members VALUES ('VN/GOV/MOF', 'MOF', 'x')`,
		`INSERT INTO subsystems VALUES ('VN/GOV/MOF/registry', 'VN/GOV/MOF', 'registry', 'x')`,
		`INSERT INTO gateways VALUES ('VN/GOV/MOF/gw1', 'VN/GOV/MOF', '127.0.0.1:8443', '` + fp + `', 'x')`,
		`INSERT INTO gateway_clients VALUES ('VN/GOV/MOF/gw1', 'VN/GOV/MOF/registry')`,
		`INSERT INTO certificates (serial, profile, subject, fingerprint, not_after, pem) VALUES ('` + gwCert.SerialNumber.Text(16) + `', 'auth', 'VN/GOV/MOF/gw1', '` + fp + `', 'x', '` + string(pki.EncodeCert(gwCert.Raw)) + `')`,
	} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	db.Close()

	ta := startAuthority(t, dir, "127.0.0.1:0")
	gid, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	g := ta.a.Current().Gateway(gid)
	if g == nil || g.AuthFP != fp || len(g.Clients) != 1 || g.Clients[0].String() != "VN/GOV/MOF/registry" {
		t.Fatalf("gateway after the upgrade: %+v", g)
	}
	var keyFP string
	if err := ta.a.db.QueryRowContext(t.Context(), `SELECT key_fp FROM certificates`).Scan(&keyFP); err != nil || keyFP != pki.KeyFingerprint(gwCert.RawSubjectPublicKeyInfo) {
		t.Errorf("key fingerprint %q, %v", keyFP, err)
	}
	// The old gateway key is still its own: not certifiable to another.
	api := ta.client(adminToken)
	if _, err := api.Issue(t.Context(), IssueInput{Profile: "sign", Subject: "VN/GOV/MOF", CSR: csrPEM(t, gwKey, pkix.Name{}, nil, nil)}); err == nil || !strings.Contains(err.Error(), "409") {
		t.Errorf("the upgraded gateway key certified for signing: %v", err)
	}
	if ta.a.tls.Leaf.CheckSignatureFrom(ta.a.TLSCACert()) != nil || ta.a.tls.Leaf.CheckSignatureFrom(ca.Cert) == nil {
		t.Error("the TLS certificate was not re-issued under the TLS CA")
	}
}
