package archive

import (
	"bytes"
	"testing"
)

// FuzzRead: any bytes either read as an archive whose files match its
// manifest or are refused; never a panic, never unbounded work.
func FuzzRead(f *testing.F) {
	plain, _ := sampleSized(f, nil, 3000)
	enc, _ := sampleSized(f, []byte("pass"), 3000)
	f.Add(plain)
	f.Add(enc)
	f.Add(plain[:1024])
	f.Add(enc[:200])
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Verify(bytes.NewReader(b), ReadOptions{Passphrase: []byte("pass")})
		if err == nil {
			if err := m.check(); err != nil {
				t.Fatalf("accepted a manifest that fails its checks: %v", err)
			}
		}
	})
}
