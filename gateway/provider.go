package gateway

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/soap"
)

// providerCall is one request from a consumer's gateway at the
// provider's gateway, as its steps build it up.
type providerCall struct {
	g *Gateway
	w http.ResponseWriter
	r *http.Request
	o *outcome

	st      *confState // this gateway's instance
	pst     *confState // the consumer's gateway's instance
	peer    *conf.Gateway
	peerFP  string
	client  ident.ClientID
	svc     ident.ServiceID
	path    string
	meta    bool
	live    *liveConfig
	service *Service // nil for metaservices
	provKey *memberKey
	sg      *signer
	names   []string
	stamp   signedTime
	quota   string // the agreement the call counts under
	notice  string // the AI transparency notice the answer carries

	rec      *msglog.Record
	head     []byte
	bs       *bodyStore
	vr       *verifyingReader
	verified atomic.Pointer[verifiedRequest]
	complete bool
	resp     *http.Response
}

// verifiedRequest is what the provider's gateway knows of a request once
// its signature has verified.
type verifiedRequest struct {
	hash    string
	bodySum string
	bytes   int64
	sig     string
}

// providerSteps is the provider's pipeline up to the service's answer;
// respond then signs, logs and sends it.
var providerSteps = [...]struct {
	id  stepID
	run func(*providerCall) *r1.Error
}{
	{stepAuthenticate, (*providerCall).authenticate},
	{stepLimits, (*providerCall).limits},
	{stepIdentify, (*providerCall).identify},
	{stepAuthorize, (*providerCall).authorize},
	{stepDecide, (*providerCall).decide},
	{stepVerify, (*providerCall).verify},
	{stepBackend, (*providerCall).backend},
	{stepSign, (*providerCall).respond},
}

// maxIDHeader bounds the identifying headers a consumer's gateway sends.
const maxIDHeader = 1024

// drainBeforeRefusal bounds how much of a refused request is read.
const drainBeforeRefusal = 256 << 10

// servePeer runs a request from a consumer's gateway through the
// provider's pipeline.
func (g *Gateway) servePeer(w http.ResponseWriter, r *http.Request) {
	// The consumer's request id ties both gateways' log lines together.
	reqID := r.Header.Get(r1.HeaderRequestID)
	if reqID == "" || len(reqID) > 64 {
		reqID = r1.NewID()
	}
	c := &providerCall{g: g, w: w, r: r, o: g.begin(serverSide, reqID, r)}
	defer g.finish(r.Context(), c.o)
	if e := c.run(); e != nil {
		c.o.refuse(e)
		// Read what remains of a small request before answering: an
		// HTTP/2 stream answered and reset while the consumer's gateway
		// is still sending its body and trailer can surface there as a
		// stream error instead of this answer.
		io.Copy(io.Discard, io.LimitReader(r.Body, drainBeforeRefusal))
		r1.Write(w, e, reqID)
	}
}

func (c *providerCall) run() *r1.Error {
	defer c.release()
	for _, s := range providerSteps {
		c.o.enter(s.id)
		if e := s.run(c); e != nil {
			return e
		}
	}
	return nil
}

// release frees what the steps took, whatever step the exchange ended in.
func (c *providerCall) release() {
	if c.resp != nil {
		c.resp.Body.Close()
	}
	if c.vr != nil {
		c.vr.release()
	}
	if c.bs != nil {
		c.bs.discard()
	}
}

// authenticate finds the gateway at the other end of the TLS session.
// The handshake checked the chain; the configurations may have changed
// since, so federation, registration and revocation are checked per
// request, in the peer's own instance's configuration.
func (c *providerCall) authenticate() *r1.Error {
	g, r := c.g, c.r
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return r1.New(r1.TypeServerAuthFailed, "peer requests need a TLS client certificate")
	}
	var e *r1.Error
	if c.st, e = g.serving(serverSide); e != nil {
		return e
	}
	leaf := r.TLS.PeerCertificates[0]
	claimed, _ := pki.GatewayOf(leaf)
	gid, err := ident.ParseGateway(claimed)
	if err != nil {
		return r1.New(r1.TypeServerAuthFailed, "peer certificate names no gateway")
	}
	if c.pst, e = g.confFor(gid.Instance, serverSide); e != nil {
		return e
	}
	c.peerFP = pki.CachedFingerprint(leaf.Raw)
	c.peer = c.pst.cfg.GatewayByFingerprint(c.peerFP)
	if c.peer == nil || c.peer.ID != gid || c.pst.cfg.IsRevoked(leaf) {
		return r1.New(r1.TypeServerAuthFailed, "peer certificate is not registered to a gateway of %s", gid.Instance)
	}
	c.o.peer = c.peer.ID.String()
	c.o.log = c.o.log.With("peer", c.o.peer)
	return nil
}

