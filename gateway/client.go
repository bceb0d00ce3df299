package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/r1"
)

// peerPrefix is the path prefix of the gateway-to-gateway protocol.
const peerPrefix = "/x/"

// maxErrorBody bounds an error body relayed from a peer gateway.
const maxErrorBody = 16 << 10

// clientHandler serves the information systems: r1 under /r1/, and the
// health endpoints.
func (g *Gateway) clientHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, r1.Prefix):
			g.serveClient(w, r)
		case r.URL.Path == "/healthz":
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		case r.URL.Path == "/readyz":
			g.serveReady(w)
		default:
			r1.Write(w, r1.New(r1.TypeInvalidRequest, "unknown path: r1 requests start with %s", r1.Prefix), "")
		}
	})
}

func (g *Gateway) serveReady(w http.ResponseWriter) {
	st := g.conf.Load()
	if st == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "no shared configuration yet"})
		return
	}
	if st.cfg.Expired(g.now()) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "shared configuration expired", "serial": st.cfg.Serial, "expired_at": st.cfg.ExpiresAt})
		return
	}
	// Federated configurations are listed, but only the gateway's own
	// decides readiness: domestic traffic goes on without them.
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "serial": st.cfg.Serial, "expires_at": st.cfg.ExpiresAt, "configurations": g.ConfStatus()})
}

// signedRequest is what the consumer's gateway knows of a request once it
// has signed it.
type signedRequest struct {
	bodySum string
	bytes   int64
	sig     string
}

// hexSum is the hex SHA-256 of b.
func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// exchange is the state of one r1 request at the consumer's gateway.
type exchange struct {
	start     time.Time
	req       *r1.Request
	requestID string
	reqHash   atomic.Pointer[string]
	log       *slog.Logger
}

// checkLimits enforces the URI and header limits before anything is parsed.
func (g *Gateway) checkLimits(r *http.Request) *r1.Error {
	if len(r.RequestURI) > g.cfg.Limits.MaxURILength {
		return r1.New(r1.TypeURITooLong, "request URI of %d characters exceeds the limit of %d", len(r.RequestURI), g.cfg.Limits.MaxURILength)
	}
	if n := headerSize(r.Header); n > g.cfg.Limits.MaxHeaderBytes {
		// (The gateways' own Sampan- headers are not counted: a request
		// within the limit at the consumer's gateway is within it at the
		// provider's, whether its signature travels as a header or not.)
		return r1.New(r1.TypeHeadersTooLarge, "request headers of %d bytes exceed the limit of %d", n, g.cfg.Limits.MaxHeaderBytes)
	}
	if max := g.cfg.Limits.MaxBodyBytes; max >= 0 && r.ContentLength > max {
		return r1.New(r1.TypeRequestTooLarge, "request body of %d bytes exceeds the limit of %d", r.ContentLength, max)
	}
	return nil
}

// headerSize approximates the size of a header block on the wire, less
// the gateways' own headers (Sampan-*, never taken from a client).
func headerSize(h http.Header) int {
	n := 0
	for k, vs := range h {
		if strings.HasPrefix(k, "Sampan-") {
			continue
		}
		for _, v := range vs {
			n += len(k) + len(v) + 4
		}
	}
	return n
}

