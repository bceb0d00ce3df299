package sandbox

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/soap"
)

// The SOAP demo services (X-Road message protocol 4.0): a SOAP face of
// MOF's business registry and a document exchange between ministries.
// Their backends take the envelope the client sent, as the provider's
// gateway forwards it, and answer as an X-Road SOAP service does: the
// request's header echoed byte for byte around the response body.

// Namespaces of the demo services' body elements.
const (
	nsBusinessRegistry = "urn:sampan:sandbox:business-registry:1"
	nsDocumentExchange = "urn:sampan:sandbox:document-exchange:1"
	// nsXOP is the namespace of MTOM's xop:Include.
	nsXOP = "http://www.w3.org/2004/08/xop/include"
)

// Backend paths of the SOAP services on the demo backends server.
const (
	pathGetCompany   = "/soap/getCompany"
	pathSendDocument = "/soap/sendDocument"
)

// wsdlPlaceholder is the soap:address of the embedded WSDLs; the sandbox
// replaces it with the URL of a client's gateway.
const wsdlPlaceholder = "http://gateway.sampan.invalid/"

//go:embed wsdl/*.wsdl
var wsdlFiles embed.FS

// wsdlFor returns the embedded WSDL name with its address set to url.
func wsdlFor(name, url string) ([]byte, error) {
	b, err := wsdlFiles.ReadFile("wsdl/" + name)
	if err != nil {
		return nil, fmt.Errorf("read WSDL %s: %w", name, err)
	}
	return bytes.ReplaceAll(b, []byte(wsdlPlaceholder), []byte(url)), nil
}

// soapHandler serves the SOAP backends and passes every other request to
// next.
func soapHandler(next http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+pathGetCompany, serveGetCompany)
	mux.HandleFunc("POST "+pathSendDocument, serveSendDocument)
	mux.Handle("/", next)
	return mux
}

// soapLimits bound what the demo services accept: the package's
// defaults.
var soapLimits = soap.Limits{}

// serveGetCompany answers getCompany from the companies of the REST
// business registry.
func serveGetCompany(w http.ResponseWriter, r *http.Request) {
	ct, err := soap.ParseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		writeRefusal(w, err)
		return
	}
	if ct.Kind != soap.KindSOAP {
		writeRefusal(w, r1.New(soap.TypeInvalidContentType, "getCompany takes a text/xml request without attachments"))
		return
	}
	req, err := soap.ReadSOAP(r.Body, soapLimits)
	if err != nil {
		writeRefusal(w, err)
		return
	}
	env, fields, err := parseOperation(req, nsBusinessRegistry, "getCompany")
	if err != nil {
		writeRefusal(w, err)
		return
	}
	code := fields.text("taxCode")
	c, ok := companies[code]
	if !ok {
		writeServiceFault(w, "SOAP-ENV:Client", "no company with tax code "+code, nsBusinessRegistry, "unknownCompany", [][2]string{{"taxCode", code}})
		return
	}
	var b bytes.Buffer
	b.WriteString(`<br:getCompanyResponse xmlns:br="` + nsBusinessRegistry + `"><br:company>`)
	for _, f := range [][2]string{{"taxCode", c.TaxCode}, {"name", c.Name}, {"status", c.Status}, {"registered", c.Registered}, {"province", c.Province}} {
		writeXMLText(&b, "br:"+f[0], f[1])
	}
	b.WriteString(`</br:company></br:getCompanyResponse>`)
	writeResponse(w, req, env, b.Bytes())
}

// receiptEntry is what the document exchange acknowledges of one
// document: the attachment's Content-ID (empty for a document sent
// inline in the body), its content type, its length and its SHA-256.
type receiptEntry struct {
	contentID, contentType string
	bytes                  int64
	sha256                 string
}

