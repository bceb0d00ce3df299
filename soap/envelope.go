package soap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sampan-exchange/sampan/r1"
)

// Header is the X-Road header of a message.
type Header struct {
	Client          ClientID
	Service         ServiceID
	ID              string // xrd:id
	UserID          string // xrd:userId, optional
	Issue           string // xrd:issue, optional
	ProtocolVersion string // xrd:protocolVersion, always "4.0" once parsed

	SecurityServer   *SecurityServerID // xrd:securityServer, optional
	RepresentedParty *RepresentedParty // repr:representedParty, optional
	RequestHash      *RequestHash      // xrd:requestHash, responses only

	// Purpose and LegalBasis are Sampan's sovereignty extensions
	// (namespace NSSampan), the SOAP form of r1's X-Road-Purpose and
	// X-Road-Legal-Basis.
	Purpose    string
	LegalBasis string

	// Other lists the header elements this package does not know, in
	// order. They are passed through untouched (their bytes stay in the
	// SOAP part).
	Other []Element
}

// Element is an element of the SOAP part: its name and where it lies.
type Element struct {
	Name xml.Name // namespace URI and local name
	Span Span
	// MustUnderstand reports a soapenv:mustUnderstand="1" attribute.
	MustUnderstand bool
	// Actor is the soapenv:actor attribute, empty when absent.
	Actor string
}

// Span is a byte range [Start, End) of the SOAP part as given to Parse.
type Span struct{ Start, End int64 }

// Bytes returns the bytes of b that s covers.
func (s Span) Bytes(b []byte) []byte { return b[s.Start:s.End] }

// Envelope is a parsed SOAP part. The spans let a caller keep or re-use
// the exact bytes of the original.
type Envelope struct {
	Header Header
	// HasHeader reports whether the envelope has a SOAP Header element;
	// only a fault may lack one.
	HasHeader bool
	// Operation is the one child element of the Body: the service's
	// operation (Document/Literal-wrapped), or soapenv:Fault.
	Operation Element
	// Fault is set when the body is a SOAP fault.
	Fault *Fault

	// EnvelopeStartTag and EnvelopeEndTag are the Envelope element's own
	// tags, which carry the namespace declarations the header may use.
	EnvelopeStartTag Span
	EnvelopeEndTag   Span
	// HeaderSpan is the whole soapenv:Header element, HeaderEndTag its
	// end tag (where a new header field goes). Both are zero without a
	// header.
	HeaderSpan   Span
	HeaderEndTag Span
	// BodySpan is the whole soapenv:Body element.
	BodySpan Span
	// RequestHashSpan is the xrd:requestHash element, if present.
	RequestHashSpan Span
}

// ReadSOAP reads a whole SOAP part from r, refusing more than
// lim.MaxSOAPSize bytes.
func ReadSOAP(r io.Reader, lim Limits) ([]byte, error) {
	lim = lim.withDefaults()
	b, err := io.ReadAll(io.LimitReader(r, lim.MaxSOAPSize+1))
	if err != nil {
		return nil, refuseCause(err, r1.TypeInvalidRequest, "cannot read the SOAP message")
	}
	if int64(len(b)) > lim.MaxSOAPSize {
		return nil, refuse(r1.TypeRequestTooLarge, "the SOAP message is larger than %d bytes", lim.MaxSOAPSize)
	}
	return b, nil
}

// Parse parses a SOAP 1.1 envelope carrying the X-Road headers and checks
// it against lim. Its refusals are *r1.Error values whose type is the
// fault code to answer with (the caller's mistake, Client.*): when the
// bytes come from a provider, the caller re-types them.
//
// Parse refuses: bytes that are not well-formed XML or not UTF-8; a
// document type declaration (so no external entity and no entity
// expansion), a processing instruction other than the XML declaration,
// entity references other than the five predefined ones; nesting,
// attribute counts, name lengths and header field lengths beyond lim; a
// SOAP 1.2 envelope; elements or text outside Header and Body; a Body
// without exactly one child element. Unless the body is a fault it also
// refuses a missing Header, a missing or repeated client, service, id or
// protocolVersion, a protocolVersion other than "4.0", identifiers that
// do not convert to the ident package's, a body element whose name does
// not start with the service code, and an unknown header addressed to the
// next receiver (actor next) with mustUnderstand set. Other
// unknown header elements are kept in Header.Other and passed through.
func Parse(b []byte, lim Limits) (*Envelope, error) {
	lim = lim.withDefaults()
	if int64(len(b)) > lim.MaxSOAPSize {
		return nil, refuse(r1.TypeRequestTooLarge, "the SOAP message is larger than %d bytes", lim.MaxSOAPSize)
	}
	env, err := newParser(b, lim).envelope()
	if err != nil {
		var e *r1.Error
		if errors.As(err, &e) {
			return nil, e
		}
		return nil, refuseCause(err, TypeInvalidSoap, "malformed SOAP message")
	}
	return env, nil
}

