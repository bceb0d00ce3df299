package msglog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
	"golang.org/x/mod/sumdb/note"

	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/store"
)

// CertsDir keeps, by SHA-256, the signing certificates the records
// name, so that evidence can be exported with them.
const CertsDir = "certs"

// StoreCert keeps a signing certificate for later export (once per
// fingerprint).
func (l *Log) StoreCert(der []byte) error {
	return l.StoreKnownCert(pki.Fingerprint(der), der)
}

// StoreKnownCert is StoreCert for a certificate whose fingerprint the
// caller has computed already (pki.Fingerprint of der): a gateway keeps
// the fingerprints of its own and its peers' signing certificates, and
// stores both with every exchange.
func (l *Log) StoreKnownCert(fp string, der []byte) error {
	if _, ok := l.certs.Load(fp); ok {
		return nil
	}
	dir := filepath.Join(l.dir, CertsDir)
	p := filepath.Join(dir, fp+".pem")
	if _, err := os.Stat(p); err == nil {
		l.certs.Store(fp, true)
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(p, pki.EncodeCert(der), 0o644); err != nil {
		return err
	}
	l.certs.Store(fp, true)
	return nil
}

// Bundle files.
const (
	bundleRecord       = "record.json"
	bundleLeafIndex    = "leaf-index.txt"
	bundleInclusion    = "inclusion-proof.json"
	bundleCheckpoint   = "checkpoint.txt"
	bundleLogKey       = "checkpoint.pub"
	bundleStampedCP    = "stamped-checkpoint.txt"
	bundleConsistency  = "consistency-proof.json"
	bundleToken        = "timestamp.tsr"
	bundleTSACert      = "tsa.pem"
	bundleReqSig       = "request.jws"
	bundleRespSig      = "response.jws"
	bundleReqCert      = "request-signer.pem"
	bundleRespCert     = "response-signer.pem"
	bundleReadme       = "README.md"
	bundleLeafHash     = "leaf-hash.txt"
	maxBundleFileBytes = 1 << 20
)

// proofFile is an inclusion or consistency proof as JSON.
type proofFile struct {
	Index    uint64   `json:"leaf_index,omitempty"`
	From     uint64   `json:"from_size,omitempty"`
	TreeSize uint64   `json:"tree_size"`
	Hashes   []string `json:"hashes"`
}

// ErrNotFound is returned by Export when no record has the id (or none
// of those with it matches the selection).
var ErrNotFound = errors.New("no record with this X-Road-Id")

// Selection names the exchange Export writes. X-Road-Ids are chosen by
// clients and need not be unique: when several exchanges share one, the
// request hash or the request time tells them apart.
type Selection struct {
	// XRoadID is the exchange's X-Road-Id (required).
	XRoadID string
	// RequestHash, when set, selects the exchange with this request hash
	// (X-Road-Request-Hash).
	RequestHash string
	// At, when not zero, selects the exchange received at this time (to
	// the second when At has no fraction of a second).
	At time.Time
	// Side, when set, selects the consumer's or the provider's record: a
	// gateway that serves both the client and the service logs both.
	Side string
}

// matches reports whether a record fits the selection's filters.
func (s Selection) matches(r *Record) bool {
	if s.RequestHash != "" && r.RequestHash != s.RequestHash || s.Side != "" && r.Side != s.Side {
		return false
	}
	if !s.At.IsZero() {
		at := r.RequestAt
		if s.At.Nanosecond() == 0 {
			at = at.Truncate(time.Second)
		}
		if !at.Equal(s.At) {
			return false
		}
	}
	return true
}

// Candidate is one of several exchanges an X-Road-Id names.
type Candidate struct {
	Side        string
	RequestAt   time.Time
	RequestHash string
}

// AmbiguousError is returned by Export when several exchanges fit the
// selection: the caller chooses one by its request hash or time.
type AmbiguousError struct {
	XRoadID    string
	Candidates []Candidate
}

// Error lists the candidates.
func (e *AmbiguousError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d exchanges have X-Road-Id %q; choose one with --request-hash, --at or --side:", len(e.Candidates), e.XRoadID)
	for _, c := range e.Candidates {
		fmt.Fprintf(&b, "\n  %s  %s  request hash %s", c.RequestAt.UTC().Format(time.RFC3339Nano), c.Side, c.RequestHash)
	}
	return b.String()
}

// Export writes the evidence of one exchange, found by its X-Road-Id (and,
// when several share it, by the selection's other fields), to out as
// separate standard files with a README saying how to check each. dsn
// selects a PostgreSQL record index (empty: SQLite in dir).
func Export(ctx context.Context, dir, dsn string, sel Selection, out string) error {
	fetcher := client.FileFetcher{Root: filepath.Join(dir, TilesDir)}
	vb, v, db, err := openExisting(ctx, dir, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	cpRaw, err := fetcher.ReadCheckpoint(ctx)
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	cp, _, _, err := client.FetchCheckpoint(ctx, fetcher.ReadCheckpoint, v, v.Name())
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	entry, index, err := findRecord(ctx, db, v.Name(), fetcher, cp.Size, sel)
	if err != nil {
		return err
	}
	digest := recordDigest(entry)
	rec, err := ParseRecord(entry)
	if err != nil {
		return err
	}
	pb, err := client.NewProofBuilder(ctx, cp.Size, fetcher.ReadTile)
	if err != nil {
		return fmt.Errorf("proof: %w", err)
	}
	incl, err := pb.InclusionProof(ctx, index)
	if err != nil {
		return fmt.Errorf("inclusion proof: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	write := func(name string, b []byte) error { return os.WriteFile(filepath.Join(out, name), b, 0o644) }
	files := map[string][]byte{
		bundleRecord:     entry,
		bundleLeafIndex:  []byte(strconv.FormatUint(index, 10) + "\n"),
		bundleLeafHash:   []byte(hex.EncodeToString(rfc6962.DefaultHasher.HashLeaf(digest[:])) + "\n"),
		bundleCheckpoint: cpRaw,
		bundleLogKey:     vb,
		bundleReqSig:     []byte(rec.RequestSignature + "\n"),
		bundleRespSig:    []byte(rec.ResponseSignature + "\n"),
	}
	files[bundleInclusion], _ = json.MarshalIndent(proofFile{Index: index, TreeSize: cp.Size, Hashes: hexAll(incl)}, "", "  ")
	for name, fp := range map[string]string{bundleReqCert: rec.RequestSignerCert, bundleRespCert: rec.ResponseSignerCert} {
		if b, err := os.ReadFile(filepath.Join(dir, CertsDir, fp+".pem")); err == nil {
			files[name] = b
		}
	}
	stamped := false
	if size, tok, scp, tsa, ok := stampFor(dir, index); ok && size <= cp.Size {
		cons, err := pb.ConsistencyProof(ctx, size, cp.Size)
		if err != nil {
			return fmt.Errorf("consistency proof: %w", err)
		}
		files[bundleStampedCP], files[bundleToken], files[bundleTSACert] = scp, tok, tsa
		files[bundleConsistency], _ = json.MarshalIndent(proofFile{From: size, TreeSize: cp.Size, Hashes: hexAll(cons)}, "", "  ")
		stamped = true
	}
	files[bundleReadme] = []byte(bundleReadmeText(rec, index, cp.Size, stamped))
	for name, b := range files {
		if err := write(name, b); err != nil {
			return err
		}
	}
	return nil
}

// ErrPurged is returned by Export for a record removed under retention.
var ErrPurged = errors.New("the record with this X-Road-Id was purged under the retention period")

// findRecord looks the record up in the index and returns it with its
// leaf index, which must be within the checkpoint's tree.
func findRecord(ctx context.Context, db *store.DB, origin string, f client.FileFetcher, size uint64, sel Selection) ([]byte, uint64, error) {
	// The confirmed position first: it only grows, and below it every
	// leaf has its row's position recorded, so that a row read after it
	// whose position is not right has its leaf at or above it.
	var from int64
	switch err := db.QueryRowContext(ctx, db.Q(`SELECT reconciled FROM log_state WHERE log = ?`), origin).Scan(&from); {
	case errors.Is(err, sql.ErrNoRows):
		from = 0
	case err != nil:
		return nil, 0, fmt.Errorf("record index: %w", err)
	}
	data, digest, leaf, err := selectRecord(ctx, db, origin, sel)
	if err != nil {
		return nil, 0, err
	}
	// A position may be a prediction not yet confirmed (indexWriter): it
	// is the record's when the tree holds its digest there.
	eb := entryBundles{rd: f, size: size}
	if leaf.Valid && uint64(leaf.Int64) < size {
		e, err := eb.entry(ctx, uint64(leaf.Int64))
		if err != nil {
			return nil, 0, err
		}
		if bytes.Equal(e, digest) {
			return data, uint64(leaf.Int64), nil
		}
	}
	// Otherwise the position is not yet recorded, or not yet right: the
	// record's leaf, if it is one, lies at or above the confirmed
	// position read above.
	for pos := uint64(from); pos < size; pos++ {
		e, err := eb.entry(ctx, pos)
		if err != nil {
			return nil, 0, err
		}
		if bytes.Equal(e, digest) {
			return data, pos, nil
		}
	}
	return nil, 0, fmt.Errorf("the record is not yet in the latest checkpoint (tree size %d); export again in a second", size)
}

// maxCandidates bounds the exchanges of one X-Road-Id Export considers.
const maxCandidates = 1000

// selectRecord returns the one exchange record the selection names, with
// its digest and recorded leaf position: never one of several silently.
func selectRecord(ctx context.Context, db *store.DB, origin string, sel Selection) (data, digest []byte, leaf sql.NullInt64, err error) {
	rows, err := db.QueryContext(ctx, db.Q(`SELECT record, digest, leaf_index FROM records WHERE log = ? AND x_road_id = ? AND kind = ? ORDER BY request_at LIMIT ?`),
		origin, sel.XRoadID, KindExchange, maxCandidates+1)
	if err != nil {
		return nil, nil, leaf, fmt.Errorf("record index: %w", err)
	}
	defer rows.Close()
	type hit struct {
		data, digest []byte
		leaf         sql.NullInt64
		rec          *Record
	}
	var hits []hit
	rowsSeen, purged := 0, 0
	for rows.Next() {
		var h hit
		if err := rows.Scan(&h.data, &h.digest, &h.leaf); err != nil {
			return nil, nil, leaf, fmt.Errorf("record index: %w", err)
		}
		rowsSeen++
		if h.data == nil {
			purged++
			continue
		}
		if h.rec, err = ParseRecord(h.data); err != nil {
			return nil, nil, leaf, fmt.Errorf("record index: %w", err)
		}
		if sel.matches(h.rec) {
			hits = append(hits, h)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, leaf, fmt.Errorf("record index: %w", err)
	}
	switch {
	case rowsSeen > maxCandidates:
		return nil, nil, leaf, fmt.Errorf("more than %d exchanges have X-Road-Id %q", maxCandidates, sel.XRoadID)
	case len(hits) == 1:
		return hits[0].data, hits[0].digest, hits[0].leaf, nil
	case len(hits) > 1:
		ae := &AmbiguousError{XRoadID: sel.XRoadID}
		for _, h := range hits {
			ae.Candidates = append(ae.Candidates, Candidate{Side: h.rec.Side, RequestAt: h.rec.RequestAt, RequestHash: h.rec.RequestHash})
		}
		return nil, nil, leaf, ae
	case purged > 0 && purged == rowsSeen:
		return nil, nil, leaf, ErrPurged
	}
	return nil, nil, leaf, ErrNotFound
}

// stampFor returns the earliest time-stamped checkpoint that covers leaf
// index, with its token and the TSA certificate.
func stampFor(dir string, index uint64) (uint64, []byte, []byte, []byte, bool) {
	tdir := filepath.Join(dir, TimestampsDir)
	tokens, _ := filepath.Glob(filepath.Join(tdir, "*.tsr"))
	sort.Strings(tokens)
	for _, t := range tokens {
		size, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(t), ".tsr"), 10, 64)
		if err != nil || size <= index {
			continue
		}
		tok, err1 := os.ReadFile(t)
		cp, err2 := os.ReadFile(strings.TrimSuffix(t, ".tsr") + ".checkpoint")
		tsa, err3 := os.ReadFile(filepath.Join(tdir, "tsa.pem"))
		if err1 == nil && err2 == nil && err3 == nil {
			return size, tok, cp, tsa, true
		}
	}
	return 0, nil, nil, nil, false
}

func hexAll(hs [][]byte) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = hex.EncodeToString(h)
	}
	return out
}

// BundleReport is what VerifyBundle established.
type BundleReport struct {
	Record      *Record
	LeafIndex   uint64
	TreeSize    uint64
	Signatures  bool // both message signatures verified against the certificates
	Timestamped bool
	StampedAt   string
}

// VerifyBundle checks an evidence bundle: the record's leaf is included in
// the signed checkpoint; both message signatures verify over the digests
// the record holds with the signers' certificates; and, when present, the
// time-stamp covers an earlier checkpoint consistent with it. Any edited
// byte fails one of these. It returns the first fault.
func VerifyBundle(dir string) (*BundleReport, error) {
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil && len(b) > maxBundleFileBytes {
			err = fmt.Errorf("%s is too large", name)
		}
		return b, err
	}
	entry, err := read(bundleRecord)
	if err != nil {
		return nil, err
	}
	rec, err := ParseRecord(entry)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bundleRecord, err)
	}
	vb, err := read(bundleLogKey)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vb)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bundleLogKey, err)
	}
	openCP := func(name string) (*log.Checkpoint, error) {
		b, err := read(name)
		if err != nil {
			return nil, err
		}
		cp, _, _, err := log.ParseCheckpoint(b, v.Name(), v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return cp, nil
	}
	cp, err := openCP(bundleCheckpoint)
	if err != nil {
		return nil, err
	}
	var incl proofFile
	if err := readJSON(read, bundleInclusion, &incl); err != nil {
		return nil, err
	}
	if incl.TreeSize != cp.Size {
		return nil, fmt.Errorf("%s is for tree size %d, the checkpoint for %d", bundleInclusion, incl.TreeSize, cp.Size)
	}
	hashes, err := unhexAll(incl.Hashes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bundleInclusion, err)
	}
	digest := recordDigest(entry)
	leaf := rfc6962.DefaultHasher.HashLeaf(digest[:])
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, incl.Index, cp.Size, leaf, hashes, cp.Hash); err != nil {
		return nil, fmt.Errorf("the record is not in the checkpoint's tree: %w", err)
	}
	rep := &BundleReport{Record: rec, LeafIndex: incl.Index, TreeSize: cp.Size}
	// What the request signature covers: the head rebuilt from the
	// record's fields must be the one whose digest was signed.
	if err := rec.CheckRequestHead(); err != nil {
		return nil, fmt.Errorf("%s: %w", bundleRecord, err)
	}
	for name, want := range map[string]string{
		bundleLeafIndex: strconv.FormatUint(incl.Index, 10) + "\n",
		bundleLeafHash:  hex.EncodeToString(leaf) + "\n",
	} {
		if b, err := read(name); err != nil || string(b) != want {
			return nil, fmt.Errorf("%s does not match the record and its proof", name)
		}
	}

	// The message signatures, over the digests the record holds.
	for _, s := range []struct{ sigFile, certFile, sig, head, body, fp string }{
		{bundleReqSig, bundleReqCert, rec.RequestSignature, rec.RequestHeadSHA256, rec.RequestBodySHA256, rec.RequestSignerCert},
		{bundleRespSig, bundleRespCert, rec.ResponseSignature, rec.ResponseHeadSHA256, rec.ResponseBodySHA256, rec.ResponseSignerCert},
	} {
		sig, err := read(s.sigFile)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(string(sig)) != s.sig {
			return nil, fmt.Errorf("%s differs from the signature in the record", s.sigFile)
		}
		certPEM, err := read(s.certFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.certFile, err)
		}
		cert, err := pki.ParseCertPEM(certPEM)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.certFile, err)
		}
		if pki.Fingerprint(cert.Raw) != s.fp {
			return nil, fmt.Errorf("%s is not the certificate the record names", s.certFile)
		}
		payload := []byte(s.head + "\n" + s.body + "\n" + s.fp)
		if err := pki.VerifyDetached(s.sig, payload, cert.PublicKey); err != nil {
			return nil, fmt.Errorf("%s does not verify: %w", s.sigFile, err)
		}
	}
	rep.Signatures = true

	// The README is generated from the evidence: it must not say
	// anything else.
	readme, err := read(bundleReadme)
	if err != nil {
		return nil, err
	}
	_, tokErr := os.Stat(filepath.Join(dir, bundleToken))
	if string(readme) != bundleReadmeText(rec, incl.Index, cp.Size, tokErr == nil) {
		return nil, fmt.Errorf("%s was edited", bundleReadme)
	}

	// The time-stamp, if any.
	tok, err := read(bundleToken)
	if errors.Is(err, os.ErrNotExist) {
		return rep, nil
	}
	if err != nil {
		return nil, err
	}
	scp, err := openCP(bundleStampedCP)
	if err != nil {
		return nil, err
	}
	if scp.Size <= incl.Index {
		return nil, fmt.Errorf("the time-stamped checkpoint (size %d) does not cover leaf %d", scp.Size, incl.Index)
	}
	var cons proofFile
	if err := readJSON(read, bundleConsistency, &cons); err != nil {
		return nil, err
	}
	ch, err := unhexAll(cons.Hashes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", bundleConsistency, err)
	}
	if cons.From != scp.Size || cons.TreeSize != cp.Size {
		return nil, fmt.Errorf("%s does not join the two checkpoints", bundleConsistency)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, scp.Size, cp.Size, ch, scp.Hash, cp.Hash); err != nil {
		return nil, fmt.Errorf("the time-stamped checkpoint is not consistent with the checkpoint: %w", err)
	}
	ts, err := ParseToken(tok)
	if err != nil {
		return nil, fmt.Errorf("%s does not verify: %w", bundleToken, err)
	}
	scpRaw, _ := read(bundleStampedCP)
	sum := sha256.Sum256(scpRaw)
	if !bytes.Equal(ts.HashedMessage, sum[:]) {
		return nil, fmt.Errorf("%s does not cover %s", bundleToken, bundleStampedCP)
	}
	tsaPEM, err := read(bundleTSACert)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(tsaPEM)
	if blk == nil || len(ts.Certificates) == 0 || !bytes.Equal(ts.Certificates[0].Raw, blk.Bytes) {
		return nil, fmt.Errorf("%s was not signed by %s", bundleToken, bundleTSACert)
	}
	if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		return nil, fmt.Errorf("%s: %w", bundleTSACert, err)
	}
	rep.Timestamped, rep.StampedAt = true, ts.Time.UTC().Format("2006-01-02T15:04:05Z")
	return rep, nil
}

func readJSON(read func(string) ([]byte, error), name string, v any) error {
	b, err := read(name)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

func unhexAll(ss []string) ([][]byte, error) {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("hash %d is not 32 hex bytes", i)
		}
		out[i] = b
	}
	return out, nil
}
