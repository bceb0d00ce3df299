// Package ops is what both daemons share for their operations listener:
// a Prometheus registry per component, with the Go runtime's and the
// process's collectors, and the Server that serves it with liveness,
// readiness and the handlers a daemon mounts, behind an optional bearer
// token.
package ops

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry returns a registry holding the Go runtime's and the
// process's metrics, and sampan_build_info. Each component gets its own: the global registry is
// never used, so two daemons in one process (the sandbox, tests) do not
// mix their figures.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildInfoCollector())
	return r
}

// MetricsHandler serves the registry in the Prometheus exposition format.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{MaxRequestsInFlight: 4})
}
