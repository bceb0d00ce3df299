// Package conf is the shared configuration of an instance: the signed
// document an authority publishes and every gateway of the instance
// downloads, verifies against its anchor and swaps in atomically. It carries
// the registry (members, subsystems, gateways, global groups), the CA
// certificates and the serials of revoked certificates.
package conf

import (
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/sampan-exchange/sampan/ai/obligations"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/policy"
)

// FormatVersion is the version of the document format this code reads.
const FormatVersion = 1

// MaxDocumentSize bounds a signed configuration document in bytes.
const MaxDocumentSize = 16 << 20

// MaxNextKeys bounds Config.NextKeys.
const MaxNextKeys = 4

// Config is one instance's shared configuration.
type Config struct {
	FormatVersion int       `json:"format_version"`
	Instance      string    `json:"instance"`
	Serial        uint64    `json:"serial"`
	GeneratedAt   time.Time `json:"generated_at"`
	ExpiresAt     time.Time `json:"expires_at"`
	// CACerts are PEM certificates of the instance's CAs.
	CACerts      []string      `json:"ca_certs"`
	Members      []Member      `json:"members"`
	Gateways     []Gateway     `json:"gateways"`
	GlobalGroups []GlobalGroup `json:"global_groups"`
	// Revoked lists hex serial numbers of revoked certificates.
	Revoked []string `json:"revoked"`
	// TSACerts are PEM certificates of the instance's time-stamping
	// authority; TSAURL is where it takes RFC 3161 requests.
	TSACerts []string `json:"tsa_certs,omitempty"`
	TSAURL   string   `json:"tsa_url,omitempty"`
	// Federation lists the foreign instances this instance trusts.
	Federation []Federation `json:"federation,omitempty"`
	// Policy holds the sovereignty rules as data: the services' data
	// classes, agreements for this instance's services, the national
	// rules and the regulator's suspensions. It is compiled when the
	// document is validated; a document whose policy does not compile is
	// refused as a whole.
	Policy *policy.Document `json:"policy,omitempty"`
	// NextKeys are configuration-signing keys of this instance, other
	// than the one that signed the document, that gateways trust from
	// this document on: the key being introduced before the authority
	// signs with it, and the key being retired while it stays accepted.
	// A gateway learns them only from a document that verifies, and
	// forgets a key once the latest document no longer lists it
	// (docs/design/rotation.md).
	NextKeys []AnchorKey `json:"next_keys,omitempty"`
	// AIServices are the registered AI services with their risk tier and
	// the obligations met (docs/ai-governance.md); AITestingBodies the
	// members accredited to evaluate them.
	AIServices      []AIService      `json:"ai_services,omitempty"`
	AITestingBodies []ident.ClientID `json:"ai_testing_bodies,omitempty"`
	// AIObligations are this instance's obligations per risk tier. A
	// gateway serves or calls a registered AI service only under the
	// obligations its own instance publishes (and, for a consumer, the
	// provider's instance's too): none published, none served.
	AIObligations *obligations.Rules `json:"ai_obligations,omitempty"`

	index *index
}

// Member is a registered member and its subsystems.
type Member struct {
	ID         ident.ClientID `json:"id"`
	Name       string         `json:"name"`
	Subsystems []string       `json:"subsystems"`
}

// Gateway is a registered gateway: where it listens for peers, the
// fingerprint of its authentication certificate and the subsystems it
// serves.
type Gateway struct {
	ID      ident.GatewayID  `json:"id"`
	Address string           `json:"address"`
	AuthFP  string           `json:"auth_cert_sha256"`
	Clients []ident.ClientID `json:"clients"`
	// NextAuthFP, while the gateway's certificates are renewed, is the
	// fingerprint of its next authentication certificate: peers accept
	// either until the renewal completes and AuthFP becomes this one.
	NextAuthFP string `json:"next_auth_cert_sha256,omitempty"`
}

// HasAuthFP reports whether fp is the fingerprint of one of the
// gateway's authentication certificates: the current one, or the next
// one while a renewal is under way.
func (g *Gateway) HasAuthFP(fp string) bool {
	return fp == g.AuthFP || g.NextAuthFP != "" && fp == g.NextAuthFP
}