// serveClient handles an r1 request from an information system.
func (g *Gateway) serveClient(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ex := &exchange{start: start, requestID: r1.NewID()}
	ex.log = requestLog(g.log, "side", "client", "request_id", ex.requestID)
	fail := func(e *r1.Error) {
		lvl := slog.LevelInfo
		if e.Status >= 500 {
			lvl = slog.LevelWarn
		}
		ex.log.Log(r.Context(), lvl, "request refused", "type", e.Type, "status", e.Status, "err", e.Error())
		r1.Write(w, e, ex.requestID)
	}
	if e := g.checkLimits(r); e != nil {
		fail(e)
		return
	}
	req, e := r1.ParseRequest(r)
	if e != nil {
		fail(e)
		return
	}
	ex.req = req
	ex.log = ex.log.With("client", req.Client.String(), "service", req.Service.String(), "x_road_id", req.ID)
	st, e := g.serving(clientSide)
	if e != nil {
		fail(e)
		return
	}
	if req.Client.Instance != st.cfg.Instance || !st.cfg.HasSubsystem(req.Client) {
		fail(r1.New(r1.TypeUnknownClient, "client %s is not a registered subsystem", req.Client))
		return
	}
	if !st.cfg.Serves(g.keys.authFP, req.Client) {
		fail(r1.New(r1.TypeClientNotHosted, "client %s is not served by gateway %s", req.Client, g.cfg.ID))
		return
	}
	if e := g.checkConnection(r, req.Client); e != nil {
		fail(e)
		return
	}
	if req.Meta == r1.MetaListClients {
		lst, e := g.confFor(req.MetaInstance, clientSide)
		if e != nil {
			fail(e)
			return
		}
		g.listClients(w, lst, req, ex)
		return
	}
	if err := g.forward(w, r, st, ex); err != nil {
		fail(err)
		return
	}
	ex.log.Debug("exchange done", "duration", time.Since(start))
}

// serving returns the domestic configuration when the gateway may serve:
// it holds a valid configuration and its message log is time-stamped
// within the grace period.
func (g *Gateway) serving(sd side) (*confState, *r1.Error) {
	st := g.conf.Load()
	if st == nil || st.cfg.Expired(g.now()) {
		return nil, outdatedConf(st, sd.pick(r1.TypeOutdatedGlobalConf, r1.TypeServerOutdatedConf))
	}
	if g.timestampOverdue() {
		return nil, g.timestampError(sd)
	}
	return st, nil
}

// outdatedConf is the error for a missing or expired configuration.
func outdatedConf(st *confState, typ string) *r1.Error {
	if st == nil {
		return r1.New(typ, "gateway has not yet downloaded the shared configuration")
	}
	return r1.New(typ, "shared configuration serial %d expired at %s; the gateway cannot reach its authority",
		st.cfg.Serial, st.cfg.ExpiresAt.UTC().Format(time.RFC3339))
}

// clientSetHeaders are the X-Road headers the consumer's gateway sets
// itself; values sent by the client are dropped.
var clientSetHeaders = []string{r1.HeaderClient, r1.HeaderService, r1.HeaderID, r1.HeaderRequestID, r1.HeaderRequestHash, r1.HeaderError}

