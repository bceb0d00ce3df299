package pki

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// newEdSigner is a fresh Ed25519 key and its Signer.
func newEdSigner(t testing.TB) (*Signer, crypto.Signer) {
	t.Helper()
	k, err := GenerateKey(Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(k, "")
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func testSigner(t testing.TB) (*Signer, ed25519.PublicKey) {
	t.Helper()
	s, k := newEdSigner(t)
	return s, k.Public().(ed25519.PublicKey)
}

func payloads(n int) [][]byte {
	ps := make([][]byte, n)
	for i := range ps {
		ps[i] = fmt.Appendf(nil, "head-%d\nbody-%d\nfp", i, i)
	}
	return ps
}

// TestBatchTreeIsRFC6962: the root and proofs agree with an independent
// implementation of RFC 6962 for every batch size.
func TestBatchTreeIsRFC6962(t *testing.T) {
	for n := 1; n <= MaxBatch; n++ {
		leaves := make([][]byte, n)
		for i, p := range payloads(n) {
			leaves[i] = rfc6962.DefaultHasher.HashLeaf(p)
		}
		root, paths := batchTree(leaves)
		for i := range leaves {
			if err := proof.VerifyInclusion(rfc6962.DefaultHasher, uint64(i), uint64(n), leaves[i], paths[i], root); err != nil {
				t.Fatalf("size %d, leaf %d: %v", n, i, err)
			}
			if len(paths[i]) > batchPathMax {
				t.Fatalf("size %d, leaf %d: path of %d hashes", n, i, len(paths[i]))
			}
		}
	}
}

// flip changes the base64url character at i into another.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

// spareBits changes the unused low bits of the last base64url character
// of s (32-byte hashes leave some), which a lenient decoder ignores.
func spareBits(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[i^1])
}

// TestBatchSignatures: every message of a batch verifies on its own, and
// only its own payload, with the signer's key only; an altered index,
// size, path or signature is refused.
func TestBatchSignatures(t *testing.T) {
	s, pub := testSigner(t)
	_, otherPub := testSigner(t)
	for _, n := range []int{1, 2, 3, 5, 8, 13, MaxBatch} {
		ps := payloads(n)
		sigs, err := s.signBatch(ps)
		if err != nil {
			t.Fatal(err)
		}
		for i, sig := range sigs {
			if (n > 1) != strings.Contains(sig, "~") {
				t.Errorf("size %d: signature %q", n, sig)
			}
			if err := VerifyDetached(sig, ps[i], pub); err != nil {
				t.Errorf("size %d, message %d: %v", n, i, err)
			}
			if err := VerifyDetached(sig, ps[(i+1)%n], pub); n > 1 && err == nil {
				t.Errorf("size %d, message %d: verifies over another message's payload", n, i)
			}
			if err := VerifyDetached(sig, ps[i], otherPub); err == nil {
				t.Errorf("size %d, message %d: verifies with another key", n, i)
			}
		}
		if n == 1 {
			continue
		}
		parts := strings.Split(sigs[1], "~")
		for name, bad := range map[string]string{
			"index":         strings.Join([]string{parts[0], "0", parts[2], parts[3]}, "~"),
			"size":          strings.Join([]string{parts[0], parts[1], fmt.Sprint(n + 1), parts[3]}, "~"),
			"path":          strings.Join([]string{parts[0], parts[1], parts[2], flip(parts[3], 0)}, "~"),
			"signature":     strings.Join([]string{flip(parts[0], len(parts[0])-10), parts[1], parts[2], parts[3]}, "~"),
			"too large":     strings.Join([]string{parts[0], parts[1], "100000", parts[3]}, "~"),
			"index ≥ size":  strings.Join([]string{parts[0], parts[2], parts[2], parts[3]}, "~"),
			"missing parts": parts[0] + "~" + parts[1],
			// Other spellings of the same signature: one message, one
			// signature string.
			"index with a leading zero": strings.Join([]string{parts[0], "0" + parts[1], parts[2], parts[3]}, "~"),
			"size with a leading zero":  strings.Join([]string{parts[0], parts[1], "0" + parts[2], parts[3]}, "~"),
			"path's spare bits":         strings.Join([]string{parts[0], parts[1], parts[2], spareBits(parts[3])}, "~"),
		} {
			if err := VerifyDetached(bad, ps[1], pub); err == nil {
				t.Errorf("size %d: altered %s verifies", n, name)
			}
		}
	}
}

// TestBatchSignerBatchesWhenBusy: a busy signer signs concurrent messages
// of one group together (one signature for many), keeps groups apart, and
// every signature verifies; the cache then verifies each root once.
func TestBatchSignerBatchesWhenBusy(t *testing.T) {
	s, pub := testSigner(t)
	b := NewBatchSigner(s)
	b.Busy = func() bool { return true }
	b.Window = 100 * time.Millisecond
	const n = 40
	ps := payloads(n)
	sigs := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			group := "peer-a"
			if i%2 == 1 {
				group = "peer-b"
			}
			sig, err := b.Sign(t.Context(), group, ps[i])
			if err != nil {
				t.Error(err)
			}
			sigs[i] = sig
		}()
	}
	wg.Wait()
	jwsOf := func(sig string) string { return strings.Split(sig, "~")[0] }
	roots := map[string]bool{}
	c := NewVerifyCache()
	for i, sig := range sigs {
		if !strings.Contains(sig, "~") {
			t.Fatalf("message %d signed alone: %q", i, sig)
		}
		roots[jwsOf(sig)] = true
		if i >= 2 && jwsOf(sig) == jwsOf(sigs[i-1]) {
			t.Errorf("messages %d and %d of different groups share a batch", i-1, i)
		}
		if err := c.Verify(sig, ps[i], pub); err != nil {
			t.Errorf("message %d: %v", i, err)
		}
		if err := c.Verify(sig, ps[(i+2)%n], pub); err == nil {
			t.Errorf("message %d: the cache accepts its signature over another payload", i)
		}
	}
	// The cache is keyed by the key itself: a root verified for one key
	// is not taken for another.
	_, otherPub := testSigner(t)
	if err := c.Verify(sigs[0], ps[0], otherPub); err == nil {
		t.Error("a root verified with one key is accepted for another")
	}
	if len(roots) >= n/2 {
		t.Errorf("%d signatures for %d messages: no batching", len(roots), n)
	}
	if c.Hits() != n-len(roots) {
		t.Errorf("cache hits %d, want %d (one verification per root)", c.Hits(), n-len(roots))
	}
	// A quiet signer signs alone.
	quiet := NewBatchSigner(s)
	quiet.Busy = func() bool { return false }
	sig, err := quiet.Sign(t.Context(), "peer-a", ps[0])
	if err != nil || strings.Contains(sig, "~") {
		t.Errorf("quiet signer: %q, %v", sig, err)
	}
	// A caller that gives up does not wait for the batch.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	b.Window = time.Hour
	if _, err := b.Sign(ctx, "peer-c", ps[0]); err == nil {
		t.Error("a cancelled Sign returned no error")
	}
}

