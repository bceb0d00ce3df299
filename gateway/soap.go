package gateway

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
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

func soapLimits(max int64) soap.Limits { return soap.Limits{MaxSOAPSize: max} }

// soapCall is what the consumer's gateway keeps of a SOAP request.
type soapCall struct {
	env  *soap.Envelope
	part []byte // the request's SOAP part
	hash []byte // its SHA-512, the answer's requestHash
}

// isSOAPRequest reports whether r is for the SOAP front end: a POST
// outside the r1 paths whose media type is one a SOAP client sends
// (text/xml, SOAP 1.2's application/soap+xml, application/xml,
// multipart/related, a bare XOP package). Its
// parameters are checked there, so that a SOAP client gets a SOAP fault
// for a charset or a multipart it cannot use.
func isSOAPRequest(r *http.Request) bool {
	if r.Method != http.MethodPost || strings.HasPrefix(r.URL.Path, r1.Prefix) {
		return false
	}
	media, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	switch strings.ToLower(strings.TrimSpace(media)) {
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
	// A text/xml message is its SOAP part: what was read is the part.
	part, err = soap.ReadSOAP(r, soapLimits(maxSOAPPart))
	if err != nil {
		return nil, nil, err
	}
	return part, part, nil
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
	if len(r.Header.Values("Content-Type")) != 1 {
		return nil, nil, r1.New(soap.TypeInvalidContentType, "the request must have one Content-Type")
	}
	ct := r.Header.Get("Content-Type")
	if _, err := soap.ParseContentType(ct); err != nil {
		return nil, nil, asR1(err, soap.TypeInvalidContentType, "malformed Content-Type")
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
			set(r1.HeaderSecurityServer, gw.String())
		}
	}
	var body io.Reader = io.MultiReader(bytes.NewReader(read), r.Body)
	if isMultipartSOAP(ct) {
		pct, _ := soap.ParseContentType(ct)
		root := pct.Start
		if root == "" {
			root = firstContentID(read, pct.Boundary)
		}
		body = newPartGuard(body, pct.Boundary, root)
	}
	r2.Body = io.NopCloser(body)
	return r2, &soapCall{env: env, part: part, hash: hash}, nil
}

// soapAnswer is the answer step of a SOAP exchange: a text/xml answer is
// held (it is verified and logged as it is read), its header checked
// against the request's, and requestHash inserted; a provider's fault
// passes as it is. A multipart answer gets the same for its SOAP part
// (soapMultipartAnswer), and its attachments stream.
func (c *consumerCall) soapAnswer() *r1.Error {
	resp := c.resp
	ct := resp.Header.Get("Content-Type")
	if !soap.IsSOAP(ct) {
		if isMultipartSOAP(ct) {
			return c.soapMultipartAnswer(ct)
		}
		return r1.New(soap.TypeInconsistentResponse, "service %s answered with content type %q, not a SOAP message (is it a REST service?)", c.req.Service, ct)
	}
	// An answer within one SOAP part's bound is checked whole; a larger
	// one by its header, from its first bytes, and the rest streams.
	b, err := readUpTo(c.vr, resp.ContentLength, maxSOAPPart+1)
	if err != nil {
		return r1.Wrap(err, r1.TypeClientSignature, "the answer of %s could not be verified", c.req.Service.Provider.Member())
	}
	if len(b) <= maxSOAPPart {
		out, e := c.checkAnswer(b, soapLimits(maxSOAPPart))
		if e != nil {
			return e
		}
		c.sendSOAP(true, out)
		return nil
	}
	head, tail, ok := soapHead(b, c.soap.env.Header.Service.Service)
	if !ok {
		return r1.New(soap.TypeInconsistentResponse, "the SOAP answer of %s, larger than %d bytes, has no SOAP header within them", c.req.Service, maxSOAPPart)
	}
	out, e := c.checkAnswer(append(slices.Clip(head), tail...), soapLimits(maxSOAPPart+int64(len(tail))))
	if e != nil {
		return e
	}
	c.sendSOAP(false, out[:len(out)-len(tail)], b[len(head):])
	return nil
}

// sendSOAP answers the client: the service's signed headers, the AI
// headers and the exchange's identifiers, then parts, then (unless
// whole, when parts are all of it) the rest of the verified answer,
// streamed.
func (c *consumerCall) sendSOAP(whole bool, parts ...[]byte) {
	h := c.w.Header()
	copyNamed(h, c.resp.Header, c.rnames)
	c.aiHeaders(h)
	h.Set(r1.HeaderID, c.req.ID)
	h.Set(r1.HeaderRequestID, c.o.requestID)
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	h.Del("Content-Length")
	if whole {
		h.Set("Content-Length", strconv.Itoa(n))
	}
	c.o.status = c.resp.StatusCode
	c.w.WriteHeader(c.resp.StatusCode)
	for _, p := range parts {
		c.w.Write(p)
	}
	c.o.respBytes = int64(n)
	if whole {
		return
	}
	m, err := io.Copy(c.w, c.vr)
	c.o.respBytes += m
	c.abortOn(err)
}

