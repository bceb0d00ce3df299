package soap

import (
	"bytes"
	"encoding/xml"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/sampan-exchange/sampan/r1"
)

// Spelling chooses how fault codes are written.
type Spelling int

const (
	// SpellingCamel writes fault codes as PR-MESS documents them and as
	// X-Road security servers before 7.8 send them:
	// Server.ClientProxy.NetworkError. The zero value.
	SpellingCamel Spelling = iota
	// SpellingSnake writes fault codes as X-Road 7.8 sends them: the
	// prefix in lower case and the code in lower-case words joined by
	// underscores, server.clientproxy.network_error. X-Road 7.8 moved its
	// error codes to one scheme shared with its management APIs and user
	// interface (where the codes are also translation keys); some codes
	// were renamed on the way (OutdatedGlobalConf became
	// global_conf_outdated), so the table below spells each one.
	SpellingSnake
)

// faultCodes maps each fault code in the CamelCase spelling (the r1 error
// types and this package's own) to its X-Road 7.8 spelling. Codes X-Road
// has are spelled as X-Road 7.8 spells them; Sampan's own codes follow
// the same rule (prefix in lower case, code in snake case).
var faultCodes = map[string]string{
	r1.TypeInvalidRequest:        "client.bad_request",
	r1.TypeInvalidClientID:       "client.invalid_client_identifier",
	r1.TypeInvalidServiceID:      "client.invalid_service_identifier",
	r1.TypeInvalidHeader:         "client.invalid_http_header",
	r1.TypeRequestTooLarge:       "client.request_too_large",
	r1.TypeURITooLong:            "client.uri_too_long",
	r1.TypeHeadersTooLarge:       "client.headers_too_large",
	r1.TypeUnknownClient:         "server.clientproxy.unknown_member",
	r1.TypeClientNotHosted:       "server.clientproxy.client_not_registered",
	r1.TypeUnknownService:        "server.clientproxy.unknown_service",
	r1.TypeOutdatedGlobalConf:    "server.clientproxy.global_conf_outdated",
	r1.TypeNetworkError:          "server.clientproxy.network_error",
	r1.TypeSSLAuthFailed:         "server.clientproxy.ssl_authentication_failed",
	r1.TypeClientSignature:       "server.clientproxy.invalid_signature_value",
	r1.TypeFederationOff:         "server.clientproxy.federation_not_allowed",
	r1.TypeClientLoggingFailed:   "server.clientproxy.logging_failed",
	r1.TypeClientTimestampFailed: "server.clientproxy.timestamping_failed",
	r1.TypeClientInternal:        "server.clientproxy.internal_error",
	r1.TypeSigningFailed:         "server.clientproxy.cannot_create_signature",
	r1.TypeClientPolicyDenied:    "server.clientproxy.policy_denied",
	r1.TypeServerAccessDenied:    "server.serverproxy.access_denied",
	r1.TypeServerUnknownSvc:      "server.serverproxy.unknown_service",
	r1.TypeServerOutdatedConf:    "server.serverproxy.global_conf_outdated",
	r1.TypeServerSignature:       "server.serverproxy.invalid_signature_value",
	r1.TypeServerFederationOff:   "server.serverproxy.federation_not_allowed",
	r1.TypeServerLoggingFailed:   "server.serverproxy.logging_failed",
	r1.TypeServerTimestampFailed: "server.serverproxy.timestamping_failed",
	r1.TypeServerAuthFailed:      "server.serverproxy.ssl_authentication_failed",
	r1.TypeServerInvalidReq:      "server.serverproxy.invalid_request",
	r1.TypeServiceFailed:         "server.serverproxy.service_failed",
	r1.TypeServerInternal:        "server.serverproxy.internal_error",
	r1.TypeServerTooLarge:        "server.serverproxy.request_too_large",
	r1.TypeServerPolicyDenied:    "server.serverproxy.policy_denied",
	r1.TypeServerReplayed:        "server.serverproxy.replayed_request",
	r1.TypeServerAINotEvaluated:  "server.serverproxy.ai_service_not_evaluated",
	TypeInvalidSoap:              "client.invalid_soap",
	TypeMissingHeader:            "client.missing_header",
	TypeMissingHeaderField:       "client.missing_header_field",
	TypeDuplicateHeaderField:     "client.duplicate_header_field",
	TypeInvalidProtocolVersion:   "client.invalid_protocol_version",
	TypeMissingBody:              "client.missing_body",
	TypeInvalidBody:              "client.invalid_body",
	TypeInconsistentHeaders:      "client.inconsistent_headers",
	TypeInvalidContentType:       "client.invalid_content_type",
	TypeMimeParsingFailed:        "client.mime_parsing_failed",
	TypeMustUnderstand:           "client.must_understand",
	TypeInconsistentResponse:     "server.clientproxy.inconsistent_response",
}

// camelCodes is faultCodes reversed.
var camelCodes = func() map[string]string {
	m := make(map[string]string, len(faultCodes))
	for k, v := range faultCodes {
		m[v] = k
	}
	return m
}()

// FaultCode returns the fault code of an error type in the given
// spelling. A type the table does not know (a code relayed from a
// provider) is returned unchanged.
func FaultCode(typ string, sp Spelling) string {
	if sp == SpellingSnake {
		if c, ok := faultCodes[typ]; ok {
			return c
		}
	}
	return typ
}

