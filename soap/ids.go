package soap

import (
	"fmt"
	"strings"

	"github.com/sampan-exchange/sampan/ident"
)

// Object types of X-Road identifiers (the id:objectType attribute).
const (
	ObjectMember    = "MEMBER"
	ObjectSubsystem = "SUBSYSTEM"
	ObjectService   = "SERVICE"
	ObjectServer    = "SERVER"
)

// ClientID is the xrd:client header: a member or one of its subsystems.
type ClientID struct {
	ObjectType string // ObjectMember or ObjectSubsystem
	Instance   string // id:xRoadInstance
	Class      string // id:memberClass
	Code       string // id:memberCode
	Subsystem  string // id:subsystemCode, empty for a member
}

// ServiceID is the xrd:service header, or one service of a listMethods
// answer.
type ServiceID struct {
	ObjectType string // always ObjectService
	Instance   string
	Class      string
	Code       string
	Subsystem  string // empty for a member's service (which Sampan refuses)
	Service    string // id:serviceCode
	Version    string // id:serviceVersion, optional
}

// SecurityServerID is the xrd:securityServer header of the security
// server targeting extension: the gateway that must serve the request.
type SecurityServerID struct {
	Instance   string
	Class      string
	Code       string
	ServerCode string // id:serverCode
}

// RepresentedParty is the repr:representedParty header of the third-party
// representation extension: the party the client acts for.
type RepresentedParty struct {
	Class string // repr:partyClass, optional
	Code  string // repr:partyCode
}

// RequestHash is the xrd:requestHash header of a response.
type RequestHash struct {
	AlgorithmID string // an XML-DSIG digest URI, e.g. DigestSHA512
	Value       string // base64, whitespace removed
}

// ClientFromIdent returns the header form of c.
func ClientFromIdent(c ident.ClientID) ClientID {
	t := ObjectMember
	if c.IsSubsystem() {
		t = ObjectSubsystem
	}
	return ClientID{ObjectType: t, Instance: c.Instance, Class: c.Class, Code: c.Code, Subsystem: c.Subsystem}
}

// Ident returns c as an ident.ClientID, checking that the object type
// agrees with the parts present and that every part is valid.
func (c ClientID) Ident() (ident.ClientID, error) {
	switch c.ObjectType {
	case ObjectMember:
		if c.Subsystem != "" {
			return ident.ClientID{}, fmt.Errorf("%w: a MEMBER has no subsystemCode", ident.ErrInvalid)
		}
	case ObjectSubsystem:
		if c.Subsystem == "" {
			return ident.ClientID{}, fmt.Errorf("%w: a SUBSYSTEM needs a subsystemCode", ident.ErrInvalid)
		}
	default:
		return ident.ClientID{}, fmt.Errorf("%w: client objectType %q must be MEMBER or SUBSYSTEM", ident.ErrInvalid, c.ObjectType)
	}
	id := ident.ClientID{Instance: c.Instance, Class: c.Class, Code: c.Code, Subsystem: c.Subsystem}
	return id, id.Validate()
}

// ServiceFromIdent returns the header form of s.
func ServiceFromIdent(s ident.ServiceID) ServiceID {
	p := s.Provider
	return ServiceID{ObjectType: ObjectService, Instance: p.Instance, Class: p.Class, Code: p.Code, Subsystem: p.Subsystem, Service: s.Code, Version: s.Version}
}

// Ident returns s as an ident.ServiceID. Sampan's services belong to
// subsystems, so a member's service (no subsystemCode) is refused.
func (s ServiceID) Ident() (ident.ServiceID, error) {
	if s.ObjectType != ObjectService {
		return ident.ServiceID{}, fmt.Errorf("%w: service objectType %q must be SERVICE", ident.ErrInvalid, s.ObjectType)
	}
	id := ident.ServiceID{
		Provider: ident.ClientID{Instance: s.Instance, Class: s.Class, Code: s.Code, Subsystem: s.Subsystem},
		Code:     s.Service,
		Version:  s.Version,
	}
	return id, id.Validate()
}

// The operational monitoring services (PR-OPMON), which a gateway answers
// for itself: their provider is the gateway's owner, a member.
const (
	OpOperationalData = "getSecurityServerOperationalData"
	OpHealthData      = "getSecurityServerHealthData"
)

// IsMonitoring reports whether s is one of the operational monitoring
// services, the only services Sampan knows that belong to a member.
func (s ServiceID) IsMonitoring() bool {
	return s.Service == OpOperationalData || s.Service == OpHealthData
}

// Provider returns the service's provider as a client identifier.
func (s ServiceID) Provider() ClientID {
	t := ObjectMember
	if s.Subsystem != "" {
		t = ObjectSubsystem
	}
	return ClientID{ObjectType: t, Instance: s.Instance, Class: s.Class, Code: s.Code, Subsystem: s.Subsystem}
}

// SecurityServerFromIdent returns the header form of g.
func SecurityServerFromIdent(g ident.GatewayID) SecurityServerID {
	return SecurityServerID{Instance: g.Instance, Class: g.Class, Code: g.Code, ServerCode: g.Name}
}

// Ident returns s as an ident.GatewayID.
func (s SecurityServerID) Ident() (ident.GatewayID, error) {
	g := ident.GatewayID{Instance: s.Instance, Class: s.Class, Code: s.Code, Name: s.ServerCode}
	return g, g.Validate()
}

// String returns the form of r1's X-Road-Represented-Party header:
// CLASS/CODE, or CODE alone without a class.
func (r RepresentedParty) String() string {
	if r.Class == "" {
		return r.Code
	}
	return r.Class + "/" + r.Code
}

// ParseRepresentedParty parses the X-Road-Represented-Party form
// ([CLASS/]CODE), so that r1 and SOAP requests carry the same value.
func ParseRepresentedParty(s string) (RepresentedParty, error) {
	class, code, ok := strings.Cut(s, "/")
	if !ok {
		class, code = "", s
	}
	r := RepresentedParty{Class: class, Code: code}
	if ok {
		if err := ident.ValidatePart("party class", class); err != nil {
			return RepresentedParty{}, err
		}
	}
	if err := ident.ValidatePart("party code", code); err != nil {
		return RepresentedParty{}, err
	}
	return r, nil
}