// Federation is a foreign instance this instance trusts: the anchor its
// configuration verifies against, and which of its clients may call this
// instance's services.
type Federation struct {
	Anchor Anchor `json:"anchor"`
	// InboundClients, when not empty, lists the foreign members and
	// subsystems that may call in; a member covers its subsystems. Empty
	// lets every client the foreign configuration registers call in.
	InboundClients []ident.ClientID `json:"inbound_clients,omitempty"`
}

// Admits reports whether the foreign client may call in.
func (f *Federation) Admits(c ident.ClientID) bool {
	if len(f.InboundClients) == 0 {
		return c.Instance == f.Anchor.Instance
	}
	for _, a := range f.InboundClients {
		if a == c || !a.IsSubsystem() && a == c.Member() {
			return true
		}
	}
	return false
}

// GlobalGroup is a named set of subsystems.
type GlobalGroup struct {
	ID          ident.GroupID    `json:"id"`
	Description string           `json:"description"`
	Members     []ident.ClientID `json:"members"`
}

type index struct {
	roots    *x509.CertPool
	members  map[ident.ClientID]*Member
	subsys   map[ident.ClientID]bool
	gateways map[ident.GatewayID]*Gateway
	byFP     map[string]*Gateway
	hostedBy map[ident.ClientID][]*Gateway
	groups   map[ident.GroupID]*GlobalGroup
	inGroup  map[ident.ClientID][]ident.GroupID
	revoked  map[string]bool
	fpServes map[string]map[ident.ClientID]bool
	fed      map[string]*Federation
	policy   *policy.Engine
	ai       map[aiKey]*AIService
	testers  map[ident.ClientID]bool
}