// forward signs the request, sends it to the provider's gateway, verifies
// the response and streams it to the client. An error is returned only
// while nothing has been written to the client.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, st *confState, ex *exchange) *r1.Error {
	req := ex.req
	svc := req.Service
	// The provider's instance: this one or a federated one, whose own
	// configuration alone vouches for its gateways and members.
	pst, e := g.confFor(svc.Provider.Instance, clientSide)
	if e != nil {
		return e
	}
	if !pst.cfg.HasSubsystem(svc.Provider) {
		return r1.New(r1.TypeUnknownService, "service %s: provider %s is not a registered subsystem", svc, svc.Provider)
	}
	hosts := pst.cfg.HostedBy(svc.Provider)
	if len(hosts) == 0 {
		return r1.New(r1.TypeUnknownService, "service %s: no gateway serves %s", svc, svc.Provider)
	}
	peer := hosts[int(time.Now().UnixNano()%int64(len(hosts)))]
	// The headers the signature covers by their value may be sent once
	// (r1.ParseRequest checked the others).
	for _, h := range [...]string{r1.HeaderPurpose, r1.HeaderLegalBasis, r1.HeaderRepresentedParty} {
		if len(r.Header.Values(h)) > 1 {
			return r1.New(r1.TypeInvalidHeader, "header %s appears more than once", h)
		}
	}
	// This gateway's country decides first, before anything leaves.
	var logDec *msglog.Decision
	if !isProviderMeta(svc.Code) {
		purpose, basis, e := declared(r.Header, r1.TypeInvalidRequest)
		if e != nil {
			return e
		}
		var dec policy.Decision
		dec, logDec = g.decide(policy.SideConsumer, st, pst, req.Client, svc, purpose, basis)
		if !dec.Allow {
			ex.log.Info("policy refused", "rules", dec.Rules, "policy_version", dec.Version)
			g.logDenial(r.Context(), &msglog.Record{Side: "consumer", Gateway: g.cfg.ID.String(), PeerGateway: peer.ID.String(),
				XRoadID: req.ID, RequestID: ex.requestID, Client: req.Client.String(), Service: svc.String(),
				UserID: req.UserID, Issue: req.Issue, Method: r.Method, Path: req.Path, Query: req.RawQuery,
				RequestAt: ex.start.UTC(), Decision: logDec})
			return r1.New(r1.TypeClientPolicyDenied, "%s", dec.Message)
		}
	}
	mk := g.keys.sign[req.Client.Member()]
	if mk == nil {
		return r1.New(r1.TypeSigningFailed, "gateway holds no signing certificate for member %s", req.Client.Member())
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	u := "https://" + peer.Address + peerPrefix + svc.Escaped() + req.Path
	if req.RawQuery != "" {
		u += "?" + req.RawQuery
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, u, nil)
	if err != nil {
		return r1.Wrap(err, r1.TypeInvalidRequest, "cannot build the request")
	}
	for _, h := range clientSetHeaders {
		r.Header.Del(h)
	}
	forwardHeaders(out.Header, r.Header)
	out.Header.Set(r1.HeaderClient, req.Client.Escaped())
	out.Header.Set(r1.HeaderService, svc.Escaped())
	out.Header.Set(r1.HeaderID, req.ID)
	out.Header.Set(r1.HeaderRequestID, ex.requestID)
	out.Header.Set(hdrFeatures, featureLoggedTrailer)
	names := withRequired(signedNames(out.Header))
	if len(names) > maxSignedHeaders {
		return r1.New(r1.TypeInvalidHeader, "request carries more than %d headers", maxSignedHeaders)
	}
	var nonce [nonceLen / 2]byte
	rand.Read(nonce[:])
	rec := &msglog.Record{
		Side: "consumer", Gateway: g.cfg.ID.String(), PeerGateway: peer.ID.String(),
		XRoadID: req.ID, RequestID: ex.requestID, Client: req.Client.String(), Service: svc.String(),
		UserID: req.UserID, Issue: req.Issue, Method: r.Method, Path: req.Path, Query: req.RawQuery,
		Purpose: out.Header.Get(r1.HeaderPurpose), LegalBasis: out.Header.Get(r1.HeaderLegalBasis),
		RepresentedParty: out.Header.Get(r1.HeaderRepresentedParty),
		RequestAt:        ex.start.UTC(), RequestSignerCert: mk.fp,
		RequestSignedAt: g.now().UTC().Format(signedAtLayout), RequestNonce: hex.EncodeToString(nonce[:]),
		RequestHeadersSHA256: otherHeadersSum(out.Header, names), RequestSignedHeaders: names,
		Decision: logDec,
	}
	head := requestHead(rec)
	rec.RequestHeadSHA256 = hexSum(head)
	out.Header.Set(hdrSignedHeaders, strings.Join(names, ","))
	out.Header.Set(hdrSignerCert, mk.certB64)
	out.Header.Set(hdrSignedAt, rec.RequestSignedAt)
	out.Header.Set(hdrNonce, rec.RequestNonce)
	out.Trailer = http.Header{hdrSignature: nil}
	out.ContentLength = -1
	bs, err := g.startBodies(req.Client, ex.requestID, "consumer")
	if err != nil {
		return r1.Wrap(err, r1.TypeClientLoggingFailed, "the exchange's bodies cannot be stored as configured")
	}
	defer bs.discard()
	var signed atomic.Pointer[signedRequest]
	var signErr error
	sign := func(sum []byte, n int64) error {
		payload := signedPayload(head, sum, mk.fp)
		sig, err := mk.batch.Sign(r.Context(), peer.ID.String(), payload)
		if err != nil {
			signErr = fmt.Errorf("sign request: %w", err)
			return signErr
		}
		out.Trailer.Set(hdrSignature, sig)
		h := requestHash(payload, sig)
		ex.reqHash.Store(&h)
		signed.Store(&signedRequest{bodySum: hex.EncodeToString(sum), bytes: n, sig: sig})
		return nil
	}
	sr := newSigningReader(r.Body, g.cfg.Limits.MaxBodyBytes, sign)
	sr.tee = bs.reqW()
	out.Body = io.NopCloser(sr)
	if r.ContentLength >= 0 && r.ContentLength <= bufSize {
		// A small request (or one without a body) is read whole and
		// signed before it is sent: the signature goes in the headers and
		// the body in one frame, with no trailer frame and no flush
		// between them.
		b, err := readHeld(sr, r.ContentLength)
		switch {
		case errors.Is(err, errBodyTooLarge):
			return r1.Wrap(err, r1.TypeRequestTooLarge, "request body exceeds the limit")
		case r.Context().Err() != nil:
			return r1.Wrap(r.Context().Err(), r1.TypeInvalidRequest, "the client abandoned the request")
		case signErr != nil:
			return r1.Wrap(signErr, r1.TypeSigningFailed, "the request could not be signed")
		case err != nil:
			return r1.Wrap(err, r1.TypeInvalidRequest, "reading the request body failed")
		}
		out.Header.Set(hdrSignature, out.Trailer.Get(hdrSignature))
		out.Trailer = nil
		out.ContentLength = int64(len(b))
		out.Body = http.NoBody
		if len(b) > 0 {
			out.Body = io.NopCloser(bytes.NewReader(b))
		} else {
			// Without a body the request can be sent again, and the
			// transport does so, for idempotent methods, when a pooled
			// connection turns out to be closed (a provider gateway
			// restarting, say).
			out.GetBody = func() (io.ReadCloser, error) { return http.NoBody, nil }
		}
	}

	resp, err := (*g.peerRT.Load()).RoundTrip(out)
	if err != nil {
		return peerError(err, peer)
	}
	defer resp.Body.Close()
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 || pki.CachedFingerprint(resp.TLS.PeerCertificates[0].Raw) != peer.AuthFP {
		return r1.New(r1.TypeSSLAuthFailed, "the answer did not come from gateway %s", peer.ID)
	}

	// An r1 error from the provider's gateway is relayed as it is: the
	// TLS session already authenticates that gateway.
	if t := resp.Header.Get(r1.HeaderError); t != "" && resp.Header.Get(hdrSignerCert) == "" {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		body := r1.ReadBody(b)
		if body == nil {
			return r1.New(r1.TypeNetworkError, "gateway %s answered with an unreadable error", peer.ID)
		}
		ex.log.Info("provider gateway refused", "type", body.Type, "status", resp.StatusCode, "message", body.Message)
		r1.Write(w, &r1.Error{Type: body.Type, Status: resp.StatusCode, Message: body.Message}, body.Detail)
		return nil
	}

	hashp := ex.reqHash.Load()
	if hashp == nil {
		return r1.New(r1.TypeNetworkError, "gateway %s answered before receiving the whole request", peer.ID)
	}
	sg, e := g.signerCert(pst, resp.Header.Get(hdrSignerCert), svc.Provider.Member(), r1.TypeClientSignature)
	if e != nil {
		return e
	}
	rnames, err := parseSignedHeaders(resp.Header.Get(hdrSignedHeaders))
	if err != nil {
		return r1.Wrap(err, r1.TypeClientSignature, "response from gateway %s is malformed", peer.ID)
	}
	rhead := responseHead(resp.StatusCode, *hashp, resp.Header, rnames)
	cert, certFP := sg.cert, sg.fp
	// A held answer may come before the provider's record of it is
	// durable, followed by the Sampan-Logged trailer: this gateway then
	// writes its own record meanwhile, and releases the answer once both
	// are durable.
	confirm := resp.Header.Get(hdrLogged) != ""
	_, declared := resp.Trailer[hdrLogged]
	if declared && !confirm {
		return r1.New(r1.TypeNetworkError, "gateway %s declared a log confirmation without announcing it", peer.ID)
	}
	body := resp.Body
	if confirm {
		switch {
		case resp.Header.Get(hdrLogged) != loggedPending || !declared || resp.ProtoMajor < 2:
			return r1.New(r1.TypeNetworkError, "gateway %s announced a log confirmation it cannot send (%s %q, %s)", peer.ID, hdrLogged, resp.Header.Get(hdrLogged), resp.Proto)
		case resp.ContentLength < 0 || resp.ContentLength >= bufSize || resp.Header.Get(hdrSignature) == "":
			return r1.New(r1.TypeNetworkError, "gateway %s announced a log confirmation for an answer it did not hold whole", peer.ID)
		}
		body = io.NopCloser(io.LimitReader(resp.Body, resp.ContentLength))
	}
	var pend *msglog.Pending
	var vr *verifyingReader
	vr = newVerifyingReader(body, func(sum []byte) error {
		sig, serr := signatureOf(resp.Header, resp.Trailer)
		if serr != nil {
			return fmt.Errorf("response: %w", serr)
		}
		if err := g.sigs.Verify(sig, signedPayload(rhead, sum, certFP), cert.PublicKey); err != nil {
			return fmt.Errorf("%w: %w", errSignature, err)
		}
		// The exchange is on record before the client sees the end of
		// the answer: fail closed.
		sr := signed.Load()
		rec.RequestBodySHA256, rec.RequestBytes, rec.RequestSignature = sr.bodySum, sr.bytes, sr.sig
		rec.RequestHash = *hashp
		rec.ResponseAt, rec.Status = time.Now().UTC(), resp.StatusCode
		rec.ResponseHeadSHA256, rec.ResponseBodySHA256, rec.ResponseBytes = hexSum(rhead), hex.EncodeToString(sum), vr.Len()
		rec.ResponseSignature, rec.ResponseSignerCert, rec.ResponseSignedHeaders = sig, certFP, rnames
		err := errors.Join(g.mlog.StoreKnownCert(mk.fp, mk.der), g.mlog.StoreKnownCert(certFP, cert.Raw))
		if err == nil {
			rec.Bodies, err = bs.finish()
		}
		if err == nil {
			pend, err = g.mlog.Begin(rec)
		}
		if err == nil && !confirm {
			err = pend.Wait(context.WithoutCancel(ctx))
			if err == nil {
				bs.keep()
			}
		}
		if err != nil {
			ex.log.Error("exchange not logged; answer withheld", "err", err)
			return fmt.Errorf("%w: %w", msglog.ErrLogging, err)
		}
		return nil
	})
	vr.tee = bs.respW()
	defer vr.release()
	complete, err := vr.Prefetch()
	if err != nil {
		if errors.Is(err, msglog.ErrLogging) {
			return r1.Wrap(err, r1.TypeClientLoggingFailed, "the exchange could not be written to the message log; its answer is withheld")
		}
		if complete || isSigErr(err) {
			return r1.Wrap(err, r1.TypeClientSignature, "response signature of %s does not verify", svc.Provider.Member())
		}
		return r1.Wrap(err, r1.TypeNetworkError, "reading the response from gateway %s failed", peer.ID)
	}
	if confirm {
		if !complete || pend == nil {
			return r1.New(r1.TypeNetworkError, "gateway %s sent an answer that could not be verified whole", peer.ID)
		}
		if e := g.awaitLogged(ctx, cancel, resp, pend, bs, peer, ex.log); e != nil {
			return e
		}
	}

	h := w.Header()
	copyNamed(h, resp.Header, rnames)
	h.Set(r1.HeaderClient, req.Client.Escaped())
	h.Set(r1.HeaderService, svc.Escaped())
	h.Set(r1.HeaderID, req.ID)
	h.Set(r1.HeaderRequestID, ex.requestID)
	h.Set(r1.HeaderRequestHash, *hashp)
	if complete {
		h.Set("Content-Length", strconv.FormatInt(vr.Len(), 10))
	}
	w.WriteHeader(resp.StatusCode)
	if _, err := io.Copy(w, vr); err != nil {
		// The client must not take a truncated or unverified body for a
		// whole one: break the connection.
		ex.log.Warn("response stream aborted", "err", err, "bytes", vr.Len())
		panic(http.ErrAbortHandler)
	}
	return nil
}

