package gateway

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
)

// Benchmarks of each stage of the hot path, so that a regression is
// pinned to its stage: go test -run=NONE -bench=. -benchmem ./gateway

func benchHeaders() http.Header {
	h := http.Header{}
	h.Set("X-Road-Client", "VN/GOV/HCMC/one-stop")
	h.Set("X-Road-Service", "VN/GOV/MOF/business-registry/companies")
	h.Set("X-Road-Id", "2b1f6a43-3c1e-4a64-9d3e-2c5e0b8f3e11")
	h.Set("X-Road-Request-Id", "7c0d1a52-5a4b-4f0e-8e57-0c9f4f2d6a10")
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	return h
}

func BenchmarkR1Parse(b *testing.B) {
	req := httptest.NewRequest(http.MethodGet, "/r1/VN/GOV/MOF/business-registry/companies/0100109106?x=1", nil)
	req.Header.Set("X-Road-Client", "VN/GOV/HCMC/one-stop")
	req.Header.Set("X-Road-Id", "2b1f6a43-3c1e-4a64-9d3e-2c5e0b8f3e11")
	b.ReportAllocs()
	for b.Loop() {
		if _, e := r1.ParseRequest(req); e != nil {
			b.Fatal(e)
		}
	}
}

func BenchmarkCanonicalDigest(b *testing.B) {
	h := benchHeaders()
	body := make([]byte, 1024)
	b.ReportAllocs()
	for b.Loop() {
		names := withRequired(signedNames(h))
		rec := msglog.Record{Method: http.MethodPost, Service: "VN/GOV/MOF/business-registry/companies", Path: "/0100109106",
			Client: "VN/GOV/HCMC/one-stop", XRoadID: h.Get("X-Road-Id"), RequestSignedAt: "2026-12-07T16:35:00.000Z",
			RequestNonce: "00112233445566778899aabbccddeeff", RequestHeadersSHA256: otherHeadersSum(h, names)}
		head := requestHead(&rec)
		sum := sha256.Sum256(body)
		signedPayload(head, sum[:], "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	}
}

func benchSigner(b *testing.B, kind pki.KeyKind) (*pki.Signer, []byte, any) {
	k, err := pki.GenerateKey(kind)
	if err != nil {
		b.Fatal(err)
	}
	s, err := pki.NewSigner(k, "")
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256([]byte("body"))
	payload := signedPayload([]byte("head"), sum[:], "fp")
	return s, payload, k.Public()
}

func BenchmarkSign(b *testing.B) {
	for _, kc := range []struct {
		name string
		kind pki.KeyKind
	}{{"Ed25519", pki.Ed25519}, {"P256", pki.ECDSAP256}} {
		b.Run(kc.name, func(b *testing.B) {
			s, payload, _ := benchSigner(b, kc.kind)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.SignDetached(payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerify(b *testing.B) {
	for _, kc := range []struct {
		name string
		kind pki.KeyKind
	}{{"Ed25519", pki.Ed25519}, {"P256", pki.ECDSAP256}} {
		b.Run(kc.name, func(b *testing.B) {
			s, payload, pub := benchSigner(b, kc.kind)
			sig, _ := s.SignDetached(payload)
			b.ReportAllocs()
			for b.Loop() {
				if err := pki.VerifyDetached(sig, payload, pub); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStreamVerify is the verifying reader over a 1 KiB body.
func BenchmarkStreamVerify(b *testing.B) {
	body := make([]byte, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		v := newVerifyingReader(bytesReader(body), func([]byte) error { return nil })
		if ok, err := v.Prefetch(); !ok || err != nil {
			b.Fatal(ok, err)
		}
		v.release()
	}
}

type sliceReader struct {
	b []byte
	i int
}

func (r *sliceReader) Read(p []byte) (int, error) {
	if r.i >= len(r.b) {
		return 0, io.EOF
	}
	n := copy(p, r.b[r.i:])
	r.i += n
	return n, nil
}

func bytesReader(b []byte) *sliceReader { return &sliceReader{b: b} }

// BenchmarkReplayGuard is the provider side's replay check of one request
// with its nonces in memory: signed time and nonce read, nonce recorded.
func BenchmarkReplayGuard(b *testing.B) {
	rg, err := newReplayGuard(ReplayConfig{MaxSkew: cfg.Duration(2 * time.Minute)}, nil, b.TempDir(), time.Now().Add(-time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	var nonce [nonceLen / 2]byte
	hexNonce := make([]byte, nonceLen)
	b.ReportAllocs()
	for b.Loop() {
		rand.Read(nonce[:])
		hex.Encode(hexNonce, nonce[:])
		now := time.Now()
		st, e := rg.check(now.UTC().Format(signedAtLayout), string(hexNonce), now)
		if e != nil {
			b.Fatal(e)
		}
		if e := rg.remember(b.Context(), st, now); e != nil {
			b.Fatal(e)
		}
	}
}
