package gateway

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
)

// chunkReader hands its bytes out at most n at a time, as a network body
// does.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}

// limitWriter takes at most max bytes, then fails.
type limitWriter struct {
	bytes.Buffer
	max int
}

var errFull = errors.New("writer full")

func (w *limitWriter) Write(p []byte) (int, error) {
	if room := w.max - w.Len(); len(p) > room {
		w.Buffer.Write(p[:room])
		return room, errFull
	}
	return w.Buffer.Write(p)
}

// TestVerifyingReaderWriteTo checks that a body copied out through WriteTo
// (what io.Copy uses) is the body read through Read: all of it once its
// digest verifies, and never its last bytes when it does not.
func TestVerifyingReaderWriteTo(t *testing.T) {
	for _, size := range []int{0, 1, holdBack - 1, holdBack, holdBack + 1, 5000, bufSize - 1, bufSize, bufSize + 1, 3*bufSize + 777} {
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(i*7 + i>>9)
		}
		want := sha256.Sum256(body)
		verify := func(sum []byte) error {
			if !bytes.Equal(sum, want[:]) {
				return errors.New("digest differs")
			}
			return nil
		}
		refuse := func([]byte) error { return errSignature }

		// Accepted: WriteTo yields the whole body, in one call or after a
		// Prefetch, whatever the chunking of the source.
		for _, chunk := range []int{1 << 20, 1000, 1} {
			if chunk == 1 && size > 5000 {
				continue
			}
			for _, prefetch := range []bool{false, true} {
				v := newVerifyingReader(&chunkReader{b: body, n: chunk}, verify)
				if prefetch {
					if _, err := v.Prefetch(); err != nil {
						t.Fatalf("size %d: prefetch: %v", size, err)
					}
				}
				var out bytes.Buffer
				n, err := io.Copy(&out, v)
				v.release()
				if err != nil || n != int64(size) || !bytes.Equal(out.Bytes(), body) {
					t.Fatalf("size %d, chunks of %d, prefetch %v: copied %d bytes (equal %v), err %v", size, chunk, prefetch, n, bytes.Equal(out.Bytes(), body), err)
				}
			}
		}

		// Refused: the error comes back and the final holdBack bytes
		// (all of a body shorter than the buffer) are never written.
		v := newVerifyingReader(&chunkReader{b: body, n: 1000}, refuse)
		var out bytes.Buffer
		n, err := v.WriteTo(&out)
		v.release()
		if !errors.Is(err, errSignature) {
			t.Fatalf("size %d refused: err %v, want the signature error", size, err)
		}
		if n != int64(out.Len()) || out.Len() > max(0, size-holdBack) || !bytes.Equal(out.Bytes(), body[:out.Len()]) {
			t.Fatalf("size %d refused: %d bytes written (reported %d), at most %d allowed", size, out.Len(), n, max(0, size-holdBack))
		}
		if size < bufSize && out.Len() != 0 {
			t.Fatalf("size %d refused: %d bytes written of a body shorter than the buffer", size, out.Len())
		}

		// A writer that fails stops the copy with its error.
		if size > 10 {
			v := newVerifyingReader(&chunkReader{b: body, n: 1000}, verify)
			w := &limitWriter{max: size / 2}
			n, err := v.WriteTo(w)
			v.release()
			if !errors.Is(err, errFull) || n != int64(size/2) {
				t.Fatalf("size %d to a failing writer: wrote %d, err %v; want %d and the writer's error", size, n, err, size/2)
			}
		}
	}
}