// awaitLogged waits, for a held answer already verified and handed to
// this gateway's log, until the provider's gateway reports its own record
// durable (the Sampan-Logged trailer) and this gateway's record is too.
func (g *Gateway) awaitLogged(ctx context.Context, cancel context.CancelFunc, resp *http.Response, pend *msglog.Pending, bs *bodyStore, peer *conf.Gateway, log *slog.Logger) *r1.Error {
	// After the announced length only the trailer may follow. Waiting for
	// it is bounded as waiting for the answer's headers was.
	stop := time.AfterFunc(g.cfg.PeerTimeout.D(), cancel)
	var b [1]byte
	n, rerr := io.ReadFull(resp.Body, b[:])
	timedOut := !stop.Stop()
	// This gateway's record is waited for even when the provider's
	// failed, so that its stored bodies are kept exactly when it is
	// durable.
	if err := pend.Wait(context.WithoutCancel(ctx)); err != nil {
		log.Error("exchange not logged; answer withheld", "err", err)
		return r1.Wrap(fmt.Errorf("%w: %w", msglog.ErrLogging, err), r1.TypeClientLoggingFailed, "the exchange could not be written to the message log; its answer is withheld")
	}
	bs.keep()
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
		log.Warn("provider gateway did not log the exchange; answer withheld", "peer", peer.ID.String())
		return r1.New(r1.TypeServerLoggingFailed, "gateway %s could not write the exchange to its message log; the answer is withheld", peer.ID)
	default:
		return r1.New(r1.TypeNetworkError, "gateway %s did not confirm that it logged the exchange (%s %q)", peer.ID, hdrLogged, v)
	}
}

