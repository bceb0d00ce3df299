package authority

import (
	"crypto/x509"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sampan-exchange/sampan/ops"
)

// metrics are the authority's Prometheus metrics, on a registry of its
// own (docs/operating.md lists them).
type metrics struct {
	reg          *prometheus.Registry
	publications prometheus.Counter
	calls        *prometheus.CounterVec // call, outcome
	tsaTokens    *prometheus.CounterVec // outcome
	certs        *prometheus.CounterVec // kind, outcome
	// unauthenticated counts management calls without a valid token
	// (reason), which the audit log does not hold.
	unauthenticated *prometheus.CounterVec
	reloads         *prometheus.CounterVec // result
}

// Outcomes of the metrics' outcome labels.
const (
	outcomeOK      = "ok"
	outcomeRefused = "refused"
	outcomeError   = "error"
	outcomeIssued  = "issued"
)

// callOther is the call label of a management API request that names no
// operation.
const callOther = "other"

// newMetrics registers the authority's metrics; the configuration gauges
// read the published configuration when scraped.
func newMetrics(a *Authority) *metrics {
	m := &metrics{
		reg: ops.NewRegistry(),
		publications: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sampan_authority_publications_total",
			Help: "Shared configurations signed and published (changes and periodic re-signing).",
		}),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sampan_authority_management_calls_total",
			Help: "Management API calls by operation and outcome (ok, refused: 4xx, error: 5xx).",
		}, []string{"call", "outcome"}),
		tsaTokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sampan_authority_tsa_tokens_total",
			Help: "Time-stamp requests answered, by outcome (issued or refused).",
		}, []string{"outcome"}),
		certs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sampan_authority_certs_issued_total",
			Help: "Certificate requests by kind (auth, sign: gateways' and members'; tls: the authority's own) and outcome.",
		}, []string{"kind", "outcome"}),
		unauthenticated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sampan_authority_unauthenticated_calls_total",
			Help: "Management API calls refused for want of a valid operator token, by reason (no_bearer_token, unknown_token, expired_token, revoked_token).",
		}, []string{"reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sampan_authority_config_reloads_total",
			Help: "Reloads of the configuration file (SIGHUP, POST /config/reload) by result: ok (applied), refused (the running configuration stays).",
		}, []string{"result"}),
	}
	current := func(f func(p *published) float64) func() float64 {
		return func() float64 {
			if p := a.current.Load(); p != nil {
				return f(p)
			}
			return 0
		}
	}
	m.reg.MustRegister(m.publications, m.calls, m.tsaTokens, m.certs, m.unauthenticated, m.reloads, certExpiry{a},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sampan_authority_conf_serial",
			Help: "Serial of the shared configuration being published.",
		}, current(func(p *published) float64 { return float64(p.serial) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sampan_authority_conf_bytes",
			Help: "Size in bytes of the signed shared configuration being published.",
		}, current(func(p *published) float64 { return float64(len(p.doc)) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sampan_authority_conf_expiry_seconds",
			Help: "Seconds until the published shared configuration expires; negative once expired.",
		}, current(func(p *published) float64 { return time.Until(p.cfg.ExpiresAt).Seconds() })),
	)
	// Every label value the authority can give, at zero, so that a rate
	// or an alert sees the series before the first event.
	m.reloads.WithLabelValues(outcomeOK)
	m.reloads.WithLabelValues(outcomeRefused)
	for _, r := range []string{"no_bearer_token", "unknown_token", "expired_token", "revoked_token"} {
		m.unauthenticated.WithLabelValues(r)
	}
	for _, o := range []string{outcomeIssued, outcomeRefused} {
		m.tsaTokens.WithLabelValues(o)
		for _, k := range []string{"auth", "sign", "tls"} {
			m.certs.WithLabelValues(k, o)
		}
	}
	return m
}

// certIssued counts a certificate request of kind; err is its outcome.
func (m *metrics) certIssued(kind string, err error) {
	if err != nil {
		m.certs.WithLabelValues(kind, outcomeRefused).Inc()
		return
	}
	m.certs.WithLabelValues(kind, outcomeIssued).Inc()
}

// countCalls counts the management API calls next answers: the call is
// the operation name its route was registered with (calls maps
// http.ServeMux patterns to names), or callOther for a path that matched
// no operation; the outcome follows the status.
func (m *metrics) countCalls(calls map[string]string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1" && !strings.HasPrefix(r.URL.Path, "/api/v1/") {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		// The mux records the pattern it chose on r.
		call, ok := calls[r.Pattern]
		if !ok {
			call = callOther
		}
		outcome := outcomeOK
		switch {
		case sw.status >= 500:
			outcome = outcomeError
		case sw.status >= 400:
			outcome = outcomeRefused
		}
		m.calls.WithLabelValues(call, outcome).Inc()
	})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader && code >= 200 {
		w.status, w.wroteHeader = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wroteHeader = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ready reports the authority ready when it publishes a configuration
// that has not expired.
func (a *Authority) ready() (bool, any) {
	p := a.current.Load()
	if p == nil {
		return false, map[string]string{"reason": "no configuration published yet"}
	}
	d := map[string]any{"serial": p.serial, "expires_at": p.cfg.ExpiresAt}
	if !time.Now().Before(p.cfg.ExpiresAt) {
		d["reason"] = "the published configuration has expired"
		return false, d
	}
	return true, d
}

// Gatherer returns the authority's metrics, for an operations listener
// of the caller's own.
func (a *Authority) Gatherer() prometheus.Gatherer { return a.metrics.reg }

var descCertExpiry = prometheus.NewDesc("sampan_authority_cert_expiry_seconds",
	"Seconds until each certificate the authority holds expires: ca (the instance CA), tls_ca and tls (its own TLS), tsa (its time-stamping).", []string{"use"}, nil)

// certExpiry reports, when scraped, how long the authority's own
// certificates have left.
type certExpiry struct{ a *Authority }

func (c certExpiry) Describe(ch chan<- *prometheus.Desc) { ch <- descCertExpiry }

func (c certExpiry) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	certs := map[string]*x509.Certificate{"tls": a.tls.Leaf}
	if s := a.cas.Load(); s != nil {
		certs["ca"] = s.cur.Cert
	}
	if a.tlsCA != nil {
		certs["tls_ca"] = a.tlsCA.Cert
	}
	if a.tsa != nil {
		certs["tsa"] = a.tsa.cert
	}
	for use, cert := range certs {
		if cert != nil {
			ch <- prometheus.MustNewConstMetric(descCertExpiry, prometheus.GaugeValue, time.Until(cert.NotAfter).Seconds(), use)
		}
	}
}