func BenchmarkBatchSign(b *testing.B) {
	s, pub := testSigner(b)
	for _, n := range []int{1, 4, 16} {
		ps := payloads(n)
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			for range b.N {
				if _, err := s.signBatch(ps); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/message")
		})
		sigs, _ := s.signBatch(ps)
		b.Run(fmt.Sprintf("verify-cached/batch=%d", n), func(b *testing.B) {
			for range b.N {
				c := NewVerifyCache()
				for i, sig := range sigs {
					if err := c.Verify(sig, ps[i], pub); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/message")
		})
	}
}

// FuzzBatchSignature: no signature string, however formed, panics the
// verifier or verifies over a payload its key never signed.
func FuzzBatchSignature(f *testing.F) {
	s, pub := testSigner(f)
	ps := payloads(5)
	sigs, err := s.signBatch(ps)
	if err != nil {
		f.Fatal(err)
	}
	for _, sig := range sigs {
		f.Add(sig)
	}
	f.Add("a~b~c~d")
	f.Add("~~~")
	other := []byte("a payload never signed")
	f.Fuzz(func(t *testing.T, sig string) {
		if VerifyDetached(sig, other, pub) == nil {
			t.Fatalf("%q verifies over a payload never signed", sig)
		}
		c := NewVerifyCache()
		for i, p := range ps {
			err := c.Verify(sig, p, pub)
			if err == nil && sig != sigs[i] {
				t.Fatalf("%q, not the signature made, verifies for message %d", sig, i)
			}
		}
	})
}

// TestTreeHasherIsRFC6962: the batch tree's hasher gives RFC 6962's
// hashes for leaves of every size around its buffer, and for children.
func TestTreeHasherIsRFC6962(t *testing.T) {
	want := rfc6962.DefaultHasher
	for _, n := range []int{0, 1, 31, 32, 33, 500, 1022, 1023, 1024, 1025, 4096} {
		leaf := bytes.Repeat([]byte{byte(n)}, n)
		if got := (treeHasher{}).HashLeaf(leaf); !bytes.Equal(got, want.HashLeaf(leaf)) {
			t.Errorf("leaf of %d bytes: %x, want %x", n, got, want.HashLeaf(leaf))
		}
	}
	l, r := want.HashLeaf([]byte("l")), want.HashLeaf([]byte("r"))
	if got := (treeHasher{}).HashChildren(l, r); !bytes.Equal(got, want.HashChildren(l, r)) {
		t.Errorf("children: %x, want %x", got, want.HashChildren(l, r))
	}
	if got := (treeHasher{}).HashChildren(l, r[:7]); !bytes.Equal(got, want.HashChildren(l, r[:7])) {
		t.Errorf("short child: %x, want %x", got, want.HashChildren(l, r[:7]))
	}
	if !bytes.Equal((treeHasher{}).EmptyRoot(), want.EmptyRoot()) || (treeHasher{}).Size() != want.Size() {
		t.Error("empty root or size differ")
	}
}

// TestVerifyCacheOnePerRoot: the messages of one batch verified at the
// same time cost one verification of its root, and a root that fails
// fails for every message waiting on it and is not remembered.
func TestVerifyCacheOnePerRoot(t *testing.T) {
	s, pub := testSigner(t)
	const n = 32
	ps := payloads(n)
	sigs, err := s.signBatch(ps)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	var c *VerifyCache
	var hitsBefore int
	defer func(f func(string, []byte, crypto.PublicKey) error) { verifyRoot = f }(verifyRoot)
	verifyRoot = func(jws string, rp []byte, pub crypto.PublicKey) error {
		calls.Add(1)
		// Every other caller arrives (and counts as a hit) before the
		// verification ends.
		for deadline := time.Now().Add(10 * time.Second); c.Hits() < hitsBefore+n-1 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		return verifyPlain(jws, rp, pub)
	}
	all := func(c *VerifyCache, sigs []string) []error {
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { errs[i] = c.Verify(sigs[i], ps[i], pub) })
		}
		wg.Wait()
		return errs
	}

	c = NewVerifyCache()
	for i, err := range all(c, sigs) {
		if err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
	if got := calls.Load(); got != 1 || c.Hits() != n-1 {
		t.Errorf("%d verifications of the root and %d hits for %d messages at once, want 1 and %d", got, c.Hits(), n, n-1)
	}

	// The same batch with its root's signature broken.
	broken := make([]string, n)
	for i, sig := range sigs {
		jws, rest, _ := strings.Cut(sig, "~")
		broken[i] = jws[:len(jws)-4] + "AAAA" + "~" + rest
	}
	calls.Store(0)
	c = NewVerifyCache()
	for i, err := range all(c, broken) {
		if err == nil {
			t.Errorf("message %d: a broken root verified", i)
		}
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("%d verifications of the broken root, want 1", got)
	}
	hitsBefore = c.Hits() - (n - 1) // alone, the next caller waits for nobody
	if err := c.Verify(broken[0], ps[0], pub); err == nil || calls.Load() != 2 {
		t.Errorf("after a failure: %v after %d verifications; want the root verified again, and refused", err, calls.Load())
	}
}

