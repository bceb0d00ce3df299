package authority

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ai/obligations"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/ops"
)

// Config is the authority's configuration file.
type Config struct {
	// Instance is the instance this authority governs, e.g. "VN".
	Instance string `json:"instance"`
	// Listen is the HTTPS address of the public and management API.
	// Default 127.0.0.1:4000.
	Listen string `json:"listen"`
	// PublicURL is the base URL gateways reach the authority at. Default
	// https://{Listen}.
	PublicURL string `json:"public_url"`
	// Hostnames go into the authority's TLS certificate. Default: the
	// host of PublicURL.
	Hostnames []string `json:"hostnames"`
	// MemberClasses lists the allowed member classes. Default GOV, COM, ORG.
	MemberClasses []string `json:"member_classes"`
	// ConfValidity is how long a published configuration stays valid.
	// Default 10m.
	ConfValidity cfg.Duration `json:"conf_validity"`
	// ConfInterval is how often the configuration is re-signed even when
	// nothing changed. Default 60s; must be shorter than ConfValidity.
	ConfInterval cfg.Duration `json:"conf_interval"`
	// CertValidity is the lifetime of issued certificates. Default 8760h.
	CertValidity cfg.Duration `json:"cert_validity"`
	// Operators may use the management API.
	Operators []Operator `json:"operators"`
	// TSAPolicyOID is the policy of the time-stamps the authority issues:
	// set the OID your organisation registered. The default, 2.25.1, is a
	// placeholder.
	TSAPolicyOID string `json:"tsa_policy_oid"`

	// TSARate is how many time-stamp requests one client address may
	// send per minute. Default 1200.
	TSARate int `json:"tsa_requests_per_minute"`

	// OpsListen is the plain-HTTP address of the operations listener
	// (/metrics, /healthz, /readyz). Default 127.0.0.1:4001: keep it on
	// loopback or a management network.
	OpsListen string `json:"ops_listen"`
	// OpsTokenFile, when set, names a file (mode 0600) holding the bearer
	// token the operations listener requires on /metrics. It is read at
	// start; the authority refuses to start when it is missing or
	// readable by others.
	OpsTokenFile string `json:"ops_token_file"`

	// AIObligations are the country's obligations per AI risk tier
	// (docs/ai-governance.md), published in the configuration for every
	// gateway to apply. When set they are always published, so that the
	// instance's clients may call other instances' AI services under
	// them; when not, the rules the project ships for the instance
	// (ai/obligations/rules), if any, are published once an AI service
	// or testing body is registered. Without rules no AI service can be
	// registered, and no registered one is served.
	AIObligations *obligations.Rules `json:"ai_obligations,omitempty"`

	// authFailures and authWindow, when set, replace the throttling of
	// failed management calls (tests).
	authFailures int
	authWindow   time.Duration
	// maxConfSize, when set, lowers the size bound on the signed
	// configuration below conf.MaxDocumentSize (tests).
	maxConfSize int
	// file is the file LoadConfig read, which a reload reads again.
	file string
}

// Operator is a person or system allowed on the management API. The token
// itself is never stored: only its SHA-256.
type Operator struct {
	Name        string `json:"name"`
	TokenSHA256 string `json:"token_sha256"`
	// Role is "admin" (everything) or "auditor" (read only).
	Role string `json:"role"`
	// ExpiresAt, when set, is when the token stops being accepted
	// (RFC 3339).
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Roles of operators.
const (
	RoleAdmin   = "admin"
	RoleAuditor = "auditor"
)

// aiRules are the AI obligations in force: those configured, or the
// rules shipped for the instance; nil when there are none.
func (c *Config) aiRules() *obligations.Rules {
	if c.AIObligations != nil {
		return c.AIObligations
	}
	r, _ := obligations.For(c.Instance)
	return r
}

// HashToken returns the value to put in Operator.TokenSHA256.
func HashToken(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// LoadConfig reads, defaults and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := cfg.Load(path, &c); err != nil {
		return nil, err
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	c.file = path
	return &c, nil
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:4000"
	}
	if c.PublicURL == "" {
		c.PublicURL = "https://" + c.Listen
	}
	if len(c.Hostnames) == 0 {
		if u, err := url.Parse(c.PublicURL); err == nil && u.Hostname() != "" {
			c.Hostnames = []string{u.Hostname()}
		}
	}
	if len(c.MemberClasses) == 0 {
		c.MemberClasses = []string{"GOV", "COM", "ORG"}
	}
	if c.ConfValidity == 0 {
		c.ConfValidity = cfg.Duration(10 * time.Minute)
	}
	if c.ConfInterval == 0 {
		c.ConfInterval = cfg.Duration(60 * time.Second)
	}
	if c.TSAPolicyOID == "" {
		c.TSAPolicyOID = "2.25.1"
	}
	if c.TSARate == 0 {
		c.TSARate = 1200
	}
	if c.CertValidity == 0 {
		c.CertValidity = cfg.Duration(365 * 24 * time.Hour)
	}
	if c.OpsListen == "" {
		c.OpsListen = DefaultOpsListen
	}
}

