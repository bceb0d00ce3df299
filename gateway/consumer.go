package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/r1"
)

// consumerCall is one r1 request at the consumer's gateway, as its steps
// build it up.
type consumerCall struct {
	g *Gateway
	w http.ResponseWriter
	r *http.Request
	o *outcome

	req  *r1.Request
	st   *confState // this gateway's instance
	pst  *confState // the provider's instance
	peer *conf.Gateway
	done bool // answered before the last step
	ai   aiVerdict
	soap *soapCall // a SOAP request (soap.go)

	ctx    context.Context
	cancel context.CancelFunc
	mk     *memberKey
	out    *http.Request
	rec    *msglog.Record
	head   []byte
	bs     *bodyStore
	signed atomic.Pointer[signedRequest]
	hash   atomic.Pointer[string]
	signE  error

	resp     *http.Response
	sg       *signer
	rnames   []string
	rhead    []byte
	confirm  bool
	pend     *msglog.Pending
	vr       *verifyingReader
	complete bool
}

// signedRequest is what the consumer's gateway knows of a request once it
// has signed it.
type signedRequest struct {
	bodySum string
	bytes   int64
	sig     string
}

// consumerSteps is the consumer's pipeline, in order. A step refuses the
// exchange with an r1 error, or ends it early by answering (done).
var consumerSteps = [...]struct {
	id  stepID
	run func(*consumerCall) *r1.Error
}{
	{stepLimits, (*consumerCall).limits},
	{stepIdentify, (*consumerCall).identify},
	{stepRoute, (*consumerCall).route},
	{stepDecide, (*consumerCall).decide},
	{stepSign, (*consumerCall).sign},
	{stepSend, (*consumerCall).send},
	{stepVerify, (*consumerCall).verify},
	{stepLog, (*consumerCall).awaitLogged},
	{stepAnswer, (*consumerCall).answerStep},
}

// serveClient runs an r1 request from an information system through the
// consumer's pipeline.
func (g *Gateway) serveClient(w http.ResponseWriter, r *http.Request) {
	c := &consumerCall{g: g, w: w, r: r, o: g.begin(clientSide, r1.NewID(), r)}
	defer g.finish(r.Context(), c.o)
	if e := c.run(); e != nil {
		c.o.refuse(e)
		r1.WriteAs(w, e, c.o.requestID, errorFormat(r))
	}
}

func (c *consumerCall) run() *r1.Error {
	defer c.release()
	for _, s := range consumerSteps {
		c.o.enter(s.id)
		if e := s.run(c); e != nil || c.done {
			return e
		}
	}
	return nil
}

// release frees what the steps took, whatever step the exchange ended in.
func (c *consumerCall) release() {
	if c.vr != nil {
		c.vr.release()
	}
	if c.resp != nil {
		c.resp.Body.Close()
	}
	if c.bs != nil {
		c.bs.discard()
	}
	if c.cancel != nil {
		c.cancel()
	}
}

// limits enforces the URI, header and announced body limits before
// anything is parsed.
func (c *consumerCall) limits() *r1.Error {
	return c.g.checkLimits(c.r)
}

// identify parses the request and checks that its client may speak
// through this gateway, over this connection.
func (c *consumerCall) identify() *r1.Error {
	g, o := c.g, c.o
	parse := r1.ParseRequest
	if c.soap != nil {
		parse = r1.ParseMapped
	}
	req, e := parse(c.r)
	if e != nil {
		return e
	}
	c.req = req
	o.identify(req.Client, req.Service)
	o.xroadID, o.userID, o.issue, o.path, o.query = req.ID, req.UserID, req.Issue, req.Path, req.RawQuery
	o.log = o.log.With("x_road_id", req.ID)
	if c.st, e = g.serving(clientSide); e != nil {
		return e
	}
	if req.Client.Instance != c.st.cfg.Instance || !c.st.cfg.HasSubsystem(req.Client) {
		return r1.New(r1.TypeUnknownClient, "client %s is not a registered subsystem", req.Client)
	}
	o.knownClient = true
	if !c.st.cfg.Serves(g.keys.Load().authFP, req.Client) {
		if p := g.registrationProblem(c.st); p != "" {
			return r1.New(r1.TypeClientInternal, "gateway %s cannot serve: %s", g.cfg.ID, p)
		}
		return r1.New(r1.TypeClientNotHosted, "client %s is not served by gateway %s", req.Client, g.cfg.ID)
	}
	return g.checkConnection(c.r, req.Client)
}

