// Package ident parses, validates and formats the identifiers of the
// exchange: instances, members, subsystems, services, gateways and global
// groups. The forms follow the X-Road REST protocol r1 so that existing
// client systems can name objects unchanged:
//
//	member     INSTANCE/CLASS/CODE
//	subsystem  INSTANCE/CLASS/CODE/SUBSYSTEM
//	service    INSTANCE/CLASS/CODE/SUBSYSTEM/SERVICE[/VERSION]
//	gateway    INSTANCE/CLASS/CODE/NAME
//	group      INSTANCE/GROUP
//
// In URLs and headers each part is percent-encoded on its own; the plain
// String form is for logs, configuration files and the registry.
package ident

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxPartLen is the longest identifier part accepted, in bytes.
const MaxPartLen = 255

// ErrInvalid is wrapped by every parse and validation error of this package.
// Callers that answer a protocol peer branch on it to report a malformed
// identifier rather than an unknown one.
var ErrInvalid = errors.New("invalid identifier")

// forbidden are the characters that may not appear in any identifier part,
// even percent-encoded: they would make the textual forms ambiguous.
const forbidden = "/\\;:%"

// ValidatePart reports whether s may be one part of an identifier. The
// name is used in the error only.
func ValidatePart(name, s string) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", ErrInvalid, name)
	}
	if len(s) > MaxPartLen {
		return fmt.Errorf("%w: %s is longer than %d bytes", ErrInvalid, name, MaxPartLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalid, name)
	}
	for _, r := range s {
		if strings.ContainsRune(forbidden, r) {
			return fmt.Errorf("%w: %s contains %q", ErrInvalid, name, r)
		}
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("%w: %s contains a non-printable or space character %U", ErrInvalid, name, r)
		}
	}
	return nil
}

// ValidateInstance checks an instance code: an ISO country code in capitals
// with an optional "-suffix" (VN, SG, VN-test).
func ValidateInstance(s string) error {
	if err := ValidatePart("instance", s); err != nil {
		return err
	}
	cc, _, _ := strings.Cut(s, "-")
	if len(cc) != 2 || cc[0] < 'A' || cc[0] > 'Z' || cc[1] < 'A' || cc[1] > 'Z' {
		return fmt.Errorf("%w: instance %q must start with a two-letter country code in capitals", ErrInvalid, s)
	}
	return nil
}

// split cuts an identifier's plain form into parts and validates each.
func split(kind, s string, names ...string) ([]string, error) {
	parts := strings.Split(s, "/")
	if len(parts) != len(names) {
		return nil, fmt.Errorf("%w: %s %q must have %d parts (%s)", ErrInvalid, kind, s, len(names), strings.Join(names, "/"))
	}
	return parts, validateParts(parts, names)
}

func validateParts(parts, names []string) error {
	for i, p := range parts {
		if i == 0 {
			if err := ValidateInstance(p); err != nil {
				return err
			}
			continue
		}
		if err := ValidatePart(names[i], p); err != nil {
			return err
		}
	}
	return nil
}

// splitEscaped cuts a percent-encoded form into parts and decodes each.
func splitEscaped(kind, s string, n int) ([]string, error) {
	parts := strings.Split(s, "/")
	if len(parts) != n {
		return nil, fmt.Errorf("%w: %s %q must have %d parts", ErrInvalid, kind, s, n)
	}
	for i, p := range parts {
		u, err := url.PathUnescape(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %s part %d: bad percent-encoding", ErrInvalid, kind, i+1)
		}
		parts[i] = u
	}
	return parts, nil
}

func escapeJoin(parts ...string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(url.PathEscape(p))
	}
	return b.String()
}

// ClientID names a member (Subsystem empty) or one of its subsystems.
type ClientID struct {
	Instance  string
	Class     string
	Code      string
	Subsystem string
}

// IsSubsystem reports whether c names a subsystem rather than a member.
func (c ClientID) IsSubsystem() bool { return c.Subsystem != "" }

// Member returns the member that c belongs to (c itself for a member).
func (c ClientID) Member() ClientID { c.Subsystem = ""; return c }

// IsZero reports whether c is the zero value.
func (c ClientID) IsZero() bool { return c == ClientID{} }

// String returns the plain form, e.g. VN/GOV/MOF/business-registry.
func (c ClientID) String() string {
	if c.IsZero() {
		return ""
	}
	s := c.Instance + "/" + c.Class + "/" + c.Code
	if c.Subsystem != "" {
		s += "/" + c.Subsystem
	}
	return s
}

// Escaped returns the form with each part percent-encoded.
func (c ClientID) Escaped() string {
	if c.Subsystem == "" {
		return escapeJoin(c.Instance, c.Class, c.Code)
	}
	return escapeJoin(c.Instance, c.Class, c.Code, c.Subsystem)
}