// soapHead finds, in the first bytes b of a SOAP message, its head: the
// bytes up to the end of its SOAP Header element. It returns them, and
// a tail that closes them into a whole envelope with an empty response
// body for service code, to parse and check the header with the whole
// of package soap's hardening; ok is false when b holds no whole header
// (the message has none, or it is longer).
func soapHead(b []byte, code string) (head, tail []byte, ok bool) {
	dec := xml.NewDecoder(bytes.NewReader(b))
	depth := 0
	prefix := ""
	for {
		off := dec.InputOffset()
		tok, err := dec.RawToken()
		if err != nil {
			return nil, nil, false
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				// RawToken keeps the prefix as written.
				if t.Name.Local != "Envelope" {
					return nil, nil, false
				}
				prefix = t.Name.Space
			}
			if depth == 2 && t.Name.Local == "Body" {
				return nil, nil, false
			}
		case xml.EndElement:
			if depth == 2 && t.Name.Local == "Header" && t.Name.Space == prefix {
				end := dec.InputOffset()
				if bytes.LastIndexByte(b[off:end], '>') < 0 {
					return nil, nil, false
				}
				p := ""
				if prefix != "" {
					p = prefix + ":"
				}
				return b[:end], []byte("<" + p + "Body><" + code + "Response/></" + p + "Body></" + p + "Envelope>"), true
			}
			depth--
		}
	}
}

// checkAnswer checks an answer's SOAP part against the request and
// returns it with requestHash, or as it is when it is a fault.
func (c *consumerCall) checkAnswer(part []byte, lim soap.Limits) ([]byte, *r1.Error) {
	if out, ok := c.echoedAnswer(part); ok {
		return out, nil
	}
	env, err := soap.Parse(part, lim)
	if err != nil {
		e := asR1(err, soap.TypeInvalidSoap, "malformed answer")
		return nil, r1.New(soap.TypeInconsistentResponse, "the answer of %s is not a valid SOAP message: %s", c.req.Service, e.Message)
	}
	if env.Fault != nil {
		return part, nil
	}
	if err := soap.CheckConsistent(c.soap.env.Header, env.Header); err != nil {
		return nil, asR1(err, soap.TypeInconsistentResponse, "the answer's header does not match the request's")
	}
	out, err := soap.InsertRequestHashParsed(part, env, c.soap.hash, soap.DigestSHA512)
	if err != nil {
		return nil, asR1(err, soap.TypeInconsistentResponse, "cannot add requestHash to the answer")
	}
	return out, nil
}

// echoedAnswer is checkAnswer's fast path for the answer PR-MESS asks of
// a service: one that echoes the request's Envelope start tag and Header
// byte for byte, after at most an XML declaration. Such an answer's
// header is the request's, so it is consistent without being parsed;
// requestHash goes in before the header's end tag, where the request had
// none. Any other answer takes the full check.
func (c *consumerCall) echoedAnswer(ans []byte) ([]byte, bool) {
	env, req := c.soap.env, c.soap.part
	if env.Header.RequestHash != nil || !env.HasHeader || env.HeaderEndTag.Start == env.HeaderEndTag.End {
		return nil, false
	}
	head := req[env.EnvelopeStartTag.Start:env.HeaderSpan.End]
	i := bytes.Index(ans, head)
	if i < 0 || !onlyXMLDecl(ans[:i]) {
		return nil, false
	}
	at := i + int(env.HeaderEndTag.Start-env.EnvelopeStartTag.Start)
	el := soap.RequestHashElement(c.soap.hash, soap.DigestSHA512)
	out := make([]byte, 0, len(ans)+len(el))
	out = append(out, ans[:at]...)
	out = append(out, el...)
	return append(out, ans[at:]...), true
}

// onlyXMLDecl reports whether b is white space around at most one XML
// declaration (and a UTF-8 byte order mark): what may come before the
// Envelope. A comment, a processing instruction or a document type
// declaration is not.
func onlyXMLDecl(b []byte) bool {
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return true
	}
	return bytes.HasPrefix(b, []byte("<?xml ")) && bytes.HasSuffix(b, []byte("?>")) && bytes.Count(b, []byte("<")) == 1 && bytes.Count(b, []byte(">")) == 1
}