// errSignature marks signature failures of a verifying reader.
var errSignature = errors.New("signature does not verify")

func isSigErr(err error) bool { return errors.Is(err, errSignature) }

// signedNames returns the lower-case names of h, sorted.
func signedNames(h http.Header) []string { return forwardHeadersBut(nil, h, "") }

// copyNamed copies the named headers of src into dst, leaving out X-Road
// headers, which the gateway sets itself.
func copyNamed(dst, src http.Header, names []string) {
	for _, n := range names {
		k := http.CanonicalHeaderKey(n)
		if strings.HasPrefix(k, "X-Road-") {
			continue
		}
		dst[k] = src.Values(k)
	}
}

// peerError maps a failed round trip to the provider's gateway.
func peerError(err error, peer *conf.Gateway) *r1.Error {
	switch {
	case errors.Is(err, errBodyTooLarge):
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

// signerCert checks a signing certificate sent by a peer: it must chain to
// the instance CA, be a document-signing certificate of member and not be
// revoked. Verified certificates are cached per configuration.
func (g *Gateway) signerCert(st *confState, b64 string, member ident.ClientID, typ string) (*signer, *r1.Error) {
	if b64 == "" {
		return nil, r1.New(typ, "message carries no signing certificate")
	}
	if len(b64) > 16<<10 {
		return nil, r1.New(typ, "signing certificate too large")
	}
	if s := st.cachedSigner(b64); s != nil {
		if s.member != member.String() {
			return nil, r1.New(typ, "message signed by %s, expected %s", s.member, member)
		}
		if time.Now().After(s.cert.NotAfter) {
			return nil, r1.New(typ, "signing certificate of %s expired", member)
		}
		return s, nil
	}
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, r1.Wrap(err, typ, "signing certificate is not base64")
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, r1.Wrap(err, typ, "signing certificate does not parse")
	}
	m, err := pki.VerifySigningCert(c, st.cfg.Roots(), time.Now())
	if err != nil {
		return nil, r1.Wrap(err, typ, "signing certificate of %s is not valid in this instance", member)
	}
	if m != member.String() {
		return nil, r1.New(typ, "message signed by %s, expected %s", m, member)
	}
	if st.cfg.IsRevoked(c) {
		return nil, r1.New(typ, "signing certificate of %s is revoked", member)
	}
	s := &signer{cert: c, fp: pki.Fingerprint(der), member: m}
	st.signers.Store(b64, s)
	return s, nil
}

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

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := jsonEncoder(&b)
	enc.Encode(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
