package msglog

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/sampan-exchange/sampan/pki"
)

// TimestampsDir holds RFC 3161 tokens over checkpoints: for each,
// {size}.checkpoint (the checkpoint as stamped) and {size}.tsr (the
// token), and tsa.pem, the certificate of the authority that issued them.
const TimestampsDir = "timestamps"

// StoreTimestamp keeps a token over a checkpoint of the given tree size.
func (l *Log) StoreTimestamp(size uint64, checkpoint, token []byte, tsaCert *x509.Certificate) error {
	dir := filepath.Join(l.dir, TimestampsDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	base := filepath.Join(dir, fmt.Sprintf("%012d", size))
	if err := pki.WriteFileAtomic(base+".checkpoint", checkpoint, 0o644); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(base+".tsr", token, 0o644); err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(filepath.Join(dir, "tsa.pem"), pki.EncodeCert(tsaCert.Raw), 0o644); err != nil {
		return err
	}
	at := l.now()
	if ts, err := ParseToken(token); err == nil {
		at = ts.Time
	}
	l.noteTimestamp(at)
	return nil
}

// LastTimestamp returns the time (as the authority stamped it) of the
// newest time-stamp token the log keeps, or the zero time when it keeps
// none. A token covers a checkpoint: while the tree does not grow, no
// new token is needed, and this time stays where it is.
func (l *Log) LastTimestamp() time.Time {
	if ns := l.stamped.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// noteTimestamp makes at the newest time-stamp's time, unless a newer one
// is known.
func (l *Log) noteTimestamp(at time.Time) {
	if at.IsZero() {
		return
	}
	ns := at.UnixNano()
	for {
		old := l.stamped.Load()
		if ns <= old || l.stamped.CompareAndSwap(old, ns) {
			return
		}
	}
}

// newestTimestamp is the time of the token over the largest checkpoint
// stored in dir (its file's modification time if it does not parse), or
// the zero time when there is none.
func newestTimestamp(dir string) time.Time {
	tokens, _ := filepath.Glob(filepath.Join(dir, TimestampsDir, "*.tsr"))
	if len(tokens) == 0 {
		return time.Time{}
	}
	newest := slices.Max(tokens) // names are fixed-width tree sizes
	if b, err := os.ReadFile(newest); err == nil {
		if ts, err := ParseToken(b); err == nil {
			return ts.Time
		}
	}
	if fi, err := os.Stat(newest); err == nil {
		return fi.ModTime()
	}
	return time.Time{}
}

// Checkpoint returns the latest published checkpoint, or nil before the
// first one.
func (l *Log) Checkpoint() ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(l.dir, TilesDir, "checkpoint"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// verifyTimestamps checks every stored token: it parses, was signed by
// the stored TSA certificate, and covers its stored checkpoint, whose
// signature verifies with the log's key. It returns how many there are.
func verifyTimestamps(dir string, verifyCheckpoint func([]byte) error) (int, error) {
	tdir := filepath.Join(dir, TimestampsDir)
	tokens, _ := filepath.Glob(filepath.Join(tdir, "*.tsr"))
	if len(tokens) == 0 {
		return 0, nil
	}
	sort.Strings(tokens)
	pemBytes, err := os.ReadFile(filepath.Join(tdir, "tsa.pem"))
	if err != nil {
		return 0, fmt.Errorf("time-stamps: %w", err)
	}
	blk, _ := pem.Decode(pemBytes)
	if blk == nil {
		return 0, errors.New("time-stamps: tsa.pem holds no certificate")
	}
	for _, tp := range tokens {
		name := filepath.Base(tp)
		tok, err := os.ReadFile(tp)
		if err != nil {
			return 0, err
		}
		cp, err := os.ReadFile(strings.TrimSuffix(tp, ".tsr") + ".checkpoint")
		if err != nil {
			return 0, fmt.Errorf("time-stamp %s: %w", name, err)
		}
		ts, err := ParseToken(tok)
		if err != nil {
			return 0, fmt.Errorf("time-stamp %s does not verify: %w", name, err)
		}
		if len(ts.Certificates) == 0 || !bytes.Equal(ts.Certificates[0].Raw, blk.Bytes) {
			return 0, fmt.Errorf("time-stamp %s was not issued by the TSA in tsa.pem", name)
		}
		sum := sha256.Sum256(cp)
		if !bytes.Equal(ts.HashedMessage, sum[:]) {
			return 0, fmt.Errorf("time-stamp %s does not cover its checkpoint", name)
		}
		if err := verifyCheckpoint(cp); err != nil {
			return 0, fmt.Errorf("checkpoint of time-stamp %s: %w", name, err)
		}
	}
	return len(tokens), nil
}

// tokenMu serialises the parsing of time-stamp tokens: digitorus/pkcs7
// keeps a package-level counter while it converts BER to DER (ber.go,
// encodeIndent), which parses in several goroutines — gateways of one
// process stamping at once — race on.
var tokenMu sync.Mutex

// ParseToken parses an RFC 3161 time-stamp token (timestamp.Parse),
// safely from any goroutine.
func ParseToken(tok []byte) (*timestamp.Timestamp, error) {
	tokenMu.Lock()
	defer tokenMu.Unlock()
	return timestamp.Parse(tok)
}

// ParseTokenResponse parses an RFC 3161 time-stamp response
// (timestamp.ParseResponse), safely from any goroutine.
func ParseTokenResponse(resp []byte) (*timestamp.Timestamp, error) {
	tokenMu.Lock()
	defer tokenMu.Unlock()
	return timestamp.ParseResponse(resp)
}
