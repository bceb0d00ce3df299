package msglog

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/sampan-exchange/sampan/pki"
)

// Bodies, when a gateway keeps them, are stored encrypted at rest with
// AES-256-GCM under a key in the log directory (0600), in
// bodies/{day}/{request id}-{side}.{request|response}. A file is a header
// (magic and an 8-byte random nonce prefix) and chunks of up to 64 KiB,
// each sealed with the nonce prefix and a chunk counter, the last one
// marked final in its additional data, so that chunks cannot be reordered,
// dropped or the file cut short unnoticed.
const (
	BodiesDir   = "bodies"
	BodyKeyFile = "body.key"
	bodyMagic   = "SAMPANB1"
	bodyChunk   = 64 << 10
)

// Body parts.
const (
	PartRequest  = "request"
	PartResponse = "response"
)

var stemRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}/[A-Za-z0-9_-]{1,80}-(consumer|provider)$`)

func loadOrCreateBodyKey(dir string) ([]byte, error) {
	p := filepath.Join(dir, BodyKeyFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		b = make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		if err := pki.WriteFileAtomic(p, b, 0o600); err != nil {
			return nil, fmt.Errorf("%w: write body key: %w", ErrLogging, err)
		}
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: read body key: %w", ErrLogging, err)
	}
	if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is readable by others (mode %v); it must be 0600", ErrLogging, p, fi.Mode().Perm())
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("%w: %s is not a 32-byte key", ErrLogging, p)
	}
	return b, nil
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// ParseID checks that a request id can name body files.
func ParseID(id string) (string, error) {
	if !idRE.MatchString(id) {
		return "", fmt.Errorf("request id %q cannot name a file", id)
	}
	return id, nil
}

// BodyStem names the body files of one exchange at one gateway.
func (l *Log) BodyStem(requestID, side string) (string, error) {
	stem := l.now().UTC().Format("2006-01-02") + "/" + requestID + "-" + side
	if !stemRE.MatchString(stem) {
		return "", fmt.Errorf("%w: cannot name body files for request id %q", ErrLogging, requestID)
	}
	return stem, nil
}

func bodyPath(dir, stem, part string) string {
	return filepath.Join(dir, BodiesDir, filepath.FromSlash(stem)+"."+part)
}

// BodyWriter encrypts one body as it passes. Errors are sticky and
// reported by Close.
type BodyWriter struct {
	f      *os.File
	path   string
	aead   cipher.AEAD
	prefix [8]byte
	n      uint32
	buf    []byte
	err    error
}

// NewBody starts the encrypted file of one part of an exchange's bodies.
func (l *Log) NewBody(stem, part string) (*BodyWriter, error) {
	if !stemRE.MatchString(stem) || (part != PartRequest && part != PartResponse) {
		return nil, fmt.Errorf("%w: bad body name %q %q", ErrLogging, stem, part)
	}
	p := bodyPath(l.dir, stem, part)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLogging, err)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLogging, err)
	}
	aead, err := newAEAD(l.bodyKey)
	if err != nil {
		f.Close()
		return nil, err
	}
	w := &BodyWriter{f: f, path: p, aead: aead, buf: make([]byte, 0, bodyChunk)}
	if _, err := rand.Read(w.prefix[:]); err != nil {
		f.Close()
		return nil, err
	}
	if _, err := f.Write(append([]byte(bodyMagic), w.prefix[:]...)); err != nil {
		w.Abort()
		return nil, fmt.Errorf("%w: %w", ErrLogging, err)
	}
	return w, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

func (w *BodyWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && w.err == nil {
		k := min(len(p), bodyChunk-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == bodyChunk {
			w.seal(false)
		}
	}
	// A failure here must not break the exchange's stream; Close reports it.
	return n, nil
}

func (w *BodyWriter) nonce() []byte {
	nonce := make([]byte, 12)
	copy(nonce, w.prefix[:])
	binary.BigEndian.PutUint32(nonce[8:], w.n)
	return nonce
}

func (w *BodyWriter) seal(final bool) {
	if w.err != nil {
		return
	}
	if w.n == ^uint32(0) {
		w.err = errors.New("body too large to encrypt")
		return
	}
	aad := []byte{0}
	if final {
		aad[0] = 1
	}
	ct := w.aead.Seal(nil, w.nonce(), w.buf, aad)
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(ct)))
	if _, err := w.f.Write(append(hdr[:], ct...)); err != nil {
		w.err = err
	}
	w.n++
	w.buf = w.buf[:0]
}

// Close seals the last chunk and makes the file durable.
func (w *BodyWriter) Close() error {
	w.seal(true)
	if w.err == nil {
		w.err = w.f.Sync()
	}
	if err := w.f.Close(); w.err == nil {
		w.err = err
	}
	if w.err != nil {
		os.Remove(w.path)
		return fmt.Errorf("%w: store body: %w", ErrLogging, w.err)
	}
	return nil
}

// Abort removes a body whose exchange was not logged.
func (w *BodyWriter) Abort() {
	w.f.Close()
	os.Remove(w.path)
}

// ReadBody decrypts one stored body part into out. It fails if the file
// was altered, reordered or cut short.
func ReadBody(dir, stem, part string, out io.Writer) error {
	if !stemRE.MatchString(stem) || (part != PartRequest && part != PartResponse) {
		return fmt.Errorf("bad body name %q %q", stem, part)
	}
	key, err := os.ReadFile(filepath.Join(dir, BodyKeyFile))
	if err != nil {
		return fmt.Errorf("read body key: %w", err)
	}
	aead, err := newAEAD(key)
	if err != nil {
		return err
	}
	f, err := os.Open(bodyPath(dir, stem, part))
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, len(bodyMagic)+8)
	if _, err := io.ReadFull(f, hdr); err != nil || string(hdr[:len(bodyMagic)]) != bodyMagic {
		return errors.New("not an encrypted body file")
	}
	w := BodyWriter{}
	copy(w.prefix[:], hdr[len(bodyMagic):])
	for {
		var lb [4]byte
		if _, err := io.ReadFull(f, lb[:]); err != nil {
			return errors.New("body file is cut short")
		}
		n := binary.BigEndian.Uint32(lb[:])
		if n > bodyChunk+uint32(aead.Overhead()) {
			return errors.New("body file has an oversized chunk")
		}
		ct := make([]byte, n)
		if _, err := io.ReadFull(f, ct); err != nil {
			return errors.New("body file is cut short")
		}
		nonce := w.nonce()
		w.n++
		if pt, err := aead.Open(nil, nonce, ct, []byte{0}); err == nil {
			if _, err := out.Write(pt); err != nil {
				return err
			}
			continue
		}
		pt, err := aead.Open(nil, nonce, ct, []byte{1})
		if err != nil {
			return fmt.Errorf("body chunk %d does not decrypt: altered, or not this log's key", w.n-1)
		}
		if _, err := out.Write(pt); err != nil {
			return err
		}
		if m, _ := f.Read(lb[:1]); m != 0 {
			return errors.New("body file has data after its final chunk")
		}
		return nil
	}
}

// removeBodies deletes both parts of an exchange's stored bodies.
func removeBodies(dir, stem string) {
	if !stemRE.MatchString(stem) {
		return
	}
	for _, part := range []string{PartRequest, PartResponse} {
		os.Remove(bodyPath(dir, stem, part))
	}
	os.Remove(filepath.Dir(bodyPath(dir, stem, PartRequest))) // only if empty
}

// WriteBody finds the exchange's record and writes its stored body part
// to out, once it has checked the decrypted body against the digest the
// record holds (nothing is written if it does not match).
func WriteBody(ctx context.Context, dir, dsn, xroadID, part string, out io.Writer) error {
	_, v, db, err := openExisting(ctx, dir, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	var data []byte
	err = db.QueryRowContext(ctx, db.Q(`SELECT record FROM records WHERE log = ? AND x_road_id = ? AND kind = ? ORDER BY request_at LIMIT 1`), v.Name(), xroadID, KindExchange).Scan(&data)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ErrNotFound
	case err != nil:
		return err
	case data == nil:
		return ErrPurged
	}
	rec, err := ParseRecord(data)
	if err != nil {
		return err
	}
	if rec.Bodies == "" {
		return errors.New("this gateway did not keep the bodies of that exchange")
	}
	var buf bytes.Buffer
	if err := ReadBody(dir, rec.Bodies, part, &buf); err != nil {
		return err
	}
	want := rec.RequestBodySHA256
	if part == PartResponse {
		want = rec.ResponseBodySHA256
	}
	if sum := sha256.Sum256(buf.Bytes()); hex.EncodeToString(sum[:]) != want {
		return errors.New("the stored body does not match the digest in its record")
	}
	_, err = out.Write(buf.Bytes())
	return err
}