// route finds the provider's instance and a gateway serving the
// provider; listClients is answered here.
func (c *consumerCall) route() *r1.Error {
	g, req := c.g, c.req
	if req.Meta == r1.MetaListClients {
		lst, e := g.confFor(req.MetaInstance, clientSide)
		if e != nil {
			return e
		}
		g.listClients(c.w, lst, req, c.o.requestID, errorFormat(c.r))
		c.o.status, c.done = http.StatusOK, true
		return nil
	}
	svc := req.Service
	// The provider's instance: this one or a federated one, whose own
	// configuration alone vouches for its gateways and members.
	var e *r1.Error
	if c.pst, e = g.confFor(svc.Provider.Instance, clientSide); e != nil {
		return e
	}
	if !c.pst.cfg.HasSubsystem(svc.Provider) {
		return r1.New(r1.TypeUnknownService, "service %s: provider %s is not a registered subsystem", svc, svc.Provider)
	}
	hosts := c.pst.cfg.HostedBy(svc.Provider)
	if len(hosts) == 0 {
		return r1.New(r1.TypeUnknownService, "service %s: no gateway serves %s", svc, svc.Provider)
	}
	if hosts, e = targeted(c.pst, hosts, req.SecurityServer, svc); e != nil {
		return e
	}
	c.peer = hosts[int(time.Now().UnixNano()%int64(len(hosts)))]
	c.o.peer = c.peer.ID.String()
	// The headers the signature covers by their value may be sent once
	// (r1.ParseRequest checked the others).
	for _, h := range [...]string{r1.HeaderPurpose, r1.HeaderLegalBasis, r1.HeaderRepresentedParty} {
		if len(c.r.Header.Values(h)) > 1 {
			return r1.New(r1.TypeInvalidHeader, "header %s appears more than once", h)
		}
	}
	return nil
}

// decide applies this gateway's country's rules, before anything leaves.
// A refusal is logged as evidence.
func (c *consumerCall) decide() *r1.Error {
	g, o, svc := c.g, c.o, c.req.Service
	if isProviderMeta(svc.Code) {
		return nil
	}
	_, o.knownService = c.pst.cfg.PolicyEngine().Class(svc)
	purpose, basis, e := declared(c.r.Header, r1.TypeInvalidRequest)
	if e != nil {
		return e
	}
	var dec policy.Decision
	dec, o.decision = g.decide(policy.SideConsumer, c.st, c.pst, c.req.Client, svc, purpose, basis)
	if !dec.Allow {
		o.log.Info("policy refused", "rules", dec.Rules, "policy_version", dec.Version)
		g.logDenial(c.r.Context(), o.record(g.cfg.ID.String()))
		return r1.New(r1.TypeClientPolicyDenied, "%s", dec.Message)
	}
	return c.aiGate()
}

// aiGate applies the AI obligations of this gateway's country and of
// the provider's (aigate.go) before anything leaves: a provider's
// gateway that skipped its own gate still gets no call from here.
func (c *consumerCall) aiGate() *r1.Error {
	rulesOf := []*conf.Config{c.st.cfg}
	if c.pst.cfg.Instance != c.st.cfg.Instance {
		rulesOf = append(rulesOf, c.pst.cfg)
	}
	var e *r1.Error
	c.ai, e = aiGate(c.pst.cfg, rulesOf, c.req.Client, c.req.Service, r1.TypeClientAINotEvaluated)
	if e != nil {
		c.o.log.Info("AI gate refused", "service", c.req.Service.String(), "reason", e.Message)
		return e
	}
	if c.ai.evaluation {
		if d := c.o.decision; d != nil {
			d.Rules = append(d.Rules, RuleAIEvaluationCall)
		}
	}
	return nil
}

