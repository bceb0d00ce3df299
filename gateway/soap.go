package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/soap"
)

// The SOAP front end (X-Road message protocol 4.0, docs/soap.md). A SOAP
// request is read only as far as its SOAP part, whose X-Road headers
// become the identifiers, purpose and legal basis of an exchange that
// then runs the consumer's pipeline unchanged: the same routing,
// sovereignty decision, AI gate, signature over the exact bytes the
// client sent (SOAP part and attachments, streamed), provider's checks
// and both message logs. Only the edges differ: refusals are SOAP faults,
// and the answer's SOAP part is checked against the request and gets the
// requestHash header.

// maxSOAPPart bounds the SOAP part of a request or answer, which both
// gateways parse whole. It is one buffer of the provider's pipeline, so
// that the provider's gateway can read the SOAP part of any request from
// what it holds before the body streams on to the service: larger data
// travels as attachments (SwA or MTOM), which stream.
const maxSOAPPart = bufSize

// maxSOAPAnswer bounds a text/xml answer, which the consumer's gateway
// holds to check its header and insert requestHash.
const maxSOAPAnswer = 16 << 20

func soapLimits(max int64) soap.Limits { return soap.Limits{MaxSOAPSize: max} }

// soapCall is what the consumer's gateway keeps of a SOAP request.
type soapCall struct {
	env  *soap.Envelope
	part []byte // the request's SOAP part
	hash []byte // its SHA-512, the answer's requestHash
}

// isSOAPRequest reports whether r is meant as a SOAP request for the
// client side: a POST outside the r1 paths with an XML or multipart
// content type. Those that are not SOAP 1.1 as PR-MESS has it (SOAP 1.2's
// application/soap+xml, a charset other than UTF-8) are SOAP requests
// too, so that their refusal is a fault the client can read
// (Client.InvalidContentType), not an r1 error.
func isSOAPRequest(r *http.Request) bool {
	if r.Method != http.MethodPost || strings.HasPrefix(r.URL.Path, r1.Prefix) {
		return false
	}
	media, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		media = strings.ToLower(strings.TrimSpace(strings.Split(r.Header.Get("Content-Type"), ";")[0]))
	}
	switch media {
	case "text/xml", "application/soap+xml", "application/xml", "multipart/related", "application/xop+xml":
		return true
	}
	return false
}

// isMultipartSOAP reports whether ct is a SOAP message with attachments,
// SwA or MTOM.
func isMultipartSOAP(ct string) bool { return soap.IsMultipart(ct) || soap.IsMTOM(ct) }

// spelling is the fault-code spelling this gateway writes.
func (g *Gateway) spelling() soap.Spelling {
	if g.cfg.SOAP.FaultSpelling == FaultSpellingSnake {
		return soap.SpellingSnake
	}
	return soap.SpellingCamel
}

// writeFault answers a refusal as a SOAP fault whose detail is the
// request id (or the relayed error's own).
func (g *Gateway) writeFault(w http.ResponseWriter, e *r1.Error, detail string) {
	soap.WriteFault(w, soap.NewFault(e, detail, g.spelling()))
}

// recorder keeps what is read through it, so that bytes read to find
// the SOAP part can be sent on exactly as they came.
type recorder struct {
	r   io.Reader
	buf bytes.Buffer
	max int
}

func (x *recorder) Read(p []byte) (int, error) {
	if x.buf.Len() >= x.max {
		return 0, soapTooLarge()
	}
	if len(p) > x.max-x.buf.Len() {
		p = p[:x.max-x.buf.Len()]
	}
	n, err := x.r.Read(p)
	x.buf.Write(p[:n])
	return n, err
}

func soapTooLarge() *r1.Error {
	return r1.New(r1.TypeRequestTooLarge, "the SOAP part is larger than %d bytes: send large data as attachments (SwA or MTOM), which stream", maxSOAPPart)
}

// readSOAPPart reads the SOAP part of a message of content type ct from
// r: the whole of a text/xml message, the root part of a multipart one.
// It returns the part and every byte read from r, which the caller sends
// on before the rest of r.
func readSOAPPart(r io.Reader, ct string) (part, read []byte, err error) {
	// The recorder bounds what is read ahead too: the SOAP part, its
	// MIME headers and the reader's look-ahead.
	rec := &recorder{r: r, max: maxSOAPPart + 16<<10}
	if isMultipartSOAP(ct) {
		mr, err := soap.NewMultipartReader(rec, ct, soapLimits(maxSOAPPart))
		if err != nil {
			return nil, nil, err
		}
		part, _, err = mr.SOAPPart()
		if err != nil {
			return nil, nil, err
		}
		return part, rec.buf.Bytes(), nil
	}
	part, err = soap.ReadSOAP(rec, soapLimits(maxSOAPPart))
	if err != nil {
		return nil, nil, err
	}
	return part, rec.buf.Bytes(), nil
}

