package gateway

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/opmon"
	"github.com/sampan-exchange/sampan/r1"
)

// stepID names a step of the exchange pipeline. The consumer's side runs
// limits → identify → route → decide → sign → send → verify → log →
// answer; the provider's authenticate → limits → identify → authorize →
// decide → verify → backend → sign → log → answer.
type stepID uint8

const (
	stepLimits stepID = iota
	stepAuthenticate
	stepIdentify
	stepRoute
	stepAuthorize
	stepDecide
	stepSign
	stepSend
	stepVerify
	stepBackend
	stepLog
	stepAnswer
	numSteps
)

var stepNames = [numSteps]string{"limits", "authenticate", "identify", "route", "authorize", "decide", "sign", "send", "verify", "backend", "log", "answer"}

func (s stepID) String() string { return stepNames[s] }

// outcome is what one exchange came to at this gateway. The pipeline's
// steps fill it as they run, and finish reads it once: the message-log
// record, the monitoring record, the metrics and the log line all derive
// from it, so they cannot disagree.
type outcome struct {
	side      side
	requestID string
	start     time.Time // the request came in

	// The step under way, since when, and the time spent in each step
	// (in the order first entered).
	cur     stepID
	mark    time.Time
	steps   [numSteps]time.Duration
	order   [numSteps]stepID
	entered int

	// What is known of the request, as far as the steps got. The client
	// and service are known once found registered.
	knownClient  bool
	knownService bool
	client       ident.ClientID
	service      ident.ServiceID
	peer         string // the other gateway
	xroadID      string
	userID       string
	issue        string
	represented  string
	purpose      string
	legalBasis   string
	method       string
	path         string
	query        string
	traceparent  string // W3C trace context, when well formed
	decision     *msglog.Decision

	requestOut time.Time // sent to the provider's gateway or the service
	responseIn time.Time // its answer's head arrived
	reqBytes   int64
	respBytes  int64
	status     int
	err        *r1.Error // the refusal, when the exchange was refused
	relayed    bool      // the refusal came from the provider's gateway
	aborted    bool      // the answer was cut off after it had started

	log *slog.Logger
}

// begin opens the outcome of a request that has just come in.
func (g *Gateway) begin(sd side, requestID string, r *http.Request) *outcome {
	now := time.Now()
	o := &outcome{side: sd, requestID: requestID, start: now, mark: now, method: r.Method}
	base := g.log
	if sd == serverSide {
		base = g.peerLog
	}
	o.log = requestLog(base, "side", sd.pick("client", "provider"), "request_id", requestID)
	if tp := r.Header.Get("Traceparent"); validTraceparent(tp) {
		o.traceparent = tp
	}
	return o
}

// validTraceparent reports whether v is a W3C traceparent header: version,
// trace id, parent id and flags in lower-case hex. It is passed on as
// the client sent it either way (it is one of the signed headers); only a
// well-formed one is recorded.
func validTraceparent(v string) bool {
	if len(v) < 55 || len(v) > 128 || (v[:2] == "00" && len(v) != 55) || v[:2] == "ff" {
		return false
	}
	for i := range 55 {
		switch c := v[i]; {
		case i == 2 || i == 35 || i == 52:
			if c != '-' {
				return false
			}
		case c >= '0' && c <= '9' || c >= 'a' && c <= 'f':
		default:
			return false
		}
	}
	return len(v) == 55 || v[55] == '-'
}

// enter ends the step under way and starts s.
func (o *outcome) enter(s stepID) {
	now := time.Now()
	if o.entered > 0 {
		o.steps[o.cur] += now.Sub(o.mark)
	}
	if o.steps[s] == 0 && !o.ran(s) {
		o.order[o.entered] = s
		o.entered++
	}
	o.cur, o.mark = s, now
}

func (o *outcome) ran(s stepID) bool {
	for _, x := range o.order[:o.entered] {
		if x == s {
			return true
		}
	}
	return false
}

// spend moves d of the step under way to step s: work of s that runs
// inside another step (the log's write, done as a streamed answer
// verifies).
func (o *outcome) spend(s stepID, d time.Duration) {
	o.steps[o.cur] -= d
	if !o.ran(s) {
		o.order[o.entered] = s
		o.entered++
	}
	o.steps[s] += d
}