// CanonicalCode returns a fault code in the CamelCase spelling: a code in
// X-Road 7.8's spelling that the table knows is translated, a namespace
// prefix (SOAP-ENV:Server) is dropped, anything else is returned as is.
// Monitoring labels faults by it whichever spelling the sender used.
func CanonicalCode(code string) string {
	code = strings.TrimSpace(code)
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[i+1:]
	}
	if c, ok := camelCodes[code]; ok {
		return c
	}
	return code
}

// Fault is a SOAP 1.1 fault.
type Fault struct {
	Code   string // faultcode, as written
	String string // faultstring
	Actor  string // faultactor, usually empty
	// Detail is the text of the X-Road faultDetail element inside
	// detail: the id that ties the fault to the sender's log line.
	Detail string
	// HasDetail reports whether the fault had a detail element at all.
	HasDetail bool
}

// NewFault returns the fault for a refusal: its type as the fault code in
// the given spelling, its safe message (never the cause) as faultstring,
// and detail, the exchange id, as the faultDetail.
func NewFault(e *r1.Error, detail string, sp Spelling) *Fault {
	return &Fault{Code: FaultCode(e.Type, sp), String: e.Message, Detail: detail, HasDetail: true}
}

// Marshal returns a whole SOAP envelope carrying f, without a header.
func (f *Fault) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<SOAP-ENV:Envelope xmlns:SOAP-ENV="` + NSEnvelope + `"><SOAP-ENV:Body><SOAP-ENV:Fault>`)
	writeTextElement(&b, "faultcode", f.Code)
	writeTextElement(&b, "faultstring", f.String)
	writeTextElement(&b, "faultactor", f.Actor)
	b.WriteString(`<detail><faultDetail xmlns="">`)
	xml.EscapeText(&b, []byte(f.Detail))
	b.WriteString(`</faultDetail></detail>`)
	b.WriteString(`</SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>` + "\n")
	return b.Bytes()
}

// FaultStatus is the HTTP status of a fault, as the SOAP 1.1 HTTP
// binding requires. (X-Road's security servers answer their own faults
// with 200; SOAP clients accept either.)
const FaultStatus = http.StatusInternalServerError

// WriteFault writes f as the HTTP response: status FaultStatus, content
// type text/xml with charset UTF-8.
func WriteFault(w http.ResponseWriter, f *Fault) {
	b := f.Marshal()
	h := w.Header()
	h.Set("Content-Type", ContentTypeSOAP)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(FaultStatus)
	w.Write(b)
}

// ParseFault parses a SOAP part expected to be a fault, as relayed from a
// provider. It returns the fault, or an error when b is not a SOAP
// envelope or its body is not a fault.
func ParseFault(b []byte, lim Limits) (*Fault, error) {
	env, err := Parse(b, lim)
	if err != nil {
		return nil, err
	}
	if env.Fault == nil {
		return nil, refuse(TypeInvalidBody, "the SOAP message is not a fault")
	}
	return env.Fault, nil
}

// maxFaultText bounds faultstring and detail text, which a provider may
// fill with more than a header field holds.
const maxFaultText = 64 << 10

// fault reads the children of soapenv:Fault, whose start tag was just
// read. SOAP 1.1 names them without a namespace.
func (p *parser) fault() (*Fault, error) {
	f := &Fault{}
	seen := map[string]bool{}
	for {
		tok, _, err := p.skipMisc("Fault")
		if err != nil {
			return nil, err
		}
		if _, ok := tok.(xml.EndElement); ok {
			if !seen["faultcode"] || !seen["faultstring"] {
				return nil, refuse(TypeInvalidBody, "a SOAP fault needs faultcode and faultstring")
			}
			return f, nil
		}
		se := tok.(xml.StartElement)
		name := se.Name.Local
		if se.Name.Space != "" || seen[name] {
			return nil, refuse(TypeInvalidBody, "unexpected element %s in a SOAP fault", name)
		}
		seen[name] = true
		switch name {
		case "faultcode":
			f.Code, err = p.text("faultcode")
		case "faultstring":
			f.String, err = p.textMax("faultstring", maxFaultText)
		case "faultactor":
			f.Actor, err = p.text("faultactor")
		case "detail":
			f.HasDetail = true
			err = p.faultDetail(f)
		default:
			return nil, refuse(TypeInvalidBody, "unexpected element %s in a SOAP fault", name)
		}
		if err != nil {
			return nil, err
		}
	}
}

// faultDetail reads detail, keeping the text of an X-Road faultDetail
// child and skipping anything else.
func (p *parser) faultDetail(f *Fault) error {
	for {
		tok, err := p.next()
		if err != nil {
			if err == io.EOF {
				return refuse(TypeInvalidSoap, "the message ends inside detail")
			}
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.StartElement:
			if t.Name.Local == "faultDetail" && f.Detail == "" {
				if f.Detail, err = p.textMax("faultDetail", maxFaultText); err != nil {
					return err
				}
			} else if err := p.skip(); err != nil {
				return err
			}
		}
	}
}

// writeTextElement writes <name>text</name> with text escaped.
func writeTextElement(b *bytes.Buffer, name, text string) {
	b.WriteString("<" + name + ">")
	xml.EscapeText(b, []byte(text))
	b.WriteString("</" + name + ">")
}
