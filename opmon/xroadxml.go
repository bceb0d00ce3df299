package opmon

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/sampan-exchange/sampan/ident"
)

// The XML namespaces of X-Road's operational monitoring protocol
// (PR-OPMON): the request and response elements and their children are
// in NamespaceOpMonitoring, the parts of an identifier in
// NamespaceIdentifiers.
const (
	NamespaceOpMonitoring = "http://x-road.eu/xsd/op-monitoring.xsd"
	NamespaceIdentifiers  = "http://x-road.eu/xsd/identifiers"
)

// ErrInvalidRequest wraps every error of a PR-OPMON request that is the
// caller's mistake: a body that is not the element the protocol defines,
// a bad time interval, an unknown output field, a bad identifier. The
// error's text is safe to show the caller: answer it with a client fault
// (X-Road's own monitoring answers Client.InvalidRequest). Other errors
// are the store's failures, to log and answer as internal errors.
var ErrInvalidRequest = errors.New("invalid operational monitoring request")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidRequest}, args...)...)
}

// Bounds of a request body. The two requests are small: an interval, an
// identifier and a few output field names.
const (
	maxRequestBody  = 64 << 10
	maxText         = 1024
	maxOutputFields = 64
)

// bodyDecoder reads one request element with encoding/xml, refusing what
// the protocol never needs: document type declarations (and with them
// entity definitions), processing instructions after the XML
// declaration, encodings other than UTF-8, text beside child elements,
// attributes other than namespace declarations and objectType. Depth and
// breadth are bounded by the walk itself: it follows the schema, at most
// four levels deep (request, searchCriteria, client, its parts), takes
// each element once (outputField at most maxOutputFields times), and
// stops at the first element the schema does not put there.
type bodyDecoder struct {
	d      *xml.Decoder
	tokens int
}

// newBodyDecoder reads at most maxRequestBody bytes of body.
func newBodyDecoder(body io.Reader) (*bodyDecoder, error) {
	b, err := io.ReadAll(io.LimitReader(body, maxRequestBody+1))
	if err != nil {
		return nil, fmt.Errorf("read operational monitoring request: %w", err)
	}
	if len(b) > maxRequestBody {
		return nil, invalid("the body is larger than %d bytes", maxRequestBody)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	// No Entity map: only the five predefined entities; no
	// CharsetReader: a declared encoding other than UTF-8 is refused.
	return &bodyDecoder{d: d}, nil
}

// token is the next token, refusing directives and, but for a leading
// XML declaration, processing instructions. Comments are skipped.
func (x *bodyDecoder) token() (xml.Token, error) {
	for {
		tok, err := x.d.Token()
		if err == io.EOF {
			return nil, err
		}
		if err != nil {
			return nil, invalid("not well-formed XML: %v", err)
		}
		x.tokens++
		switch t := tok.(type) {
		case xml.Comment:
			continue
		case xml.Directive:
			return nil, invalid("document type declarations and other directives are refused")
		case xml.ProcInst:
			if t.Target != "xml" || x.tokens != 1 {
				return nil, invalid("processing instruction <?%s?> refused", t.Target)
			}
			continue
		}
		return tok, nil
	}
}

// checkAttrs allows namespace declarations and, when objectType is set,
// the identifiers' objectType attribute, returned.
func checkAttrs(el xml.StartElement, objectType bool) (string, error) {
	var ot string
	for _, a := range el.Attr {
		switch {
		case a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns":
		case objectType && a.Name.Space == NamespaceIdentifiers && a.Name.Local == "objectType":
			ot = strings.TrimSpace(a.Value)
		default:
			return "", invalid("%s: attribute %s not allowed", el.Name.Local, a.Name.Local)
		}
	}
	return ot, nil
}

// root reads the request element, which must be name in
// NamespaceOpMonitoring.
func (x *bodyDecoder) root(name string) error {
	for {
		tok, err := x.token()
		if err == io.EOF {
			return invalid("empty body: want the element %s", name)
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return invalid("text outside the element %s", name)
			}
		case xml.StartElement:
			if t.Name.Local != name || t.Name.Space != NamespaceOpMonitoring {
				return invalid("the body is {%s}%s, not {%s}%s", t.Name.Space, t.Name.Local, NamespaceOpMonitoring, name)
			}
			_, err := checkAttrs(t, false)
			return err
		default:
			return invalid("unexpected %T before the element %s", tok, name)
		}
	}
}

// end checks that nothing but white space and comments follows the
// request element.
func (x *bodyDecoder) end() error {
	for {
		tok, err := x.token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if t, ok := tok.(xml.CharData); !ok || len(bytes.TrimSpace(t)) != 0 {
			return invalid("content after the request element")
		}
	}
}

// child returns the next child element of parent, which must be in ns, or
// ok false at parent's end. Text between children must be white space.
func (x *bodyDecoder) child(parent, ns string) (el xml.StartElement, ok bool, err error) {
	for {
		tok, err := x.token()
		if err == io.EOF {
			return el, false, invalid("%s: cut short", parent)
		}
		if err != nil {
			return el, false, err
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return el, false, invalid("%s: text beside child elements", parent)
			}
		case xml.EndElement:
			return el, false, nil
		case xml.StartElement:
			if t.Name.Space != ns {
				return el, false, invalid("%s: element {%s}%s is not in the namespace %s", parent, t.Name.Space, t.Name.Local, ns)
			}
			return t, true, nil
		}
	}
}