// Validate checks the document's structure and cross-references and
// builds the look-up index. Errors name the offending field.
func (c *Config) Validate() error {
	if c.FormatVersion != FormatVersion {
		return fmt.Errorf("format_version: got %d, want %d", c.FormatVersion, FormatVersion)
	}
	if err := ident.ValidateInstance(c.Instance); err != nil {
		return fmt.Errorf("instance: %w", err)
	}
	if c.Serial == 0 {
		return errors.New("serial: must be positive")
	}
	if c.GeneratedAt.IsZero() || !c.ExpiresAt.After(c.GeneratedAt) {
		return errors.New("expires_at: must be after generated_at")
	}
	ix := &index{
		roots:    x509.NewCertPool(),
		members:  map[ident.ClientID]*Member{},
		subsys:   map[ident.ClientID]bool{},
		gateways: map[ident.GatewayID]*Gateway{},
		byFP:     map[string]*Gateway{},
		hostedBy: map[ident.ClientID][]*Gateway{},
		groups:   map[ident.GroupID]*GlobalGroup{},
		inGroup:  map[ident.ClientID][]ident.GroupID{},
		revoked:  map[string]bool{},
		fpServes: map[string]map[ident.ClientID]bool{},
	}
	if len(c.CACerts) == 0 {
		return errors.New("ca_certs: at least one CA certificate is required")
	}
	for i, p := range c.CACerts {
		cert, err := pki.ParseCertPEM([]byte(p))
		if err != nil {
			return fmt.Errorf("ca_certs[%d]: %w", i, err)
		}
		if !cert.IsCA {
			return fmt.Errorf("ca_certs[%d]: not a CA certificate", i)
		}
		ix.roots.AddCert(cert)
	}
	// Positions of what was seen, to name both places of a duplicate.
	memberAt, gatewayAt, fpAt, groupAt, fedAt := map[ident.ClientID]int{}, map[ident.GatewayID]int{}, map[string]int{}, map[ident.GroupID]int{}, map[string]int{}
	for i := range c.Members {
		m := &c.Members[i]
		if m.ID.IsSubsystem() || m.ID.Validate() != nil || m.ID.Instance != c.Instance {
			return fmt.Errorf("members[%d].id: %q is not a member of instance %s", i, m.ID, c.Instance)
		}
		if k, dup := memberAt[m.ID]; dup {
			return fmt.Errorf("members[%d].id duplicates members[%d].id (%s)", i, k, m.ID)
		}
		memberAt[m.ID] = i
		ix.members[m.ID] = m
		subAt := map[string]int{}
		for j, s := range m.Subsystems {
			if k, dup := subAt[s]; dup {
				return fmt.Errorf("members[%d].subsystems[%d] duplicates members[%d].subsystems[%d] (%s)", i, j, i, k, s)
			}
			subAt[s] = j
			sid := ident.ClientID{Instance: m.ID.Instance, Class: m.ID.Class, Code: m.ID.Code, Subsystem: s}
			if err := sid.Validate(); err != nil {
				return fmt.Errorf("members[%d].subsystems[%d]: %w", i, j, err)
			}
			ix.subsys[sid] = true
		}
	}
	for i := range c.Gateways {
		g := &c.Gateways[i]
		if err := g.ID.Validate(); err != nil || g.ID.Instance != c.Instance {
			return fmt.Errorf("gateways[%d].id: %q is not a gateway of instance %s", i, g.ID, c.Instance)
		}
		if ix.members[g.ID.Owner()] == nil {
			return fmt.Errorf("gateways[%d].id: owner %s is not a registered member", i, g.ID.Owner())
		}
		if k, dup := gatewayAt[g.ID]; dup {
			return fmt.Errorf("gateways[%d].id duplicates gateways[%d].id (%s)", i, k, g.ID)
		}
		gatewayAt[g.ID] = i
		if g.Address == "" {
			return fmt.Errorf("gateways[%d].address: empty", i)
		}
		if len(g.AuthFP) != 64 {
			return fmt.Errorf("gateways[%d].auth_cert_sha256: want 64 hex digits", i)
		}
		if k, dup := fpAt[g.AuthFP]; dup {
			return fmt.Errorf("gateways[%d].auth_cert_sha256 duplicates gateways[%d].auth_cert_sha256", i, k)
		}
		fpAt[g.AuthFP] = i
		if g.NextAuthFP != "" {
			if len(g.NextAuthFP) != 64 {
				return fmt.Errorf("gateways[%d].next_auth_cert_sha256: want 64 hex digits", i)
			}
			if k, dup := fpAt[g.NextAuthFP]; dup {
				return fmt.Errorf("gateways[%d].next_auth_cert_sha256 duplicates the certificate of gateways[%d]", i, k)
			}
			fpAt[g.NextAuthFP] = i
		}
		ix.gateways[g.ID] = g
		ix.byFP[g.AuthFP] = g
		if g.NextAuthFP != "" {
			ix.byFP[g.NextAuthFP] = g
		}
		serves := map[ident.ClientID]bool{}
		clientAt := map[ident.ClientID]int{}
		for j, cl := range g.Clients {
			if !ix.subsys[cl] {
				return fmt.Errorf("gateways[%d].clients[%d]: %s is not a registered subsystem", i, j, cl)
			}
			if k, dup := clientAt[cl]; dup {
				return fmt.Errorf("gateways[%d].clients[%d] duplicates gateways[%d].clients[%d] (%s)", i, j, i, k, cl)
			}
			clientAt[cl] = j
			serves[cl] = true
			ix.hostedBy[cl] = append(ix.hostedBy[cl], g)
		}
		ix.fpServes[g.AuthFP] = serves
		if g.NextAuthFP != "" {
			ix.fpServes[g.NextAuthFP] = serves
		}
	}
	for i := range c.GlobalGroups {
		gr := &c.GlobalGroups[i]
		if gr.ID.Instance != c.Instance {
			return fmt.Errorf("global_groups[%d].id: %s is not a group of instance %s", i, gr.ID, c.Instance)
		}
		if k, dup := groupAt[gr.ID]; dup {
			return fmt.Errorf("global_groups[%d].id duplicates global_groups[%d].id (%s)", i, k, gr.ID)
		}
		groupAt[gr.ID] = i
		ix.groups[gr.ID] = gr
		inAt := map[ident.ClientID]int{}
		for j, m := range gr.Members {
			if k, dup := inAt[m]; dup {
				return fmt.Errorf("global_groups[%d].members[%d] duplicates global_groups[%d].members[%d] (%s)", i, j, i, k, m)
			}
			inAt[m] = j
			if m.Instance == c.Instance && !ix.subsys[m] {
				return fmt.Errorf("global_groups[%d].members[%d]: %s is not a registered subsystem", i, j, m)
			}
			ix.inGroup[m] = append(ix.inGroup[m], gr.ID)
		}
	}
	for _, s := range c.Revoked {
		ix.revoked[s] = true
	}
	ix.fed = map[string]*Federation{}
	for i := range c.Federation {
		f := &c.Federation[i]
		if err := f.Anchor.Validate(); err != nil {
			return fmt.Errorf("federation[%d].anchor.%w", i, err)
		}
		if f.Anchor.Instance == c.Instance {
			return fmt.Errorf("federation[%d].anchor.instance: an instance cannot federate with itself", i)
		}
		if k, dup := fedAt[f.Anchor.Instance]; dup {
			return fmt.Errorf("federation[%d].anchor.instance duplicates federation[%d].anchor.instance (%s)", i, k, f.Anchor.Instance)
		}
		fedAt[f.Anchor.Instance] = i
		for j, ic := range f.InboundClients {
			if ic.Validate() != nil || ic.Instance != f.Anchor.Instance {
				return fmt.Errorf("federation[%d].inbound_clients[%d]: %q is not a client of %s", i, j, ic, f.Anchor.Instance)
			}
		}
		ix.fed[f.Anchor.Instance] = f
	}
	if len(c.NextKeys) > MaxNextKeys {
		return fmt.Errorf("next_keys: more than %d keys", MaxNextKeys)
	}
	nextAt := map[string]int{}
	for i, k := range c.NextKeys {
		if _, err := k.parse(); err != nil {
			return fmt.Errorf("next_keys[%d].%w", i, err)
		}
		if j, dup := nextAt[k.KeyID]; dup {
			return fmt.Errorf("next_keys[%d].kid duplicates next_keys[%d].kid (%s)", i, j, k.KeyID)
		}
		nextAt[k.KeyID] = i
	}
	if err := c.validateAI(ix); err != nil {
		return err
	}
	var err error
	if ix.policy, err = policy.Compile(c.Instance, strconv.FormatUint(c.Serial, 10), c.Policy); err != nil {
		return err
	}
	c.index = ix
	return nil
}

