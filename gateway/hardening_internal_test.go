package gateway

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/internal/cfg"
)

// TestNonceShardsNotAimable: the shard a nonce is kept in is chosen by a
// keyed hash, so a registered gateway that chooses its nonces cannot fill
// one shard and have other consumers' requests refused.
func TestNonceShardsNotAimable(t *testing.T) {
	now := time.Now()
	skew := 2 * time.Minute
	g, err := newReplayGuard(ReplayConfig{MaxSkew: cfg.Duration(skew)}, nil, t.TempDir(), now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	ahead := now.Add(skew).UTC().Format(signedAtLayout)
	var n [nonceLen / 2]byte
	for i := range maxNoncesPerShard {
		n[0], n[1], n[2] = 0, byte(i>>8), byte(i) // all in shard 0
		st, e := g.check(ahead, hex.EncodeToString(n[:]), now)
		if e == nil {
			e = g.remember(t.Context(), st, now)
		}
		if e != nil {
			t.Fatalf("attacker request %d: %v", i, e)
		}
	}
	// An honest consumer, a minute and a half later, whose random nonce
	// falls in shard 0.
	later := now.Add(90 * time.Second)
	honest := "40aabbccddeeff001122334455667788"
	st, e := g.check(later.UTC().Format(signedAtLayout), honest, later)
	if e == nil {
		e = g.remember(t.Context(), st, later)
	}
	if e != nil {
		t.Errorf("honest request refused: %s %v", typeOf(e), e)
	}
}