// limits bounds the identifying headers, the URI, the headers and the
// announced body.
func (c *providerCall) limits() *r1.Error {
	for _, h := range []string{r1.HeaderID, r1.HeaderUserID, r1.HeaderIssue, r1.HeaderRepresentedParty} {
		if v := c.r.Header.Get(h); len(v) > maxIDHeader || !utf8.ValidString(v) {
			return r1.New(r1.TypeServerInvalidReq, "%s must be UTF-8 text of at most %d bytes", h, maxIDHeader)
		}
	}
	return c.g.checkLimits(c.r)
}

// identify reads the service and the client, and checks that the peer
// may speak for the client and that the service is offered here.
func (c *providerCall) identify() *r1.Error {
	g, r, o := c.g, c.r, c.o
	var err error
	if c.svc, c.path, err = parsePeerPath(r.URL.EscapedPath()); err != nil {
		return r1.Wrap(err, r1.TypeServerInvalidReq, "malformed peer request path")
	}
	client, err := ident.ParseEscapedClient(r.Header.Get(r1.HeaderClient))
	if err != nil || !client.IsSubsystem() {
		return r1.New(r1.TypeServerInvalidReq, "malformed %s", r1.HeaderClient)
	}
	c.client = client
	o.identify(client, c.svc)
	o.xroadID, o.userID, o.issue = r.Header.Get(r1.HeaderID), r.Header.Get(r1.HeaderUserID), r.Header.Get(r1.HeaderIssue)
	o.path, o.query = c.path, r.URL.RawQuery
	// The peer's own configuration must say it serves the client: a
	// gateway of one instance can never speak for a client of another.
	if !c.pst.cfg.Serves(c.peerFP, client) {
		return r1.New(r1.TypeServerAuthFailed, "gateway %s does not serve client %s", c.peer.ID, client)
	}
	o.knownClient = true
	if client.Instance != c.st.cfg.Instance && !c.st.cfg.Federated(client.Instance).Admits(client) {
		return r1.New(r1.TypeServerAccessDenied, "%s admits no calls from %s", c.st.cfg.Instance, client)
	}
	if e := g.checkTarget(r.Header); e != nil {
		return e
	}
	c.meta = isProviderMeta(c.svc.Code)
	c.live = g.live.Load() // one view of the reloadable settings for the whole request
	if !c.meta {
		if c.service = c.live.services[c.svc]; c.service == nil {
			return r1.New(r1.TypeServerUnknownSvc, "service %s is not offered at this gateway", c.svc)
		}
		o.knownService = true
	} else if !c.live.providesFor(c.svc.Provider) {
		return r1.New(r1.TypeServerUnknownSvc, "subsystem %s offers no services at this gateway", c.svc.Provider)
	}
	if c.provKey = g.keys.Load().sign[c.svc.Provider.Member()]; c.provKey == nil {
		return r1.New(r1.TypeServerInternal, "gateway holds no signing certificate for member %s", c.svc.Provider.Member())
	}
	return nil
}

// authorize checks the signer, the access rights and the signed head,
// and that the request is not a replay.
func (c *providerCall) authorize() *r1.Error {
	g, r := c.g, c.r
	var e *r1.Error
	if c.sg, e = g.signerCert(c.pst, r.Header.Get(hdrSignerCert), c.client.Member(), r1.TypeServerSignature); e != nil {
		return e
	}
	if !c.meta && !g.allowed(c.st, c.pst, c.service, c.client, r.Method, c.path) {
		return r1.New(r1.TypeServerAccessDenied, "client %s has no access right to %s %s on %s", c.client, r.Method, displayPath(c.path), c.svc)
	}
	if c.names, e = g.checkSignedHead(r, c.svc); e != nil {
		return e
	}
	c.stamp, e = g.replay.check(r.Header.Get(hdrSignedAt), r.Header.Get(hdrNonce), g.now())
	return e
}

