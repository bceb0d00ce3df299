package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/store"
)

// stateMigrations are the schema changes of state.db, each with its
// written rollback (docs/upgrading.md). Append only.
var stateMigrations = []store.Migration{
	{Up: `CREATE TABLE global_conf (
		instance TEXT PRIMARY KEY,
		serial INTEGER NOT NULL,
		doc BLOB NOT NULL,
		etag TEXT NOT NULL,
		fetched_at TEXT NOT NULL
	);`, Down: `DROP TABLE global_conf;`},
	// The configuration-signing keys an instance's latest verified
	// configuration lists, bound to the anchor they were learned under
	// (docs/design/rotation.md). Without it a gateway trusts its anchors'
	// keys alone again.
	{Up: `CREATE TABLE conf_trust (
		instance TEXT PRIMARY KEY,
		anchor_sha256 TEXT NOT NULL,
		keys TEXT NOT NULL
	);`, Down: `DROP TABLE conf_trust;`},
}

// confState is one verified configuration and what is derived from it.
type confState struct {
	cfg  *conf.Config
	doc  []byte
	etag string
	// signers caches signing certificates already checked against this
	// configuration's CAs, by their base64 form as messages carry it:
	// a message from a known signer costs no decoding and no hashing.
	signers sync.Map // string -> *signer
}

// signer is a signing certificate checked against a configuration.
type signer struct {
	cert   *x509.Certificate
	fp     string // pki.Fingerprint of the certificate
	member string // the member it names (pki.MemberOf)
}

// confSync keeps one instance's configuration current: the gateway's own
// or a federated one's.
type confSync struct {
	g *Gateway
	// anchor is the one installed out of band: the instance, where its
	// configuration is published and the TLS CA of that server.
	anchor *conf.Anchor
	// trust holds the configuration-signing keys trusted now: the
	// anchor's until a configuration verified, then the keys the latest
	// verified configuration lists (conf.Anchor.Learn).
	trust    atomic.Pointer[conf.Anchor]
	state    *atomic.Pointer[confState]
	onChange func()
	http     *http.Client
	fails    int
	// kick asks the run loop for an early refresh, e.g. when a peer shows
	// a certificate the held configuration does not know yet.
	kick chan struct{}
	// installMu makes each install's check against the held
	// configuration and its swap one step: the poll and a forced
	// refresh may both install, and the serial must never go back.
	installMu sync.Mutex
}

// minKickInterval spaces refreshes that kicks ask for.
const minKickInterval = 5 * time.Second

// kickRefresh asks for an early refresh without waiting for it.
func (s *confSync) kickRefresh() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func newConfSync(g *Gateway, a *conf.Anchor, state *atomic.Pointer[confState], onChange func()) *confSync {
	s := &confSync{g: g, anchor: a, state: state, onChange: onChange, kick: make(chan struct{}, 1), http: &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:     &tls.Config{RootCAs: a.TLSRoots(), MinVersion: tls.VersionTLS12},
			MaxIdleConnsPerHost: 1,
		},
	}}
	s.trust.Store(a)
	return s
}

// loadTrust restores the keys learned under the installed anchor, if
// any; keys learned under another anchor are ignored, so that installing
// a new anchor starts again from its keys.
func (s *confSync) loadTrust(ctx context.Context) error {
	var fp, keys string
	err := s.g.db.QueryRowContext(ctx, `SELECT anchor_sha256, keys FROM conf_trust WHERE instance = ?`, s.anchor.Instance).Scan(&fp, &keys)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load trusted configuration keys: %w", err)
	}
	if fp != s.anchor.Fingerprint() {
		s.g.log.Info("anchor changed; configuration-signing keys learned under the previous one are dropped", "instance", s.anchor.Instance)
		return nil
	}
	var ks []conf.AnchorKey
	if err := json.Unmarshal([]byte(keys), &ks); err != nil {
		return fmt.Errorf("load trusted configuration keys: %w", err)
	}
	t, err := s.anchor.WithKeys(ks)
	if err != nil {
		return fmt.Errorf("load trusted configuration keys: %w", err)
	}
	s.trust.Store(t)
	return nil
}

// TrustedConfKeys returns the ids of the configuration-signing keys the
// gateway trusts now for an instance, its own or a federated one; nil
// for an instance it does not follow.
func (g *Gateway) TrustedConfKeys(instance string) []string {
	if instance == g.anchor.Instance {
		return g.sync.trust.Load().KeyIDs()
	}
	if fo := g.fed.get(instance); fo != nil && !fo.removed.Load() {
		return fo.sync.trust.Load().KeyIDs()
	}
	return nil
}

// loadCached verifies and installs the configuration kept in the state
// database, if any.
func (s *confSync) loadCached(ctx context.Context) error {
	var doc []byte
	var etag string
	err := s.g.db.QueryRowContext(ctx, `SELECT doc, etag FROM global_conf WHERE instance = ?`, s.anchor.Instance).Scan(&doc, &etag)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load cached configuration: %w", err)
	}
	if err := s.loadTrust(ctx); err != nil {
		return err
	}
	c, err := conf.Verify(doc, s.trust.Load())
	if err != nil {
		s.g.log.Warn("cached configuration does not verify; ignoring it", "err", err)
		return nil
	}
	s.state.Store(&confState{cfg: c, doc: doc, etag: etag})
	return nil
}

// fetch downloads the configuration once; unchanged documents cost a 304.
func (s *confSync) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.anchor.URL, nil)
	if err != nil {
		return err
	}
	cur := s.state.Load()
	if cur != nil && cur.etag != "" {
		req.Header.Set("If-None-Match", cur.etag)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("download configuration: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified && cur != nil {
		return nil
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("download configuration: %s", resp.Status)
	}
	doc, err := io.ReadAll(io.LimitReader(resp.Body, conf.MaxDocumentSize+1))
	if err != nil {
		return fmt.Errorf("download configuration: %w", err)
	}
	return s.install(ctx, doc, resp.Header.Get("ETag"))
}

