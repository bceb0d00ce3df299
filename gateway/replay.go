package gateway

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
)

// ReplayConfig tunes the provider side's replay protection.
type ReplayConfig struct {
	// MaxSkew is how far the time a consumer's gateway signed a request
	// may lie from this gateway's clock, either way. Default 2m; at
	// least 1s, at most 1h. Nonces are remembered for as long.
	MaxSkew cfg.Duration `json:"max_skew"`
}

// replayFloorFile keeps, in the data directory, a time past every signed
// time the node has accepted (unix milliseconds).
const replayFloorFile = "replay-floor"

// replayReserve is how far past a signed time the floor file is moved
// ahead when a request passes it: one write a second at most.
const replayReserve = time.Second

// nonceShards and maxNoncesPerShard bound the in-memory nonce store: 4
// Mi nonces, about 200 MiB at most, some 17,000 requests a second for a
// two-minute tolerance on each side.
const (
	nonceShards       = 64
	maxNoncesPerShard = 1 << 16
)

// replayGuard refuses requests signed too far from this gateway's clock
// and requests whose nonce it has seen. A nonce is remembered until its
// signed time plus the tolerance, when the time check refuses it anyway.
//
// With a record index on PostgreSQL the nonces are rows of a table all
// nodes share (msglog.Log.RecordNonce), so a request replayed to another
// node, or after a restart, is refused. Otherwise they are kept in
// memory, which a restart empties. So that it cannot reopen the window,
// the node keeps in a file (replayFloorFile) a time past every signed
// time it accepted, moved ahead by replayReserve before it accepts one
// beyond; after a restart it refuses requests signed at or before that
// floor (or, without the file, before it started). Honest requests
// refused by it are those signed within about a second before the
// restart, and those of a consumer whose clock runs ahead of this one,
// until this clock catches up.
type replayGuard struct {
	skew   time.Duration
	shared *msglog.Log // nil: in memory

	floor     int64 // unix ms: refuse at or before (memory only)
	floorPath string
	mu        sync.Mutex   // serialises moving the floor file ahead
	reserved  atomic.Int64 // unix ms: the floor file's value
	shards    [nonceShards]nonceShard
	// seed keys the choice of a nonce's shard: the sender chooses the
	// nonce, but cannot aim at one shard.
	seed maphash.Seed
}

type nonceShard struct {
	mu        sync.Mutex
	m         map[[nonceLen / 2]byte]int64 // nonce -> expiry, unix ms
	nextSweep int64
}

// newReplayGuard sets up replay protection for a node whose data
// directory is dir, started at start.
func newReplayGuard(c ReplayConfig, mlog *msglog.Log, dir string, start time.Time) (*replayGuard, error) {
	g := &replayGuard{skew: c.MaxSkew.D(), seed: maphash.MakeSeed()}
	if mlog != nil && mlog.SharedIndex() {
		g.shared = mlog
		return g, nil
	}
	g.floorPath = filepath.Join(dir, replayFloorFile)
	g.floor = start.UnixMilli() - 1
	switch b, err := os.ReadFile(g.floorPath); {
	case err == nil:
		v, perr := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if perr != nil {
			return nil, fmt.Errorf("read %s: %w", g.floorPath, perr)
		}
		g.floor = v
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("read replay floor: %w", err)
	}
	g.reserved.Store(g.floor)
	for i := range g.shards {
		g.shards[i].m = map[[nonceLen / 2]byte]int64{}
	}
	return g, nil
}

// signedTime is a request's parsed signed time and nonce.
type signedTime struct {
	at    time.Time
	nonce [nonceLen / 2]byte
}

