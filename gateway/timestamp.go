package gateway

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
)

// stamper has the log's latest checkpoint time-stamped by the authority's
// TSA on an interval. Past the grace period without a token the gateway
// refuses exchanges, and serves again as soon as the TSA answers.
type stamper struct {
	last     atomic.Int64 // unix nanoseconds of the last success
	lastSize uint64
	lastErr  atomic.Pointer[string]
	failures atomic.Uint64 // failed attempts, for the metrics
}

// initStamper starts the grace period at the newest stored token, or now.
func (g *Gateway) initStamper() {
	since := time.Now()
	tokens, _ := filepath.Glob(filepath.Join(g.LogDir(), msglog.TimestampsDir, "*.tsr"))
	var newest time.Time
	for _, t := range tokens {
		if fi, err := os.Stat(t); err == nil && fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
	}
	if !newest.IsZero() {
		since = newest
	}
	g.stamp.last.Store(since.UnixNano())
}

// runStamper stamps every timestamp_interval; after a failure it tries
// again sooner.
func (g *Gateway) runStamper(ctx context.Context) {
	interval := g.cfg.TimestampInterval.D()
	for {
		wait := interval
		if err := g.stampOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			msg := err.Error()
			g.stamp.lastErr.Store(&msg)
			g.stamp.failures.Add(1)
			g.log.Warn("time-stamping the message log failed", "err", err, "overdue", g.timestampOverdue())
			wait = min(interval, 5*time.Second)
		} else {
			g.stamp.lastErr.Store(nil)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// stampOnce time-stamps the latest checkpoint if the tree grew.
func (g *Gateway) stampOnce(ctx context.Context) error {
	cp, err := g.mlog.Checkpoint()
	if err != nil {
		return fmt.Errorf("read checkpoint: %w", err)
	}
	lines := strings.SplitN(string(cp), "\n", 3)
	if cp == nil || len(lines) < 3 {
		g.stamp.last.Store(time.Now().UnixNano()) // nothing to stamp yet
		return nil
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return fmt.Errorf("checkpoint size: %w", err)
	}
	if size == g.stamp.lastSize {
		g.stamp.last.Store(time.Now().UnixNano()) // the last token covers all
		return nil
	}
	st := g.conf.Load()
	if st == nil || st.cfg.TSAURL == "" || len(st.cfg.TSACerts) == 0 {
		return errors.New("the shared configuration names no time-stamping authority")
	}
	sum := sha256.Sum256(cp)
	nonce, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 63))
	q, err := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:], Certificates: true, Nonce: nonce}).Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.cfg.TSAURL, bytes.NewReader(q))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/timestamp-query")
	resp, err := g.sync.http.Do(req)
	if err != nil {
		return fmt.Errorf("time-stamping authority: %w", err)
	}
	defer resp.Body.Close()
	tok, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	ts, err := msglog.ParseTokenResponse(tok)
	if err != nil {
		return fmt.Errorf("time-stamp response: %w", err)
	}
	if !bytes.Equal(ts.HashedMessage, sum[:]) || ts.Nonce == nil || ts.Nonce.Cmp(nonce) != 0 {
		return errors.New("time-stamp does not answer the request")
	}
	if len(ts.Certificates) == 0 {
		return errors.New("time-stamp carries no certificate")
	}
	tsaCert := ts.Certificates[0]
	known := false
	for _, p := range st.cfg.TSACerts {
		if c, err := pki.ParseCertPEM([]byte(p)); err == nil && bytes.Equal(c.Raw, tsaCert.Raw) {
			known = true
		}
	}
	if !known {
		return errors.New("time-stamp signed by a certificate the configuration does not name")
	}
	if err := g.mlog.StoreTimestamp(size, cp, ts.RawToken, tsaCert); err != nil {
		return fmt.Errorf("store time-stamp: %w", err)
	}
	g.stamp.lastSize = size
	g.stamp.last.Store(time.Now().UnixNano())
	g.log.Debug("checkpoint time-stamped", "size", size, "time", ts.Time)
	return nil
}

// timestampOverdue reports whether the last token is older than the grace
// period.
func (g *Gateway) timestampOverdue() bool {
	return g.now().Sub(time.Unix(0, g.stamp.last.Load())) > g.cfg.TimestampGrace.D()
}

// timestampError is the refusal while time-stamps are overdue.
func (g *Gateway) timestampError(sd side) *r1.Error {
	why := "the time-stamping authority has not answered"
	if p := g.stamp.lastErr.Load(); p != nil {
		why = *p
	}
	return r1.New(sd.pick(r1.TypeClientTimestampFailed, r1.TypeServerTimestampFailed),
		"the message log has not been time-stamped for more than %s (%s); exchanges are refused until it is", g.cfg.TimestampGrace.D(), why)
}