// install verifies a document and swaps it in atomically; a document that
// fails any check leaves the current one in place.
func (s *confSync) install(ctx context.Context, doc []byte, etag string) error {
	s.installMu.Lock()
	defer s.installMu.Unlock()
	trust := s.trust.Load()
	c, kid, err := conf.VerifyKey(doc, trust)
	if err != nil {
		return err
	}
	cur := s.state.Load()
	var curCfg *conf.Config
	var curDoc []byte
	if cur != nil {
		curCfg, curDoc = cur.cfg, cur.doc
	}
	if err := conf.Accept(curCfg, c, curDoc, doc); err != nil {
		return err
	}
	if c.Expired(s.g.now()) {
		return fmt.Errorf("configuration serial %d expired at %s", c.Serial, c.ExpiresAt.Format(time.RFC3339))
	}
	if cur != nil && c.Serial == cur.cfg.Serial {
		return nil
	}
	// Only now, the document verified and accepted, may its announced
	// keys be trusted.
	learned, err := trust.Learn(c, kid)
	if err != nil {
		return fmt.Errorf("configuration serial %d: %w", c.Serial, err)
	}
	if err := s.store(ctx, c, doc, etag, learned); err != nil {
		return err
	}
	s.trust.Store(learned)
	s.state.Store(&confState{cfg: c, doc: doc, etag: etag})
	if was, now := trust.KeyIDs(), learned.KeyIDs(); !slices.Equal(was, now) {
		s.g.log.Info("configuration-signing keys changed", "instance", c.Instance, "serial", c.Serial, "trusted", now, "before", was)
	}
	if s.onChange != nil {
		s.onChange()
	}
	s.g.log.Info("configuration applied", append([]any{"instance", c.Instance, "serial", c.Serial, "expires_at", c.ExpiresAt}, confCounts(curCfg, c)...)...)
	return nil
}

// store keeps an accepted configuration and the keys it taught, in one
// transaction, so that a restart verifies it with those keys.
func (s *confSync) store(ctx context.Context, c *conf.Config, doc []byte, etag string, trust *conf.Anchor) error {
	keys, err := json.Marshal(trust.Keys)
	if err != nil {
		return fmt.Errorf("store configuration: %w", err)
	}
	tx, err := s.g.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store configuration: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO global_conf (instance, serial, doc, etag, fetched_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (instance) DO UPDATE SET serial = excluded.serial, doc = excluded.doc, etag = excluded.etag, fetched_at = excluded.fetched_at`,
		c.Instance, c.Serial, doc, etag, time.Now().UTC().Format(time.RFC3339Nano)); err != nil {
		return fmt.Errorf("store configuration: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO conf_trust (instance, anchor_sha256, keys) VALUES (?, ?, ?)
		ON CONFLICT (instance) DO UPDATE SET anchor_sha256 = excluded.anchor_sha256, keys = excluded.keys`,
		c.Instance, s.anchor.Fingerprint(), string(keys)); err != nil {
		return fmt.Errorf("store configuration: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store configuration: %w", err)
	}
	return nil
}

// confCounts sizes a configuration for the log, and by how much each
// count moved from the one before (when there was one).
func confCounts(old, c *conf.Config) []any {
	count := func(c *conf.Config) [5]int {
		subs := 0
		for _, m := range c.Members {
			subs += len(m.Subsystems)
		}
		return [5]int{len(c.Members), subs, len(c.Gateways), len(c.Revoked), len(c.Federation)}
	}
	names := [5]string{"members", "subsystems", "gateways", "revoked", "federations"}
	now := count(c)
	var out []any
	for i, n := range now {
		out = append(out, names[i], n)
	}
	if old != nil {
		was := count(old)
		for i, n := range now {
			if d := n - was[i]; d != 0 {
				out = append(out, names[i]+"_change", d)
			}
		}
	}
	return out
}

// run polls until ctx ends: every refresh interval (with ±10% jitter) while
// all goes well, and with jittered exponential back-off after failures,
// never waiting longer than the refresh interval.
func (s *confSync) run(ctx context.Context) {
	refresh := s.g.cfg.ConfRefresh.D()
	for {
		wait := jitter(refresh, 0.1)
		last := time.Now()
		if err := s.fetch(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			s.fails++
			backoff := time.Second << min(s.fails-1, 10)
			wait = min(jitter(backoff, 0.5), refresh)
			lvl := s.g.log.Warn
			if cur := s.state.Load(); cur == nil || cur.cfg.Expired(s.g.now()) {
				lvl = s.g.log.Error
			}
			lvl("configuration refresh failed", "instance", s.anchor.Instance, "err", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			s.fails = 0
		}
		timer := time.NewTimer(wait)
		for waiting := true; waiting; {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
				waiting = false
			case <-s.kick:
				// Unknown peers must not make the gateway hammer its
				// authority: a kick soon after a download is ignored,
				// the regular refresh being near.
				if time.Since(last) >= minKickInterval {
					timer.Stop()
					waiting = false
				}
			}
		}
	}
}

func jitter(d time.Duration, frac float64) time.Duration {
	return time.Duration(float64(d) * (1 - frac + 2*frac*rand.Float64()))
}

// cachedSigner returns the signing certificate a message carried as b64
// if it was already checked against this configuration.
func (st *confState) cachedSigner(b64 string) *signer {
	if v, ok := st.signers.Load(b64); ok {
		return v.(*signer)
	}
	return nil
}