// check reads a request's signed time and nonce and refuses it when the
// time lies outside the tolerance. The nonce is checked once the
// signature has verified (remember).
func (g *replayGuard) check(signedAt, nonce string, now time.Time) (signedTime, *r1.Error) {
	var st signedTime
	if signedAt == "" || nonce == "" {
		return st, r1.New(r1.TypeServerSignature, "request carries no signed time or nonce: its consumer gateway signs the version 1 head, which this gateway refuses")
	}
	// Exactly the layout, byte for byte: time.Parse also takes a comma
	// before the fraction.
	t, err := time.Parse(signedAtLayout, signedAt)
	if err != nil || t.Format(signedAtLayout) != signedAt {
		return st, r1.New(r1.TypeServerInvalidReq, "malformed %s", hdrSignedAt)
	}
	if len(nonce) != nonceLen || strings.ToLower(nonce) != nonce {
		return st, r1.New(r1.TypeServerInvalidReq, "malformed %s", hdrNonce)
	}
	if _, err := hex.Decode(st.nonce[:], []byte(nonce)); err != nil {
		return st, r1.New(r1.TypeServerInvalidReq, "malformed %s", hdrNonce)
	}
	st.at = t
	if d := now.Sub(t); d > g.skew || d < -g.skew {
		return st, r1.New(r1.TypeServerReplayed, "request signed at %s, %s from this gateway's clock, beyond the tolerance of %s",
			signedAt, d.Round(time.Millisecond), g.skew)
	}
	if g.shared == nil && t.UnixMilli() <= g.floor {
		return st, r1.New(r1.TypeServerReplayed, "request signed at %s, before this gateway node's replay window opened when it started (%s)",
			signedAt, time.UnixMilli(g.floor).UTC().Format(signedAtLayout))
	}
	return st, nil
}

// remember records a verified request's nonce, refusing it when seen.
func (g *replayGuard) remember(ctx context.Context, st signedTime, now time.Time) *r1.Error {
	exp := st.at.Add(g.skew)
	if g.shared != nil {
		fresh, err := g.shared.RecordNonce(ctx, st.nonce[:], exp)
		if err != nil {
			return r1.Wrap(err, r1.TypeServerInternal, "the request's nonce cannot be checked")
		}
		if !fresh {
			return replayed(st)
		}
		return nil
	}
	if err := g.reserve(st.at); err != nil {
		return r1.Wrap(err, r1.TypeServerInternal, "the request's nonce cannot be checked")
	}
	s := &g.shards[maphash.Bytes(g.seed, st.nonce[:])%nonceShards]
	nowMs, expMs := now.UnixMilli(), exp.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[st.nonce]; ok && e >= nowMs {
		return replayed(st)
	}
	if nowMs >= s.nextSweep {
		for k, e := range s.m {
			if e < nowMs {
				delete(s.m, k)
			}
		}
		s.nextSweep = nowMs + g.skew.Milliseconds()/4
	}
	if len(s.m) >= maxNoncesPerShard {
		return r1.New(r1.TypeServerInternal, "too many requests within the replay window")
	}
	s.m[st.nonce] = expMs
	return nil
}

func replayed(st signedTime) *r1.Error {
	return r1.New(r1.TypeServerReplayed, "request with nonce %s signed at %s was received before: replays are refused",
		hex.EncodeToString(st.nonce[:]), st.at.UTC().Format(signedAtLayout))
}

// reserve moves the floor file past t before a request signed at t is
// accepted, so that the floor after a restart is past every accepted
// signed time.
func (g *replayGuard) reserve(t time.Time) error {
	ms, half := t.UnixMilli(), replayReserve.Milliseconds()/2
	r := g.reserved.Load()
	if ms < r-half {
		return nil
	}
	if ms < r {
		// Within the reserve still, but past its half: one request moves
		// the floor ahead while the others go on, so that requests seldom
		// wait for the file's sync.
		if !g.mu.TryLock() {
			return nil
		}
		defer g.mu.Unlock()
		if ms < g.reserved.Load()-half {
			return nil
		}
		return g.advance(t)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if ms < g.reserved.Load() {
		return nil
	}
	return g.advance(t)
}

// advance moves the floor file to replayReserve past t; g.mu is held.
func (g *replayGuard) advance(t time.Time) error {
	next := t.Add(replayReserve).UnixMilli()
	if err := pki.WriteFileAtomic(g.floorPath, []byte(strconv.FormatInt(next, 10)+"\n"), 0o600); err != nil {
		return fmt.Errorf("move the replay floor ahead: %w", err)
	}
	g.reserved.Store(next)
	return nil
}