// serveSendDocument takes a document with its metadata and answers with
// a receipt: for each attachment (SOAP with attachments or MTOM), and
// each document sent inline as base64, its length and SHA-256. An
// attachment is hashed as it streams in, never held.
func serveSendDocument(w http.ResponseWriter, r *http.Request) {
	ct, err := soap.ParseContentType(r.Header.Get("Content-Type"))
	if err != nil {
		writeRefusal(w, err)
		return
	}
	var (
		req []byte
		mr  *soap.MultipartReader
	)
	if ct.Kind == soap.KindSOAP {
		req, err = soap.ReadSOAP(r.Body, soapLimits)
	} else {
		mr, err = soap.NewMultipartReader(r.Body, r.Header.Get("Content-Type"), soapLimits)
		if err == nil {
			req, _, err = mr.SOAPPart()
		}
	}
	if err != nil {
		writeRefusal(w, err)
		return
	}
	env, fields, err := parseOperation(req, nsDocumentExchange, "sendDocument")
	if err != nil {
		writeRefusal(w, err)
		return
	}
	title := fields.text("title")
	if strings.TrimSpace(title) == "" {
		writeServiceFault(w, "SOAP-ENV:Client", "sendDocument needs a title", nsDocumentExchange, "missingField", [][2]string{{"name", "title"}})
		return
	}
	var receipt []receiptEntry
	for _, f := range fields {
		if f.name != "document" || f.xopHref != "" || strings.TrimSpace(f.text) == "" {
			continue
		}
		doc, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(f.text), ""))
		if err != nil {
			writeServiceFault(w, "SOAP-ENV:Client", "an inline document is not base64", nsDocumentExchange, "invalidDocument", nil)
			return
		}
		sum := sha256.Sum256(doc)
		receipt = append(receipt, receiptEntry{bytes: int64(len(doc)), sha256: hex.EncodeToString(sum[:])})
	}
	for mr != nil {
		p, err := mr.NextAttachment()
		if err == io.EOF {
			break
		}
		if err != nil {
			writeRefusal(w, err)
			return
		}
		e, err := digestPart(p)
		if err != nil {
			writeRefusal(w, err)
			return
		}
		receipt = append(receipt, e)
	}
	var b bytes.Buffer
	b.WriteString(`<dx:sendDocumentResponse xmlns:dx="` + nsDocumentExchange + `">`)
	writeXMLText(&b, "dx:title", title)
	writeXMLText(&b, "dx:senderReference", fields.text("senderReference"))
	writeXMLText(&b, "dx:documentCount", strconv.Itoa(len(receipt)))
	for _, e := range receipt {
		b.WriteString("<dx:received>")
		writeXMLText(&b, "dx:contentId", e.contentID)
		writeXMLText(&b, "dx:contentType", e.contentType)
		writeXMLText(&b, "dx:bytes", strconv.FormatInt(e.bytes, 10))
		writeXMLText(&b, "dx:sha256", e.sha256)
		b.WriteString("</dx:received>")
	}
	b.WriteString(`</dx:sendDocumentResponse>`)
	writeResponse(w, req, env, b.Bytes())
}

// digestPart hashes one attachment as it streams, undoing a base64 or
// quoted-printable transfer encoding first.
func digestPart(p *soap.Part) (receiptEntry, error) {
	body := p.Body
	switch strings.ToLower(strings.TrimSpace(p.ContentTransferEncoding)) {
	case "", "binary", "8bit", "7bit":
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	default:
		return receiptEntry{}, r1.New(soap.TypeMimeParsingFailed, "attachment %s: unknown Content-Transfer-Encoding", p.ContentID)
	}
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		return receiptEntry{}, r1.Wrap(err, soap.TypeMimeParsingFailed, "cannot read attachment %s", p.ContentID)
	}
	return receiptEntry{contentID: p.ContentID, contentType: p.ContentType, bytes: n, sha256: hex.EncodeToString(h.Sum(nil))}, nil
}

// bodyField is one child element of the operation element: its local
// name, its text, and for an MTOM reference the xop:Include href.
type bodyField struct {
	name, text, xopHref string
}

type bodyFields []bodyField

// text returns the text of the first field called name.
func (fs bodyFields) text(name string) string {
	for _, f := range fs {
		if f.name == name {
			return f.text
		}
	}
	return ""
}

// parseOperation parses a request envelope with the hardened parser and
// checks that its body is the operation {ns}op. It returns the children
// of the operation element in ns with their text.
func parseOperation(req []byte, ns, op string) (*soap.Envelope, bodyFields, error) {
	env, err := soap.ParseRequest(req, soapLimits)
	if err != nil {
		return nil, nil, err
	}
	if n := env.Operation.Name; n.Space != ns || n.Local != op {
		return nil, nil, r1.New(soap.TypeInvalidBody, "the body must be the %s element of namespace %s", op, ns)
	}
	fields, err := operationFields(req, ns)
	if err != nil {
		return nil, nil, r1.Wrap(err, soap.TypeInvalidSoap, "malformed SOAP body")
	}
	return env, fields, nil
}