// PolicyEngine returns the compiled policy of the instance.
func (c *Config) PolicyEngine() *policy.Engine { return c.index.policy }

// Roots returns the pool of the instance's CA certificates.
func (c *Config) Roots() *x509.CertPool { return c.index.roots }

// Member returns a registered member, or nil.
func (c *Config) Member(id ident.ClientID) *Member { return c.index.members[id.Member()] }

// HasSubsystem reports whether id is a registered subsystem.
func (c *Config) HasSubsystem(id ident.ClientID) bool { return c.index.subsys[id] }

// HostedBy returns the gateways that serve a subsystem.
func (c *Config) HostedBy(id ident.ClientID) []*Gateway { return c.index.hostedBy[id] }

// Gateway returns a registered gateway, or nil.
func (c *Config) Gateway(id ident.GatewayID) *Gateway { return c.index.gateways[id] }

// GatewayByFingerprint returns the gateway whose authentication
// certificate (the current one, or the next one while it is renewed)
// has the fingerprint, or nil.
func (c *Config) GatewayByFingerprint(fp string) *Gateway { return c.index.byFP[fp] }

// Serves reports whether the gateway with authentication fingerprint fp
// serves the subsystem id.
func (c *Config) Serves(fp string, id ident.ClientID) bool { return c.index.fpServes[fp][id] }

// GroupsOf returns the global groups a subsystem belongs to.
func (c *Config) GroupsOf(id ident.ClientID) []ident.GroupID { return c.index.inGroup[id] }

// Group returns a global group, or nil.
func (c *Config) Group(id ident.GroupID) *GlobalGroup { return c.index.groups[id] }

// IsRevoked reports whether a certificate is revoked.
func (c *Config) IsRevoked(cert *x509.Certificate) bool {
	return c.index.revoked[fmt.Sprintf("%x", cert.SerialNumber)]
}

// Federated returns the federation with a foreign instance, or nil.
func (c *Config) Federated(instance string) *Federation { return c.index.fed[instance] }

// Expired reports whether the configuration has expired at now.
func (c *Config) Expired(now time.Time) bool { return !now.Before(c.ExpiresAt) }

// Subsystems returns every registered subsystem, sorted.
func (c *Config) Subsystems() []ident.ClientID {
	out := make([]ident.ClientID, 0, len(c.index.subsys))
	for id := range c.index.subsys {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b ident.ClientID) int {
		if a.String() < b.String() {
			return -1
		}
		if a.String() > b.String() {
			return 1
		}
		return 0
	})
	return out
}

// Decode parses a configuration strictly (see internal/cfg.Decode) and
// validates it.
func Decode(b []byte) (*Config, error) {
	var c Config
	if err := cfg.Decode(b, &c); err != nil {
		return nil, fmt.Errorf("decode configuration: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	return &c, nil
}
