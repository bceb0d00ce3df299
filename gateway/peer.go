package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/r1"
)

// peerHandler serves other gateways: signed requests for the services this
// gateway provides, under /x/. The HTTP/2 server starts a goroutine per
// request; the handler runs on a warm one instead (internal/warm). Over
// HTTP/1.1 it runs on the connection's own goroutine, which lives as
// long as the connection: handing it over would cost more than it saves.
func (g *Gateway) peerHandler() http.Handler {
	idle := g.cfg.PeerLimits.BodyIdleTimeout.D()
	serve := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		r.Body = &idleBody{ReadCloser: r.Body, rc: rc, timeout: idle}
		g.servePeer(&idleWriter{ResponseWriter: w, rc: rc, timeout: idle}, r)
		// What the handler leaves unsent is flushed without a deadline of
		// this request's, and the next request on the connection starts
		// without one.
		rc.SetWriteDeadline(time.Time{})
	})
	warm := g.warm.Handler(serve)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor < 2 {
			serve(w, r)
			return
		}
		warm.ServeHTTP(w, r)
	})
}

// warmIdle is how many warm goroutines wait for peer requests at most:
// as many as a busy gateway has under way, about 32 KiB of stack each.
const warmIdle = 128

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

// maxIDHeader bounds the identifying headers a consumer's gateway sends.
const maxIDHeader = 1024

// drainBeforeRefusal bounds how much of a refused request is read.
const drainBeforeRefusal = 256 << 10