// operationFields reads the children of the one element of the Body. The
// bytes have passed soap.ParseRequest (no DTD, bounded depth and size),
// so decoding them again is safe; the whole document is decoded so that
// prefixes declared on the Envelope resolve.
func operationFields(b []byte, ns string) (bodyFields, error) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	var (
		out       bodyFields
		depth     int // element depth: Envelope 1, Body 2, operation 3
		inBody    bool
		cur       *bodyField
		textDepth int
	)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2 && t.Name.Space == soap.NSEnvelope && t.Name.Local == "Body":
				inBody = true
			case inBody && depth == 4 && t.Name.Space == ns:
				out = append(out, bodyField{name: t.Name.Local})
				cur, textDepth = &out[len(out)-1], depth
			case cur != nil && depth == textDepth+1 && t.Name.Space == nsXOP && t.Name.Local == "Include":
				for _, a := range t.Attr {
					if a.Name.Local == "href" && a.Name.Space == "" {
						cur.xopHref = a.Value
					}
				}
			}
		case xml.EndElement:
			if cur != nil && depth == textDepth {
				cur = nil
			}
			if depth == 2 {
				inBody = false
			}
			depth--
		case xml.CharData:
			if cur != nil && depth == textDepth {
				cur.text += string(t)
			}
		}
	}
}

// writeResponse writes a response envelope echoing the request's header.
func writeResponse(w http.ResponseWriter, req []byte, env *soap.Envelope, body []byte) {
	resp, err := soap.Response(req, env, body)
	if err != nil {
		writeRefusal(w, err)
		return
	}
	w.Header().Set("Content-Type", soap.ContentTypeSOAP)
	w.Header().Set("Content-Length", strconv.Itoa(len(resp)))
	w.WriteHeader(http.StatusOK)
	w.Write(resp)
}

// writeRefusal answers a request the service cannot read with a SOAP
// fault whose code is the refusal's type.
func writeRefusal(w http.ResponseWriter, err error) {
	var e *r1.Error
	if !errors.As(err, &e) {
		e = r1.Wrap(err, soap.TypeInvalidSoap, "malformed SOAP message")
	}
	soap.WriteFault(w, &soap.Fault{Code: e.Type, String: e.Message})
}

// writeServiceFault answers with a fault of the service's own: code, a
// message, and a detail element {ns}name holding the given fields.
func writeServiceFault(w http.ResponseWriter, code, msg, ns, name string, fields [][2]string) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<SOAP-ENV:Envelope xmlns:SOAP-ENV="` + soap.NSEnvelope + `"><SOAP-ENV:Body><SOAP-ENV:Fault>`)
	writeXMLText(&b, "faultcode", code)
	writeXMLText(&b, "faultstring", msg)
	b.WriteString(`<detail><s:` + name + ` xmlns:s="` + ns + `">`)
	for _, f := range fields {
		writeXMLText(&b, "s:"+f[0], f[1])
	}
	b.WriteString(`</s:` + name + `></detail></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>` + "\n")
	w.Header().Set("Content-Type", soap.ContentTypeSOAP)
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(soap.FaultStatus)
	w.Write(b.Bytes())
}

func writeXMLText(b *bytes.Buffer, name, text string) {
	b.WriteString("<" + name + ">")
	xml.EscapeText(b, []byte(text))
	b.WriteString("</" + name + ">")
}

// Example requests. The sandbox writes them into its directory for curl
// and tools; the demo services answer each.

// exampleEnvelope returns a request envelope from client to service
// (with its serviceVersion) whose body is op.
func exampleEnvelope(client, service, version, id string, op []byte) ([]byte, error) {
	c, err := ident.ParseSubsystem(client)
	if err != nil {
		return nil, err
	}
	s, err := ident.ParseService(service)
	if err != nil {
		return nil, err
	}
	s.Version = version
	h := soap.Header{Client: soap.ClientFromIdent(c), Service: soap.ServiceFromIdent(s), ID: id, UserID: "sandbox-demo-user", ProtocolVersion: soap.ProtocolVersion}
	return h.Marshal(op), nil
}

// getCompanyBody is the getCompany operation for a tax code.
func getCompanyBody(taxCode string) []byte {
	var b bytes.Buffer
	b.WriteString(`<br:getCompany xmlns:br="` + nsBusinessRegistry + `">`)
	writeXMLText(&b, "br:taxCode", taxCode)
	b.WriteString(`</br:getCompany>`)
	return b.Bytes()
}

// sendDocumentBody is the sendDocument operation; a non-empty xopHref
// makes it refer to an MTOM attachment, a non-empty swaRef to a SOAP
// with attachments one.
func sendDocumentBody(title, ref, swaRef, xopHref string) []byte {
	var b bytes.Buffer
	b.WriteString(`<dx:sendDocument xmlns:dx="` + nsDocumentExchange + `">`)
	writeXMLText(&b, "dx:title", title)
	writeXMLText(&b, "dx:senderReference", ref)
	if swaRef != "" {
		writeXMLText(&b, "dx:documentRef", swaRef)
	}
	if xopHref != "" {
		b.WriteString(`<dx:document><xop:Include xmlns:xop="` + nsXOP + `" href="`)
		xml.EscapeText(&b, []byte(xopHref))
		b.WriteString(`"/></dx:document>`)
	}
	b.WriteString(`</dx:sendDocument>`)
	return b.Bytes()
}