// ParseRequest is Parse for a request from a client: a fault body, which
// Parse accepts without X-Road headers (a provider may answer so), is
// refused.
func ParseRequest(b []byte, lim Limits) (*Envelope, error) {
	env, err := Parse(b, lim)
	if err != nil {
		return nil, err
	}
	if env.Fault != nil {
		return nil, refuse(TypeInvalidBody, "a request cannot be a SOAP fault")
	}
	return env, nil
}

// parser is one run of Parse.
type parser struct {
	base  int64 // offset of the decoder's input in the SOAP part
	dec   *xml.Decoder
	lim   Limits
	depth int
	n     int // tokens read
}

// newParser returns a parser of b, after a UTF-8 byte order mark if b
// starts with one (PR-MESS allows it).
func newParser(b []byte, lim Limits) *parser {
	p := &parser{lim: lim}
	if bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
		p.base = 3
	}
	p.dec = xml.NewDecoder(bytes.NewReader(b[p.base:]))
	p.dec.Strict = true
	return p
}

// offset returns the position in the SOAP part of the next token.
func (p *parser) offset() int64 { return p.base + p.dec.InputOffset() }

// next returns the next token, enforcing the limits and refusing
// directives and processing instructions.
func (p *parser) next() (xml.Token, error) {
	first := p.n == 0
	tok, err := p.dec.Token()
	if err != nil {
		if err == io.EOF {
			return nil, err
		}
		return nil, refuseCause(err, TypeInvalidSoap, "malformed XML: %s", safeSyntax(err))
	}
	p.n++
	switch t := tok.(type) {
	case xml.StartElement:
		p.depth++
		if p.depth > p.lim.MaxDepth {
			return nil, refuse(TypeInvalidSoap, "elements are nested deeper than %d", p.lim.MaxDepth)
		}
		if len(t.Attr) > p.lim.MaxAttrs {
			return nil, refuse(TypeInvalidSoap, "element %s has more than %d attributes", t.Name.Local, p.lim.MaxAttrs)
		}
		if err := p.checkName(t.Name); err != nil {
			return nil, err
		}
		for _, a := range t.Attr {
			if err := p.checkName(a.Name); err != nil {
				return nil, err
			}
		}
	case xml.EndElement:
		p.depth--
	case xml.Directive:
		return nil, refuse(TypeInvalidSoap, "document type declarations and other directives are refused")
	case xml.ProcInst:
		if !first || t.Target != "xml" {
			return nil, refuse(TypeInvalidSoap, "processing instructions are refused")
		}
	}
	return tok, nil
}

func (p *parser) checkName(n xml.Name) error {
	if len(n.Local) > p.lim.MaxNameLen || len(n.Space) > p.lim.MaxNameLen {
		return refuse(TypeInvalidSoap, "a name is longer than %d bytes", p.lim.MaxNameLen)
	}
	return nil
}

// safeSyntax returns the decoder's message without the input it quotes.
func safeSyntax(err error) string {
	var se *xml.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("line %d: %s", se.Line, truncate(se.Msg, 120))
	}
	if strings.Contains(err.Error(), "CharsetReader") {
		return "only UTF-8 is accepted"
	}
	return "unreadable"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// isSpace reports whether d holds only XML white space.
func isSpace(d []byte) bool { return len(bytes.TrimLeft(d, " \t\r\n")) == 0 }