// clientSetHeaders are the X-Road headers the consumer's gateway sets
// itself; values sent by the client are dropped.
var clientSetHeaders = []string{r1.HeaderClient, r1.HeaderService, r1.HeaderID, r1.HeaderRequestID, r1.HeaderRequestHash, r1.HeaderError}

// sign builds the request to the provider's gateway and arranges its
// signature: a small body is read whole and signed now, a larger one as
// it streams (the signature then travels in a trailer).
func (c *consumerCall) sign() *r1.Error {
	g, o, r, req, svc := c.g, c.o, c.r, c.req, c.req.Service
	if c.mk = g.keys.Load().sign[req.Client.Member()]; c.mk == nil {
		return r1.New(r1.TypeSigningFailed, "gateway holds no signing certificate for member %s", req.Client.Member())
	}
	c.ctx, c.cancel = context.WithCancel(r.Context())
	u := "https://" + c.peer.Address + peerPrefix + svc.Escaped() + req.Path
	if req.RawQuery != "" {
		u += "?" + req.RawQuery
	}
	out, err := http.NewRequestWithContext(c.ctx, r.Method, u, nil)
	if err != nil {
		return r1.Wrap(err, r1.TypeInvalidRequest, "cannot build the request")
	}
	c.out = out
	for _, h := range clientSetHeaders {
		r.Header.Del(h)
	}
	forwardHeaders(out.Header, r.Header)
	out.Header.Set(r1.HeaderClient, req.Client.Escaped())
	out.Header.Set(r1.HeaderService, svc.Escaped())
	out.Header.Set(r1.HeaderID, req.ID)
	out.Header.Set(r1.HeaderRequestID, o.requestID)
	out.Header.Set(hdrFeatures, featureLoggedTrailer)
	names := withRequired(signedNames(out.Header))
	if len(names) > maxSignedHeaders {
		return r1.New(r1.TypeInvalidHeader, "request carries more than %d headers", maxSignedHeaders)
	}
	var nonce [nonceLen / 2]byte
	rand.Read(nonce[:])
	o.purpose, o.legalBasis = out.Header.Get(r1.HeaderPurpose), out.Header.Get(r1.HeaderLegalBasis)
	o.represented = out.Header.Get(r1.HeaderRepresentedParty)
	rec := o.record(g.cfg.ID.String())
	rec.RequestSignerCert = c.mk.fp
	rec.RequestSignedAt, rec.RequestNonce = g.now().UTC().Format(signedAtLayout), hex.EncodeToString(nonce[:])
	rec.RequestHeadersSHA256, rec.RequestSignedHeaders = otherHeadersSum(out.Header, names), names
	c.rec, c.head = rec, requestHead(rec)
	rec.RequestHeadSHA256 = hexSum(c.head)
	out.Header.Set(hdrSignedHeaders, strings.Join(names, ","))
	out.Header.Set(hdrSignerCert, c.mk.certB64)
	out.Header.Set(hdrSignedAt, rec.RequestSignedAt)
	out.Header.Set(hdrNonce, rec.RequestNonce)
	out.Trailer = http.Header{hdrSignature: nil}
	out.ContentLength = -1
	if c.bs, err = g.startBodies(req.Client, o.requestID, "consumer"); err != nil {
		return r1.Wrap(err, r1.TypeClientLoggingFailed, "the exchange's bodies cannot be stored as configured")
	}
	sr := newSigningReader(g.limitBody(r.Body), c.signBody)
	sr.tee = c.bs.reqW()
	out.Body = io.NopCloser(sr)
	if r.ContentLength < 0 || r.ContentLength > bufSize {
		return nil
	}
	// A small request (or one without a body) is read whole and signed
	// before it is sent: the signature goes in the headers and the body
	// in one frame, with no trailer frame and no flush between them.
	b, err := readHeld(sr, r.ContentLength)
	switch {
	case isTooLarge(err):
		return r1.Wrap(err, r1.TypeRequestTooLarge, "request body exceeds the limit")
	case r.Context().Err() != nil:
		return r1.Wrap(r.Context().Err(), r1.TypeInvalidRequest, "the client abandoned the request")
	case c.signE != nil:
		return r1.Wrap(c.signE, r1.TypeSigningFailed, "the request could not be signed")
	case err != nil:
		return r1.Wrap(err, r1.TypeInvalidRequest, "reading the request body failed")
	}
	out.Header.Set(hdrSignature, out.Trailer.Get(hdrSignature))
	out.Trailer = nil
	out.ContentLength = int64(len(b))
	// A request held whole can be sent again where the transport does so
	// only when the provider's gateway cannot have taken it up. Without
	// a body: a pooled connection found closed (a provider restarting,
	// say). Over HTTP/2, with one too: a stream above the last one a
	// GOAWAY acknowledges, which Go's HTTP/2 server sends, ending every
	// exchange on the connection, when the trailer of a streamed request
	// it refused and reset early arrives after all (golang/go#58286).
	// Over HTTP/1.1 the transport would also resend a GET with a body
	// after a connection dropped once the request was written, which may
	// have reached the service: not that.
	out.Body, out.GetBody = http.NoBody, func() (io.ReadCloser, error) { return http.NoBody, nil }
	if len(b) > 0 {
		out.Body, out.GetBody = io.NopCloser(bytes.NewReader(b)), nil
		if g.cfg.PeerProtocol == PeerHTTP2 {
			out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		}
	}
	return nil
}