// Parts of the example multipart messages.
const (
	exampleBoundary  = "sampan-sandbox-5d1c0e"
	exampleRootID    = "envelope@sandbox.sampan"
	exampleDocID     = "letter@sandbox.sampan"
	exampleDocType   = "text/plain; charset=UTF-8"
	exampleDocument  = "Official letter MOF-2026-0042: the annual budget review meets on 15 January 2027.\n"
	exampleDocTitle  = "Annual budget review"
	exampleDocSender = "MPS-OUT-2026-0042"
)

// multipartExample returns a SOAP with attachments (mtom false) or MTOM
// message carrying soapPart and the example document, and its
// Content-Type.
func multipartExample(soapPart []byte, mtom bool) (body []byte, contentType string) {
	var b bytes.Buffer
	rootType := soap.ContentTypeSOAP
	contentType = `multipart/related; type="text/xml"; boundary="` + exampleBoundary + `"; start="<` + exampleRootID + `>"`
	if mtom {
		rootType = `application/xop+xml; charset=UTF-8; type="text/xml"`
		contentType = `multipart/related; type="application/xop+xml"; boundary="` + exampleBoundary + `"; start="<` + exampleRootID + `>"; start-info="text/xml"`
	}
	b.WriteString("--" + exampleBoundary + "\r\n")
	b.WriteString("Content-Type: " + rootType + "\r\nContent-Transfer-Encoding: 8bit\r\nContent-ID: <" + exampleRootID + ">\r\n\r\n")
	b.Write(soapPart)
	b.WriteString("\r\n--" + exampleBoundary + "\r\n")
	b.WriteString("Content-Type: " + exampleDocType + "\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <" + exampleDocID + ">\r\n\r\n")
	b.WriteString(exampleDocument)
	b.WriteString("\r\n--" + exampleBoundary + "--\r\n")
	return b.Bytes(), contentType
}

// soapExampleDir is the directory, under the sandbox's, of the example
// requests of the SOAP services.
const soapExampleDir = "soap-examples"

// wsdlFileName is the file, in the provider gateway's directory, of a
// SOAP service's WSDL.
func wsdlFileName(sid ident.ServiceID) string { return sid.Code + ".wsdl" }