// refuse records the error the exchange ends with.
func (o *outcome) refuse(e *r1.Error) {
	o.err, o.status = e, e.Status
}

// identify records the parties, once known.
func (o *outcome) identify(client ident.ClientID, svc ident.ServiceID) {
	o.client, o.service = client, svc
	o.log = o.log.With("client", client.String(), "service", svc.String())
}

// record is the message-log record of the exchange as far as the
// outcome knows it: the fields both sides and both kinds (exchange and
// refusal) share.
func (o *outcome) record(gw string) *msglog.Record {
	return &msglog.Record{
		Side: o.side.pick("consumer", "provider"), Gateway: gw, PeerGateway: o.peer,
		XRoadID: o.xroadID, RequestID: o.requestID, Client: o.client.String(), Service: o.service.String(),
		UserID: o.userID, Issue: o.issue, Method: o.method, Path: o.path, Query: o.query,
		Purpose: o.purpose, LegalBasis: o.legalBasis, RepresentedParty: o.represented,
		RequestAt: o.start.UTC(), Decision: o.decision,
	}
}

// monitoringRecord is the operational-monitoring record of the exchange.
func (o *outcome) monitoringRecord(gw string, end time.Time) *opmon.Record {
	rec := &opmon.Record{
		Side: o.side.pick("consumer", "provider"), Gateway: gw, PeerGateway: o.peer,
		RequestInAt: o.start, RequestOutAt: o.requestOut, ResponseInAt: o.responseIn, ResponseOutAt: end,
		XRoadID: clip(o.xroadID), RequestID: o.requestID, UserID: clip(o.userID), Issue: clip(o.issue), RepresentedParty: clip(o.represented),
		Protocol: "r1", Method: clip(o.method), Path: clip(o.path),
		RequestBytes: o.reqBytes, ResponseBytes: o.respBytes, Status: o.status,
		Succeeded: o.err == nil && !o.aborted, Traceparent: o.traceparent,
		Steps: make([]opmon.Step, o.entered),
	}
	if o.client.Instance != "" {
		rec.Client = o.client.String()
	}
	if o.service.Code != "" {
		rec.Service = o.service.String()
	}
	if o.err != nil {
		rec.ErrorType, rec.ErrorMessage = clip(o.err.Type), clip(o.err.Message)
	} else if o.aborted {
		rec.ErrorMessage = "the answer was cut off"
	}
	for i, s := range o.order[:o.entered] {
		rec.Steps[i] = opmon.Step{Name: s.String(), Duration: o.steps[s]}
	}
	return rec
}

// maxRecordText bounds each text field of a monitoring record: the
// request's own headers are bounded by the limits, but a refusal relayed
// from another gateway may carry up to maxErrorBody.
const maxRecordText = 1024

// clip cuts s to maxRecordText bytes, on a character boundary.
func clip(s string) string {
	if len(s) <= maxRecordText {
		return s
	}
	return strings.ToValidUTF8(s[:maxRecordText], "")
}

// finish closes the outcome and reports it.
func (g *Gateway) finish(ctx context.Context, o *outcome) {
	end := time.Now()
	if o.entered > 0 {
		o.steps[o.cur] += end.Sub(o.mark)
	}
	if g.metrics != nil {
		g.metrics.observe(o, end)
	}
	if g.opmon != nil {
		g.opmon.Add(o.monitoringRecord(g.cfg.ID.String(), end))
	}
	switch {
	case o.err != nil && !o.relayed:
		lvl := slog.LevelInfo
		if o.err.Status >= 500 {
			lvl = slog.LevelWarn
		}
		msg := o.side.pick("request refused", "peer request refused")
		o.log.Log(ctx, lvl, msg, "type", o.err.Type, "status", o.err.Status, "err", o.err.Error())
	case o.err != nil:
		o.log.Info("provider gateway refused", "type", o.err.Type, "status", o.err.Status, "message", o.err.Message)
	default:
		o.log.Debug("exchange done", "status", o.status, "duration", end.Sub(o.start))
	}
}