// decide applies this gateway's country's rules before any data leaves
// it. A refusal is logged as evidence.
func (c *providerCall) decide() *r1.Error {
	g, o := c.g, c.o
	if c.meta {
		return nil
	}
	purpose, basis, e := declared(c.r.Header, r1.TypeServerInvalidReq)
	if e != nil {
		return e
	}
	var dec policy.Decision
	dec, o.decision = g.decide(policy.SideProvider, c.st, c.st, c.client, c.svc, purpose, basis)
	if !dec.Allow {
		o.log.Info("policy refused", "rules", dec.Rules, "policy_version", dec.Version)
		g.logDenial(c.r.Context(), o.record(g.cfg.ID.String()))
		return r1.New(r1.TypeServerPolicyDenied, "%s", dec.Message)
	}
	c.quota = dec.Agreement
	return c.aiGate()
}

// aiGate applies the AI obligations of the provider's country and of
// the client's (aigate.go).
func (c *providerCall) aiGate() *r1.Error {
	rulesOf := []*conf.Config{c.st.cfg}
	if c.pst.cfg.Instance != c.st.cfg.Instance {
		// The client's country's rules too: a consumer's gateway that
		// skipped its own gate gets no more than one that applied it.
		rulesOf = append(rulesOf, c.pst.cfg)
	}
	v, e := aiGate(c.st.cfg, rulesOf, c.client, c.svc, r1.TypeServerAINotEvaluated)
	if e != nil || v.svc == nil {
		return e
	}
	c.notice = v.notice
	if v.evaluation {
		if d := c.o.decision; d != nil {
			d.Rules = append(d.Rules, RuleAIEvaluationCall)
		}
		c.o.log.Info("AI evaluation call", "service", c.svc.String(), "model_version", v.svc.ModelVersion, "tier", v.svc.Tier, "testing_body", c.client.Member().String())
	}
	return nil
}

// verify reads the request (all of it when it fits the buffer) and
// checks its signature, then counts the call under its agreement.
func (c *providerCall) verify() *r1.Error {
	g, r, o := c.g, c.r, c.o
	h := r.Header
	o.purpose, o.legalBasis, o.represented = h.Get(r1.HeaderPurpose), h.Get(r1.HeaderLegalBasis), h.Get(r1.HeaderRepresentedParty)
	rec := o.record(g.cfg.ID.String())
	rec.RequestAt = time.Now().UTC()
	rec.RequestSignerCert = c.sg.fp
	rec.RequestSignedAt, rec.RequestNonce = h.Get(hdrSignedAt), h.Get(hdrNonce)
	rec.RequestHeadersSHA256, rec.RequestSignedHeaders = otherHeadersSum(h, c.names), c.names
	c.rec, c.head = rec, requestHead(rec)
	rec.RequestHeadSHA256 = hexSum(c.head)
	if !c.meta {
		var err error
		if c.bs, err = g.startBodies(c.svc.Provider, o.requestID, "provider"); err != nil {
			return r1.Wrap(err, r1.TypeServerLoggingFailed, "the exchange's bodies cannot be stored as configured")
		}
	}
	c.vr = newVerifyingReader(g.limitBody(r.Body), c.verifyRequest)
	c.vr.tee = c.bs.reqW()
	complete, err := c.vr.Prefetch()
	if err != nil {
		return bodyError(err, complete, c.client)
	}
	c.complete = complete
	// Counted once the request has arrived (and, when it fits the buffer,
	// its signature verified), so broken requests do not use the quota up.
	return g.checkQuota(r.Context(), c.st, c.quota)
}

// verifyRequest checks the request's signature once its body has been
// read (sum is its digest), and spends its nonce.
func (c *providerCall) verifyRequest(sum []byte) error {
	g, r := c.g, c.r
	sig, err := signatureOf(r.Header, r.Trailer)
	if err != nil {
		return fmt.Errorf("request: %w", err)
	}
	payload := signedPayload(c.head, sum, c.sg.fp)
	if err := g.sigs.Verify(sig, payload, c.sg.cert.PublicKey); err != nil {
		return fmt.Errorf("%w: %w", errSignature, err)
	}
	// Only a verified request spends its nonce: nobody else can spend it
	// for the consumer.
	if e := g.replay.remember(r.Context(), c.stamp, g.now()); e != nil {
		return e
	}
	c.verified.Store(&verifiedRequest{hash: requestHash(payload, sig), bodySum: hex.EncodeToString(sum), bytes: c.vr.Len(), sig: sig})
	return nil
}