// asR1 returns err as a refusal of the given default type.
func asR1(err error, typ, format string, args ...any) *r1.Error {
	var e *r1.Error
	if errors.As(err, &e) {
		return e
	}
	return r1.Wrap(err, typ, format, args...)
}

// serveSOAP runs a SOAP request from an information system through the
// consumer's pipeline.
func (g *Gateway) serveSOAP(w http.ResponseWriter, r *http.Request) {
	o := g.begin(clientSide, r1.NewID(), r)
	defer g.finish(r.Context(), o)
	r2, sc, e := g.soapRequest(r)
	if e != nil {
		o.refuse(e)
		g.writeFault(w, e, o.requestID)
		return
	}
	if r2 == nil {
		g.serveSOAPMonitoring(w, r, o, sc.env, sc.part)
		return
	}
	c := &consumerCall{g: g, w: w, r: r2, o: o, soap: sc}
	if e := c.run(); e != nil {
		o.refuse(e)
		g.writeFault(w, e, o.requestID)
	}
}

// soapRequest reads and parses the SOAP part of r and returns the r1
// request the pipeline runs: the service's path, the X-Road headers from
// the SOAP header, the client's Content-Type and SOAPAction (its other
// HTTP headers are dropped), and the body as the client sent it.
func (g *Gateway) soapRequest(r *http.Request) (*http.Request, *soapCall, *r1.Error) {
	if e := g.checkLimits(r); e != nil {
		return nil, nil, e
	}
	ct := r.Header.Get("Content-Type")
	if _, err := soap.ParseContentType(ct); err != nil {
		return nil, nil, asR1(err, soap.TypeInvalidContentType, "the Content-Type is not SOAP 1.1")
	}
	part, read, err := readSOAPPart(g.limitBody(r.Body), ct)
	if err != nil {
		return nil, nil, asR1(err, soap.TypeInvalidSoap, "cannot read the SOAP message")
	}
	env, err := soap.ParseRequest(part, soapLimits(maxSOAPPart))
	if err != nil {
		return nil, nil, asR1(err, soap.TypeInvalidSoap, "malformed SOAP message")
	}
	if env.Header.Service.IsMonitoring() {
		// Answered by this gateway (soapopmon.go), not an exchange.
		return nil, &soapCall{env: env, part: part}, nil
	}
	h := env.Header
	client, err := h.Client.Ident()
	if err != nil {
		return nil, nil, r1.Wrap(err, r1.TypeInvalidClientID, "invalid client identifier")
	}
	svc, err := h.Service.Ident()
	if err != nil {
		return nil, nil, r1.Wrap(err, r1.TypeInvalidServiceID, "invalid service identifier")
	}
	svc.Version = "" // the version travels in the signed SOAP header
	u, err := url.Parse(r1.Prefix + svc.Escaped())
	if err != nil {
		return nil, nil, r1.Wrap(err, r1.TypeInvalidServiceID, "invalid service identifier")
	}
	hash, err := soap.HashRequest(part, soap.DigestSHA512)
	if err != nil {
		return nil, nil, r1.Wrap(err, r1.TypeClientInternal, "cannot hash the request")
	}
	r2 := r.Clone(r.Context())
	r2.URL, r2.RequestURI = u, u.RequestURI()
	// As PR-MESS 2.2 has it, only Content-Type and SOAPAction of the
	// client's HTTP headers reach the service: the X-Road fields travel
	// in the SOAP header.
	r2.Header = http.Header{}
	for _, k := range []string{"Content-Type", "Soapaction"} {
		if v, ok := r.Header[k]; ok {
			r2.Header[k] = v
		}
	}
	set := func(name, v string) {
		if v != "" {
			r2.Header.Set(name, v)
		}
	}
	set(r1.HeaderClient, client.Escaped())
	set(r1.HeaderID, h.ID)
	set(r1.HeaderUserID, h.UserID)
	set(r1.HeaderIssue, h.Issue)
	set(r1.HeaderPurpose, h.Purpose)
	set(r1.HeaderLegalBasis, h.LegalBasis)
	if h.RepresentedParty != nil {
		set(r1.HeaderRepresentedParty, h.RepresentedParty.String())
	}
	if h.SecurityServer != nil {
		if gw, err := h.SecurityServer.Ident(); err == nil {
			set(headerSecurityServer, gw.String())
		}
	}
	r2.Body = io.NopCloser(io.MultiReader(bytes.NewReader(read), r.Body))
	return r2, &soapCall{env: env, part: part, hash: hash}, nil
}

