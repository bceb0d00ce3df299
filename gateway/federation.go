package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
)

// FederationConfig says which foreign instances this gateway exchanges
// with. Federation needs both the instance's authority (which publishes
// the foreign anchor) and the gateway's operator to agree.
type FederationConfig struct {
	// Allow is "none" (the default), "all" (every instance the authority
	// federates with) or "list" (those in Instances).
	Allow     string   `json:"allow"`
	Instances []string `json:"instances"`
}

// Federation policies.
const (
	FederateNone = "none"
	FederateAll  = "all"
	FederateList = "list"
)

func (f *FederationConfig) validate() error {
	switch f.Allow {
	case FederateNone, FederateAll:
		if len(f.Instances) > 0 {
			return fmt.Errorf("federation.instances: only used with allow %q", FederateList)
		}
	case FederateList:
		for i, in := range f.Instances {
			if err := ident.ValidateInstance(in); err != nil {
				return fmt.Errorf("federation.instances[%d]: %w", i, err)
			}
		}
	default:
		return fmt.Errorf("federation.allow: %q must be none, all or list", f.Allow)
	}
	return nil
}

func (f *FederationConfig) allows(instance string) bool {
	switch f.Allow {
	case FederateAll:
		return true
	case FederateList:
		return slices.Contains(f.Instances, instance)
	}
	return false
}

// foreign is a federated instance's configuration as this gateway holds
// it. A foreign entry whose federation ended is kept, marked removed, so
// that its gateways can still be told clearly why they are refused.
type foreign struct {
	anchorJSON []byte
	state      atomic.Pointer[confState]
	sync       *confSync
	removed    atomic.Bool
	cancel     context.CancelFunc
}

// federation manages the foreign configurations.
type federation struct {
	mu     sync.Mutex
	runCtx context.Context // set by Run; nil before
	byInst map[string]*foreign
	// view is an immutable copy of byInst for lock-free reads.
	view atomic.Pointer[map[string]*foreign]
}

func (f *federation) get(instance string) *foreign {
	if v := f.view.Load(); v != nil {
		return (*v)[instance]
	}
	return nil
}

func (f *federation) publish() {
	m := make(map[string]*foreign, len(f.byInst))
	for k, v := range f.byInst {
		m[k] = v
	}
	f.view.Store(&m)
}

// reconcileFederation follows the domestic configuration: it starts
// keeping the configuration of every federated instance this gateway
// allows, and marks removed those no longer federated.
func (g *Gateway) reconcileFederation(ctx context.Context) {
	dom := g.conf.Load()
	f := &g.fed
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.byInst == nil {
		f.byInst = map[string]*foreign{}
	}
	want := map[string]*conf.Federation{}
	if dom != nil {
		for i := range dom.cfg.Federation {
			fd := &dom.cfg.Federation[i]
			if g.cfg.Federation.allows(fd.Anchor.Instance) {
				want[fd.Anchor.Instance] = fd
			}
		}
	}
	for inst, fo := range f.byInst {
		if want[inst] == nil && !fo.removed.Load() {
			fo.removed.Store(true)
			if fo.cancel != nil {
				fo.cancel()
			}
			g.log.Warn("federation ended", "instance", inst)
		}
	}
	for inst, fd := range want {
		aj, _ := json.Marshal(&fd.Anchor)
		if fo := f.byInst[inst]; fo != nil && !fo.removed.Load() && bytes.Equal(fo.anchorJSON, aj) {
			continue
		}
		if old := f.byInst[inst]; old != nil && old.cancel != nil {
			old.cancel()
		}
		a := fd.Anchor
		fo := &foreign{anchorJSON: aj}
		fo.sync = newConfSync(g, &a, &fo.state, g.closeIdlePeers)
		if err := fo.sync.loadCached(ctx); err != nil {
			g.log.Warn("cached foreign configuration unusable", "instance", inst, "err", err)
		}
		f.byInst[inst] = fo
		if f.runCtx != nil {
			g.startForeign(f.runCtx, fo)
		}
		g.log.Info("federation active", "instance", inst, "url", a.URL)
	}
	f.publish()
}

// startForeign runs a foreign configuration's refresh loop. Called with
// fed.mu held.
func (g *Gateway) startForeign(ctx context.Context, fo *foreign) {
	ctx, fo.cancel = context.WithCancel(ctx)
	g.bg.Go(func() { fo.sync.run(ctx) })
}

// stopFederation ends Run's federation: no foreign refresh loop starts
// after it (those running end with Run's context).
func (g *Gateway) stopFederation() {
	f := &g.fed
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runCtx = nil
}

// startFederation begins refreshing foreign configurations; Run calls it.
func (g *Gateway) startFederation(ctx context.Context) {
	f := &g.fed
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runCtx = ctx
	for _, fo := range f.byInst {
		if !fo.removed.Load() && fo.cancel == nil {
			g.startForeign(ctx, fo)
		}
	}
}