// DefaultOpsListen is the default of Config.OpsListen: loopback, beside
// the API's default port.
const DefaultOpsListen = "127.0.0.1:4001"

// Validate checks the configuration; errors name the field.
func (c *Config) Validate() error {
	if err := ident.ValidateInstance(c.Instance); err != nil {
		return fmt.Errorf("instance: %w", err)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	_, opsPort, err := net.SplitHostPort(c.OpsListen)
	if err != nil {
		return fmt.Errorf("ops_listen: %w", err)
	}
	if c.OpsListen == c.Listen && opsPort != "0" {
		return fmt.Errorf("ops_listen: %s is also listen", c.OpsListen)
	}
	if c.OpsTokenFile != "" && strings.TrimSpace(c.OpsTokenFile) != c.OpsTokenFile {
		return fmt.Errorf("ops_token_file: %q has surrounding white space", c.OpsTokenFile)
	}
	if err := ops.CheckExposure(c.OpsListen, c.OpsTokenFile); err != nil {
		return fmt.Errorf("ops_listen: %w", err)
	}
	if r := c.AIObligations; r != nil {
		if err := r.Validate(); err != nil {
			return fmt.Errorf("ai_obligations: %w", err)
		}
		if r.Country != c.Instance {
			return fmt.Errorf("ai_obligations.country: %q is not this instance, %s", r.Country, c.Instance)
		}
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("public_url: %q must be an https URL", c.PublicURL)
	}
	for i, mc := range c.MemberClasses {
		if err := ident.ValidatePart("member class", mc); err != nil {
			return fmt.Errorf("member_classes[%d]: %w", i, err)
		}
	}
	if c.ConfValidity.D() < 30*time.Second {
		return errors.New("conf_validity: must be at least 30s")
	}
	if c.ConfInterval.D() <= 0 || c.ConfInterval.D() >= c.ConfValidity.D() {
		return errors.New("conf_interval: must be positive and shorter than conf_validity")
	}
	if c.CertValidity.D() < time.Hour {
		return errors.New("cert_validity: must be at least 1h")
	}
	if _, err := parseOID(c.TSAPolicyOID); err != nil {
		return fmt.Errorf("tsa_policy_oid: %w", err)
	}
	if len(c.Operators) == 0 {
		return errors.New("operators: at least one operator is required")
	}
	if c.TSARate < 1 {
		return errors.New("tsa_requests_per_minute: must be positive")
	}
	seen := map[string]bool{}
	names := map[string]int{}
	for i, o := range c.Operators {
		if o.Name == "" {
			return fmt.Errorf("operators[%d].name: empty", i)
		}
		if j, dup := names[o.Name]; dup {
			return fmt.Errorf("operators[%d].name duplicates operators[%d].name (%q)", i, j, o.Name)
		}
		names[o.Name] = i
		if b, err := hex.DecodeString(o.TokenSHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("operators[%d].token_sha256: want 64 hex digits", i)
		}
		if seen[o.TokenSHA256] {
			return fmt.Errorf("operators[%d].token_sha256: shared with another operator", i)
		}
		seen[o.TokenSHA256] = true
		if !slices.Contains([]string{RoleAdmin, RoleAuditor}, o.Role) {
			return fmt.Errorf("operators[%d].role: %q is not admin or auditor", i, o.Role)
		}
	}
	return nil
}
