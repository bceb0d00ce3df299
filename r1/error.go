// Package r1 implements the client side of the X-Road Message Protocol for
// REST, version r1: request parsing, the X-Road-* headers, header
// filtering, and the error body (JSON, or XML when the client asks for
// it) with its X-Road-Error header.
package r1

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error types. The prefix names who failed: Client for the caller's
// mistakes, Server.ClientProxy for the consumer's gateway and
// Server.ServerProxy for the provider's gateway.
const (
	TypeInvalidRequest        = "Client.BadRequest"
	TypeInvalidClientID       = "Client.InvalidClientIdentifier"
	TypeInvalidServiceID      = "Client.InvalidServiceIdentifier"
	TypeInvalidHeader         = "Client.InvalidHttpHeader"
	TypeRequestTooLarge       = "Client.RequestTooLarge"
	TypeURITooLong            = "Client.UriTooLong"
	TypeHeadersTooLarge       = "Client.HeadersTooLarge"
	TypeUnknownClient         = "Server.ClientProxy.UnknownMember"
	TypeClientNotHosted       = "Server.ClientProxy.ClientNotRegistered"
	TypeUnknownService        = "Server.ClientProxy.UnknownService"
	TypeOutdatedGlobalConf    = "Server.ClientProxy.OutdatedGlobalConf"
	TypeNetworkError          = "Server.ClientProxy.NetworkError"
	TypeSSLAuthFailed         = "Server.ClientProxy.SslAuthenticationFailed"
	TypeClientSignature       = "Server.ClientProxy.InvalidSignatureValue"
	TypeFederationOff         = "Server.ClientProxy.FederationNotAllowed"
	TypeClientLoggingFailed   = "Server.ClientProxy.LoggingFailed"
	TypeClientTimestampFailed = "Server.ClientProxy.TimestampingFailed"
	TypeClientInternal        = "Server.ClientProxy.InternalError"
	TypeSigningFailed         = "Server.ClientProxy.CannotCreateSignature"
	TypeServerAccessDenied    = "Server.ServerProxy.AccessDenied"
	TypeServerUnknownSvc      = "Server.ServerProxy.UnknownService"
	TypeServerOutdatedConf    = "Server.ServerProxy.OutdatedGlobalConf"
	TypeServerSignature       = "Server.ServerProxy.InvalidSignatureValue"
	TypeServerFederationOff   = "Server.ServerProxy.FederationNotAllowed"
	TypeServerLoggingFailed   = "Server.ServerProxy.LoggingFailed"
	TypeServerTimestampFailed = "Server.ServerProxy.TimestampingFailed"
	TypeServerAuthFailed      = "Server.ServerProxy.SslAuthenticationFailed"
	TypeServerInvalidReq      = "Server.ServerProxy.InvalidRequest"
	TypeServiceFailed         = "Server.ServerProxy.ServiceFailed"
	TypeServerInternal        = "Server.ServerProxy.InternalError"
	TypeServerTooLarge        = "Server.ServerProxy.RequestTooLarge"
	// PolicyDenied: the sovereignty rules of the gateway's country refuse
	// the request; the message names the rule and what would be needed.
	TypeClientPolicyDenied = "Server.ClientProxy.PolicyDenied"
	TypeServerPolicyDenied = "Server.ServerProxy.PolicyDenied"
	// ReplayedRequest: the provider's gateway refuses a request signed too
	// far from its clock or whose nonce it has seen (a replay).
	TypeServerReplayed = "Server.ServerProxy.ReplayedRequest"
	// AIServiceNotEvaluated: the service is a registered AI service whose
	// risk tier requires an accepted passing evaluation of its current
	// model version, and it has none; the message says what is missing.
	// The consumer's gateway refuses the same call before anything leaves
	// it, under its own country's rules and the provider's.
	TypeServerAINotEvaluated = "Server.ServerProxy.AIServiceNotEvaluated"
	TypeClientAINotEvaluated = "Server.ClientProxy.AIServiceNotEvaluated"
	// InvalidSecurityServer: the gateway the client named in
	// X-Road-Security-Server is not registered or does not serve the
	// provider (at the consumer's gateway), or is not the gateway the
	// request reached (at the provider's).
	TypeInvalidSecurityServer       = "Server.ClientProxy.InvalidSecurityServer"
	TypeServerInvalidSecurityServer = "Server.ServerProxy.InvalidSecurityServer"
)