// Validate checks every part.
func (c ClientID) Validate() error {
	parts := []string{c.Instance, c.Class, c.Code}
	names := []string{"instance", "member class", "member code"}
	if c.Subsystem != "" {
		parts = append(parts, c.Subsystem)
		names = append(names, "subsystem code")
	}
	return validateParts(parts, names)
}

// ParseClient parses a member or subsystem in plain form.
func ParseClient(s string) (ClientID, error) {
	n := strings.Count(s, "/") + 1
	if n == 3 {
		p, err := split("member", s, "instance", "member class", "member code")
		if err != nil {
			return ClientID{}, err
		}
		return ClientID{p[0], p[1], p[2], ""}, nil
	}
	p, err := split("subsystem", s, "instance", "member class", "member code", "subsystem code")
	if err != nil {
		return ClientID{}, err
	}
	return ClientID{p[0], p[1], p[2], p[3]}, nil
}

// ParseSubsystem parses a subsystem in plain form; a member is refused.
func ParseSubsystem(s string) (ClientID, error) {
	p, err := split("subsystem", s, "instance", "member class", "member code", "subsystem code")
	if err != nil {
		return ClientID{}, err
	}
	return ClientID{p[0], p[1], p[2], p[3]}, nil
}

// ParseMember parses a member in plain form; a subsystem is refused.
func ParseMember(s string) (ClientID, error) {
	p, err := split("member", s, "instance", "member class", "member code")
	if err != nil {
		return ClientID{}, err
	}
	return ClientID{p[0], p[1], p[2], ""}, nil
}

// ParseEscapedClient parses a member or subsystem whose parts are
// percent-encoded, as in the X-Road-Client header.
func ParseEscapedClient(s string) (ClientID, error) {
	n := strings.Count(s, "/") + 1
	if n != 3 && n != 4 {
		return ClientID{}, fmt.Errorf("%w: client %q must have 3 or 4 parts (instance/class/code[/subsystem])", ErrInvalid, s)
	}
	p, err := splitEscaped("client", s, n)
	if err != nil {
		return ClientID{}, err
	}
	c := ClientID{Instance: p[0], Class: p[1], Code: p[2]}
	if n == 4 {
		c.Subsystem = p[3]
	}
	return c, c.Validate()
}

// MarshalText implements encoding.TextMarshaler with the plain form.
func (c ClientID) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with the plain form.
func (c *ClientID) UnmarshalText(b []byte) error {
	v, err := ParseClient(string(b))
	if err != nil {
		return err
	}
	*c = v
	return nil
}

// ServiceID names a service offered by a subsystem.
type ServiceID struct {
	Provider ClientID // always a subsystem
	Code     string
	Version  string // optional
}

// String returns the plain form, e.g. VN/GOV/MOF/business-registry/companies.
func (s ServiceID) String() string {
	v := s.Provider.String() + "/" + s.Code
	if s.Version != "" {
		v += "/" + s.Version
	}
	return v
}

// Escaped returns the form with each part percent-encoded, as used in r1
// request paths and the X-Road-Service header.
func (s ServiceID) Escaped() string {
	v := s.Provider.Escaped() + "/" + url.PathEscape(s.Code)
	if s.Version != "" {
		v += "/" + url.PathEscape(s.Version)
	}
	return v
}

// Validate checks every part.
func (s ServiceID) Validate() error {
	if !s.Provider.IsSubsystem() {
		return fmt.Errorf("%w: service provider must be a subsystem", ErrInvalid)
	}
	if err := s.Provider.Validate(); err != nil {
		return err
	}
	if err := ValidatePart("service code", s.Code); err != nil {
		return err
	}
	if s.Version != "" {
		return ValidatePart("service version", s.Version)
	}
	return nil
}

// ParseService parses a service in plain form, with or without a version.
func ParseService(s string) (ServiceID, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 5 && len(parts) != 6 {
		return ServiceID{}, fmt.Errorf("%w: service %q must have 5 or 6 parts (instance/class/code/subsystem/service[/version])", ErrInvalid, s)
	}
	id := ServiceID{Provider: ClientID{parts[0], parts[1], parts[2], parts[3]}, Code: parts[4]}
	if len(parts) == 6 {
		if parts[5] == "" {
			return ServiceID{}, fmt.Errorf("%w: service %q has an empty version (leave out the final /)", ErrInvalid, s)
		}
		id.Version = parts[5]
	}
	return id, id.Validate()
}

