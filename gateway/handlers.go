package gateway

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/r1"
)

// peerPrefix is the path prefix of the gateway-to-gateway protocol.
const peerPrefix = "/x/"

// clientHandler serves the information systems: r1 under /r1/, PR-META's
// listClients and listCentralServices at the root, and the health
// endpoints.
func (g *Gateway) clientHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, r1.Prefix):
			g.serveClient(w, r)
		case isSOAPRequest(r):
			g.serveSOAP(w, r)
		case r.URL.Path == "/healthz":
			writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
		case r.URL.Path == "/readyz":
			g.serveReady(w)
		case r.URL.Path == "/"+r1.MetaListClients || r.URL.Path == "/"+r1.MetaListCentralServices:
			g.serveRootMeta(w, r, r.URL.Path[1:])
		default:
			r1.WriteAs(w, r1.New(r1.TypeInvalidRequest, "unknown path: r1 requests start with %s; SOAP requests are POSTed to / as text/xml or multipart/related", r1.Prefix), r1.NewID(), errorFormat(r))
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
	if p := g.registrationProblem(st); p != "" {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "this gateway cannot serve: " + p, "serial": st.cfg.Serial})
		return
	}
	// Federated configurations are listed, but only the gateway's own
	// decides readiness: domestic traffic goes on without them.
	writeJSON(w, http.StatusOK, map[string]any{"status": "ready", "serial": st.cfg.Serial, "expires_at": st.cfg.ExpiresAt, "configurations": g.ConfStatus()})
}

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

func writeJSON(w http.ResponseWriter, status int, v any) {
	var b bytes.Buffer
	enc := jsonEncoder(&b)
	enc.Encode(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
