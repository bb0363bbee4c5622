package cluster

import "github.com/prometheus/client_golang/prometheus"

// The collectors live for the process; callers register them with each
// config's registry (Collectors).
var metrics = struct {
	pending      prometheus.Gauge
	events       prometheus.Gauge
	instances    prometheus.Gauge
	pollErrors   prometheus.Counter
	pollDuration prometheus.Histogram
}{
	pending: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "wecom", Subsystem: "cluster", Name: "pending_writes",
		Help: "Writes to storage (logouts, revocations, facts) that failed and are retried at every poll."}),
	events: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "wecom", Subsystem: "cluster", Name: "events",
		Help: "Live events (ended sessions and users, changed users and directories) this instance holds."}),
	instances: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "wecom", Subsystem: "cluster", Name: "instances",
		Help: "Live instances sharing the storage, this one included."}),
	pollErrors: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "wecom", Subsystem: "cluster", Name: "poll_errors_total",
		Help: "Polls of the shared storage that met an error."}),
	pollDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "wecom", Subsystem: "cluster", Name: "poll_duration_seconds",
		Help: "Time one poll of the shared storage took.", Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}),
}

// Collectors are the package's metrics.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{metrics.pending, metrics.events, metrics.instances, metrics.pollErrors, metrics.pollDuration}
}
