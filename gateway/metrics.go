package gateway

import (
	"math"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sampan-exchange/sampan/r1"
)

// otherLabel stands for any identifier not registered, so that a caller
// cannot grow the metrics' label sets: a client or service label is only
// ever one the configuration knows.
const otherLabel = "other"

// metrics are the gateway's exchange metrics. Every value is derived from
// an exchange's outcome (observe) or read from the gateway's state when
// scraped (stateCollector).
type metrics struct {
	exchanges *prometheus.CounterVec
	duration  [2]prometheus.Observer
	steps     [2][numSteps]prometheus.Observer
	reqBytes  [2]prometheus.Counter
	respBytes [2]prometheus.Counter
	decisions *prometheus.CounterVec
	allowed   [2]prometheus.Counter // decisions{result="allow"}, by side
}

// durationBuckets span a loopback exchange (a millisecond) to a slow
// service near the peer timeout.
var durationBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// stepBuckets are finer: most steps take microseconds.
var stepBuckets = []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5, 30}

func sideIndex(s side) int {
	if s == serverSide {
		return 1
	}
	return 0
}

func sideLabel(s side) string { return s.pick("consumer", "provider") }

func newMetrics(reg prometheus.Registerer, g *Gateway) (*metrics, error) {
	m := &metrics{
		exchanges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sampan_gateway_exchanges_total",
			Help: "Exchanges handled, by side, service, client, status class and r1 error type (empty on success). Unregistered identifiers and unknown error types are folded into \"other\".",
		}, []string{"side", "service", "client", "status_class", "error_type"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sampan_gateway_policy_decisions_total",
			Help: "Sovereignty policy decisions, by side and result; refusals by the rule that refused.",
		}, []string{"side", "result", "rule"}),
	}
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sampan_gateway_exchange_duration_seconds", Help: "Time from a request's arrival to the end of its answer, by side.",
		Buckets: durationBuckets,
	}, []string{"side"})
	steps := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sampan_gateway_step_duration_seconds", Help: "Time spent in each step of the exchange pipeline, by side.",
		Buckets: stepBuckets,
	}, []string{"side", "step"})
	reqBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sampan_gateway_request_bytes_total", Help: "Request body bytes passed on, by side.",
	}, []string{"side"})
	respBytes := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sampan_gateway_response_bytes_total", Help: "Response body bytes passed on, by side.",
	}, []string{"side"})
	// The labels of a fixed set are resolved once: observing an exchange
	// then costs no map lookup for them.
	for _, sd := range []side{clientSide, serverSide} {
		i := sideIndex(sd)
		m.duration[i] = duration.WithLabelValues(sideLabel(sd))
		m.reqBytes[i] = reqBytes.WithLabelValues(sideLabel(sd))
		m.respBytes[i] = respBytes.WithLabelValues(sideLabel(sd))
		m.allowed[i] = m.decisions.WithLabelValues(sideLabel(sd), "allow", "")
		for s := range numSteps {
			m.steps[i][s] = steps.WithLabelValues(sideLabel(sd), s.String())
		}
	}
	for _, c := range []prometheus.Collector{m.exchanges, m.decisions, duration, steps, reqBytes, respBytes, stateCollector{g}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe counts a finished exchange.
func (m *metrics) observe(o *outcome, end time.Time) {
	i := sideIndex(o.side)
	client, service := otherLabel, otherLabel
	if o.knownClient {
		client = o.client.String()
	}
	if o.knownService {
		service = o.service.String()
	}
	errType := ""
	if o.err != nil {
		errType = o.err.Type
		if !r1.Known(errType) {
			errType = otherLabel
		}
	}
	m.exchanges.WithLabelValues(sideLabel(o.side), service, client, statusClass(o.status), errType).Inc()
	m.duration[i].Observe(end.Sub(o.start).Seconds())
	for _, s := range o.order[:o.entered] {
		m.steps[i][s].Observe(o.steps[s].Seconds())
	}
	if o.reqBytes > 0 {
		m.reqBytes[i].Add(float64(o.reqBytes))
	}
	if o.respBytes > 0 {
		m.respBytes[i].Add(float64(o.respBytes))
	}
	if d := o.decision; d != nil {
		if d.Allow {
			m.allowed[i].Inc()
		} else if len(d.Rules) == 0 {
			m.decisions.WithLabelValues(sideLabel(o.side), "deny", "").Inc()
		}
		if !d.Allow {
			for _, r := range d.Rules {
				m.decisions.WithLabelValues(sideLabel(o.side), "deny", r).Inc()
			}
		}
	}
}

// statusClass is "2xx" for 200 and so on; "none" when no answer was
// given (the connection broke first).
func statusClass(status int) string {
	if status < 100 || status > 599 {
		return "none"
	}
	return strconv.Itoa(status/100) + "xx"
}

// stateCollector reports the gateway's state as it is when scraped: the
// configurations, time-stamping, readiness and peer connections.
type stateCollector struct{ g *Gateway }

var (
	descConfSerial = prometheus.NewDesc("sampan_gateway_conf_serial", "Serial of the shared configuration held, per instance.", []string{"instance"}, nil)
	descConfAge    = prometheus.NewDesc("sampan_gateway_conf_age_seconds", "Seconds since the configuration held was generated, per instance.", []string{"instance"}, nil)
	descConfExpiry = prometheus.NewDesc("sampan_gateway_conf_expiry_seconds", "Seconds until the configuration held expires (negative once expired), per instance.", []string{"instance"}, nil)
	descTSAge      = prometheus.NewDesc("sampan_gateway_timestamp_age_seconds", "Seconds since the message log was last time-stamped (or found to need none).", nil, nil)
	descTSFailing  = prometheus.NewDesc("sampan_gateway_timestamp_failing", "1 while the last time-stamping attempt failed.", nil, nil)
	descTSFailures = prometheus.NewDesc("sampan_gateway_timestamp_failures_total", "Failed attempts to time-stamp the message log.", nil, nil)
	descReady      = prometheus.NewDesc("sampan_gateway_ready", "1 when the gateway holds an unexpired configuration and may serve.", nil, nil)
	descPeerConns  = prometheus.NewDesc("sampan_gateway_peer_connections", "Open connections from other gateways on the peer side.", nil, nil)
	descCertExpiry = prometheus.NewDesc("sampan_gateway_cert_expiry_seconds", "Seconds until each certificate the gateway holds expires, by use (auth, sign) and member.", []string{"use", "member"}, nil)
	descWarmIdle   = prometheus.NewDesc("sampan_gateway_warm_goroutines", "Idle goroutines kept warm for peer requests.", nil, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConfSerial, descConfAge, descConfExpiry, descTSAge, descTSFailing, descTSFailures, descReady, descPeerConns, descWarmIdle, descCertExpiry} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.g
	now := g.now()
	for _, cs := range g.ConfStatus() {
		if cs.Serial == 0 {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descConfSerial, prometheus.GaugeValue, float64(cs.Serial), cs.Instance)
		ch <- prometheus.MustNewConstMetric(descConfAge, prometheus.GaugeValue, now.Sub(cs.GeneratedAt).Seconds(), cs.Instance)
		ch <- prometheus.MustNewConstMetric(descConfExpiry, prometheus.GaugeValue, cs.ExpiresAt.Sub(now).Seconds(), cs.Instance)
	}
	age := math.Inf(1)
	if last := g.stamp.last.Load(); last != 0 {
		age = now.Sub(time.Unix(0, last)).Seconds()
	}
	ch <- prometheus.MustNewConstMetric(descTSAge, prometheus.GaugeValue, age)
	failing := 0.0
	if g.stamp.lastErr.Load() != nil {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(descTSFailing, prometheus.GaugeValue, failing)
	ch <- prometheus.MustNewConstMetric(descTSFailures, prometheus.CounterValue, float64(g.stamp.failures.Load()))
	ready := 0.0
	if g.Ready() {
		ready = 1
	}
	ch <- prometheus.MustNewConstMetric(descReady, prometheus.GaugeValue, ready)
	ch <- prometheus.MustNewConstMetric(descPeerConns, prometheus.GaugeValue, float64(g.peerConnCount()))
	ch <- prometheus.MustNewConstMetric(descWarmIdle, prometheus.GaugeValue, float64(g.warm.Idle()))
	for _, c := range g.keys.Load().held() {
		ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, c.notAfter.Sub(now).Seconds(), c.use, c.member)
	}
}
