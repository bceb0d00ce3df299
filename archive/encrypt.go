package archive

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/scrypt"
)

// An encrypted archive is:
//
//	magic "SAMPAN-ARCHIVE-ENC1\n"
//	uint16 header length, header (JSON: kdf, its parameters, salt, chunk size)
//	chunks: flag byte (0 more follow, 1 final), uint32 length, AES-256-GCM ciphertext
//
// The key is scrypt(passphrase, salt), the salt random per archive, so the
// chunk counter serves as the GCM nonce. Each chunk's additional data is
// the magic, the header, the counter and the flag: chunks cannot be
// reordered, dropped or moved across archives, and a stream that ends
// without its final chunk is refused as truncated.

const (
	encMagic     = "SAMPAN-ARCHIVE-ENC1\n"
	chunkSize    = 64 << 10
	maxHeaderLen = 1 << 10
	// KDF parameters a reader accepts at most: a hostile archive must
	// not make the reader spend unbounded memory or time (scrypt takes
	// 128·N·r bytes: 256 MiB at most; archives are written with 32 MiB).
	maxScryptR = 8
	maxScryptP = 2
)

type encHeader struct {
	KDF   string `json:"kdf"`
	N     int    `json:"n"`
	R     int    `json:"r"`
	P     int    `json:"p"`
	Salt  []byte `json:"salt"`
	Chunk int    `json:"chunk"`
}

// scryptN is the cost archives are written with, maxScryptN the most a
// reader accepts; tests lower both.
var scryptN, maxScryptN = 1 << 15, 1 << 18

func (h *encHeader) check() error {
	if h.KDF != "scrypt" {
		return fmt.Errorf("kdf: %q, want scrypt", h.KDF)
	}
	if h.N < 2 || h.N > maxScryptN || h.N&(h.N-1) != 0 || h.R < 1 || h.R > maxScryptR || h.P < 1 || h.P > maxScryptP {
		return fmt.Errorf("kdf parameters n=%d r=%d p=%d out of bounds", h.N, h.R, h.P)
	}
	if len(h.Salt) < 16 || len(h.Salt) > 64 {
		return errors.New("salt: 16 to 64 bytes")
	}
	if h.Chunk < 1 || h.Chunk > 1<<20 {
		return fmt.Errorf("chunk: %d out of bounds", h.Chunk)
	}
	return nil
}

func (h *encHeader) aead(pass []byte) (cipher.AEAD, error) {
	key, err := scrypt.Key(pass, h.Salt, h.N, h.R, h.P, 32)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func chunkAD(prefix []byte, n uint64, final bool) []byte {
	ad := make([]byte, 0, len(prefix)+9)
	ad = append(ad, prefix...)
	ad = binary.BigEndian.AppendUint64(ad, n)
	if final {
		return append(ad, 1)
	}
	return append(ad, 0)
}

func nonce(size int, n uint64) []byte {
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b[size-8:], n)
	return b
}

type encWriter struct {
	w      io.Writer
	aead   cipher.AEAD
	prefix []byte
	buf    []byte
	n      uint64
	chunk  int
}

func newEncWriter(w io.Writer, pass []byte) (*encWriter, error) {
	if len(pass) == 0 {
		return nil, errors.New("empty passphrase")
	}
	h := encHeader{KDF: "scrypt", N: scryptN, R: 8, P: 1, Salt: make([]byte, 32), Chunk: chunkSize}
	if _, err := rand.Read(h.Salt); err != nil {
		return nil, err
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return nil, err
	}
	aead, err := h.aead(pass)
	if err != nil {
		return nil, err
	}
	prefix := append([]byte(encMagic), binary.BigEndian.AppendUint16(nil, uint16(len(hb)))...)
	prefix = append(prefix, hb...)
	if _, err := w.Write(prefix); err != nil {
		return nil, err
	}
	return &encWriter{w: w, aead: aead, prefix: prefix, chunk: h.Chunk}, nil
}

