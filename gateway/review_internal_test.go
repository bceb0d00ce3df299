package gateway

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/r1"
)

// TestReviewNonceShardFlood: the nonce store's bound is per shard and
// the sender picks the nonce, so one registered gateway that sends
// maxNoncesPerShard verified requests whose nonces all fall in one shard
// (1/64 of the global bound), signed max_skew ahead so they stay for
// 2×max_skew, makes the provider refuse every sixty-fourth honest
// request of every consumer for that long.
func TestReviewNonceShardFlood(t *testing.T) {
	t.Skip("finding: nonce shard chosen by the sender; one peer fills a shard and denies 1/64 of all requests")
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

// TestReviewReplayFloorGlobal: the replay floor is one value for all
// consumers. A single registered gateway that signs within tolerance but
// max_skew ahead moves it to now+max_skew+1s; after the provider's next
// restart every consumer's honest requests are refused until then.
func TestReviewReplayFloorGlobal(t *testing.T) {
	t.Skip("finding: one peer signing max_skew ahead pushes the global replay floor; after a restart all consumers are refused for max_skew")
	dir := t.TempDir()
	skew := 2 * time.Minute
	c := ReplayConfig{MaxSkew: cfg.Duration(skew)}
	start := time.Now()
	g, err := newReplayGuard(c, nil, dir, start)
	if err != nil {
		t.Fatal(err)
	}
	now := start.Add(time.Second)
	st, e := g.check(now.Add(skew).UTC().Format(signedAtLayout), "000102030405060708090a0b0c0d0e0f", now)
	if e == nil {
		e = g.remember(t.Context(), st, now)
	}
	if e != nil {
		t.Fatal(e)
	}
	restart := now.Add(5 * time.Second)
	g2, err := newReplayGuard(c, nil, dir, restart)
	if err != nil {
		t.Fatal(err)
	}
	// Another consumer, clock in step, a minute after the restart.
	honestAt := restart.Add(time.Minute)
	if _, e := g2.check(honestAt.UTC().Format(signedAtLayout), "ffeeddccbbaa99887766554433221100", honestAt); e != nil {
		if e.Type == r1.TypeServerReplayed {
			t.Errorf("honest request of another consumer refused a minute after the restart: %v", e)
		} else {
			t.Fatal(e)
		}
	}
}