// skipMisc reads white space and comments until a start or end element,
// refusing other text.
func (p *parser) skipMisc(where string) (xml.Token, int64, error) {
	for {
		at := p.offset()
		tok, err := p.next()
		if err != nil {
			if err == io.EOF {
				return nil, at, refuse(TypeInvalidSoap, "the message ends inside %s", where)
			}
			return nil, at, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if !isSpace(t) {
				return nil, at, refuse(TypeInvalidSoap, "text is not allowed in %s", where)
			}
		case xml.Comment, xml.ProcInst:
		default:
			return tok, at, nil
		}
	}
}

func (p *parser) envelope() (*Envelope, error) {
	env := &Envelope{}
	tok, at, err := p.skipMisc("the document")
	if err != nil {
		return nil, err
	}
	se, ok := tok.(xml.StartElement)
	if !ok {
		return nil, refuse(TypeInvalidSoap, "the document has no root element")
	}
	switch {
	case se.Name.Space == NSEnvelope12 && se.Name.Local == "Envelope":
		return nil, refuse(TypeInvalidSoap, "SOAP 1.2 is not supported: the X-Road message protocol uses SOAP 1.1")
	case se.Name.Space != NSEnvelope || se.Name.Local != "Envelope":
		return nil, refuse(TypeInvalidSoap, "the root element must be the SOAP 1.1 Envelope")
	}
	env.EnvelopeStartTag = Span{at, p.offset()}

	tok, at, err = p.skipMisc("Envelope")
	if err != nil {
		return nil, err
	}
	if se, ok := tok.(xml.StartElement); ok && se.Name.Space == NSEnvelope && se.Name.Local == "Header" {
		env.HasHeader = true
		if err := p.header(env, at); err != nil {
			return nil, err
		}
		tok, at, err = p.skipMisc("Envelope")
		if err != nil {
			return nil, err
		}
	}
	se, ok = tok.(xml.StartElement)
	if !ok || se.Name.Space != NSEnvelope || se.Name.Local != "Body" {
		return nil, refuse(TypeMissingBody, "the SOAP Body is missing")
	}
	if err := p.body(env, at); err != nil {
		return nil, err
	}
	tok, at, err = p.skipMisc("Envelope")
	if err != nil {
		return nil, err
	}
	if _, ok := tok.(xml.EndElement); !ok {
		return nil, refuse(TypeInvalidSoap, "nothing may follow the SOAP Body")
	}
	env.EnvelopeEndTag = Span{at, p.offset()}
	for {
		tok, err := p.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if !isSpace(t) {
				return nil, refuse(TypeInvalidSoap, "text follows the Envelope")
			}
		case xml.Comment:
		default:
			return nil, refuse(TypeInvalidSoap, "content follows the Envelope")
		}
	}
	if env.Fault == nil {
		if err := env.Header.check(env.HasHeader); err != nil {
			return nil, err
		}
		// Document/Literal-wrapped: the body element is named after the
		// service code (a response's adds "Response"). X-Road checks the
		// prefix only; Parse wants the name itself, so that an access
		// right to getCompany does not admit a body getCompanyOwners for
		// a service that dispatches on the body element.
		if op, code := env.Operation.Name.Local, env.Header.Service.Service; op != code && op != code+"Response" {
			return nil, refuse(TypeInconsistentHeaders, "the body element %s is not named after the service code %s", truncate(env.Operation.Name.Local, 64), env.Header.Service.Service)
		}
	}
	return env, nil
}

// body reads the Body element, whose start tag began at start.
func (p *parser) body(env *Envelope, start int64) error {
	found := false
	for {
		tok, at, err := p.skipMisc("Body")
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if !found {
				return refuse(TypeMissingBody, "the SOAP Body is empty")
			}
			env.BodySpan = Span{start, p.offset()}
			return nil
		case xml.StartElement:
			if found {
				return refuse(TypeInvalidBody, "the SOAP Body must have exactly one child element")
			}
			found = true
			if t.Name.Space == NSEnvelope && t.Name.Local == "Fault" {
				f, err := p.fault()
				if err != nil {
					return err
				}
				env.Fault = f
			} else if err := p.skip(); err != nil {
				return err
			}
			env.Operation = Element{Name: t.Name, Span: Span{at, p.offset()}}
		}
	}
}

// skip reads to the end of the element whose start tag was just read.
func (p *parser) skip() error {
	d := p.depth
	for p.depth >= d {
		if _, err := p.next(); err != nil {
			if err == io.EOF {
				return refuse(TypeInvalidSoap, "the message ends inside an element")
			}
			return err
		}
	}
	return nil
}

