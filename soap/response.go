package soap

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"fmt"
)

// HashRequest returns the requestHash of a request: the digest, with the
// algorithm named by URI, of the request's SOAP part (the whole HTTP body
// without attachments, the first MIME part with them).
func HashRequest(soapPart []byte, algorithmID string) ([]byte, error) {
	h, err := NewHash(algorithmID)
	if err != nil {
		return nil, fmt.Errorf("hash request: %w", err)
	}
	h.Write(soapPart)
	return h.Sum(nil), nil
}

// InsertRequestHash returns the response SOAP part with an xrd:requestHash
// header field carrying hash (base64) and algorithmID. A requestHash the
// response already has is replaced, as PR-MESS requires of the provider's
// gateway; otherwise the field goes last in the header. Every other byte
// is kept as it was. The new element declares its own namespace prefix,
// so it is correct whatever prefixes the response uses.
func InsertRequestHash(soapPart []byte, hash []byte, algorithmID string) ([]byte, error) {
	if _, err := NewHash(algorithmID); err != nil {
		return nil, fmt.Errorf("insert request hash: %w", err)
	}
	env, err := Parse(soapPart, Limits{MaxSOAPSize: int64(len(soapPart)) + 1})
	if err != nil {
		return nil, fmt.Errorf("insert request hash: %w", err)
	}
	return InsertRequestHashParsed(soapPart, env, hash, algorithmID)
}

// RequestHashElement is the xrd:requestHash header field InsertRequestHash
// puts in, declaring its own namespace prefix.
func RequestHashElement(hash []byte, algorithmID string) []byte {
	var el bytes.Buffer
	el.WriteString(`<xrd:requestHash xmlns:xrd="` + NSXRoad + `" algorithmId="`)
	xml.EscapeText(&el, []byte(algorithmID))
	el.WriteString(`">`)
	el.WriteString(base64.StdEncoding.EncodeToString(hash))
	el.WriteString(`</xrd:requestHash>`)
	return el.Bytes()
}

// InsertRequestHashParsed is InsertRequestHash for a SOAP part the caller
// has parsed already: env is Parse's result for soapPart.
func InsertRequestHashParsed(soapPart []byte, env *Envelope, hash []byte, algorithmID string) ([]byte, error) {
	if _, err := NewHash(algorithmID); err != nil {
		return nil, fmt.Errorf("insert request hash: %w", err)
	}
	if !env.HasHeader {
		return nil, fmt.Errorf("insert request hash: %w", refuse(TypeMissingHeader, "the response has no SOAP Header"))
	}
	el := bytes.NewBuffer(RequestHashElement(hash, algorithmID))
	at := env.HeaderEndTag
	if at.Start == at.End && env.RequestHashSpan == (Span{}) {
		return nil, fmt.Errorf("insert request hash: %w", refuse(TypeInvalidSoap, "the response's SOAP Header is an empty element"))
	}
	if env.RequestHashSpan != (Span{}) {
		at = env.RequestHashSpan
	} else {
		at.End = at.Start // insert before the end tag
	}
	out := make([]byte, 0, len(soapPart)+el.Len())
	out = append(out, soapPart[:at.Start]...)
	out = append(out, el.Bytes()...)
	out = append(out, soapPart[at.End:]...)
	return out, nil
}

// CheckRequestHash checks the requestHash of a response against the
// request's SOAP part, as the consumer's gateway must: the field must be
// there, name a supported algorithm, and carry the digest of reqSOAP. Its
// errors are of type TypeInconsistentResponse.
func CheckRequestHash(reqSOAP []byte, resp Header) error {
	rh := resp.RequestHash
	if rh == nil {
		return refuse(TypeInconsistentResponse, "the response has no requestHash")
	}
	want, err := HashRequest(reqSOAP, rh.AlgorithmID)
	if err != nil {
		return refuseCause(err, TypeInconsistentResponse, "the response's requestHash names an unsupported algorithm")
	}
	got, err := base64.StdEncoding.DecodeString(rh.Value)
	if err != nil || !bytes.Equal(got, want) {
		return refuse(TypeInconsistentResponse, "the response's requestHash does not match the request")
	}
	return nil
}

// CheckConsistent checks a response's header against its request's, as
// the consumer's gateway must: client, service, id, userId, issue and
// protocolVersion must be equal. The error, of type
// TypeInconsistentResponse, names the first field that differs.
func CheckConsistent(req, resp Header) error {
	for _, f := range []struct {
		name string
		eq   bool
	}{
		{"client", req.Client == resp.Client},
		{"service", req.Service == resp.Service},
		{"id", req.ID == resp.ID},
		{"userId", req.UserID == resp.UserID},
		{"issue", req.Issue == resp.Issue},
		{"protocolVersion", req.ProtocolVersion == resp.ProtocolVersion},
	} {
		if !f.eq {
			return refuse(TypeInconsistentResponse, "the response's %s header differs from the request's", f.name)
		}
	}
	return nil
}

