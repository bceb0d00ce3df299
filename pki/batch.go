package pki

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/sampan-exchange/sampan/internal/busy"
)

// Batch signatures. A busy signer signs the messages of about a
// millisecond at once: their payloads are the leaves of a Merkle tree
// (RFC 6962 hashing), and one JWS signs the tree's root and size. Each
// message carries that JWS and its own inclusion proof, so each is still
// signed on its own (non-repudiation holds per message: the proof shows
// the signer signed a root that commits to exactly this payload) while
// one signature operation serves them all, and a receiver that has
// verified a root once need not verify it again.
//
// A batch signature reads JWS "~" index "~" size "~" path, where the JWS
// is a detached compact JWS over rootPayload(root, size) and path is the
// base64url concatenation of the proof's hashes. A batch of one is a
// plain detached JWS over the payload.

const (
	// MaxBatch bounds the messages signed at once.
	MaxBatch = 64
	// batchPathMax bounds an inclusion proof (log2 of MaxBatch, rounded up).
	batchPathMax = 6
)

// rootPayload is what the JWS of a batch signs.
func rootPayload(root []byte, size uint64) []byte {
	return fmt.Appendf(nil, "sampan-batch-v1\n%x\n%d", root, size)
}

// treeHasher hashes as RFC 6962 does with SHA-256 (rfc6962.DefaultHasher,
// TestTreeHasherIsRFC6962), without a hash object per node: a batch's
// tree and proofs are hashed for every signed and verified message.
type treeHasher struct{}

func (treeHasher) EmptyRoot() []byte { return rfc6962.DefaultHasher.EmptyRoot() }
func (treeHasher) Size() int         { return sha256.Size }

func (treeHasher) HashLeaf(leaf []byte) []byte {
	var buf [1024]byte
	s := sha256.Sum256(append(append(buf[:0], rfc6962.RFC6962LeafHashPrefix), leaf...))
	return s[:]
}

func (treeHasher) HashChildren(l, r []byte) []byte {
	var buf [1 + 2*sha256.Size]byte
	s := sha256.Sum256(append(append(append(buf[:0], rfc6962.RFC6962NodeHashPrefix), l...), r...))
	return s[:]
}

// batchTree computes the root of leaves and each leaf's inclusion path,
// as RFC 6962 defines them.
func batchTree(leaves [][]byte) (root []byte, paths [][][]byte) {
	h := treeHasher{}
	paths = make([][][]byte, len(leaves))
	var build func(lo, hi int) []byte
	build = func(lo, hi int) []byte {
		if hi-lo == 1 {
			return leaves[lo]
		}
		k := 1
		for k*2 < hi-lo {
			k *= 2
		}
		left, right := build(lo, lo+k), build(lo+k, hi)
		// The sibling subtree's hash is appended to the paths of the
		// leaves on the other side, innermost first.
		for i := lo; i < lo+k; i++ {
			paths[i] = append(paths[i], right)
		}
		for i := lo + k; i < hi; i++ {
			paths[i] = append(paths[i], left)
		}
		return h.HashChildren(left, right)
	}
	return build(0, len(leaves)), paths
}

// signBatch signs payloads at once and returns one signature for each.
func (s *Signer) signBatch(payloads [][]byte) ([]string, error) {
	if len(payloads) == 1 {
		sig, err := s.SignDetached(payloads[0])
		return []string{sig}, err
	}
	leaves := make([][]byte, len(payloads))
	for i, p := range payloads {
		leaves[i] = treeHasher{}.HashLeaf(p)
	}
	root, paths := batchTree(leaves)
	jws, err := s.SignDetached(rootPayload(root, uint64(len(payloads))))
	if err != nil {
		return nil, err
	}
	sigs := make([]string, len(payloads))
	for i, path := range paths {
		var b strings.Builder
		b.Grow(len(jws) + 16 + base64.RawURLEncoding.EncodedLen(32*len(path)))
		b.WriteString(jws)
		b.WriteByte('~')
		b.WriteString(strconv.Itoa(i))
		b.WriteByte('~')
		b.WriteString(strconv.Itoa(len(payloads)))
		b.WriteByte('~')
		raw := make([]byte, 0, 32*len(path))
		for _, p := range path {
			raw = append(raw, p...)
		}
		b.WriteString(base64.RawURLEncoding.EncodeToString(raw))
		sigs[i] = b.String()
	}
	return sigs, nil
}