// text reads the text content of the element whose start tag was just
// read, refusing child elements and text longer than the field limit.
func (p *parser) text(field string) (string, error) { return p.textMax(field, p.lim.MaxFieldLen) }

// textMax is text with a limit of max bytes.
func (p *parser) textMax(field string, max int) (string, error) {
	var b strings.Builder
	for {
		tok, err := p.next()
		if err != nil {
			if err == io.EOF {
				return "", refuse(TypeInvalidSoap, "the message ends inside %s", field)
			}
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if b.Len()+len(t) > max {
				return "", refuse(TypeInvalidSoap, "%s is longer than %d bytes", field, max)
			}
			b.Write(t)
		case xml.StartElement:
			return "", refuse(TypeInvalidSoap, "%s must hold text only", field)
		case xml.EndElement:
			return strings.TrimSpace(b.String()), nil
		}
	}
}

// headerFields names the X-Road header elements Parse reads.
var headerFields = map[xml.Name]string{
	{Space: NSXRoad, Local: "client"}:                    "client",
	{Space: NSXRoad, Local: "service"}:                   "service",
	{Space: NSXRoad, Local: "id"}:                        "id",
	{Space: NSXRoad, Local: "userId"}:                    "userId",
	{Space: NSXRoad, Local: "issue"}:                     "issue",
	{Space: NSXRoad, Local: "protocolVersion"}:           "protocolVersion",
	{Space: NSXRoad, Local: "requestHash"}:               "requestHash",
	{Space: NSXRoad, Local: "securityServer"}:            "securityServer",
	{Space: NSXRoad, Local: "centralService"}:            "centralService",
	{Space: NSRepresentation, Local: "representedParty"}: "representedParty",
	{Space: NSSampan, Local: "purpose"}:                  "purpose",
	{Space: NSSampan, Local: "legalBasis"}:               "legalBasis",
}

// header reads the Header element, whose start tag began at start.
func (p *parser) header(env *Envelope, start int64) error {
	h := &env.Header
	seen := map[string]bool{}
	for {
		tok, at, err := p.skipMisc("Header")
		if err != nil {
			return err
		}
		if _, ok := tok.(xml.EndElement); ok {
			env.HeaderEndTag = Span{at, p.offset()}
			env.HeaderSpan = Span{start, p.offset()}
			return nil
		}
		se := tok.(xml.StartElement)
		field, known := headerFields[se.Name]
		if !known {
			el := Element{Name: se.Name}
			for _, a := range se.Attr {
				if a.Name.Space != NSEnvelope {
					continue
				}
				switch a.Name.Local {
				case "mustUnderstand":
					el.MustUnderstand = strings.TrimSpace(a.Value) == "1" || strings.TrimSpace(a.Value) == "true"
				case "actor":
					el.Actor = a.Value
				}
			}
			if el.MustUnderstand && el.Actor == ActorNext {
				return refuse(TypeMustUnderstand, "header %s is addressed to the gateway with mustUnderstand but is not understood", se.Name.Local)
			}
			if err := p.skip(); err != nil {
				return err
			}
			el.Span = Span{at, p.offset()}
			h.Other = append(h.Other, el)
			continue
		}
		if seen[field] {
			return refuse(TypeDuplicateHeaderField, "header field %s appears twice", field)
		}
		seen[field] = true
		switch field {
		case "client":
			v, err := p.identifier(field, se)
			if err != nil {
				return err
			}
			h.Client = ClientID{ObjectType: v.objectType, Instance: v.part[0], Class: v.part[1], Code: v.part[2], Subsystem: v.part[3]}
		case "service":
			v, err := p.identifier(field, se)
			if err != nil {
				return err
			}
			h.Service = ServiceID{ObjectType: v.objectType, Instance: v.part[0], Class: v.part[1], Code: v.part[2], Subsystem: v.part[3], Service: v.part[4], Version: v.part[5]}
		case "securityServer":
			v, err := p.identifier(field, se)
			if err != nil {
				return err
			}
			if v.objectType != ObjectServer || v.part[3] != "" || v.part[4] != "" || v.part[5] != "" {
				return refuse(TypeInvalidSoap, "header field securityServer must be a SERVER identifier")
			}
			h.SecurityServer = &SecurityServerID{Instance: v.part[0], Class: v.part[1], Code: v.part[2], ServerCode: v.part[6]}
		case "centralService":
			return refuse(r1.TypeInvalidServiceID, "central services are not supported; name the service with the service header")
		case "representedParty":
			rp, err := p.representedParty()
			if err != nil {
				return err
			}
			h.RepresentedParty = rp
		case "requestHash":
			alg := ""
			for _, a := range se.Attr {
				if a.Name.Space == "" && a.Name.Local == "algorithmId" {
					alg = a.Value
				}
			}
			v, err := p.text(field)
			if err != nil {
				return err
			}
			h.RequestHash = &RequestHash{AlgorithmID: alg, Value: strings.Join(strings.Fields(v), "")}
			env.RequestHashSpan = Span{at, p.offset()}
		default:
			v, err := p.text(field)
			if err != nil {
				return err
			}
			switch field {
			case "id":
				h.ID = v
			case "userId":
				h.UserID = v
			case "issue":
				h.Issue = v
			case "protocolVersion":
				h.ProtocolVersion = v
			case "purpose":
				h.Purpose = v
			case "legalBasis":
				h.LegalBasis = v
			}
		}
	}
}

