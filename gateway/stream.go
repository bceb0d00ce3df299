package gateway

import (
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"sync"
)

// signingReader passes a body through, hashing it, and calls onEOF with the
// digest once the body has been read completely, before reporting EOF, so
// that a signature can be put in the trailer.
type signingReader struct {
	r     io.Reader
	h     hash.Hash
	n     int64
	onEOF func(sum []byte, n int64) error
	done  bool
	tee   io.Writer // when not nil, sees the body too
}

func newSigningReader(r io.Reader, onEOF func(sum []byte, n int64) error) *signingReader {
	if r == nil {
		r = noBody{}
	}
	return &signingReader{r: r, h: sha256.New(), onEOF: onEOF}
}

// noBody is an empty body.
type noBody struct{}

func (noBody) Read([]byte) (int, error) { return 0, io.EOF }

func (s *signingReader) Read(p []byte) (int, error) {
	if s.done {
		return 0, io.EOF
	}
	n, err := s.r.Read(p)
	s.h.Write(p[:n])
	if s.tee != nil {
		s.tee.Write(p[:n])
	}
	s.n += int64(n)
	if err == io.EOF {
		s.done = true
		if e := s.onEOF(s.h.Sum(nil), s.n); e != nil {
			return n, e
		}
	}
	return n, err
}

// holdBack is how many final bytes a verifying reader withholds until the
// signature has been checked.
const holdBack = 1024

// bufSize is the verifying reader's buffer: bodies that fit are verified
// whole before anything is released.
const bufSize = 64 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, bufSize); return &b }}

// verifyingReader passes a body through, hashing it, and withholds its
// final bytes until verify accepts the digest: whoever reads it never
// sees a complete body whose signature failed. A failed check is returned
// as the read error, and every later read returns it again.
type verifyingReader struct {
	src    io.Reader
	h      hash.Hash
	bufp   *[]byte
	buf    []byte
	start  int
	end    int
	n      int64
	srcEOF bool
	ok     bool // verified
	err    error
	verify func(sum []byte) error
	tee    io.Writer // when not nil, sees the body too
	lent   *lentBody // when lent out as a request body
}

func newVerifyingReader(src io.Reader, verify func(sum []byte) error) *verifyingReader {
	if src == nil {
		src = noBody{}
	}
	bp := bufPool.Get().(*[]byte)
	return &verifyingReader{src: src, h: sha256.New(), bufp: bp, buf: *bp, verify: verify}
}

// release returns the buffer to the pool; the reader must not be used
// afterwards. A reader lent out as a request body is first taken back.
func (v *verifyingReader) release() {
	if v.lent != nil {
		v.lent.end()
		return
	}
	v.free()
}

func (v *verifyingReader) free() {
	if v.bufp != nil {
		bufPool.Put(v.bufp)
		v.bufp, v.buf = nil, nil
	}
}

// errLentEnded is what a lent body's reads return once the handler that
// lent it has ended.
var errLentEnded = errors.New("the request has ended")

// lentBody is a verifying reader lent to an HTTP client as a request body.
// The client may go on reading it after RoundTrip has returned — when a
// backend answers before it has read the whole request — so when the
// handler ends it takes the reader back: a read under way is interrupted
// (interrupt ends reads of the reader's source) and waited for, later reads
// fail, and only then is the buffer freed and the handler's cleanup (the
// stored bodies the reader writes to) let go on.
type lentBody struct {
	v         *verifyingReader
	interrupt func()
	mu        sync.Mutex // held by a read under way
	ended     bool
}

// lend hands v out as a request body (without WriteTo, so that the client
// copies through a buffer of its own rather than writing the pooled one).
func lend(v *verifyingReader, interrupt func()) io.ReadCloser {
	b := &lentBody{v: v, interrupt: interrupt}
	v.lent = b
	return b
}

func (b *lentBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return 0, errLentEnded
	}
	return b.v.Read(p)
}

// Close is the client's: it has stopped reading. The buffer stays the
// handler's to free.
func (b *lentBody) Close() error { return nil }

// end takes the reader back for the handler and frees its buffer.
func (b *lentBody) end() {
	if !b.mu.TryLock() {
		// A read is under way, perhaps waiting for the peer.
		b.interrupt()
		b.mu.Lock()
	}
	defer b.mu.Unlock()
	b.ended = true
	b.v.free()
}

// fill reads from the source until the buffer is full or the source ends,
// and verifies when it has ended.
func (v *verifyingReader) fill() {
	if v.start > 0 {
		v.end = copy(v.buf, v.buf[v.start:v.end])
		v.start = 0
	}
	for v.end < len(v.buf) && !v.srcEOF && v.err == nil {
		n, err := v.src.Read(v.buf[v.end:])
		v.h.Write(v.buf[v.end : v.end+n])
		if v.tee != nil {
			v.tee.Write(v.buf[v.end : v.end+n])
		}
		v.end += n
		v.n += int64(n)
		switch {
		case err == io.EOF:
			v.srcEOF = true
		case err != nil:
			v.err = err
		case n == 0:
			return
		}
	}
	if v.srcEOF && !v.ok && v.err == nil {
		if err := v.verify(v.h.Sum(nil)); err != nil {
			v.err = err
		} else {
			v.ok = true
		}
	}
}

// Prefetch reads up to a buffer's worth. It reports whether the whole body
// was read and verified; err is the verification or read error, if any.
func (v *verifyingReader) Prefetch() (complete bool, err error) {
	v.fill()
	return v.ok, v.err
}

// buffered returns the bytes read ahead and not yet passed on: the
// start of the body, after Prefetch and before any Read.
func (v *verifyingReader) buffered() []byte { return v.buf[v.start:v.end] }

// Len returns how many body bytes have been read from the source so far.
func (v *verifyingReader) Len() int64 { return v.n }

// WriteTo writes the body to w straight from the reader's buffer, with
// the same withholding as Read (io.Copy uses it: otherwise a response
// writer would copy through a buffer of its own, allocated per body).
func (v *verifyingReader) WriteTo(w io.Writer) (int64, error) {
	var written int64
	for {
		if v.err != nil {
			return written, v.err
		}
		avail := v.end - v.start
		if !v.ok {
			avail -= holdBack
		}
		if avail > 0 {
			n, err := w.Write(v.buf[v.start : v.start+avail])
			v.start += n
			written += int64(n)
			if err != nil {
				return written, err
			}
			if n < avail {
				return written, io.ErrShortWrite
			}
			continue
		}
		if v.ok {
			return written, nil
		}
		v.fill()
	}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	for {
		if v.err != nil {
			return 0, v.err
		}
		avail := v.end - v.start
		if !v.ok {
			avail -= holdBack
		}
		if avail > 0 {
			n := copy(p, v.buf[v.start:v.start+avail])
			v.start += n
			return n, nil
		}
		if v.ok {
			return 0, io.EOF
		}
		v.fill()
	}
}
