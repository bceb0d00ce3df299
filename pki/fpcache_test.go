package pki

import (
	"bytes"
	"testing"
)

func TestCachedFingerprint(t *testing.T) {
	a := bytes.Repeat([]byte{0x30}, 600)
	b := bytes.Clone(a)
	b[100] = 0x31 // same last bytes, so the same slot: a different certificate
	for range 3 {
		for _, der := range [][]byte{a, b, a[:4], nil} {
			if got, want := CachedFingerprint(der), Fingerprint(der); got != want {
				t.Fatalf("CachedFingerprint(%x…) = %s, want %s", der[:min(len(der), 4)], got, want)
			}
		}
	}
	// The cache keeps its own copy: a caller reusing its buffer does not
	// change what the cache remembers.
	c := bytes.Clone(a)
	want := Fingerprint(c)
	CachedFingerprint(c)
	c[0] = 0x31
	if got := CachedFingerprint(a); got != want {
		t.Fatalf("after the caller's buffer changed, CachedFingerprint(a) = %s, want %s", got, want)
	}
}

func BenchmarkCachedFingerprint(b *testing.B) {
	der := bytes.Repeat([]byte{0x30, 0x82}, 300)
	for b.Loop() {
		CachedFingerprint(der)
	}
}