// idParts names the parts of an X-Road identifier in schema order.
var idParts = []string{"xRoadInstance", "memberClass", "memberCode", "subsystemCode", "serviceCode", "serviceVersion", "serverCode"}

type rawID struct {
	objectType string
	part       [7]string
}

// identifier reads an identifier element: its objectType and parts.
func (p *parser) identifier(field string, se xml.StartElement) (rawID, error) {
	var v rawID
	for _, a := range se.Attr {
		if a.Name.Space == NSIdentifiers && a.Name.Local == "objectType" {
			v.objectType = strings.TrimSpace(a.Value)
		}
	}
	if v.objectType == "" {
		return v, refuse(invalidIDType(field), "header field %s has no id:objectType", field)
	}
	var seen [7]bool
	for {
		tok, _, err := p.skipMisc(field)
		if err != nil {
			return v, err
		}
		if _, ok := tok.(xml.EndElement); ok {
			return v, nil
		}
		se := tok.(xml.StartElement)
		i := -1
		if se.Name.Space == NSIdentifiers {
			for j, n := range idParts {
				if n == se.Name.Local {
					i = j
				}
			}
		}
		if i < 0 {
			return v, refuse(invalidIDType(field), "header field %s has an unknown part %s", field, se.Name.Local)
		}
		if seen[i] {
			return v, refuse(invalidIDType(field), "header field %s has %s twice", field, idParts[i])
		}
		seen[i] = true
		s, err := p.text(field + "/" + idParts[i])
		if err != nil {
			return v, err
		}
		v.part[i] = s
	}
}

func invalidIDType(field string) string {
	switch field {
	case "client":
		return r1.TypeInvalidClientID
	case "service":
		return r1.TypeInvalidServiceID
	}
	return TypeInvalidSoap
}

// representedParty reads repr:representedParty.
func (p *parser) representedParty() (*RepresentedParty, error) {
	rp := &RepresentedParty{}
	seen := map[string]bool{}
	for {
		tok, _, err := p.skipMisc("representedParty")
		if err != nil {
			return nil, err
		}
		if _, ok := tok.(xml.EndElement); ok {
			if rp.Code == "" {
				return nil, refuse(TypeMissingHeaderField, "representedParty needs a partyCode")
			}
			return rp, nil
		}
		se := tok.(xml.StartElement)
		if se.Name.Space != NSRepresentation || (se.Name.Local != "partyClass" && se.Name.Local != "partyCode") {
			return nil, refuse(TypeInvalidSoap, "representedParty has an unknown part %s", se.Name.Local)
		}
		if seen[se.Name.Local] {
			return nil, refuse(TypeDuplicateHeaderField, "representedParty has %s twice", se.Name.Local)
		}
		seen[se.Name.Local] = true
		s, err := p.text("representedParty/" + se.Name.Local)
		if err != nil {
			return nil, err
		}
		if se.Name.Local == "partyClass" {
			rp.Class = s
		} else {
			rp.Code = s
		}
	}
}

