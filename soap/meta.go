package soap

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"strings"

	"github.com/sampan-exchange/sampan/ident"
)

// Metaservice operations (PR-META), the serviceCode of their requests and
// the local name of their body elements, in namespace NSXRoad.
const (
	OpListMethods    = "listMethods"
	OpAllowedMethods = "allowedMethods"
	OpGetWsdl        = "getWsdl"
)

// IsMetaservice reports whether code names one of the SOAP metaservices.
func IsMetaservice(code string) bool {
	return code == OpListMethods || code == OpAllowedMethods || code == OpGetWsdl
}

// MetaRequest returns the SOAP part of a listMethods or allowedMethods
// request with header h: an empty xrd:listMethods or xrd:allowedMethods
// body element.
func MetaRequest(h Header, op string) []byte {
	return h.Marshal([]byte("<xrd:" + op + "/>"))
}

// GetWsdlRequest returns the SOAP part of a getWsdl request asking for
// the description of serviceCode (and serviceVersion, if not empty).
func GetWsdlRequest(h Header, serviceCode, serviceVersion string) []byte {
	return h.Marshal(getWsdlBody("getWsdl", serviceCode, serviceVersion, false))
}

func getWsdlBody(name, code, version string, declare bool) []byte {
	var b bytes.Buffer
	b.WriteString("<xrd:" + name)
	if declare {
		b.WriteString(` xmlns:xrd="` + NSXRoad + `"`)
	}
	b.WriteString(">")
	writeTextElement(&b, "xrd:serviceCode", code)
	if version != "" {
		writeTextElement(&b, "xrd:serviceVersion", version)
	}
	b.WriteString("</xrd:" + name + ">")
	return b.Bytes()
}

// MethodsResponseBody returns the body element of a listMethods or
// allowedMethods response (op names which) listing services, each an
// identifier of objectType SERVICE. It declares its own namespaces, for
// Response.
func MethodsResponseBody(op string, services []ident.ServiceID) []byte {
	var b bytes.Buffer
	b.WriteString("<xrd:" + op + `Response xmlns:xrd="` + NSXRoad + `" xmlns:id="` + NSIdentifiers + `">`)
	for _, s := range services {
		v := ServiceFromIdent(s)
		writeID(&b, "xrd:service", ObjectService, v.Instance, v.Class, v.Code, v.Subsystem, v.Service, v.Version, "")
	}
	b.WriteString("</xrd:" + op + "Response>")
	return b.Bytes()
}

// GetWsdlResponseBody returns the body element of a getWsdl response,
// which names the service again; the WSDL itself travels as the
// message's attachment (see WriteGetWsdlResponse).
func GetWsdlResponseBody(serviceCode, serviceVersion string) []byte {
	return getWsdlBody("getWsdlResponse", serviceCode, serviceVersion, true)
}

// WriteGetWsdlResponse writes a whole getWsdl response as PR-META shapes
// it: a multipart/related message whose SOAP part is soapPart (built with
// Response around GetWsdlResponseBody) and whose one attachment is the
// WSDL, text/xml, streamed from wsdl. Send mw.ContentType() as the
// response's Content-Type before calling it.
func WriteGetWsdlResponse(mw *MultipartWriter, soapPart []byte, wsdl io.Reader) error {
	if err := mw.WriteSOAP(soapPart); err != nil {
		return fmt.Errorf("write getWsdl response: %w", err)
	}
	if err := mw.WriteAttachment(Attachment{ContentID: "wsdl", ContentType: ContentTypeSOAP, Body: wsdl}); err != nil {
		return fmt.Errorf("write getWsdl response: %w", err)
	}
	return mw.Close()
}

// MetaBody is the content of a metaservice body element, as parsed.
type MetaBody struct {
	// Op is the operation: OpListMethods, OpAllowedMethods or OpGetWsdl,
	// or the same with "Response" appended.
	Op string
	// ServiceCode and ServiceVersion name the service of a getWsdl
	// request or response.
	ServiceCode    string
	ServiceVersion string
	// Services lists a listMethods or allowedMethods response's services.
	Services []ServiceID
}

// ParseMetaBody parses the body element of a metaservice request or
// response: env.Operation's bytes in soapPart. It refuses an element that
// is not one of the six, a getWsdl without serviceCode, and unknown
// children.
func ParseMetaBody(soapPart []byte, env *Envelope, lim Limits) (*MetaBody, error) {
	lim = lim.withDefaults()
	name := env.Operation.Name
	op := strings.TrimSuffix(name.Local, "Response")
	if name.Space != NSXRoad || !IsMetaservice(op) {
		return nil, refuse(TypeInvalidBody, "the body is not a metaservice element")
	}
	// The element is re-read alone, so the prefixes the envelope declares
	// must be supplied: re-read the whole envelope and stop at the body.
	p := newParser(soapPart, lim)
	for {
		at := p.offset()
		tok, err := p.next()
		if err != nil {
			return nil, refuse(TypeInvalidBody, "the metaservice body cannot be read")
		}
		if _, ok := tok.(xml.StartElement); ok && at == env.Operation.Span.Start {
			break
		}
	}
	mb := &MetaBody{Op: name.Local}
	seen := map[string]bool{}
	for {
		tok, _, err := p.skipMisc(name.Local)
		if err != nil {
			return nil, err
		}
		if _, ok := tok.(xml.EndElement); ok {
			break
		}
		se := tok.(xml.StartElement)
		switch {
		case se.Name.Space == NSXRoad && se.Name.Local == "service" && (name.Local == OpListMethods+"Response" || name.Local == OpAllowedMethods+"Response"):
			v, err := p.identifier("service", se)
			if err != nil {
				return nil, err
			}
			s := ServiceID{ObjectType: v.objectType, Instance: v.part[0], Class: v.part[1], Code: v.part[2], Subsystem: v.part[3], Service: v.part[4], Version: v.part[5]}
			if s.ObjectType != ObjectService || s.Service == "" {
				return nil, refuse(TypeInvalidBody, "a listed service must be a SERVICE identifier with a serviceCode")
			}
			mb.Services = append(mb.Services, s)
		case se.Name.Space == NSXRoad && op == OpGetWsdl && (se.Name.Local == "serviceCode" || se.Name.Local == "serviceVersion") && !seen[se.Name.Local]:
			seen[se.Name.Local] = true
			v, err := p.text(se.Name.Local)
			if err != nil {
				return nil, err
			}
			if se.Name.Local == "serviceCode" {
				mb.ServiceCode = v
			} else {
				mb.ServiceVersion = v
			}
		default:
			return nil, refuse(TypeInvalidBody, "unexpected element %s in %s", se.Name.Local, name.Local)
		}
	}
	if op == OpGetWsdl && mb.ServiceCode == "" {
		return nil, refuse(TypeInvalidBody, "%s needs a serviceCode", name.Local)
	}
	return mb, nil
}