// refreshForeign downloads every active foreign configuration once.
func (g *Gateway) refreshForeign(ctx context.Context) error {
	v := g.fed.view.Load()
	if v == nil {
		return nil
	}
	var errs []error
	for inst, fo := range *v {
		if fo.removed.Load() {
			continue
		}
		if err := fo.sync.fetch(ctx); err != nil {
			errs = append(errs, fmt.Errorf("configuration of %s: %w", inst, err))
		}
	}
	if len(errs) > 0 {
		return errs[0]
	}
	return nil
}

// side selects the error types of the consumer's or the provider's
// gateway.
type side bool

const (
	clientSide side = false
	serverSide side = true
)

func (s side) pick(client, server string) string {
	if s == serverSide {
		return server
	}
	return client
}

// confFor returns the valid configuration of an instance: the domestic
// one, or a federated one this gateway and its authority both allow.
func (g *Gateway) confFor(instance string, sd side) (*confState, *r1.Error) {
	dom := g.conf.Load()
	outdated := sd.pick(r1.TypeOutdatedGlobalConf, r1.TypeServerOutdatedConf)
	if dom == nil || dom.cfg.Expired(g.now()) {
		return nil, outdatedConf(dom, outdated)
	}
	if instance == dom.cfg.Instance {
		return dom, nil
	}
	off := sd.pick(r1.TypeFederationOff, r1.TypeServerFederationOff)
	if dom.cfg.Federated(instance) == nil {
		return nil, r1.New(off, "instance %s is not federated with %s", instance, dom.cfg.Instance)
	}
	if !g.cfg.Federation.allows(instance) {
		return nil, r1.New(off, "gateway %s does not exchange with instance %s", g.cfg.ID, instance)
	}
	fo := g.fed.get(instance)
	if fo == nil || fo.removed.Load() {
		return nil, r1.New(off, "instance %s is not federated with %s", instance, dom.cfg.Instance)
	}
	st := fo.state.Load()
	if st == nil {
		return nil, r1.New(outdated, "gateway has not yet downloaded the configuration of %s", instance)
	}
	if st.cfg.Expired(g.now()) {
		return nil, r1.New(outdated, "configuration of %s (serial %d) expired at %s",
			instance, st.cfg.Serial, st.cfg.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return st, nil
}

// identState returns the configuration that can identify a peer of an
// instance, expired or from an ended federation included: the handler,
// not the handshake, then refuses with a clear error.
func (g *Gateway) identState(instance string) *confState {
	dom := g.conf.Load()
	if dom != nil && dom.cfg.Instance == instance {
		return dom
	}
	if fo := g.fed.get(instance); fo != nil {
		return fo.state.Load()
	}
	return nil
}

// closeIdlePeers closes the idle connections to provider gateways,
// those of transports a key switch replaced included.
func (g *Gateway) closeIdlePeers() {
	g.peers.Load().CloseIdleConnections()
	g.keysMu.Lock()
	for _, t := range g.retired {
		t.CloseIdleConnections()
	}
	g.keysMu.Unlock()
}

// ConfStatus describes one configuration a gateway holds.
type ConfStatus struct {
	Instance    string    `json:"instance"`
	Serial      uint64    `json:"serial"`
	GeneratedAt time.Time `json:"generated_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	Expired     bool      `json:"expired"`
	// Federated is false for the gateway's own instance.
	Federated bool `json:"federated"`
	// Keys are the ids of the configuration-signing keys trusted for
	// the instance now (docs/design/rotation.md).
	Keys []string `json:"keys,omitempty"`
}

// ConfStatus lists the configurations the gateway holds: its own first,
// then those of the federated instances it exchanges with.
func (g *Gateway) ConfStatus() []ConfStatus {
	var out []ConfStatus
	now := g.now()
	if dom := g.conf.Load(); dom != nil {
		out = append(out, ConfStatus{Instance: dom.cfg.Instance, Serial: dom.cfg.Serial, GeneratedAt: dom.cfg.GeneratedAt, ExpiresAt: dom.cfg.ExpiresAt, Expired: dom.cfg.Expired(now), Keys: g.sync.trust.Load().KeyIDs()})
	}
	if v := g.fed.view.Load(); v != nil {
		insts := make([]string, 0, len(*v))
		for inst := range *v {
			insts = append(insts, inst)
		}
		slices.Sort(insts)
		for _, inst := range insts {
			fo := (*v)[inst]
			if fo.removed.Load() {
				continue
			}
			cs := ConfStatus{Instance: inst, Federated: true, Keys: fo.sync.trust.Load().KeyIDs()}
			if st := fo.state.Load(); st != nil {
				cs.Serial, cs.GeneratedAt, cs.ExpiresAt, cs.Expired = st.cfg.Serial, st.cfg.GeneratedAt, st.cfg.ExpiresAt, st.cfg.Expired(now)
			} else {
				cs.Expired = true
			}
			out = append(out, cs)
		}
	}
	return out
}

// kickRefresh asks for an early download of an instance's configuration.
func (g *Gateway) kickRefresh(instance string) {
	if dom := g.conf.Load(); dom == nil || dom.cfg.Instance == instance {
		g.sync.kickRefresh()
		return
	}
	if fo := g.fed.get(instance); fo != nil && !fo.removed.Load() {
		fo.sync.kickRefresh()
	}
}
