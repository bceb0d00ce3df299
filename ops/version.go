package ops

import (
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// BuildInfo says which build of Sampan is running.
type BuildInfo struct {
	// Version is the module version the binary was built at ("(devel)"
	// for a build from a checkout).
	Version string `json:"version"`
	// Commit is the source revision, with "+modified" when the tree had
	// uncommitted changes; CommitTime is the revision's time.
	Commit     string `json:"commit,omitempty"`
	CommitTime string `json:"commit_time,omitempty"`
	GoVersion  string `json:"go_version"`
}

// Build returns the running binary's build information, as the Go
// toolchain recorded it.
var Build = sync.OnceValue(func() BuildInfo {
	b := BuildInfo{Version: "(unknown)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	b.Version = bi.Main.Version
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Commit = s.Value
		case "vcs.time":
			b.CommitTime = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && b.Commit != "" {
		b.Commit += "+modified"
	}
	return b
})

// buildInfoCollector exposes Build as sampan_build_info, a gauge of 1
// labelled with the version, the commit and the Go version.
func buildInfoCollector() prometheus.Collector {
	b := Build()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "sampan_build_info",
		Help:        "The running build: version, source commit and Go version, as labels of a gauge of 1.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "go_version": b.GoVersion},
	})
	g.Set(1)
	return g
}