// servePeer handles a request from a consumer's gateway.
func (g *Gateway) servePeer(w http.ResponseWriter, r *http.Request) {
	// The consumer's request id ties both gateways' log lines together.
	reqID := r.Header.Get(r1.HeaderRequestID)
	if reqID == "" || len(reqID) > 64 {
		reqID = r1.NewID()
	}
	log := requestLog(g.peerLog, "side", "provider", "request_id", reqID)
	fail := func(e *r1.Error) {
		lvl := slog.LevelInfo
		if e.Status >= 500 {
			lvl = slog.LevelWarn
		}
		log.Log(r.Context(), lvl, "peer request refused", "type", e.Type, "status", e.Status, "err", e.Error())
		// Read what remains of a small request before answering: an
		// HTTP/2 stream answered and reset while the consumer's gateway
		// is still sending its body and trailer can surface there as a
		// stream error instead of this answer.
		io.Copy(io.Discard, io.LimitReader(r.Body, drainBeforeRefusal))
		r1.Write(w, e, reqID)
	}
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		fail(r1.New(r1.TypeServerAuthFailed, "peer requests need a TLS client certificate"))
		return
	}
	st, e := g.serving(serverSide)
	if e != nil {
		fail(e)
		return
	}
	for _, h := range []string{r1.HeaderID, r1.HeaderUserID, r1.HeaderIssue, r1.HeaderRepresentedParty} {
		if v := r.Header.Get(h); len(v) > maxIDHeader || !utf8.ValidString(v) {
			fail(r1.New(r1.TypeServerInvalidReq, "%s must be UTF-8 text of at most %d bytes", h, maxIDHeader))
			return
		}
	}
	// The handshake checked the chain; the configurations may have
	// changed since, so federation, registration and revocation are
	// checked per request, in the peer's own instance's configuration.
	leaf := r.TLS.PeerCertificates[0]
	claimed, _ := pki.GatewayOf(leaf)
	gid, err := ident.ParseGateway(claimed)
	if err != nil {
		fail(r1.New(r1.TypeServerAuthFailed, "peer certificate names no gateway"))
		return
	}
	pst, e := g.confFor(gid.Instance, serverSide)
	if e != nil {
		fail(e)
		return
	}
	peerFP := pki.CachedFingerprint(leaf.Raw)
	peer := pst.cfg.GatewayByFingerprint(peerFP)
	if peer == nil || peer.ID != gid || pst.cfg.IsRevoked(leaf) {
		fail(r1.New(r1.TypeServerAuthFailed, "peer certificate is not registered to a gateway of %s", gid.Instance))
		return
	}
	log = log.With("peer", peer.ID.String())
	if e := g.checkLimits(r); e != nil {
		fail(e)
		return
	}
	svc, path, err := parsePeerPath(r.URL.EscapedPath())
	if err != nil {
		fail(r1.Wrap(err, r1.TypeServerInvalidReq, "malformed peer request path"))
		return
	}
	client, err := ident.ParseEscapedClient(r.Header.Get(r1.HeaderClient))
	if err != nil || !client.IsSubsystem() {
		fail(r1.New(r1.TypeServerInvalidReq, "malformed %s", r1.HeaderClient))
		return
	}
	log = log.With("client", client.String(), "service", svc.String())
	// The peer's own configuration must say it serves the client: a
	// gateway of one instance can never speak for a client of another.
	if !pst.cfg.Serves(peerFP, client) {
		fail(r1.New(r1.TypeServerAuthFailed, "gateway %s does not serve client %s", peer.ID, client))
		return
	}
	if client.Instance != st.cfg.Instance && !st.cfg.Federated(client.Instance).Admits(client) {
		fail(r1.New(r1.TypeServerAccessDenied, "%s admits no calls from %s", st.cfg.Instance, client))
		return
	}
	meta := isProviderMeta(svc.Code)
	var service *Service
	if !meta {
		service = g.services[svc]
		if service == nil {
			fail(r1.New(r1.TypeServerUnknownSvc, "service %s is not offered at this gateway", svc))
			return
		}
	} else if !g.providesFor(svc.Provider) {
		fail(r1.New(r1.TypeServerUnknownSvc, "subsystem %s offers no services at this gateway", svc.Provider))
		return
	}
	provKey := g.keys.sign[svc.Provider.Member()]
	if provKey == nil {
		fail(r1.New(r1.TypeServerInternal, "gateway holds no signing certificate for member %s", svc.Provider.Member()))
		return
	}
	sg, e := g.signerCert(pst, r.Header.Get(hdrSignerCert), client.Member(), r1.TypeServerSignature)
	if e != nil {
		fail(e)
		return
	}
	if !meta && !g.allowed(st, pst, service, client, r.Method, path) {
		fail(r1.New(r1.TypeServerAccessDenied, "client %s has no access right to %s %s on %s", client, r.Method, displayPath(path), svc))
		return
	}
	names, e := g.checkSignedHead(r, svc)
	if e != nil {
		fail(e)
		return
	}
	received := time.Now().UTC()
	stamp, e := g.replay.check(r.Header.Get(hdrSignedAt), r.Header.Get(hdrNonce), g.now())
	if e != nil {
		fail(e)
		return
	}
	// This gateway's country decides before any data leaves it.
	var logDec *msglog.Decision
	var quotaAgreement string
	if !meta {
		purpose, basis, e := declared(r.Header, r1.TypeServerInvalidReq)
		if e != nil {
			fail(e)
			return
		}
		var dec policy.Decision
		dec, logDec = g.decide(policy.SideProvider, st, st, client, svc, purpose, basis)
		if !dec.Allow {
			log.Info("policy refused", "client", client.String(), "service", svc.String(), "rules", dec.Rules, "policy_version", dec.Version)
			g.logDenial(r.Context(), &msglog.Record{Side: "provider", Gateway: g.cfg.ID.String(), PeerGateway: peer.ID.String(),
				XRoadID: r.Header.Get(r1.HeaderID), RequestID: reqID, Client: client.String(), Service: svc.String(),
				UserID: r.Header.Get(r1.HeaderUserID), Issue: r.Header.Get(r1.HeaderIssue), Method: r.Method, Path: path, Query: r.URL.RawQuery,
				RequestAt: time.Now().UTC(), Decision: logDec})
			fail(r1.New(r1.TypeServerPolicyDenied, "%s", dec.Message))
			return
		}
		quotaAgreement = dec.Agreement
	}
	rec := &msglog.Record{
		Side: "provider", Gateway: g.cfg.ID.String(), PeerGateway: peer.ID.String(),
		XRoadID: r.Header.Get(r1.HeaderID), RequestID: reqID, Client: client.String(), Service: svc.String(),
		UserID: r.Header.Get(r1.HeaderUserID), Issue: r.Header.Get(r1.HeaderIssue),
		Method: r.Method, Path: path, Query: r.URL.RawQuery,
		Purpose: r.Header.Get(r1.HeaderPurpose), LegalBasis: r.Header.Get(r1.HeaderLegalBasis),
		RepresentedParty: r.Header.Get(r1.HeaderRepresentedParty),
		RequestAt:        received, RequestSignerCert: sg.fp,
		RequestSignedAt: r.Header.Get(hdrSignedAt), RequestNonce: r.Header.Get(hdrNonce),
		RequestHeadersSHA256: otherHeadersSum(r.Header, names), RequestSignedHeaders: names,
		Decision: logDec,
	}
	head := requestHead(rec)
	rec.RequestHeadSHA256 = hexSum(head)
	cert, certFP := sg.cert, sg.fp
	var verified atomic.Pointer[verifiedRequest]
	var src io.Reader = r.Body
	if max := g.cfg.Limits.MaxBodyBytes; max >= 0 {
		src = http.MaxBytesReader(w, r.Body, max)
	}
	var bs *bodyStore
	if !meta {
		if bs, err = g.startBodies(svc.Provider, reqID, "provider"); err != nil {
			fail(r1.Wrap(err, r1.TypeServerLoggingFailed, "the exchange's bodies cannot be stored as configured"))
			return
		}
		defer bs.discard()
	}
	var vr *verifyingReader
	vr = newVerifyingReader(src, func(sum []byte) error {
		sig, err := signatureOf(r.Header, r.Trailer)
		if err != nil {
			return fmt.Errorf("request: %w", err)
		}
		payload := signedPayload(head, sum, certFP)
		if err := g.sigs.Verify(sig, payload, cert.PublicKey); err != nil {
			return fmt.Errorf("%w: %w", errSignature, err)
		}
		// Only a verified request spends its nonce: nobody else can
		// spend it for the consumer.
		if e := g.replay.remember(r.Context(), stamp, g.now()); e != nil {
			return e
		}
		verified.Store(&verifiedRequest{hash: requestHash(payload, sig), bodySum: hex.EncodeToString(sum), bytes: vr.Len(), sig: sig})
		return nil
	})
	vr.tee = bs.reqW()
	defer vr.release()
	complete, err := vr.Prefetch()
	if err != nil {
		fail(bodyError(err, complete, client))
		return
	}
	// Counted once the request has arrived (and, when it fits the buffer,
	// its signature verified), so broken requests do not use the quota up.
	if e := g.checkQuota(r.Context(), st, quotaAgreement); e != nil {
		fail(e)
		return
	}

	var resp *http.Response
	if meta {
		resp, e = g.serveMeta(r, clientGroups(st, pst, client), svc, client, g.describable(st, client, r.Header))
		if e != nil {
			fail(e)
			return
		}
	} else {
		// Reads of the request still under way when the handler ends (the
		// service answered early) are ended by a read deadline.
		interrupt := func() { interruptBody(w, r) }
		resp, e = g.callBackend(r, service, client, path, names, vr, complete, interrupt, log)
		if e != nil {
			fail(e)
			return
		}
	}
	defer resp.Body.Close()
	vq := verified.Load()
	if vq == nil {
		// The service answered without reading the whole request, so the
		// request's signature was never checked: nothing may go back.
		fail(r1.New(r1.TypeServiceFailed, "service %s answered before reading the whole request", svc))
		return
	}
	rec.RequestBodySHA256, rec.RequestBytes, rec.RequestHash, rec.RequestSignature = vq.bodySum, vq.bytes, vq.hash, vq.sig
	// Only HTTP/2 carries trailers after a body of known length, and an
	// answer to HEAD ends with its headers.
	confirm := r.ProtoMajor >= 2 && r.Method != http.MethodHead && hasFeature(r.Header, featureLoggedTrailer)
	g.writeSigned(r.Context(), w, resp, rec, cert, provKey, bs, confirm, log)
}

