package pki

import (
	"crypto"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestKeyFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "k", "a.key")
	k, err := LoadOrCreateKey(p, Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Mode().Perm(); got != 0o600 {
		t.Errorf("key mode = %v, want 0600", got)
	}
	k2, err := LoadOrCreateKey(p, Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if !k2.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
		t.Error("reloaded key differs")
	}
	if err := WriteKey(p, k); err == nil {
		t.Error("WriteKey overwrote an existing key")
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKey(p); err == nil {
		t.Error("ReadKey accepted a world-readable key")
	}
}

func TestCAIssueAndVerify(t *testing.T) {
	ca, err := LoadOrCreateCA(t.TempDir(), "Test CA")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	key, _ := GenerateKey(ECDSAP256)
	csrPEM, err := NewCSR(key, "VN/GOV/MOF/gw1")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.Issue(csr.PublicKey, ProfileAuth, Template{CommonName: csr.Subject.CommonName, URIs: []string{GatewayURI("VN/GOV/MOF/gw1")}})
	if err != nil {
		t.Fatal(err)
	}
	if id, ok := GatewayOf(c); !ok || id != "VN/GOV/MOF/gw1" {
		t.Errorf("GatewayOf = %q, %v", id, ok)
	}
	if _, ok := MemberOf(c); ok {
		t.Error("auth certificate claims a member")
	}
	if err := VerifyChain(c, roots, x509.ExtKeyUsageClientAuth, time.Now()); err != nil {
		t.Errorf("chain: %v", err)
	}
	other, _ := NewCA("Other CA")
	otherRoots := x509.NewCertPool()
	otherRoots.AddCert(other.Cert)
	if err := VerifyChain(c, otherRoots, x509.ExtKeyUsageClientAuth, time.Now()); err == nil {
		t.Error("certificate verified against a foreign CA")
	}
	sk, _ := GenerateKey(Ed25519)
	sc, err := ca.Issue(sk.Public(), ProfileSign, Template{CommonName: "VN/GOV/MOF", URIs: []string{MemberURI("VN/GOV/MOF")}})
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyChain(sc, roots, x509.ExtKeyUsageClientAuth, time.Now()); err == nil {
		t.Error("signing certificate accepted for TLS client auth")
	}
	if _, err := ParseCSR([]byte("garbage")); err == nil {
		t.Error("garbage CSR accepted")
	}
	crl, err := ca.CRL(1, []x509.RevocationListEntry{{SerialNumber: c.SerialNumber, RevocationTime: time.Now()}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rl, err := x509.ParseRevocationList(crl)
	if err != nil || rl.CheckSignatureFrom(ca.Cert) != nil || len(rl.RevokedCertificateEntries) != 1 {
		t.Errorf("CRL: %v", err)
	}
}

func TestDetachedJWS(t *testing.T) {
	for _, kind := range []KeyKind{Ed25519, ECDSAP256} {
		key, _ := GenerateKey(kind)
		s, err := NewSigner(key, "k1")
		if err != nil {
			t.Fatal(err)
		}
		sig, err := s.SignDetached([]byte("digest"))
		if err != nil {
			t.Fatal(err)
		}
		if err := VerifyDetached(sig, []byte("digest"), key.Public()); err != nil {
			t.Errorf("kind %d: %v", kind, err)
		}
		if err := VerifyDetached(sig, []byte("digesT"), key.Public()); err == nil {
			t.Errorf("kind %d: tampered payload verified", kind)
		}
		other, _ := GenerateKey(kind)
		if err := VerifyDetached(sig, []byte("digest"), other.Public()); err == nil {
			t.Errorf("kind %d: wrong key verified", kind)
		}
		doc, _ := s.Sign([]byte(`{"a":1}`))
		kid, verify, err := ParseCompact(doc)
		if err != nil || kid != "k1" {
			t.Fatalf("ParseCompact: %q, %v", kid, err)
		}
		if p, err := verify(key.Public()); err != nil || string(p) != `{"a":1}` {
			t.Errorf("verify: %q, %v", p, err)
		}
	}
}