// headerSecurityServer names the provider's gateway a client targets
// (X-Road's security-server targeting extension).
const headerSecurityServer = "X-Road-Security-Server"

// soapAnswer is the answer step of a SOAP exchange: a text/xml answer is
// held (it is verified and logged as it is read), its header checked
// against the request's, and requestHash inserted; a provider's fault
// passes as it is. A multipart answer gets the same for its SOAP part
// (soapMultipartAnswer), and its attachments stream.
func (c *consumerCall) soapAnswer() *r1.Error {
	resp, o := c.resp, c.o
	ct := resp.Header.Get("Content-Type")
	if !soap.IsSOAP(ct) {
		if isMultipartSOAP(ct) {
			return c.soapMultipartAnswer(ct)
		}
		return r1.New(soap.TypeInconsistentResponse, "service %s answered with content type %q, not a SOAP message (is it a REST service?)", c.req.Service, ct)
	}
	b, err := io.ReadAll(io.LimitReader(c.vr, maxSOAPAnswer+1))
	if err != nil {
		return r1.Wrap(err, r1.TypeClientSignature, "the answer of %s could not be verified", c.req.Service.Provider.Member())
	}
	if len(b) > maxSOAPAnswer {
		return r1.New(soap.TypeInconsistentResponse, "the SOAP answer of %s is larger than %d bytes: large data travels as attachments", c.req.Service, maxSOAPAnswer)
	}
	env, err := soap.Parse(b, soapLimits(maxSOAPAnswer))
	if err != nil {
		e := asR1(err, soap.TypeInvalidSoap, "malformed answer")
		return r1.New(soap.TypeInconsistentResponse, "the answer of %s is not a valid SOAP message: %s", c.req.Service, e.Message)
	}
	if env.Fault == nil {
		if err := soap.CheckConsistent(c.soap.env.Header, env.Header); err != nil {
			return asR1(err, soap.TypeInconsistentResponse, "the answer's header does not match the request's")
		}
		if b, err = soap.InsertRequestHash(b, c.soap.hash, soap.DigestSHA512); err != nil {
			return asR1(err, soap.TypeInconsistentResponse, "cannot add requestHash to the answer")
		}
	}
	h := c.w.Header()
	copyNamed(h, resp.Header, c.rnames)
	c.aiHeaders(h)
	h.Set(r1.HeaderID, c.req.ID)
	h.Set(r1.HeaderRequestID, o.requestID)
	h.Set("Content-Length", strconv.Itoa(len(b)))
	o.status, o.respBytes = resp.StatusCode, int64(len(b))
	c.w.WriteHeader(resp.StatusCode)
	c.w.Write(b)
	return nil
}

// checkSOAPRequest checks, at the provider's gateway, the SOAP part of
// a request for a SOAP service against the identifiers the consumer's
// gateway signed: the client, the service code and the message id, as
// the consumer's gateway derived them from it. A gateway that sent
// headers for one service and a body for another is refused. The SOAP
// part must be within the first buffer of the request (maxSOAPPart),
// which the pipeline has already read.
func (c *providerCall) checkSOAPRequest() *r1.Error {
	ct := c.r.Header.Get("Content-Type")
	if c.r.Method != http.MethodPost || !(soap.IsSOAP(ct) || isMultipartSOAP(ct)) {
		return r1.New(r1.TypeServerInvalidReq, "service %s is a SOAP service: call it with a SOAP message (POST, text/xml or multipart/related)", c.svc)
	}
	head := c.vr.buffered()
	part, _, err := readSOAPPart(bytes.NewReader(head), ct)
	if err != nil {
		return r1.New(r1.TypeServerInvalidReq, "the SOAP part of the request is not within its first %d bytes, or malformed", len(head))
	}
	env, err := soap.ParseRequest(part, soapLimits(maxSOAPPart))
	if err != nil {
		return r1.New(r1.TypeServerInvalidReq, "the request's SOAP message is malformed: %s", asR1(err, soap.TypeInvalidSoap, "malformed").Message)
	}
	client, err1 := env.Header.Client.Ident()
	svc, err2 := env.Header.Service.Ident()
	switch {
	case err1 != nil || err2 != nil:
		return r1.New(r1.TypeServerInvalidReq, "the request's SOAP header holds an invalid identifier")
	case client != c.client:
		return r1.New(r1.TypeServerInvalidReq, "the SOAP header names client %s, the signed request %s", client, c.client)
	case svc.Provider != c.svc.Provider || svc.Code != c.svc.Code:
		return r1.New(r1.TypeServerInvalidReq, "the SOAP header names service %s, the signed request %s", svc, c.svc)
	case env.Header.ID != c.r.Header.Get(r1.HeaderID):
		return r1.New(r1.TypeServerInvalidReq, "the SOAP header's id is not the signed request's X-Road-Id")
	}
	return nil
}