// known is the set of the error types above.
var known = func() map[string]bool {
	m := map[string]bool{}
	for _, t := range []string{
		TypeInvalidRequest, TypeInvalidClientID, TypeInvalidServiceID, TypeInvalidHeader, TypeRequestTooLarge, TypeURITooLong, TypeHeadersTooLarge, TypeUnknownClient, TypeClientNotHosted, TypeUnknownService, TypeOutdatedGlobalConf, TypeNetworkError, TypeSSLAuthFailed, TypeClientSignature, TypeFederationOff, TypeClientLoggingFailed, TypeClientTimestampFailed, TypeClientInternal, TypeSigningFailed, TypeServerAccessDenied, TypeServerUnknownSvc, TypeServerOutdatedConf, TypeServerSignature, TypeServerFederationOff, TypeServerLoggingFailed, TypeServerTimestampFailed, TypeServerAuthFailed, TypeServerInvalidReq, TypeServiceFailed, TypeServerInternal, TypeServerTooLarge, TypeClientPolicyDenied, TypeServerPolicyDenied, TypeServerReplayed, TypeServerAINotEvaluated, TypeClientAINotEvaluated, TypeInvalidSecurityServer, TypeServerInvalidSecurityServer,
	} {
		m[t] = true
	}
	return m
}()

// Known reports whether typ is one of the error types this package
// defines. Metrics and monitoring label errors by type and fold any other
// (an unknown type relayed from a peer) into one value.
func Known(typ string) bool { return known[typ] }

// Error is a protocol error: the r1 type, the HTTP status, a message that
// is safe to show the caller, and the internal cause, which is only logged.
type Error struct {
	Type    string
	Status  int
	Message string
	Cause   error
}

// Error returns the type, message and cause, for logs.
func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Type, e.Message, e.Cause)
	}
	return e.Type + ": " + e.Message
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Cause }

// StatusFor returns the HTTP status of an error type, as PR-REST §4.6
// maps them: 400 for the caller's mistakes (Client.*), 500 for failures of
// the gateways or of the service (Server.*).
func StatusFor(typ string) int {
	if strings.HasPrefix(typ, "Client.") {
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// New returns an Error of the given type, with the status PR-REST maps it
// to.
func New(typ string, format string, args ...any) *Error {
	return &Error{Type: typ, Status: StatusFor(typ), Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an Error whose internal cause is err.
func Wrap(err error, typ string, format string, args ...any) *Error {
	return &Error{Type: typ, Status: StatusFor(typ), Message: fmt.Sprintf(format, args...), Cause: err}
}

// As returns the *Error in err's chain, or an internal error of the given
// type that hides err from the caller.
func As(err error, internalType string) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Wrap(err, internalType, "internal error")
}

// Body is the error body, in JSON or in XML (root element error).
type Body struct {
	Type    string `json:"type" xml:"type"`
	Message string `json:"message" xml:"message"`
	Detail  string `json:"detail" xml:"detail"`
}

// Write renders e as JSON: the X-Road-Error header carries the type, the
// body the type, the message and, as detail, the exchange id that ties
// the answer to the gateway's log line. Gateways answer each other with
// it; clients get WriteAs.
func Write(w http.ResponseWriter, e *Error, detail string) { WriteAs(w, e, detail, FormatJSON) }

// WriteAs renders e in the format f: JSON, or an XML document whose
// root element error holds the same three fields as elements type,
// message and detail. Either way Content-Type names the format and its
// character encoding (PR-REST §4.6).
func WriteAs(w http.ResponseWriter, e *Error, detail string, f Format) {
	h := w.Header()
	var b []byte
	if f == FormatXML {
		h.Set("Content-Type", "application/xml; charset=utf-8")
		b = xmlBody(Body{Type: e.Type, Message: e.Message, Detail: detail})
	} else {
		h.Set("Content-Type", "application/json; charset=utf-8")
		b, _ = json.Marshal(Body{Type: e.Type, Message: e.Message, Detail: detail})
		b = append(b, '\n')
	}
	h.Set(HeaderError, e.Type)
	h.Del("Content-Length")
	w.WriteHeader(e.Status)
	w.Write(b)
}

// xmlBody renders an error body as XML.
func xmlBody(body Body) []byte {
	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString("<error>")
	for _, f := range [...]struct{ name, v string }{{"type", body.Type}, {"message", body.Message}, {"detail", body.Detail}} {
		b.WriteString("<" + f.name + ">")
		xml.EscapeText(&b, []byte(f.v))
		b.WriteString("</" + f.name + ">")
	}
	b.WriteString("</error>\n")
	return b.Bytes()
}

// ReadBody parses an error body, as relayed from a peer gateway. It
// returns nil when b is not one.
func ReadBody(b []byte) *Body {
	var body Body
	if err := json.Unmarshal(b, &body); err != nil || body.Type == "" {
		return nil
	}
	return &body
}