// writeSOAPExamples writes the example requests of a SOAP service into
// DIR/soap-examples and describes them, with the WSDL in the provider's
// gateway directory gdir, in ms. For the example client and the
// cross-border one: CODE.xml and CODE-cross-border.xml, and for a
// service taking attachments the same with one attachment as SOAP with
// attachments (-swa.mime) and MTOM (-mtom.mime).
func writeSOAPExamples(ms *ManifestService, sv serviceDef, dir, gdir string) error {
	sid, err := ident.ParseService(sv.id)
	if err != nil {
		return err
	}
	ms.Protocol = gateway.ProtocolSOAP
	ms.ServiceVersion = sv.version
	ms.WSDLFile = filepath.Join(gdir, wsdlFileName(sid))
	edir := filepath.Join(dir, soapExampleDir)
	if err := os.MkdirAll(edir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", edir, err)
	}
	write := func(client, name, contentType string, attachments int, b []byte) error {
		file := filepath.Join(edir, name)
		if err := pki.WriteFileAtomic(file, b, 0o644); err != nil {
			return fmt.Errorf("write example %s: %w", name, err)
		}
		ms.ExampleMessages = append(ms.ExampleMessages, ManifestSOAPMessage{Client: client, File: file, ContentType: contentType, Attachments: attachments})
		return nil
	}
	for _, c := range []struct{ client, suffix string }{{sv.exampleClient, ""}, {sv.crossBorderClient, "-cross-border"}} {
		if c.client == "" {
			continue
		}
		base := sid.Code + c.suffix
		env, err := exampleEnvelope(c.client, sv.id, sv.version, "sandbox-"+base, sv.exampleBody("", ""))
		if err != nil {
			return err
		}
		if err := write(c.client, base+".xml", soap.ContentTypeSOAP, 0, env); err != nil {
			return err
		}
		if c.suffix == "" {
			ms.ExampleEnvelope = filepath.Join(edir, base+".xml")
		}
		if !sv.attachments {
			continue
		}
		for _, mtom := range []bool{false, true} {
			kind, swaRef, xopHref := "-swa", "cid:"+exampleDocID, ""
			if mtom {
				kind, swaRef, xopHref = "-mtom", "", "cid:"+exampleDocID
			}
			env, err := exampleEnvelope(c.client, sv.id, sv.version, "sandbox-"+base+kind, sv.exampleBody(swaRef, xopHref))
			if err != nil {
				return err
			}
			msg, ct := multipartExample(env, mtom)
			if err := write(c.client, base+kind+".mime", ct, 1, msg); err != nil {
				return err
			}
		}
	}
	return nil
}

// printSOAPWelcome prints the SOAP examples: curl posting an example
// request to the client's gateway. url and tlsOpts are PrintWelcome's:
// a gateway's client URL by its id, and for clients that connect with a
// certificate the HTTPS URL (by "GATEWAY CLIENT") and curl's options.
func (s *Sandbox) printSOAPWelcome(w io.Writer, url, tlsOpts map[string]string) {
	gatewayOf := map[string]string{}
	for _, g := range s.Manifest.Gateways {
		for _, c := range g.Clients {
			gatewayOf[c] = g.ID
		}
	}
	curl := func(service, client, suffix string) string {
		for _, sv := range s.Manifest.Services {
			if sv.ID != service {
				continue
			}
			for _, m := range sv.ExampleMessages {
				if m.Client != client || !strings.HasSuffix(m.File, suffix) {
					continue
				}
				gw := gatewayOf[client]
				u, opts := url[gw], ""
				if tu, ok := url[gw+" "+client]; ok {
					u, opts = tu, tlsOpts[client]
				}
				return fmt.Sprintf("curl -sS%s -H 'Content-Type: %s' --data-binary @%s %s/", opts, m.ContentType, m.File, u)
			}
		}
		return "# (no example of " + service + " for " + client + ")"
	}
	wsdl := func(service string) string {
		for _, sv := range s.Manifest.Services {
			if sv.ID == service {
				return sv.WSDLFile
			}
		}
		return ""
	}
	const (
		getCompany   = "VN/GOV/MOF/business-registry/getCompany"
		sendDocument = "VN/GOV/MOF/document-exchange/sendDocument"
	)
	fmt.Fprintf(w, "SOAP services (X-Road message protocol 4.0): POST an envelope with the X-Road headers to the gateway's root.\n")
	fmt.Fprintf(w, "Their WSDLs: %s, %s\n\n", wsdl(getCompany), wsdl(sendDocument))
	fmt.Fprintf(w, "  # HCMC's one-stop system asks MOF's registry for a company over SOAP (getCompany v1)\n  %s\n\n", curl(getCompany, "VN/GOV/HCMC/one-stop", "getCompany.xml"))
	fmt.Fprintf(w, "  # the same from Singapore's ACRA, across the border (HTTPS with its client certificate)\n  %s\n\n", curl(getCompany, "SG/GOV/ACRA/bizfile", "getCompany-cross-border.xml"))
	fmt.Fprintf(w, "  # MPS sends MOF a letter as an attachment (SOAP with attachments); the receipt gives its SHA-256\n  %s\n\n", curl(sendDocument, "VN/GOV/MPS/residents", "sendDocument-swa.mime"))
	fmt.Fprintf(w, "  # the same as MTOM/XOP, and from ACRA across the border\n  %s\n  %s\n\n", curl(sendDocument, "VN/GOV/MPS/residents", "sendDocument-mtom.mime"), curl(sendDocument, "SG/GOV/ACRA/bizfile", "sendDocument-cross-border-swa.mime"))
}