// parseBatch splits a batch signature; it returns the JWS and the root
// payload the proof leads to from payload.
func parseBatch(sig string, payload []byte) (jws string, root []byte, err error) {
	parts := strings.Split(sig, "~")
	if len(parts) != 4 {
		return "", nil, errors.New("verify signature: malformed batch signature")
	}
	// Only the canonical spelling of each part: one signed message has
	// one signature string (the request hash and the records cover it).
	index, err1 := strconv.ParseUint(parts[1], 10, 32)
	size, err2 := strconv.ParseUint(parts[2], 10, 32)
	raw, err3 := base64.RawURLEncoding.Strict().DecodeString(parts[3])
	if err1 != nil || err2 != nil || err3 != nil || size < 2 || size > MaxBatch || index >= size ||
		len(raw)%32 != 0 || len(raw)/32 > batchPathMax ||
		strconv.FormatUint(index, 10) != parts[1] || strconv.FormatUint(size, 10) != parts[2] {
		return "", nil, errors.New("verify signature: malformed batch signature")
	}
	path := make([][]byte, len(raw)/32)
	for i := range path {
		path[i] = raw[32*i : 32*i+32]
	}
	r, err := proof.RootFromInclusionProof(treeHasher{}, index, size, treeHasher{}.HashLeaf(payload), path)
	if err != nil {
		return "", nil, fmt.Errorf("verify signature: batch inclusion proof: %w", err)
	}
	return parts[0], rootPayload(r, size), nil
}

// BatchSigner signs messages one by one while the process has processors
// to spare, and in batches, per group (one group per receiving gateway: a
// receiver sees only the hashes of messages sent to it), while it is busy
// (package busy: goroutines waiting for a processor), when a signature's
// CPU is worth more than the window's latency. It is safe for concurrent
// use.
type BatchSigner struct {
	s *Signer
	// Window is how long a batch gathers (1 ms); Busy tells when to batch
	// (busy.Busy). Once Busy has said so, messages are batched for at
	// least Hold (1 s): a saturated exchange has short lulls between
	// bursts, and a message signed alone in one costs its receiver a
	// verification of its own, about twice the signature's CPU.
	Window time.Duration
	Busy   func() bool
	Hold   time.Duration

	busyUntil atomic.Int64 // batch until then (since monoStart)
	mu        sync.Mutex
	open      map[string]*openBatch
}

type openBatch struct {
	payloads [][]byte
	out      []chan batchResult
	timer    *time.Timer
}

type batchResult struct {
	sig string
	err error
}

// NewBatchSigner signs with s.
func NewBatchSigner(s *Signer) *BatchSigner {
	return &BatchSigner{s: s, Window: time.Millisecond, Busy: busy.Busy, Hold: time.Second, open: map[string]*openBatch{}}
}

// batching reports whether to batch now: while busy, and for Hold after.
func (b *BatchSigner) batching() bool {
	now := int64(time.Since(monoStart))
	if b.Busy() {
		until := now + int64(b.Hold)
		for {
			old := b.busyUntil.Load()
			if until <= old || b.busyUntil.CompareAndSwap(old, until) {
				return true
			}
		}
	}
	return now < b.busyUntil.Load()
}

// monoStart is where the signers' monotonic times count from.
var monoStart = time.Now()

