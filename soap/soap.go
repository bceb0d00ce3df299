// Package soap implements the client side of the X-Road Message Protocol
// 4.0 (PR-MESS), a profile of SOAP 1.1: hardened parsing of the envelope
// and its X-Road headers, SOAP faults in both fault-code spellings,
// multipart/related and MTOM messages read as streams, the requestHash
// header of responses, the request/response header consistency check, and
// the bodies of the listMethods, allowedMethods and getWsdl metaservices.
//
// The package holds the SOAP part of a message in memory (bounded by
// Limits.MaxSOAPSize) and never an attachment. It knows nothing of
// gateways: refusals are *r1.Error values whose Type is the fault code
// (CamelCase spelling) and which FaultFor renders.
package soap

import (
	"fmt"

	"github.com/sampan-exchange/sampan/r1"
)

// XML namespaces of the protocol.
const (
	// NSEnvelope is the SOAP 1.1 envelope namespace.
	NSEnvelope = "http://schemas.xmlsoap.org/soap/envelope/"
	// NSEnvelope12 is the SOAP 1.2 envelope namespace, recognised only to
	// refuse it with a clear error.
	NSEnvelope12 = "http://www.w3.org/2003/05/soap-envelope"
	// NSXRoad holds the X-Road header fields and the metaservice bodies.
	NSXRoad = "http://x-road.eu/xsd/xroad.xsd"
	// NSIdentifiers holds the parts of X-Road identifiers and objectType.
	NSIdentifiers = "http://x-road.eu/xsd/identifiers"
	// NSRepresentation holds the third-party representation extension.
	NSRepresentation = "http://x-road.eu/xsd/representation.xsd"
	// NSSampan holds Sampan's own header extensions (purpose, legalBasis).
	// A URN, so that no one mistakes it for a document to fetch; the
	// trailing 1 is the extension's version.
	NSSampan = "urn:sampan:xroad:ext:1"
	// ActorNext is the SOAP 1.1 actor naming the next receiver.
	ActorNext = "http://schemas.xmlsoap.org/soap/actor/next"
)

// ProtocolVersion is the only protocolVersion header value accepted.
const ProtocolVersion = "4.0"

// Fault codes of refusals that only the SOAP protocol has; the other
// refusals use the r1 error types, which share X-Road's fault codes. The
// values are the CamelCase spelling; FaultCode gives the other.
const (
	TypeInvalidSoap            = "Client.InvalidSoap"
	TypeMissingHeader          = "Client.MissingHeader"
	TypeMissingHeaderField     = "Client.MissingHeaderField"
	TypeDuplicateHeaderField   = "Client.DuplicateHeaderField"
	TypeInvalidProtocolVersion = "Client.InvalidProtocolVersion"
	TypeMissingBody            = "Client.MissingBody"
	TypeInvalidBody            = "Client.InvalidBody"
	// TypeInconsistentHeaders: the body element is not named after the
	// service code.
	TypeInconsistentHeaders = "Client.InconsistentHeaders"
	TypeInvalidContentType  = "Client.InvalidContentType"
	TypeMimeParsingFailed   = "Client.MimeParsingFailed"
	// TypeMustUnderstand refuses a header addressed to the gateway
	// (actor next) with mustUnderstand set that the gateway does not know.
	TypeMustUnderstand = "Client.MustUnderstand"
	// TypeInconsistentResponse: the provider's response does not carry
	// the request's header values (CheckConsistent).
	TypeInconsistentResponse = "Server.ClientProxy.InconsistentResponse"
)

// Limits bound what the parsers accept. The zero value of each field
// means its default.
type Limits struct {
	// MaxSOAPSize is the largest SOAP part held, in bytes (default 1 MiB).
	MaxSOAPSize int64
	// MaxDepth is the deepest element nesting (default 64).
	MaxDepth int
	// MaxAttrs is the most attributes, namespace declarations included,
	// on one element (default 32).
	MaxAttrs int
	// MaxNameLen is the longest element or attribute local name and
	// namespace URI, in bytes (default 256).
	MaxNameLen int
	// MaxFieldLen is the longest text of one header field, in bytes
	// (default 1024).
	MaxFieldLen int
	// MaxParts is the most MIME parts of a multipart message, the SOAP
	// part included (default 64).
	MaxParts int
	// MaxPartHeaderSize is the largest header block of one MIME part, in
	// bytes (default 8 KiB).
	MaxPartHeaderSize int
}

// Default limits.
const (
	DefaultMaxSOAPSize       = 1 << 20
	DefaultMaxDepth          = 64
	DefaultMaxAttrs          = 32
	DefaultMaxNameLen        = 256
	DefaultMaxFieldLen       = 1024
	DefaultMaxParts          = 64
	DefaultMaxPartHeaderSize = 8 << 10
)

// withDefaults returns l with every zero field set to its default.
func (l Limits) withDefaults() Limits {
	if l.MaxSOAPSize <= 0 {
		l.MaxSOAPSize = DefaultMaxSOAPSize
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultMaxDepth
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = DefaultMaxAttrs
	}
	if l.MaxNameLen <= 0 {
		l.MaxNameLen = DefaultMaxNameLen
	}
	if l.MaxFieldLen <= 0 {
		l.MaxFieldLen = DefaultMaxFieldLen
	}
	if l.MaxParts <= 0 {
		l.MaxParts = DefaultMaxParts
	}
	if l.MaxPartHeaderSize <= 0 {
		l.MaxPartHeaderSize = DefaultMaxPartHeaderSize
	}
	return l
}

// refuse returns a refusal of the given fault code with a message safe to
// show the sender.
func refuse(typ, format string, args ...any) *r1.Error {
	return r1.New(typ, format, args...)
}

// refuseCause is refuse with an internal cause.
func refuseCause(err error, typ, format string, args ...any) *r1.Error {
	return r1.Wrap(err, typ, "%s", fmt.Sprintf(format, args...))
}
