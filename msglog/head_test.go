package msglog

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/pki"
)

// headRecord is an exchange record whose request head rebuilds.
func headRecord() *Record {
	r := testRecord(1)
	r.Version = RecordVersion
	r.Purpose, r.LegalBasis, r.UserID = "company-lookup", "decree-13", "VN12345"
	r.RequestSignedAt, r.RequestNonce = "2026-12-07T16:35:00.000Z", strings.Repeat("ab", 16)
	r.RequestHeadersSHA256 = strings.Repeat("cd", 32)
	r.RequestSignedHeaders = append([]string{"accept"}, RequiredSignedHeaders[:]...)
	r.RequestHeadSHA256 = hexDigest(r.AppendRequestHead(nil))
	return r
}

func hexDigest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestCheckRequestHead(t *testing.T) {
	if err := headRecord().CheckRequestHead(); err != nil {
		t.Fatalf("a record whose head rebuilds: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(r *Record)
		want   string
	}{
		{"version 2 record", func(r *Record) { r.Version = 2 }, "version 1 head"},
		{"no nonce", func(r *Record) { r.RequestNonce = "" }, "version 1 head"},
		{"no signed time", func(r *Record) { r.RequestSignedAt = "" }, "version 1 head"},
		{"purpose not in the signed list", func(r *Record) {
			r.RequestSignedHeaders = []string{"accept", "x-road-client", "x-road-id", "x-road-service"}
		}, "does not cover x-road-userid"},
		{"purpose edited", func(r *Record) { r.Purpose = "other" }, "does not hash"},
		{"represented party added", func(r *Record) { r.RepresentedParty = "COM/1" }, "does not hash"},
		{"line break in a field", func(r *Record) { r.Issue = "a\nx-road-purpose:b" }, "line break"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := headRecord()
			tc.change(r)
			err := r.CheckRequestHead()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckRequestHead = %v, want an error saying %q", err, tc.want)
			}
			if tc.want == "version 1 head" && !errors.Is(err, ErrV1Signature) {
				t.Errorf("%v is not ErrV1Signature", err)
			}
		})
	}
}

// TestVerifyBundleFailsUnprovableHead: a record whose signatures verify
// over the head digest it holds, but whose head cannot be rebuilt from
// its fields (as with a version 1 signature), fails verify-bundle with a
// message saying so; the same record with a rebuildable head passes.
func TestVerifyBundleFailsUnprovableHead(t *testing.T) {
	key, err := pki.GenerateKey(pki.Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := pki.NewSigner(key, "")
	if err != nil {
		t.Fatal(err)
	}
	fp := pki.Fingerprint(der)
	sign := func(head, body string) string {
		sig, err := signer.SignDetached([]byte(head + "\n" + body + "\n" + fp))
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	dir := t.TempDir()
	l, err := Open(t.Context(), dir, "VN/GOV/HCMC/gw1", Options{CheckpointInterval: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.StoreCert(der); err != nil {
		t.Fatal(err)
	}
	body := strings.Repeat("ef", 32)
	good := headRecord()
	good.XRoadID = "v2-head"
	good.RequestHeadSHA256 = hexDigest(good.AppendRequestHead(nil))
	old := headRecord()
	old.XRoadID = "v1-head"
	old.RequestHeadSHA256 = hexDigest([]byte("sampan-request-v1\nGET\n..."))
	for _, r := range []*Record{good, old} {
		r.RequestBodySHA256, r.ResponseHeadSHA256, r.ResponseBodySHA256 = body, body, body
		r.RequestSignerCert, r.ResponseSignerCert = fp, fp
		r.RequestSignature = sign(r.RequestHeadSHA256, body)
		r.ResponseSignature = sign(body, body)
		if err := l.Append(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"v2-head": "", "v1-head": "does not hash to request_head_sha256"} {
		out := t.TempDir()
		if err := Export(t.Context(), dir, "", Selection{XRoadID: id}, out); err != nil {
			t.Fatal(err)
		}
		_, err := VerifyBundle(out)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", id, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: VerifyBundle = %v, want an error saying %q", id, err, want)
		}
	}
}

// TestRecordNonce: a nonce is new once, shared through the index; with
// SQLite the index refuses to stand in for the in-memory store.
func TestRecordNonce(t *testing.T) {
	withEachIndex(t, func(t *testing.T, dsn string) {
		l, err := Open(t.Context(), t.TempDir(), "VN/GOV/MOF/gw1", Options{IndexDSN: dsn}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close(t.Context())
		nonce := []byte("0123456789abcdef")
		fresh, err := l.RecordNonce(t.Context(), nonce, time.Now().Add(time.Minute))
		if dsn == "" {
			if err == nil || l.SharedIndex() {
				t.Fatalf("SQLite index: RecordNonce = %v, %v; SharedIndex %v", fresh, err, l.SharedIndex())
			}
			return
		}
		if err != nil || !fresh {
			t.Fatalf("first: %v %v", fresh, err)
		}
		if fresh, err := l.RecordNonce(t.Context(), nonce, time.Now().Add(time.Minute)); err != nil || fresh {
			t.Fatalf("second: %v %v, want seen", fresh, err)
		}
		// An expired nonce is purged (on the next call past the purge
		// interval), and may then be recorded afresh.
		old := []byte("fedcba9876543210")
		if _, err := l.RecordNonce(t.Context(), old, time.Now().Add(-time.Minute)); err != nil {
			t.Fatal(err)
		}
		l.noncePurged.Store(0)
		if fresh, err := l.RecordNonce(t.Context(), []byte("another-nonce-16"), time.Now().Add(time.Minute)); err != nil || !fresh {
			t.Fatal(fresh, err)
		}
		var n int
		if err := l.db.QueryRow(`SELECT count(*) FROM replay_nonces WHERE nonce = $1`, old).Scan(&n); err != nil || n != 0 {
			t.Errorf("expired nonce rows = %d, %v; want purged", n, err)
		}
	})
}

// TestOldRecordsLoad: records of format 2 (written before the request
// head of version 2) still parse; format 1 and unknown ones do not.
func TestOldRecordsLoad(t *testing.T) {
	for v, ok := range map[int]bool{1: false, 2: true, 3: true, 4: false} {
		r := testRecord(1)
		r.Version, r.Kind = v, KindExchange
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseRecord(b); (err == nil) != ok {
			t.Errorf("version %d: ParseRecord = %v, want loaded %v", v, err, ok)
		}
	}
}