// check refuses a header that lacks a required field or whose
// identifiers are not valid.
func (h *Header) check(hasHeader bool) error {
	if !hasHeader {
		return refuse(TypeMissingHeader, "the SOAP Header with the X-Road header fields is missing")
	}
	if h.Client == (ClientID{}) {
		return refuse(TypeMissingHeaderField, "header field client is missing")
	}
	if h.Service == (ServiceID{}) {
		return refuse(TypeMissingHeaderField, "header field service is missing")
	}
	if h.ID == "" {
		return refuse(TypeMissingHeaderField, "header field id is missing")
	}
	if h.ProtocolVersion == "" {
		return refuse(TypeMissingHeaderField, "header field protocolVersion is missing")
	}
	if h.ProtocolVersion != ProtocolVersion {
		return refuse(TypeInvalidProtocolVersion, "protocolVersion must be %s", ProtocolVersion)
	}
	if _, err := h.Client.Ident(); err != nil {
		return refuseCause(err, r1.TypeInvalidClientID, "invalid client identifier: %s", trimIdentErr(err))
	}
	if h.Service.IsMonitoring() {
		if h.Service.ObjectType != ObjectService {
			return refuse(r1.TypeInvalidServiceID, "invalid service identifier: service objectType %q must be SERVICE", h.Service.ObjectType)
		}
		// A gateway's monitoring services belong to its owner, a member.
		if _, err := h.Service.Provider().Ident(); err != nil || h.Service.Subsystem != "" {
			return refuse(r1.TypeInvalidServiceID, "invalid service identifier: %s is a service of a gateway's owner, a member", h.Service.Service)
		}
	} else if _, err := h.Service.Ident(); err != nil {
		return refuseCause(err, r1.TypeInvalidServiceID, "invalid service identifier: %s", trimIdentErr(err))
	}
	if h.SecurityServer != nil {
		if _, err := h.SecurityServer.Ident(); err != nil {
			return refuseCause(err, TypeInvalidSoap, "invalid securityServer identifier: %s", trimIdentErr(err))
		}
	}
	return nil
}

// trimIdentErr returns an ident error's text without its common prefix.
func trimIdentErr(err error) string {
	return strings.TrimPrefix(err.Error(), "invalid identifier: ")
}

// OperationXML returns the body's element as a document of its own, its
// namespaces declared on it (they may have been declared on the
// Envelope), for a decoder that reads the element alone. soapPart is the
// bytes Parse read env from, already checked: no document type, bounded.
func (env *Envelope) OperationXML(soapPart []byte) ([]byte, error) {
	span := env.BodySpan
	if span.End <= span.Start || span.End > int64(len(soapPart)) {
		return nil, refuse(TypeMissingBody, "the SOAP Body is missing")
	}
	dec := xml.NewDecoder(bytes.NewReader(soapPart))
	var out bytes.Buffer
	enc := xml.NewEncoder(&out)
	depth, inBody := 0, -1
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, refuseCause(err, TypeInvalidSoap, "malformed SOAP message")
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if inBody < 0 && t.Name.Space == NSEnvelope && t.Name.Local == "Body" {
				inBody = depth
				continue
			}
			if inBody < 0 || depth <= inBody {
				continue
			}
			// The encoder declares each element's and attribute's
			// namespace itself; the original declarations are dropped.
			el := xml.StartElement{Name: t.Name}
			for _, a := range t.Attr {
				if a.Name.Space != "xmlns" && !(a.Name.Space == "" && a.Name.Local == "xmlns") {
					el.Attr = append(el.Attr, a)
				}
			}
			if err := enc.EncodeToken(el); err != nil {
				return nil, refuseCause(err, TypeInvalidBody, "cannot copy the body element")
			}
		case xml.EndElement:
			if inBody >= 0 && depth > inBody {
				if err := enc.EncodeToken(t); err != nil {
					return nil, refuseCause(err, TypeInvalidBody, "cannot copy the body element")
				}
				if depth == inBody+1 {
					if err := enc.Flush(); err != nil {
						return nil, err
					}
					return out.Bytes(), nil
				}
			}
			depth--
		case xml.CharData:
			if inBody >= 0 && depth > inBody {
				if err := enc.EncodeToken(t); err != nil {
					return nil, refuseCause(err, TypeInvalidBody, "cannot copy the body element")
				}
			}
		}
	}
	return nil, refuse(TypeMissingBody, "the SOAP Body has no element")
}