// signBody signs the request once its body has been read: sum is the
// body's digest and n its length.
func (c *consumerCall) signBody(sum []byte, n int64) error {
	payload := signedPayload(c.head, sum, c.mk.fp)
	sig, err := c.mk.batch.Sign(c.r.Context(), c.peer.ID.String(), payload)
	if err != nil {
		c.signE = fmt.Errorf("sign request: %w", err)
		return c.signE
	}
	c.out.Trailer.Set(hdrSignature, sig)
	h := requestHash(payload, sig)
	c.hash.Store(&h)
	c.signed.Store(&signedRequest{bodySum: hex.EncodeToString(sum), bytes: n, sig: sig})
	return nil
}

// send sends the request to the provider's gateway and checks that the
// answer came from it. An r1 error from that gateway is relayed as it is:
// the TLS session already authenticates it.
func (c *consumerCall) send() *r1.Error {
	c.o.requestOut = time.Now()
	resp, err := c.g.peerRT.RoundTrip(c.out)
	if sr := c.signed.Load(); sr != nil {
		c.o.reqBytes = sr.bytes
	}
	if err != nil {
		return peerError(err, c.peer)
	}
	c.resp = resp
	c.o.responseIn = time.Now()
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || !c.peer.HasAuthFP(pki.CachedFingerprint(resp.TLS.PeerCertificates[0].Raw)) {
		return r1.New(r1.TypeSSLAuthFailed, "the answer did not come from gateway %s", c.peer.ID)
	}
	if t := resp.Header.Get(r1.HeaderError); t == "" || resp.Header.Get(hdrSignerCert) != "" {
		return nil
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	body := r1.ReadBody(b)
	if body == nil {
		return r1.New(r1.TypeNetworkError, "gateway %s answered with an unreadable error", c.peer.ID)
	}
	e := &r1.Error{Type: body.Type, Status: resp.StatusCode, Message: body.Message}
	c.fail(e, body.Detail)
	c.o.refuse(e)
	c.o.relayed, c.done = true, true
	return nil
}

// verify checks the provider's signature on the answer as it arrives
// and, once it verifies, hands the exchange's record to the log. An
// answer small enough to hold is verified whole here; a larger one as it
// streams to the client.
func (c *consumerCall) verify() *r1.Error {
	g, resp, peer, svc := c.g, c.resp, c.peer, c.req.Service
	hashp := c.hash.Load()
	if hashp == nil {
		return r1.New(r1.TypeNetworkError, "gateway %s answered before receiving the whole request", peer.ID)
	}
	var e *r1.Error
	if c.sg, e = g.signerCert(c.pst, resp.Header.Get(hdrSignerCert), svc.Provider.Member(), r1.TypeClientSignature); e != nil {
		return e
	}
	var err error
	if c.rnames, err = parseSignedHeaders(resp.Header.Get(hdrSignedHeaders)); err != nil {
		return r1.Wrap(err, r1.TypeClientSignature, "response from gateway %s is malformed", peer.ID)
	}
	c.rhead = responseHead(resp.StatusCode, *hashp, resp.Header, c.rnames)
	// A held answer may come before the provider's record of it is
	// durable, followed by the Sampan-Logged trailer: this gateway then
	// writes its own record meanwhile, and releases the answer once both
	// are durable.
	c.confirm = resp.Header.Get(hdrLogged) != ""
	_, declared := resp.Trailer[hdrLogged]
	if declared && !c.confirm {
		return r1.New(r1.TypeNetworkError, "gateway %s declared a log confirmation without announcing it", peer.ID)
	}
	body := resp.Body
	if c.confirm {
		switch {
		case resp.Header.Get(hdrLogged) != loggedPending || !declared || resp.ProtoMajor < 2:
			return r1.New(r1.TypeNetworkError, "gateway %s announced a log confirmation it cannot send (%s %q, %s)", peer.ID, hdrLogged, resp.Header.Get(hdrLogged), resp.Proto)
		case resp.ContentLength < 0 || resp.ContentLength >= bufSize || resp.Header.Get(hdrSignature) == "":
			return r1.New(r1.TypeNetworkError, "gateway %s announced a log confirmation for an answer it did not hold whole", peer.ID)
		}
		body = io.NopCloser(io.LimitReader(resp.Body, resp.ContentLength))
	}
	c.vr = newVerifyingReader(body, c.verifyAnswer)
	c.vr.tee = c.bs.respW()
	c.complete, err = c.vr.Prefetch()
	if err != nil {
		if errors.Is(err, msglog.ErrLogging) {
			return r1.Wrap(err, r1.TypeClientLoggingFailed, "the exchange could not be written to the message log; its answer is withheld")
		}
		if c.complete || isSigErr(err) {
			return r1.Wrap(err, r1.TypeClientSignature, "response signature of %s does not verify", svc.Provider.Member())
		}
		return r1.Wrap(err, r1.TypeNetworkError, "reading the response from gateway %s failed", peer.ID)
	}
	if c.confirm && (!c.complete || c.pend == nil) {
		return r1.New(r1.TypeNetworkError, "gateway %s sent an answer that could not be verified whole", peer.ID)
	}
	return nil
}

// verifyAnswer checks the answer's signature once its body has been
// read (sum is its digest), then puts the exchange on record before the
// client sees the end of the answer: fail closed.
func (c *consumerCall) verifyAnswer(sum []byte) error {
	g, resp, rec := c.g, c.resp, c.rec
	sig, err := signatureOf(resp.Header, resp.Trailer)
	if err != nil {
		return fmt.Errorf("response: %w", err)
	}
	if err := g.sigs.Verify(sig, signedPayload(c.rhead, sum, c.sg.fp), c.sg.cert.PublicKey); err != nil {
		return fmt.Errorf("%w: %w", errSignature, err)
	}
	t := time.Now()
	defer func() { c.o.spend(stepLog, time.Since(t)) }()
	sr := c.signed.Load()
	rec.RequestBodySHA256, rec.RequestBytes, rec.RequestSignature = sr.bodySum, sr.bytes, sr.sig
	rec.RequestHash = *c.hash.Load()
	rec.ResponseAt, rec.Status = time.Now().UTC(), resp.StatusCode
	rec.ResponseHeadSHA256, rec.ResponseBodySHA256, rec.ResponseBytes = hexSum(c.rhead), hex.EncodeToString(sum), c.vr.Len()
	rec.ResponseSignature, rec.ResponseSignerCert, rec.ResponseSignedHeaders = sig, c.sg.fp, c.rnames
	err = errors.Join(g.mlog.StoreKnownCert(c.mk.fp, c.mk.der), g.mlog.StoreKnownCert(c.sg.fp, c.sg.cert.Raw))
	if err == nil {
		rec.Bodies, err = c.bs.finish()
	}
	if err == nil {
		c.pend, err = g.mlog.Begin(rec)
	}
	if err == nil && !c.confirm {
		err = c.pend.Wait(context.WithoutCancel(c.ctx))
		if err == nil {
			c.bs.keep()
		}
	}
	if err != nil {
		c.o.log.Error("exchange not logged; answer withheld", "err", err)
		return fmt.Errorf("%w: %w", msglog.ErrLogging, err)
	}
	return nil
}

// awaitLogged waits, for a held answer already verified and handed to
// this gateway's log, until the provider's gateway reports its own record
// durable (the Sampan-Logged trailer) and this gateway's record is too.
func (c *consumerCall) awaitLogged() *r1.Error {
	if !c.confirm {
		return nil
	}
	g, resp, peer := c.g, c.resp, c.peer
	// After the announced length only the trailer may follow. Waiting for
	// it is bounded as waiting for the answer's headers was.
	stop := time.AfterFunc(g.cfg.PeerTimeout.D(), c.cancel)
	var b [1]byte
	n, rerr := io.ReadFull(resp.Body, b[:])
	timedOut := !stop.Stop()
	// This gateway's record is waited for even when the provider's
	// failed, so that its stored bodies are kept exactly when it is
	// durable.
	if err := c.pend.Wait(context.WithoutCancel(c.ctx)); err != nil {
		c.o.log.Error("exchange not logged; answer withheld", "err", err)
		return r1.Wrap(fmt.Errorf("%w: %w", msglog.ErrLogging, err), r1.TypeClientLoggingFailed, "the exchange could not be written to the message log; its answer is withheld")
	}
	c.bs.keep()
	switch v := resp.Trailer.Get(hdrLogged); {
	case n > 0:
		return r1.New(r1.TypeNetworkError, "gateway %s sent more than the announced %d bytes", peer.ID, resp.ContentLength)
	case rerr != io.EOF && timedOut:
		return r1.New(r1.TypeNetworkError, "gateway %s did not confirm within %s that it logged the exchange", peer.ID, g.cfg.PeerTimeout.D())
	case rerr != io.EOF:
		return r1.Wrap(rerr, r1.TypeNetworkError, "gateway %s did not confirm that it logged the exchange", peer.ID)
	case v == loggedOK:
		return nil
	case v == loggedFailed:
		c.o.log.Warn("provider gateway did not log the exchange; answer withheld", "peer", peer.ID.String())
		return r1.New(r1.TypeServerLoggingFailed, "gateway %s could not write the exchange to its message log; the answer is withheld", peer.ID)
	default:
		return r1.New(r1.TypeNetworkError, "gateway %s did not confirm that it logged the exchange (%s %q)", peer.ID, hdrLogged, v)
	}
}

// aiHeaders sets the AI headers of an answer from the configuration:
// whatever the service or the provider's gateway sent is dropped, so
// that no service can present itself as another's model card or give
// its own notice in place of the required one.
func (c *consumerCall) aiHeaders(h http.Header) {
	h.Del(HeaderAIModelCard)
	h.Del(HeaderAINotice)
	if c.ai.svc != nil {
		h.Set(HeaderAIModelCard, c.ai.svc.ModelCardDigest)
		if c.ai.notice != "" {
			h.Set(HeaderAINotice, c.ai.notice)
		}
	}
}

// answerStep answers in the request's protocol.
func (c *consumerCall) answerStep() *r1.Error {
	if c.soap != nil {
		return c.soapAnswer()
	}
	return c.answer()
}

// fail writes a refusal in the request's protocol.
func (c *consumerCall) fail(e *r1.Error, detail string) {
	if c.soap != nil {
		c.g.writeFault(c.w, e, detail)
		return
	}
	r1.WriteAs(c.w, e, detail, errorFormat(c.r))
}

// answer streams the verified answer to the client.
func (c *consumerCall) answer() *r1.Error {
	req, resp, o := c.req, c.resp, c.o
	h := c.w.Header()
	copyNamed(h, resp.Header, c.rnames)
	h.Set(r1.HeaderClient, req.Client.Escaped())
	h.Set(r1.HeaderService, req.Service.Escaped())
	h.Set(r1.HeaderID, req.ID)
	h.Set(r1.HeaderRequestID, o.requestID)
	h.Set(r1.HeaderRequestHash, *c.hash.Load())
	c.aiHeaders(h)
	if c.complete {
		h.Set("Content-Length", strconv.FormatInt(c.vr.Len(), 10))
	}
	o.status = resp.StatusCode
	c.w.WriteHeader(resp.StatusCode)
	_, err := io.Copy(c.w, c.vr)
	o.respBytes = c.vr.Len()
	c.abortOn(err)
	return nil
}

// abortOn breaks the connection when the answer could not be streamed
// to its end: the client must not take a truncated or unverified body
// for a whole one.
func (c *consumerCall) abortOn(err error) {
	if err != nil {
		c.o.aborted = true
		c.o.log.Warn("response stream aborted", "err", err, "bytes", c.vr.Len())
		panic(http.ErrAbortHandler)
	}
}

// maxErrorBody bounds an error body relayed from a peer gateway.
const maxErrorBody = 16 << 10

// readHeld reads a body of a known, small length to its end, into a
// buffer of that length (and one byte more, for the read that meets the
// end): a bytes.Buffer would grow a second time to keep 512 bytes free.
// A body longer than announced grows the buffer; the reader's own limit
// refuses one past the maximum.
func readHeld(r io.Reader, length int64) ([]byte, error) {
	b := make([]byte, 0, length+1)
	for {
		if len(b) == cap(b) {
			b = slices.Grow(b, 512)
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// copyNamed copies the named headers of src into dst, leaving out X-Road
// headers, which the gateway sets itself.
func copyNamed(dst, src http.Header, names []string) {
	for _, n := range names {
		k := http.CanonicalHeaderKey(n)
		if strings.HasPrefix(k, "X-Road-") || !r1.Forwardable(k, nil) {
			continue
		}
		dst[k] = src.Values(k)
	}
}

// peerError maps a failed round trip to the provider's gateway.
func peerError(err error, peer *conf.Gateway) *r1.Error {
	switch {
	case isTooLarge(err):
		return r1.Wrap(err, r1.TypeRequestTooLarge, "request body exceeds the limit")
	case errors.Is(err, errPeerAuth):
		return r1.Wrap(err, r1.TypeSSLAuthFailed, "gateway %s at %s failed authentication", peer.ID, peer.Address)
	case isRemoteTLSRefusal(err):
		return r1.Wrap(err, r1.TypeSSLAuthFailed, "gateway %s refused this gateway's certificate", peer.ID)
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout"):
		return r1.Wrap(err, r1.TypeNetworkError, "gateway %s did not answer in time", peer.ID)
	default:
		return r1.Wrap(err, r1.TypeNetworkError, "cannot reach gateway %s at %s", peer.ID, peer.Address)
	}
}