// soapMultipartAnswer answers with a multipart answer (attachments, or
// getWsdl's WSDL): its root part, the SOAP part, is read (bounded),
// checked against the request and given requestHash; the rest of the
// message streams on as it came, as verified.
func (c *consumerCall) soapMultipartAnswer(ct string) *r1.Error {
	rec := &recorder{r: c.vr, max: maxSOAPPart + 16<<10}
	part, _, err := readSOAPPart(rec, ct)
	if err != nil {
		if isSigErr(err) {
			return r1.Wrap(err, r1.TypeClientSignature, "the answer of %s could not be verified", c.req.Service.Provider.Member())
		}
		return r1.New(soap.TypeInconsistentResponse, "the multipart answer of %s has no readable SOAP part within its first %d bytes: %s", c.req.Service, maxSOAPPart, asR1(err, soap.TypeInvalidSoap, "malformed").Message)
	}
	read := rec.buf.Bytes()
	at := bytes.Index(read, part)
	if at < 0 {
		return r1.New(soap.TypeInconsistentResponse, "the SOAP part of the answer of %s is transfer-encoded: it must be sent as it is (8bit or binary)", c.req.Service)
	}
	checked, e := c.checkAnswer(part, soapLimits(maxSOAPPart))
	if e != nil {
		return e
	}
	c.sendSOAP(false, read[:at], checked, read[at+len(part):])
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
	if c.r.Method != http.MethodPost || len(c.r.Header.Values("Content-Type")) != 1 || !(soap.IsSOAP(ct) || isMultipartSOAP(ct)) {
		return r1.New(r1.TypeServerInvalidReq, "service %s is a SOAP service: call it with a SOAP message (POST, one Content-Type, text/xml or multipart/related)", c.svc)
	}
	if c.path != "" || c.r.URL.RawQuery != "" {
		return r1.New(r1.TypeServerInvalidReq, "service %s is a SOAP service: it takes no path or query after the service code", c.svc)
	}
	head := c.vr.buffered()
	part := head // a text/xml request is its SOAP part, held whole when it fits
	var err error
	if isMultipartSOAP(ct) || !c.complete {
		part, _, err = readSOAPPart(bytes.NewReader(head), ct)
	}
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
	// What policy decided and the logs record must be what the service
	// reads: the signed headers the consumer's gateway derived from the
	// SOAP header, field for field.
	h := c.r.Header
	rp := ""
	if env.Header.RepresentedParty != nil {
		rp = env.Header.RepresentedParty.String()
	}
	for _, f := range []struct{ name, soap, signed string }{
		{"userId", env.Header.UserID, h.Get(r1.HeaderUserID)},
		{"issue", env.Header.Issue, h.Get(r1.HeaderIssue)},
		{"purpose", env.Header.Purpose, h.Get(r1.HeaderPurpose)},
		{"legalBasis", env.Header.LegalBasis, h.Get(r1.HeaderLegalBasis)},
		{"representedParty", rp, h.Get(r1.HeaderRepresentedParty)},
	} {
		if f.soap != f.signed {
			return r1.New(r1.TypeServerInvalidReq, "the SOAP header's %s is not the signed request's", f.name)
		}
	}
	return nil
}

// firstContentID is the Content-ID of the first part of a multipart
// message, from its first bytes, or "".
func firstContentID(b []byte, boundary string) string {
	mr := multipart.NewReader(bytes.NewReader(b), boundary)
	p, err := mr.NextRawPart()
	if err != nil {
		return ""
	}
	return strings.Trim(p.Header.Get("Content-Id"), "<>")
}

// partGuard passes a multipart request on as it streams, and fails it
// when a part after the root reuses the root's Content-ID: a service
// that took that part for the root would act on a SOAP message nobody
// checked. The parts are read, as they pass, by a reader of its own.
type partGuard struct {
	src  io.Reader
	pw   *io.PipeWriter
	done chan error // the reader's verdict: nil, or the refusal
	err  error
}

func newPartGuard(src io.Reader, boundary, root string) *partGuard {
	pr, pw := io.Pipe()
	g := &partGuard{src: src, pw: pw, done: make(chan error, 1)}
	go func() {
		mr := multipart.NewReader(pr, boundary)
		var verdict error
		for first := true; ; first = false {
			p, err := mr.NextRawPart()
			if err != nil {
				// The end, or a message the service will refuse: either
				// way no second root.
				break
			}
			if !first && root != "" && strings.Trim(p.Header.Get("Content-Id"), "<>") == root {
				verdict = r1.New(soap.TypeMimeParsingFailed, "a part after the root reuses its Content-ID <%s>", root)
				break
			}
		}
		g.done <- verdict
		pr.CloseWithError(errGuardDone)
	}()
	return g
}

var errGuardDone = errors.New("part guard: done")

func (g *partGuard) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.src.Read(p)
	if n > 0 {
		// Once the reader has stopped (its verdict given), writes fail:
		// the stream goes on unchecked only after a verdict of nil.
		if _, werr := g.pw.Write(p[:n]); werr != nil && !errors.Is(werr, errGuardDone) {
			g.err = werr
		}
	}
	select {
	case v := <-g.done:
		if v != nil {
			g.err = v
			return 0, v
		}
		g.done <- nil // keep the verdict for the end
	default:
	}
	if err == io.EOF {
		g.pw.Close()
		if v := <-g.done; v != nil {
			g.err = v
			return n, v
		}
		g.done <- nil
	}
	return n, err
}

// readUpTo reads r to its end or to max bytes, into one buffer of the
// announced length when it is known and within max.
func readUpTo(r io.Reader, announced, max int64) ([]byte, error) {
	if announced >= 0 && announced < max {
		b := make([]byte, announced, announced+1)
		n, err := io.ReadFull(r, b)
		if err != nil {
			return nil, err
		}
		// The announced length is the provider's: read on to the end
		// (the verifying reader checks the signature there).
		rest, err := io.ReadAll(io.LimitReader(r, max-int64(n)))
		return append(b[:n], rest...), err
	}
	return io.ReadAll(io.LimitReader(r, max))
}