// Sign signs payload, alone or in the group's next batch.
func (b *BatchSigner) Sign(ctx context.Context, group string, payload []byte) (string, error) {
	if !b.batching() {
		return b.s.SignDetached(payload)
	}
	b.mu.Lock()
	ch := make(chan batchResult, 1)
	ob := b.open[group]
	if ob == nil {
		ob = &openBatch{}
		b.open[group] = ob
		ob.timer = time.AfterFunc(b.Window, func() { b.close(group, ob) })
	}
	ob.payloads = append(ob.payloads, payload)
	ob.out = append(ob.out, ch)
	full := len(ob.payloads) >= MaxBatch
	if full {
		delete(b.open, group)
		ob.timer.Stop()
	}
	b.mu.Unlock()
	if full {
		b.sign(ob)
	}
	select {
	case r := <-ch:
		return r.sig, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// close signs a batch whose window has passed, unless it was signed full.
func (b *BatchSigner) close(group string, ob *openBatch) {
	b.mu.Lock()
	if b.open[group] != ob {
		b.mu.Unlock()
		return
	}
	delete(b.open, group)
	b.mu.Unlock()
	b.sign(ob)
}

func (b *BatchSigner) sign(ob *openBatch) {
	sigs, err := b.s.signBatch(ob.payloads)
	for i, ch := range ob.out {
		if err != nil {
			ch <- batchResult{err: err}
		} else {
			ch <- batchResult{sig: sigs[i]}
		}
	}
}

// VerifyCache remembers batch roots it has verified, so that the other
// messages of a batch cost a hash path rather than a signature
// verification. The messages of a batch tend to arrive together: while
// one caller verifies a root, the others wait for its answer rather than
// verify the same root again. It is safe for concurrent use.
type VerifyCache struct {
	mu       sync.Mutex
	seen     map[[32]byte]struct{}
	order    [][32]byte // oldest first, for eviction
	next     int
	hits     int
	inflight map[[32]byte]*rootCheck
}

// rootCheck is a root's verification under way; err is set before done
// is closed.
type rootCheck struct {
	done chan struct{}
	err  error
}

// errRootUnfinished is what the waiters get when a root's verification
// panicked.
var errRootUnfinished = errors.New("verify signature: the batch root's verification did not complete")

// verifyRoot checks a batch root's JWS (a variable for tests).
var verifyRoot = verifyPlain

// verifyCacheSize bounds the roots remembered.
const verifyCacheSize = 4096

// NewVerifyCache returns an empty cache.
func NewVerifyCache() *VerifyCache {
	return &VerifyCache{seen: map[[32]byte]struct{}{}, inflight: map[[32]byte]*rootCheck{}}
}

// Hits reports how many verifications the cache saved: messages whose
// root was already verified, or was being verified for another message
// (whatever that verification found).
func (c *VerifyCache) Hits() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits
}

// Verify is VerifyDetached, remembering verified batch roots.
func (c *VerifyCache) Verify(sig string, payload []byte, pub crypto.PublicKey) error {
	if !strings.Contains(sig, "~") {
		return VerifyDetached(sig, payload, pub)
	}
	jws, rp, err := parseBatch(sig, payload)
	if err != nil {
		return err
	}
	// The key: the public key itself, the root and the JWS.
	pubBytes, ok := pub.(ed25519.PublicKey)
	if !ok {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return fmt.Errorf("verify signature: %w", err)
		}
		pubBytes = der
	}
	h := sha256.New()
	for _, s := range [][]byte{pubBytes, []byte("\n"), rp, []byte("\n"), []byte(jws)} {
		h.Write(s)
	}
	var k [32]byte
	h.Sum(k[:0])
	c.mu.Lock()
	if _, ok := c.seen[k]; ok {
		c.hits++
		c.mu.Unlock()
		return nil
	}
	if rc, ok := c.inflight[k]; ok {
		// Another message of the batch is verifying the same root: its
		// answer, bound to the same key, root and JWS, is this one's.
		c.hits++
		c.mu.Unlock()
		<-rc.done
		return rc.err
	}
	rc := &rootCheck{done: make(chan struct{})}
	c.inflight[k] = rc
	c.mu.Unlock()
	// The waiters are released however the verification ends, a panic
	// included.
	rc.err = errRootUnfinished
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.inflight, k)
		close(rc.done)
		if rc.err == nil {
			c.remember(k)
		}
	}()
	rc.err = verifyRoot(jws, rp, pub)
	return rc.err
}

// remember adds a verified root, forgetting the oldest beyond
// verifyCacheSize. The caller holds c.mu.
func (c *VerifyCache) remember(k [32]byte) {
	if len(c.order) < verifyCacheSize {
		c.order = append(c.order, k)
	} else {
		delete(c.seen, c.order[c.next])
		c.order[c.next] = k
		c.next = (c.next + 1) % verifyCacheSize
	}
	c.seen[k] = struct{}{}
}
