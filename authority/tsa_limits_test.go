package authority

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509/pkix"
	"encoding/asn1"
	"io"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/digitorus/timestamp"
)

// rawTSARequest is RFC 3161's TimeStampReq, to build requests the
// timestamp package would not (another version).
type rawTSARequest struct {
	Version        int
	MessageImprint struct {
		HashAlgorithm pkix.AlgorithmIdentifier
		HashedMessage []byte
	}
	ReqPolicy  asn1.ObjectIdentifier `asn1:"optional"`
	Nonce      *big.Int              `asn1:"optional"`
	CertReq    bool                  `asn1:"optional,default:false"`
	Extensions []pkix.Extension      `asn1:"tag:0,optional"`
}

var oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}

func tsaRequest(t testing.TB, mod func(*timestamp.Request)) []byte {
	t.Helper()
	sum := sha256.Sum256([]byte("checkpoint"))
	r := &timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:], Nonce: big.NewInt(42), Certificates: true}
	if mod != nil {
		mod(r)
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func postTSA(t *testing.T, ta *testAuthority, body []byte) (*http.Response, []byte) {
	t.Helper()
	resp, err := ta.client("").HTTP.Post(ta.url+"/tsa", "application/timestamp-query", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestTSARefusals sends requests the TSA must refuse, each with the
// RFC 3161 failure that says why, and one it must grant.
func TestTSARefusals(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	sum := sha256.Sum256([]byte("checkpoint"))
	v2 := rawTSARequest{Version: 2}
	v2.MessageImprint.HashAlgorithm = pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1.NullRawValue}
	v2.MessageImprint.HashedMessage = sum[:]
	v2DER, err := asn1.Marshal(v2)
	if err != nil {
		t.Fatal(err)
	}
	ext := func(critical bool) func(*timestamp.Request) {
		return func(r *timestamp.Request) {
			r.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}, Critical: critical, Value: []byte{5, 0}}}
		}
	}
	for _, tc := range []struct {
		name string
		body []byte
		fail timestamp.FailureInfo
	}{
		{"non-critical extension", tsaRequest(t, ext(false)), timestamp.UnacceptedExtension},
		{"critical extension", tsaRequest(t, ext(true)), timestamp.UnacceptedExtension},
		{"nonce of 33 bytes", tsaRequest(t, func(r *timestamp.Request) { r.Nonce = new(big.Int).Lsh(big.NewInt(1), 8*32) }), timestamp.BadDataFormat},
		{"negative nonce", tsaRequest(t, func(r *timestamp.Request) { r.Nonce = big.NewInt(-7) }), timestamp.BadDataFormat},
		{"policy not offered", tsaRequest(t, func(r *timestamp.Request) { r.TSAPolicyOID = asn1.ObjectIdentifier{1, 2, 3, 4} }), timestamp.UnacceptedPolicy},
		{"version 2", v2DER, timestamp.BadDataFormat},
		{"hash of the wrong length", tsaRequest(t, func(r *timestamp.Request) { r.HashedMessage = r.HashedMessage[:31] }), timestamp.BadDataFormat},
		{"trailing data", append(tsaRequest(t, nil), 0), timestamp.BadDataFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := postTSA(t, ta, tc.body)
			_, err := timestamp.ParseResponse(b)
			if resp.StatusCode != http.StatusBadRequest || err == nil || !strings.Contains(err.Error(), tc.fail.String()) {
				t.Errorf("got %d, %v; want 400 and %q", resp.StatusCode, err, tc.fail)
			}
		})
	}
	// A nonce of 32 bytes, the TSA's own policy named: granted, and the
	// nonce comes back.
	nonce := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 8*32), big.NewInt(1))
	resp, b := postTSA(t, ta, tsaRequest(t, func(r *timestamp.Request) { r.Nonce = nonce; r.TSAPolicyOID = ta.a.tsaPolicy }))
	ts, err := timestamp.ParseResponse(b)
	if resp.StatusCode != 200 || err != nil || ts.Nonce.Cmp(nonce) != 0 {
		t.Fatalf("good request: %d, %v", resp.StatusCode, err)
	}
}

// TestTSAThrottled: past its rate an address gets 429 with Retry-After
// and a rejection, not a token.
func TestTSAThrottled(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "", func(c *Config) { c.TSARate = 3 })
	for i := range 3 {
		if resp, _ := postTSA(t, ta, tsaRequest(t, nil)); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	resp, b := postTSA(t, ta, tsaRequest(t, nil))
	if _, err := timestamp.ParseResponse(b); resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || err == nil {
		t.Fatalf("4th request: %d, Retry-After %q, %v", resp.StatusCode, resp.Header.Get("Retry-After"), err)
	}
}

// FuzzTSARequest checks that the TSA's request check never panics and
// grants only requests that hold every rule.
func FuzzTSARequest(f *testing.F) {
	f.Add(tsaRequest(f, nil))
	f.Add(tsaRequest(f, func(r *timestamp.Request) { r.Nonce = nil; r.Certificates = false }))
	f.Add(tsaRequest(f, func(r *timestamp.Request) {
		r.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 2, 3}, Critical: true, Value: []byte{5, 0}}}
	}))
	f.Add(tsaRequest(f, func(r *timestamp.Request) { r.Nonce = new(big.Int).Lsh(big.NewInt(1), 300) }))
	f.Add(tsaRequest(f, func(r *timestamp.Request) { r.TSAPolicyOID = asn1.ObjectIdentifier{2, 25, 1} }))
	f.Add([]byte("not DER"))
	f.Add([]byte{0x30, 0x00})
	policy := asn1.ObjectIdentifier{2, 25, 1}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, fail, why := checkTSARequest(b, policy)
		if req == nil {
			if fail == 0 && why == "" {
				t.Fatal("refused without a failure")
			}
			return
		}
		if len(req.Extensions) > 0 || len(req.HashedMessage) != req.HashAlgorithm.Size() ||
			req.Nonce != nil && (req.Nonce.Sign() < 0 || len(req.Nonce.Bytes()) > maxNonceBytes) ||
			len(req.TSAPolicyOID) > 0 && !req.TSAPolicyOID.Equal(policy) {
			t.Fatalf("granted a request that breaks a rule: %+v", req)
		}
	})
}