// verifiedRequest is what the provider's gateway knows of a request once
// its signature has verified.
type verifiedRequest struct {
	hash    string
	bodySum string
	bytes   int64
	sig     string
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

func displayPath(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// allowed decides access with the service's access rights compiled to
// Cedar: deny unless a right names the client or one of its global
// groups, for the whole service or for an endpoint pattern that matches
// method and path (the patterns are matched here, the grant decided by
// the policy).
func (g *Gateway) allowed(st, cst *confState, s *Service, client ident.ClientID, method, path string) bool {
	p := displayPath(path)
	var matched []string
	for _, a := range s.access {
		if a.endpoint != nil && a.endpoint.match(method, p) && !slices.Contains(matched, a.endpoint.raw) {
			matched = append(matched, a.endpoint.raw)
		}
	}
	return s.policy.Allowed(client, clientGroups(st, cst, client), matched)
}

// callBackend forwards a verified request to the service's backend.
func (g *Gateway) callBackend(r *http.Request, s *Service, client ident.ClientID, path string, names []string, body *verifyingReader, complete bool, interrupt func(), log *slog.Logger) (*http.Response, *r1.Error) {
	u := strings.TrimSuffix(s.Backend, "/") + path
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	ctx, cancel := context.WithCancel(r.Context())
	out, err := http.NewRequestWithContext(ctx, r.Method, u, nil)
	if err != nil {
		cancel()
		return nil, r1.Wrap(err, r1.TypeServerInvalidReq, "cannot build the service request")
	}
	copyNamedAll(out.Header, r.Header, names)
	// The identifiers as the signature covers them, in their canonical
	// escaped form.
	out.Header.Set(r1.HeaderClient, client.Escaped())
	out.Header.Set(r1.HeaderService, s.ID.Escaped())
	switch {
	case complete && body.Len() == 0:
		out.Body = http.NoBody
		out.ContentLength = 0
	case complete:
		out.Body = lend(body, interrupt)
		out.ContentLength = body.Len()
	default:
		out.Body = lend(body, interrupt)
		out.ContentLength = -1
	}
	// The timeout covers waiting for the answer's head; a long body may
	// stream for as long as it takes.
	timer := time.AfterFunc(s.Timeout.D(), cancel)
	resp, err := g.backends.RoundTrip(out)
	if err != nil || !timer.Stop() {
		cancel()
		if err == nil {
			resp.Body.Close()
			err = context.DeadlineExceeded
		}
		if isSigErr(err) || errors.As(err, new(*r1.Error)) {
			return nil, bodyError(err, true, ident.ClientID{})
		}
		log.Warn("service failed", "backend", s.Backend, "err", err)
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return nil, r1.Wrap(err, r1.TypeServiceFailed, "service %s did not answer within %s", s.ID, s.Timeout.D())
		}
		return nil, r1.Wrap(err, r1.TypeServiceFailed, "service %s is unreachable", s.ID)
	}
	resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// copyNamedAll copies the named headers of src into dst.
func copyNamedAll(dst, src http.Header, names []string) {
	for _, n := range names {
		k := http.CanonicalHeaderKey(n)
		dst[k] = src.Values(k)
	}
}

// writeSigned sends a response to the consumer's gateway and signs it,
// binding the request hash. The exchange is logged before the consumer's
// gateway may release the answer:
//   - a response small enough to hold is signed before anything is sent,
//     with its signature in the headers. When the consumer's gateway
//     accepts it (confirm), the record is written while the answer
//     travels, and the Sampan-Logged trailer follows once it is durable:
//     the two gateways' log writes overlap, and the client waits for one.
//     Otherwise the record is durable before anything is sent. Either
//     way a logging failure is answered with a clear error;
//   - a larger one is streamed with the signature in the trailer, logged
//     before the trailer is sent; if logging fails the stream is cut and
//     the consumer never gets its signature.
func (g *Gateway) writeSigned(ctx context.Context, w http.ResponseWriter, resp *http.Response, rec *msglog.Record, reqCert *x509.Certificate, k *memberKey, bs *bodyStore, confirm bool, log *slog.Logger) {
	h := w.Header()
	// The service's own X-Road headers are dropped: the gateway sets them.
	names := forwardHeadersBut(h, resp.Header, "X-Road-")
	rec.ResponseSignedHeaders = names
	if len(names) > maxSignedHeaders {
		r1.Write(w, r1.New(r1.TypeServiceFailed, "service answered with more than %d headers", maxSignedHeaders), rec.RequestID)
		return
	}
	head := responseHead(resp.StatusCode, rec.RequestHash, h, names)
	// 204 and 304 answers can carry neither content nor trailers.
	confirm = confirm && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotModified
	// seal signs the answer and hands its record to the log.
	seal := func(sum []byte, n int64) (string, *msglog.Pending, error) {
		sig, err := k.batch.Sign(ctx, rec.PeerGateway, signedPayload(head, sum, k.fp))
		if err != nil {
			return "", nil, fmt.Errorf("sign response: %w", err)
		}
		rec.ResponseAt, rec.Status = time.Now().UTC(), resp.StatusCode
		rec.ResponseHeadSHA256, rec.ResponseBodySHA256, rec.ResponseBytes = hexSum(head), hex.EncodeToString(sum), n
		rec.ResponseSignature, rec.ResponseSignerCert = sig, k.fp
		err = errors.Join(g.mlog.StoreKnownCert(k.fp, k.der), g.mlog.StoreKnownCert(rec.RequestSignerCert, reqCert.Raw))
		if err == nil {
			rec.Bodies, err = bs.finish()
		}
		var p *msglog.Pending
		if err == nil {
			p, err = g.mlog.Begin(rec)
		}
		if err != nil {
			log.Error("exchange not logged; answer withheld", "err", err)
			return "", nil, err
		}
		return sig, p, nil
	}
	// settle waits until the record is durable.
	settle := func(p *msglog.Pending) error {
		err := p.Wait(context.WithoutCancel(ctx))
		if err != nil {
			log.Error("exchange not logged; answer withheld", "err", err)
			return err
		}
		bs.keep()
		return nil
	}
	finish := func(sum []byte, n int64) (string, error) {
		sig, p, err := seal(sum, n)
		if err == nil {
			err = settle(p)
		}
		return sig, err
	}

	// Hold a small answer whole.
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	n, err := io.ReadFull(resp.Body, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		if w := bs.respW(); w != nil {
			w.Write(buf[:n])
		}
		sum := sha256.Sum256(buf[:n])
		sig, p, err := seal(sum[:], int64(n))
		if err == nil && !confirm {
			err = settle(p)
		}
		if err != nil {
			h.Del(hdrSignedHeaders)
			for _, n := range names {
				h.Del(n)
			}
			r1.Write(w, r1.Wrap(err, r1.TypeServerLoggingFailed, "the exchange could not be written to the message log; the answer is withheld"), rec.RequestID)
			return
		}
		// Signed before anything is sent: the signature goes in the
		// headers, and the answer in one frame after them.
		h.Set(hdrSignedHeaders, strings.Join(names, ","))
		h.Set(hdrSignerCert, k.certB64)
		h.Set(hdrSignature, sig)
		if !confirm {
			w.WriteHeader(resp.StatusCode)
			w.Write(buf[:n])
			return
		}
		h.Set("Content-Length", strconv.Itoa(n))
		h.Set(hdrLogged, loggedPending)
		h.Set("Trailer", hdrLogged)
		w.WriteHeader(resp.StatusCode)
		w.Write(buf[:n])
		http.NewResponseController(w).Flush()
		if settle(p) != nil {
			h.Set(hdrLogged, loggedFailed)
			return
		}
		h.Set(hdrLogged, loggedOK)
		return
	case err != nil:
		log.Warn("reading the service's answer failed", "err", err)
		r1.Write(w, r1.Wrap(err, r1.TypeServiceFailed, "reading the answer of %s failed", rec.Service), rec.RequestID)
		return
	}

	h.Set(hdrSignedHeaders, strings.Join(names, ","))
	h.Set(hdrSignerCert, k.certB64)
	h.Set("Trailer", hdrSignature)
	w.WriteHeader(resp.StatusCode)
	body := newSigningReader(io.MultiReader(bytes.NewReader(buf), resp.Body), -1, func(sum []byte, n int64) error {
		sig, err := finish(sum, n)
		if err != nil {
			return err
		}
		h.Set(hdrSignature, sig)
		return nil
	})
	body.tee = bs.respW()
	if _, err := io.Copy(w, body); err != nil {
		log.Warn("response stream aborted", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// providesFor reports whether this gateway offers services of subsystem p.
func (g *Gateway) providesFor(p ident.ClientID) bool {
	for id := range g.services {
		if id.Provider == p {
			return true
		}
	}
	return false
}

func isProviderMeta(code string) bool {
	switch code {
	case r1.MetaListMethods, r1.MetaAllowedMethods, r1.MetaGetOpenAPI:
		return true
	}
	return false
}

// clientGroups returns the global groups a client belongs to: those of
// this instance, and for a foreign client also those of its own.
func clientGroups(st, cst *confState, client ident.ClientID) []ident.GroupID {
	groups := st.cfg.GroupsOf(client)
	if cst != nil && cst != st {
		groups = append(slices.Clip(groups), cst.cfg.GroupsOf(client)...)
	}
	return groups
}
