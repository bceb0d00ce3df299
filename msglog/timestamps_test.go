package msglog

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"sync"
	"testing"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/sampan-exchange/sampan/pki"
)

// TestParseTokenConcurrently: time-stamp responses parse from many
// goroutines at once (gateways of one process stamp together); run with
// -race, which reports the dependency's shared state if it is not
// guarded.
func TestParseTokenConcurrently(t *testing.T) {
	cert, key := testTSA(t)
	sum := sha256.Sum256([]byte("checkpoint"))
	resp, err := (&timestamp.Timestamp{
		HashAlgorithm: crypto.SHA256, HashedMessage: sum[:], Time: time.Now().UTC(),
		SerialNumber: big.NewInt(1), Policy: asn1.ObjectIdentifier{2, 25, 1}, AddTSACertificate: true,
	}).CreateResponseWithOpts(cert, key, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				ts, err := ParseTokenResponse(resp)
				if err != nil || string(ts.HashedMessage) != string(sum[:]) {
					t.Errorf("parse: %v", err)
					return
				}
				if _, err := ParseToken(ts.RawToken); err != nil {
					t.Errorf("parse token: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// testTSA returns a time-stamping certificate, issued by a throwaway CA,
// and its key.
func testTSA(t *testing.T) (*x509.Certificate, crypto.Signer) {
	t.Helper()
	ca, err := pki.NewCA("test CA")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	cert, err := ca.Issue(key.Public(), pki.ProfileTSA, pki.Template{CommonName: "test TSA"})
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}