// backend asks the service (or this gateway's metaservices) for the
// answer. Nothing goes back unless the whole request verified.
func (c *providerCall) backend() *r1.Error {
	g, r, o := c.g, c.r, c.o
	var e *r1.Error
	o.requestOut = time.Now()
	switch {
	case c.meta && r.Method == http.MethodPost && soap.IsSOAP(r.Header.Get("Content-Type")):
		c.resp, e = g.serveSOAPMeta(r, c.vr, c.live, clientGroups(c.st, c.pst, c.client), c.svc, c.client, g.describable(c.st, c.client, r.Header))
	case c.meta:
		c.resp, e = g.serveMeta(r, c.live, clientGroups(c.st, c.pst, c.client), c.svc, c.client, g.describable(c.st, c.client, r.Header))
	case c.service.Protocol == ProtocolSOAP:
		if e = c.checkSOAPRequest(); e != nil {
			return e
		}
		fallthrough
	default:
		// Reads of the request still under way when the handler ends (the
		// service answered early) are ended by a read deadline.
		interrupt := func() { interruptBody(c.w, r) }
		c.resp, e = g.callBackend(r, c.service, c.client, c.path, c.names, c.vr, c.complete, interrupt, o.log)
	}
	if e != nil {
		return e
	}
	// Only the gateway sets the AI headers.
	c.resp.Header.Del(HeaderAINotice)
	c.resp.Header.Del(HeaderAIModelCard)
	if c.notice != "" {
		c.resp.Header.Set(HeaderAINotice, c.notice)
	}
	o.responseIn = time.Now()
	vq := c.verified.Load()
	if vq == nil {
		// The service answered without reading the whole request, so the
		// request's signature was never checked: nothing may go back.
		return r1.New(r1.TypeServiceFailed, "service %s answered before reading the whole request", c.svc)
	}
	c.rec.RequestBodySHA256, c.rec.RequestBytes, c.rec.RequestHash, c.rec.RequestSignature = vq.bodySum, vq.bytes, vq.hash, vq.sig
	o.reqBytes = vq.bytes
	return nil
}

// bodyError maps a failure reading the request body.
func bodyError(err error, complete bool, client ident.ClientID) *r1.Error {
	var mbe *http.MaxBytesError
	var re *r1.Error
	switch {
	case errors.As(err, &mbe):
		return r1.Wrap(err, r1.TypeServerTooLarge, "request body exceeds the limit of %d bytes", mbe.Limit)
	case errors.As(err, &re):
		return re
	case isSigErr(err):
		return r1.Wrap(err, r1.TypeServerSignature, "request signature of %s does not verify", client.Member())
	default:
		return r1.Wrap(err, r1.TypeServerInvalidReq, "reading the request body failed")
	}
}

// parsePeerPath splits /x/{instance}/{class}/{code}/{subsystem}/{service}[/path].
func parsePeerPath(escaped string) (ident.ServiceID, string, error) {
	rest, ok := strings.CutPrefix(escaped, peerPrefix)
	if !ok {
		return ident.ServiceID{}, "", errors.New("path must start with " + peerPrefix)
	}
	parts := strings.SplitN(rest, "/", 6)
	if len(parts) < 5 {
		return ident.ServiceID{}, "", errors.New("path names no service")
	}
	var dec [5]string
	for i := range 5 {
		v, err := url.PathUnescape(parts[i])
		if err != nil {
			return ident.ServiceID{}, "", err
		}
		dec[i] = v
	}
	svc := ident.ServiceID{Provider: ident.ClientID{Instance: dec[0], Class: dec[1], Code: dec[2], Subsystem: dec[3]}, Code: dec[4]}
	if err := svc.Validate(); err != nil {
		return ident.ServiceID{}, "", err
	}
	path := ""
	if len(parts) == 6 {
		path = "/" + parts[5]
		if e := r1.CheckPath(path); e != nil {
			return ident.ServiceID{}, "", e
		}
	}
	return svc, path, nil
}