// Response returns a response SOAP part that echoes the request's header
// byte for byte (PR-MESS: same fields, same order, same values) around
// body, one complete element that declares its own namespaces. req is the
// request's SOAP part and env its parse.
func Response(req []byte, env *Envelope, body []byte) ([]byte, error) {
	if !env.HasHeader {
		return nil, fmt.Errorf("build response: %w", refuse(TypeMissingHeader, "the request has no SOAP Header"))
	}
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.Write(env.EnvelopeStartTag.Bytes(req))
	b.Write(env.HeaderSpan.Bytes(req))
	b.WriteString(`<SOAP-ENV:Body xmlns:SOAP-ENV="` + NSEnvelope + `">`)
	b.Write(body)
	b.WriteString(`</SOAP-ENV:Body>`)
	b.Write(env.EnvelopeEndTag.Bytes(req))
	return b.Bytes(), nil
}

// Marshal returns a SOAP part carrying h and body, one complete element
// that declares its own namespaces. It is how a request is built (a
// client, the metaservice requests, tests); a response echoes its
// request's header with Response instead.
func (h Header) Marshal(body []byte) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<SOAP-ENV:Envelope xmlns:SOAP-ENV="` + NSEnvelope + `" xmlns:xrd="` + NSXRoad + `" xmlns:id="` + NSIdentifiers + `">`)
	b.WriteString("<SOAP-ENV:Header>")
	h.writeFields(&b)
	b.WriteString("</SOAP-ENV:Header><SOAP-ENV:Body>")
	b.Write(body)
	b.WriteString("</SOAP-ENV:Body></SOAP-ENV:Envelope>\n")
	return b.Bytes()
}

// writeFields writes the header fields, prefixes xrd and id bound.
// Header.Other is not written: its elements live in the original bytes.
func (h Header) writeFields(b *bytes.Buffer) {
	c := h.Client
	writeID(b, "xrd:client", c.ObjectType, c.Instance, c.Class, c.Code, c.Subsystem, "", "", "")
	s := h.Service
	writeID(b, "xrd:service", s.ObjectType, s.Instance, s.Class, s.Code, s.Subsystem, s.Service, s.Version, "")
	writeTextElement(b, "xrd:id", h.ID)
	if h.UserID != "" {
		writeTextElement(b, "xrd:userId", h.UserID)
	}
	if h.Issue != "" {
		writeTextElement(b, "xrd:issue", h.Issue)
	}
	writeTextElement(b, "xrd:protocolVersion", h.ProtocolVersion)
	if ss := h.SecurityServer; ss != nil {
		writeID(b, "xrd:securityServer", ObjectServer, ss.Instance, ss.Class, ss.Code, "", "", "", ss.ServerCode)
	}
	if rp := h.RepresentedParty; rp != nil {
		b.WriteString(`<repr:representedParty xmlns:repr="` + NSRepresentation + `">`)
		if rp.Class != "" {
			writeTextElement(b, "repr:partyClass", rp.Class)
		}
		writeTextElement(b, "repr:partyCode", rp.Code)
		b.WriteString(`</repr:representedParty>`)
	}
	if rh := h.RequestHash; rh != nil {
		b.WriteString(`<xrd:requestHash algorithmId="`)
		xml.EscapeText(b, []byte(rh.AlgorithmID))
		b.WriteString(`">`)
		xml.EscapeText(b, []byte(rh.Value))
		b.WriteString(`</xrd:requestHash>`)
	}
	if h.Purpose != "" {
		b.WriteString(`<sx:purpose xmlns:sx="` + NSSampan + `">`)
		xml.EscapeText(b, []byte(h.Purpose))
		b.WriteString(`</sx:purpose>`)
	}
	if h.LegalBasis != "" {
		b.WriteString(`<sx:legalBasis xmlns:sx="` + NSSampan + `">`)
		xml.EscapeText(b, []byte(h.LegalBasis))
		b.WriteString(`</sx:legalBasis>`)
	}
}

// writeID writes an identifier element; empty optional parts are left
// out.
func writeID(b *bytes.Buffer, name, objectType, instance, class, code, subsystem, service, version, server string) {
	b.WriteString("<" + name + ` id:objectType="`)
	xml.EscapeText(b, []byte(objectType))
	b.WriteString(`">`)
	writeTextElement(b, "id:xRoadInstance", instance)
	writeTextElement(b, "id:memberClass", class)
	writeTextElement(b, "id:memberCode", code)
	for _, p := range [][2]string{{"id:subsystemCode", subsystem}, {"id:serviceCode", service}, {"id:serviceVersion", version}, {"id:serverCode", server}} {
		if p[1] != "" {
			writeTextElement(b, p[0], p[1])
		}
	}
	b.WriteString("</" + name + ">")
}