// TestBatchSignerHoldsBatching: once busy, a signer goes on batching for
// Hold after the process last looked busy, then signs alone again.
func TestBatchSignerHoldsBatching(t *testing.T) {
	s, _ := testSigner(t)
	b := NewBatchSigner(s)
	var busy atomic.Bool
	b.Busy = busy.Load
	b.Window = 300 * time.Millisecond
	b.Hold = time.Second
	// Two messages at once share a batch when batching (a batch of one
	// is signed as a plain JWS).
	batched := func() bool {
		sigs := make([]string, 2)
		var wg sync.WaitGroup
		for i := range sigs {
			wg.Go(func() {
				sig, err := b.Sign(t.Context(), "peer-a", fmt.Appendf(nil, "payload %d", i))
				if err != nil {
					t.Error(err)
				}
				sigs[i] = sig
			})
		}
		wg.Wait()
		return strings.Contains(sigs[0], "~") && strings.Contains(sigs[1], "~")
	}
	if batched() {
		t.Fatal("batched before the process was ever busy")
	}
	busy.Store(true)
	if !batched() {
		t.Fatal("signed alone while busy")
	}
	busy.Store(false)
	if !batched() {
		t.Error("signed alone right after the process stopped being busy")
	}
	time.Sleep(1200 * time.Millisecond)
	if batched() {
		t.Error("still batching after the hold")
	}
}

// TestVerifyCachePanic: a verification that panics releases the messages
// waiting for it with an error, and the root is verified afresh next time.
func TestVerifyCachePanic(t *testing.T) {
	s, pub := testSigner(t)
	ps := payloads(2)
	sigs, err := s.signBatch(ps)
	if err != nil {
		t.Fatal(err)
	}
	c := NewVerifyCache()
	defer func(f func(string, []byte, crypto.PublicKey) error) { verifyRoot = f }(verifyRoot)
	verifyRoot = func(string, []byte, crypto.PublicKey) error {
		for deadline := time.Now().Add(10 * time.Second); c.Hits() < 1 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		panic("verifier failed")
	}
	waiter := make(chan error, 1)
	go func() {
		defer func() { recover() }()
		c.Verify(sigs[0], ps[0], pub)
	}()
	inflight := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return len(c.inflight)
	}
	for inflight() == 0 {
		time.Sleep(time.Millisecond)
	}
	go func() { waiter <- c.Verify(sigs[1], ps[1], pub) }()
	select {
	case err := <-waiter:
		if err == nil {
			t.Error("a message waiting on a verification that panicked was accepted")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a message waiting on a verification that panicked was never released")
	}
	verifyRoot = verifyPlain
	if err := c.Verify(sigs[1], ps[1], pub); err != nil {
		t.Errorf("after the panic: %v", err)
	}
}
