package gateway

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestReadHeld: a small body of known length is read whole into one
// buffer of its size; one longer than announced is read whole too, and a
// read error is returned.
func TestReadHeld(t *testing.T) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 64)
	for _, tc := range []struct {
		name   string
		r      func() io.Reader
		length int64
		want   []byte
	}{
		{"exact", func() io.Reader { return bytes.NewReader(body) }, int64(len(body)), body},
		{"byte by byte", func() io.Reader { return iotest.OneByteReader(bytes.NewReader(body)) }, int64(len(body)), body},
		{"longer than announced", func() io.Reader { return bytes.NewReader(body) }, 100, body},
		{"empty", func() io.Reader { return bytes.NewReader(nil) }, 0, nil},
	} {
		got, err := readHeld(tc.r(), tc.length)
		if err != nil || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: %d bytes, %v; want %d", tc.name, len(got), err, len(tc.want))
		}
	}
	allocs := testing.AllocsPerRun(100, func() {
		readHeld(bytes.NewReader(body), int64(len(body)))
	})
	if allocs > 2 { // the buffer, and the reader this closure makes
		t.Errorf("%v allocations to hold a body of its announced length; want the one buffer", allocs)
	}
	boom := errors.New("connection reset")
	if _, err := readHeld(io.MultiReader(bytes.NewReader(body[:10]), iotest.ErrReader(boom)), 100); !errors.Is(err, boom) {
		t.Errorf("read error: %v", err)
	}
}