func (e *encWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(e.chunk-len(e.buf), len(p))
		e.buf = append(e.buf, p[:k]...)
		p = p[k:]
		if len(e.buf) == e.chunk {
			if err := e.seal(false); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (e *encWriter) seal(final bool) error {
	ct := e.aead.Seal(nil, nonce(e.aead.NonceSize(), e.n), e.buf, chunkAD(e.prefix, e.n, final))
	e.n++
	e.buf = e.buf[:0]
	var hdr [5]byte
	if final {
		hdr[0] = 1
	}
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(ct)))
	if _, err := e.w.Write(hdr[:]); err != nil {
		return err
	}
	_, err := e.w.Write(ct)
	return err
}

// Close writes the final chunk.
func (e *encWriter) Close() error { return e.seal(true) }

// openStream returns the archive's tar stream: r itself, or its
// decryption when r starts with the encrypted archive's magic.
func openStream(r io.Reader, pass []byte) (io.Reader, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(len(encMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if !bytes.Equal(head, []byte(encMagic)) {
		return br, nil
	}
	if len(pass) == 0 {
		return nil, ErrEncrypted
	}
	br.Discard(len(encMagic))
	var lb [2]byte
	if _, err := io.ReadFull(br, lb[:]); err != nil {
		return nil, fmt.Errorf("encryption header: %w", unexpectedEOF(err))
	}
	hl := int(binary.BigEndian.Uint16(lb[:]))
	if hl > maxHeaderLen {
		return nil, fmt.Errorf("encryption header: %d bytes, more than %d", hl, maxHeaderLen)
	}
	hb := make([]byte, hl)
	if _, err := io.ReadFull(br, hb); err != nil {
		return nil, fmt.Errorf("encryption header: %w", unexpectedEOF(err))
	}
	var h encHeader
	dec := json.NewDecoder(bytes.NewReader(hb))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("encryption header: %w", err)
	}
	if err := h.check(); err != nil {
		return nil, fmt.Errorf("encryption header: %w", err)
	}
	aead, err := h.aead(pass)
	if err != nil {
		return nil, fmt.Errorf("encryption header: %w", err)
	}
	prefix := append([]byte(encMagic), lb[:]...)
	prefix = append(prefix, hb...)
	return &decReader{r: br, aead: aead, prefix: prefix, max: h.Chunk + aead.Overhead()}, nil
}

type decReader struct {
	r      io.Reader
	aead   cipher.AEAD
	prefix []byte
	max    int
	n      uint64
	buf    []byte
	final  bool
	err    error
}

func (d *decReader) finished() bool { return d.final && len(d.buf) == 0 }

func (d *decReader) Read(p []byte) (int, error) {
	for len(d.buf) == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.final {
			// Nothing may follow the final chunk.
			var one [1]byte
			if n, _ := io.ReadFull(d.r, one[:]); n > 0 {
				d.err = errors.New("data after the final chunk")
			} else {
				d.err = io.EOF
			}
			continue
		}
		d.err = d.next()
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

func (d *decReader) next() error {
	var hdr [5]byte
	if _, err := io.ReadFull(d.r, hdr[:]); err != nil {
		return fmt.Errorf("encrypted archive truncated: %w", unexpectedEOF(err))
	}
	if hdr[0] > 1 {
		return errors.New("encrypted archive: bad chunk flag")
	}
	final := hdr[0] == 1
	l := int(binary.BigEndian.Uint32(hdr[1:]))
	if l < d.aead.Overhead() || l > d.max {
		return fmt.Errorf("encrypted archive: chunk of %d bytes out of bounds", l)
	}
	ct := make([]byte, l)
	if _, err := io.ReadFull(d.r, ct); err != nil {
		return fmt.Errorf("encrypted archive truncated: %w", unexpectedEOF(err))
	}
	pt, err := d.aead.Open(ct[:0], nonce(d.aead.NonceSize(), d.n), ct, chunkAD(d.prefix, d.n, final))
	if err != nil {
		if d.n == 0 {
			return ErrPassphrase
		}
		return fmt.Errorf("encrypted archive: chunk %d does not authenticate", d.n)
	}
	d.n++
	d.buf, d.final = pt, final
	return nil
}