// text reads the text of the element el, just started, to its end; child
// elements are refused.
func (x *bodyDecoder) text(el xml.StartElement) (string, error) {
	if _, err := checkAttrs(el, false); err != nil {
		return "", err
	}
	var b []byte
	for {
		tok, err := x.token()
		if err == io.EOF {
			return "", invalid("%s: cut short", el.Name.Local)
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.CharData:
			b = append(b, t...)
			if len(b) > maxText {
				return "", invalid("%s: longer than %d bytes", el.Name.Local, maxText)
			}
		case xml.EndElement:
			return string(b), nil
		default:
			return "", invalid("%s: child elements are not allowed", el.Name.Local)
		}
	}
}

// sequence checks that the children of an element come in the schema's
// order, each at most once.
type sequence struct {
	parent string
	names  []string
	seen   []bool
	last   int
}

func newSequence(parent string, names ...string) *sequence {
	return &sequence{parent: parent, names: names, seen: make([]bool, len(names)), last: -1}
}

func (s *sequence) take(name string) error {
	for i, n := range s.names {
		if n != name {
			continue
		}
		if s.seen[i] {
			return invalid("%s: %s given twice", s.parent, name)
		}
		if i < s.last {
			return invalid("%s: %s must come before %s", s.parent, name, s.names[s.last])
		}
		s.seen[i], s.last = true, i
		return nil
	}
	return invalid("%s: unknown element %s", s.parent, name)
}

func (s *sequence) require(names ...string) error {
	for _, name := range names {
		for i, n := range s.names {
			if n == name && !s.seen[i] {
				return invalid("%s: %s is missing", s.parent, name)
			}
		}
	}
	return nil
}

// long reads an xs:long element.
func (x *bodyDecoder) long(el xml.StartElement, path string) (int64, error) {
	s, err := x.text(el)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseInt(strings.TrimPrefix(strings.TrimSpace(s), "+"), 10, 64)
	if err != nil {
		return 0, invalid("%s: %q is not an integer", path, s)
	}
	return v, nil
}

// clientID reads an element of X-Road's client identifier type, just
// started: objectType MEMBER or SUBSYSTEM, then the instance, member
// class, member code and (for a subsystem only) subsystem code.
func (x *bodyDecoder) clientID(el xml.StartElement, path string) (ident.ClientID, error) {
	ot, err := checkAttrs(el, true)
	if err != nil {
		return ident.ClientID{}, err
	}
	if ot != "MEMBER" && ot != "SUBSYSTEM" {
		return ident.ClientID{}, invalid("%s: objectType %q is neither MEMBER nor SUBSYSTEM", path, ot)
	}
	seq := newSequence(path, "xRoadInstance", "memberClass", "memberCode", "subsystemCode")
	var c ident.ClientID
	for {
		part, ok, err := x.child(path, NamespaceIdentifiers)
		if err != nil {
			return ident.ClientID{}, err
		}
		if !ok {
			break
		}
		if err := seq.take(part.Name.Local); err != nil {
			return ident.ClientID{}, err
		}
		v, err := x.text(part)
		if err != nil {
			return ident.ClientID{}, err
		}
		switch part.Name.Local {
		case "xRoadInstance":
			c.Instance = v
		case "memberClass":
			c.Class = v
		case "memberCode":
			c.Code = v
		case "subsystemCode":
			c.Subsystem = v
		}
	}
	if err := seq.require("xRoadInstance", "memberClass", "memberCode"); err != nil {
		return ident.ClientID{}, err
	}
	switch {
	case ot == "SUBSYSTEM" && c.Subsystem == "":
		return ident.ClientID{}, invalid("%s: a SUBSYSTEM needs a subsystemCode", path)
	case ot == "MEMBER" && seq.seen[3]:
		return ident.ClientID{}, invalid("%s: a MEMBER has no subsystemCode", path)
	}
	if err := c.Validate(); err != nil {
		return ident.ClientID{}, invalid("%s: %v", path, err)
	}
	return c, nil
}

// xmlOut writes a response element: the opm prefix is bound to
// NamespaceOpMonitoring and id to NamespaceIdentifiers on the element
// itself, so that it stands alone inside any envelope.
type xmlOut struct {
	b bytes.Buffer
}

func (o *xmlOut) open(name string) { o.b.WriteString("<om:" + name + ">") }

func (o *xmlOut) close(name string) { o.b.WriteString("</om:" + name + ">") }

func (o *xmlOut) elem(ns, name, text string) {
	o.b.WriteString("<" + ns + ":" + name + ">")
	xml.EscapeText(&o.b, []byte(text))
	o.b.WriteString("</" + ns + ":" + name + ">")
}

func (o *xmlOut) root(name string) {
	o.b.WriteString(`<om:` + name + ` xmlns:om="` + NamespaceOpMonitoring + `" xmlns:id="` + NamespaceIdentifiers + `">`)
}

func (o *xmlOut) int(name string, v int64) { o.elem("om", name, strconv.FormatInt(v, 10)) }

func (o *xmlOut) double(name string, v float64) {
	o.elem("om", name, strconv.FormatFloat(v, 'g', -1, 64))
}

// service writes a service identifier element.
func (o *xmlOut) service(name string, s ident.ServiceID) {
	o.b.WriteString(`<om:` + name + ` id:objectType="SERVICE">`)
	o.elem("id", "xRoadInstance", s.Provider.Instance)
	o.elem("id", "memberClass", s.Provider.Class)
	o.elem("id", "memberCode", s.Provider.Code)
	if s.Provider.Subsystem != "" {
		o.elem("id", "subsystemCode", s.Provider.Subsystem)
	}
	o.elem("id", "serviceCode", s.Code)
	if s.Version != "" {
		o.elem("id", "serviceVersion", s.Version)
	}
	o.close(name)
}