// soapMultipartAnswer is soapAnswer for an answer with attachments (SwA
// or MTOM): its SOAP part, read from the first maxSOAPPart bytes, is
// checked against the request's header and gets requestHash; the bytes
// around it, the attachments among them, stream on as they came. An
// answer whose SOAP part is not within those bytes as sent (larger, or
// transfer-encoded) streams through unchanged.
func (c *consumerCall) soapMultipartAnswer(ct string) *r1.Error {
	resp, o := c.resp, c.o
	head := make([]byte, maxSOAPPart+16<<10)
	n, err := io.ReadFull(c.vr, head)
	head = head[:n]
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return r1.Wrap(err, r1.TypeClientSignature, "the answer of %s could not be verified", c.req.Service.Provider.Member())
	}
	if ctp, err := soap.ParseContentType(ct); err == nil {
		if start, end, ok := soapPartSpan(head, ctp.Boundary); ok {
			part := head[start:end]
			env, err := soap.Parse(part, soapLimits(maxSOAPPart))
			if err != nil {
				e := asR1(err, soap.TypeInvalidSoap, "malformed answer")
				return r1.New(soap.TypeInconsistentResponse, "the SOAP part of the answer of %s is not a valid SOAP message: %s", c.req.Service, e.Message)
			}
			if env.Fault == nil {
				if err := soap.CheckConsistent(c.soap.env.Header, env.Header); err != nil {
					return asR1(err, soap.TypeInconsistentResponse, "the answer's header does not match the request's")
				}
				hashed, err := soap.InsertRequestHash(part, c.soap.hash, soap.DigestSHA512)
				if err != nil {
					return asR1(err, soap.TypeInconsistentResponse, "cannot add requestHash to the answer")
				}
				head = slices.Concat(head[:start], hashed, head[end:])
			}
		}
	}
	h := c.w.Header()
	copyNamed(h, resp.Header, c.rnames)
	h.Del("Content-Length")
	c.aiHeaders(h)
	h.Set(r1.HeaderID, c.req.ID)
	h.Set(r1.HeaderRequestID, o.requestID)
	o.status = resp.StatusCode
	c.w.WriteHeader(resp.StatusCode)
	c.w.Write(head)
	_, err = io.Copy(c.w, c.vr)
	o.respBytes = c.vr.Len()
	if err != nil {
		// As in answer: a truncated or unverified answer must not pass
		// for a whole one.
		o.aborted = true
		o.log.Warn("response stream aborted", "err", err, "bytes", c.vr.Len())
		panic(http.ErrAbortHandler)
	}
	return nil
}

// soapPartSpan finds the content of the first part of a multipart
// message with the given boundary in head, the message's first bytes.
// ok is false unless head holds that content whole, and its MIME headers
// say it is sent as is: no Content-Length (which a changed part would
// contradict), and no transfer encoding other than 7bit, 8bit or binary.
func soapPartSpan(head []byte, boundary string) (start, end int, ok bool) {
	if boundary == "" {
		return 0, 0, false
	}
	delim := []byte("--" + boundary)
	i := bytes.Index(head, delim)
	if i < 0 || i > 0 && head[i-1] != '\n' {
		return 0, 0, false
	}
	nl := bytes.IndexByte(head[i:], '\n')
	if nl < 0 {
		return 0, 0, false
	}
	hdr := i + nl + 1
	br := bytes.NewReader(head[hdr:])
	tr := bufio.NewReader(br)
	mh, err := textproto.NewReader(tr).ReadMIMEHeader()
	if err != nil {
		return 0, 0, false
	}
	start = len(head) - br.Len() - tr.Buffered()
	if mh.Get("Content-Length") != "" {
		return 0, 0, false
	}
	switch strings.ToLower(strings.TrimSpace(mh.Get("Content-Transfer-Encoding"))) {
	case "", "7bit", "8bit", "binary":
	default:
		return 0, 0, false
	}
	e := bytes.Index(head[start:], append([]byte("\r\n"), delim...))
	if e < 0 {
		return 0, 0, false
	}
	return start, start + e, true
}