// MarshalText implements encoding.TextMarshaler with the plain form.
func (s ServiceID) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with the plain form.
func (s *ServiceID) UnmarshalText(b []byte) error {
	v, err := ParseService(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// GatewayID names a gateway: its owner member and a name.
type GatewayID struct {
	Instance string
	Class    string
	Code     string
	Name     string
}

// Owner returns the member that owns the gateway.
func (g GatewayID) Owner() ClientID { return ClientID{g.Instance, g.Class, g.Code, ""} }

// String returns the plain form, e.g. VN/GOV/MOF/gw1.
func (g GatewayID) String() string {
	if g == (GatewayID{}) {
		return ""
	}
	return g.Instance + "/" + g.Class + "/" + g.Code + "/" + g.Name
}

// Validate checks every part.
func (g GatewayID) Validate() error {
	return validateParts([]string{g.Instance, g.Class, g.Code, g.Name},
		[]string{"instance", "member class", "member code", "gateway name"})
}

// ParseGateway parses a gateway in plain form.
func ParseGateway(s string) (GatewayID, error) {
	p, err := split("gateway", s, "instance", "member class", "member code", "gateway name")
	if err != nil {
		return GatewayID{}, err
	}
	return GatewayID{p[0], p[1], p[2], p[3]}, nil
}

// MarshalText implements encoding.TextMarshaler with the plain form.
func (g GatewayID) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with the plain form.
func (g *GatewayID) UnmarshalText(b []byte) error {
	v, err := ParseGateway(string(b))
	if err != nil {
		return err
	}
	*g = v
	return nil
}

// GroupID names a global group of an instance.
type GroupID struct {
	Instance string
	Code     string
}

// String returns the plain form, e.g. VN/provinces.
func (g GroupID) String() string { return g.Instance + "/" + g.Code }

// ParseGroup parses a global group in plain form.
func ParseGroup(s string) (GroupID, error) {
	p, err := split("global group", s, "instance", "group code")
	if err != nil {
		return GroupID{}, err
	}
	return GroupID{p[0], p[1]}, nil
}

// MarshalText implements encoding.TextMarshaler with the plain form.
func (g GroupID) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with the plain form.
func (g *GroupID) UnmarshalText(b []byte) error {
	v, err := ParseGroup(string(b))
	if err != nil {
		return err
	}
	*g = v
	return nil
}

// An authority registers identifiers in one canonical form, stricter than
// what the protocol lets a part hold (see ValidatePart): ASCII letters,
// digits, '-', '.' and '_' (the unreserved characters of RFC 3986 without
// '~'), and not "." or "..". Look-alike letters from other scripts,
// full-width forms and characters that need percent-encoding are thereby
// out, and every canonical identifier is also a valid X-Road identifier
// (PR-REST §4.8). Two identifiers that differ only in the case of their
// letters name the same object to a person reading them: Fold gives the
// key an authority compares them by.

// ValidateCanonical reports whether s may be one part of an identifier an
// authority registers. The name is used in the error only.
func ValidateCanonical(name, s string) error {
	if err := ValidatePart(name, s); err != nil {
		return err
	}
	if s == "." || s == ".." {
		return fmt.Errorf("%w: %s may not be %q", ErrInvalid, name, s)
	}
	for i, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return fmt.Errorf("%w: %s contains %q at byte %d (registered identifiers use ASCII letters, digits, '-', '.' and '_')", ErrInvalid, name, r, i)
		}
	}
	return nil
}

// ValidateCanonical checks that every part of c is in canonical form.
func (c ClientID) ValidateCanonical() error {
	if err := c.Validate(); err != nil {
		return err
	}
	return canonicalParts([]string{c.Instance, c.Class, c.Code, c.Subsystem},
		[]string{"instance", "member class", "member code", "subsystem code"})
}

// ValidateCanonical checks that every part of g is in canonical form.
func (g GatewayID) ValidateCanonical() error {
	if err := g.Validate(); err != nil {
		return err
	}
	return canonicalParts([]string{g.Instance, g.Class, g.Code, g.Name},
		[]string{"instance", "member class", "member code", "gateway name"})
}

// ValidateCanonical checks that g is a valid group in canonical form.
func (g GroupID) ValidateCanonical() error {
	if err := ValidateInstance(g.Instance); err != nil {
		return err
	}
	return canonicalParts([]string{g.Instance, g.Code}, []string{"instance", "group code"})
}

func canonicalParts(parts, names []string) error {
	for i, p := range parts {
		if p == "" && i == len(parts)-1 && names[i] == "subsystem code" {
			continue
		}
		if err := ValidateCanonical(names[i], p); err != nil {
			return err
		}
	}
	return nil
}

// Fold returns the key under which identifiers that differ only in the
// case of their ASCII letters compare equal: the plain form in lower case.
func Fold(plain string) string { return strings.ToLower(plain) }
