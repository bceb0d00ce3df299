package msglog

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics. With Options.Registerer set, Open registers the log's metrics
// there: one registry per gateway, so that two logs of one process (the
// sandbox, tests) keep their figures apart. The write-ahead writer counts
// per group, after the sync, what the counters read; the gauges take the
// queues' locks when scraped, never on the path of an exchange. A log
// without a registerer observes no latencies.

// segmentSyncBuckets span what a segment's write and fdatasync take: from
// a battery-backed cache (100 µs) to a disk in trouble (seconds).
var segmentSyncBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2}

// newSyncHistogram is the histogram of segment syncs, observed by the
// write-ahead writer.
func newSyncHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "sampan_msglog_segment_sync_seconds",
		Help:    "Time to write a group of records to a write-ahead segment and sync it (fdatasync).",
		Buckets: segmentSyncBuckets,
	})
}

// metricSet is the log's metrics, registered as one collector: all of
// them or none.
type metricSet struct{ cs []prometheus.Collector }

// Describe implements prometheus.Collector.
func (s *metricSet) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range s.cs {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (s *metricSet) Collect(ch chan<- prometheus.Metric) {
	for _, c := range s.cs {
		c.Collect(ch)
	}
}

var _ prometheus.Collector = (*metricSet)(nil)

// registerMetrics registers the log's metrics with reg. They read the
// writers' counters and queues, which outlive Close: a scrape after
// Close reads the figures the log stopped with.
func (l *Log) registerMetrics(reg prometheus.Registerer, syncs prometheus.Histogram) error {
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	set := &metricSet{cs: []prometheus.Collector{
		gauge("sampan_msglog_queue_depth", "Records handed to the message log and not yet durable (or refused).",
			func() float64 { return float64(l.wal.queueDepth()) }),
		counter("sampan_msglog_segment_syncs_total", "Syncs of write-ahead segments (one per group of records).",
			func() float64 { return float64(l.wal.syncs.Load()) }),
		syncs,
		counter("sampan_msglog_records_total", "Records made durable in a write-ahead segment (acknowledged).",
			func() float64 { return float64(l.wal.durable.Load()) }),
		counter("sampan_msglog_failures_total", "Records refused by the message log or whose write failed; each failed its exchange.",
			func() float64 { return float64(l.refused.Load() + l.wal.failed.Load()) }),
		gauge("sampan_msglog_index_lag_records", "Acknowledged records not yet committed to the record index.",
			func() float64 { return float64(l.idx.lag()) }),
		gauge("sampan_msglog_tree_lag_records", "Acknowledged records not yet leaves of the Merkle tree (those not yet indexed included).",
			func() float64 { return float64(l.idx.lag() + l.integ.lag()) }),
	}}
	if err := reg.Register(set); err != nil {
		return fmt.Errorf("register the message log's metrics: %w", err)
	}
	return nil
}
