package pki

import (
	"bytes"
	"encoding/binary"
	"sync/atomic"
)

// A peer gateway's TLS certificate is the same for every request on its
// connection, and gateways check its fingerprint per request. The cache
// below keeps the fingerprints of the certificates seen last, so that a
// request costs a comparison of the certificate's bytes instead of a
// SHA-256 of them. It holds the certificate's bytes themselves: a hit
// is the same certificate, never one that merely collides.

// fpSlots is how many certificates the cache remembers (direct-mapped).
const fpSlots = 64

type fpEntry struct {
	der []byte
	fp  string
}

var fpCache [fpSlots]atomic.Pointer[fpEntry]

// CachedFingerprint returns Fingerprint(der), from the cache when der
// was seen recently.
func CachedFingerprint(der []byte) string {
	if len(der) < 8 {
		return Fingerprint(der)
	}
	// The last bytes of a certificate are its signature's: they differ
	// from one certificate to the next.
	slot := &fpCache[binary.LittleEndian.Uint64(der[len(der)-8:])%fpSlots]
	if e := slot.Load(); e != nil && bytes.Equal(e.der, der) {
		return e.fp
	}
	fp := Fingerprint(der)
	slot.Store(&fpEntry{der: bytes.Clone(der), fp: fp})
	return fp
}
