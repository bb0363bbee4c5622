package wecomauth

import (
	"errors"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecomgate/wecomgate/module/internal/cluster"
)

// The collectors live for the process: a reload provisions the handler into
// a fresh Caddy registry, and the same collectors (with their counts) are
// registered there again.
var metrics struct {
	once      sync.Once
	logins    *prometheus.CounterVec
	calls     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	refreshes *prometheus.CounterVec
	rechecks  *prometheus.CounterVec
	callbacks *prometheus.CounterVec
	// SPEC §6b (budget.go, facts.go)
	deferred       *prometheus.CounterVec
	pauses         *prometheus.CounterVec
	aheadRefreshes *prometheus.CounterVec
	sharedFacts    *prometheus.CounterVec
}

func initMetrics() {
	metrics.once.Do(func() {
		const ns = "wecom"
		metrics.logins = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "logins_total",
			Help: "Sign-in attempts by result (ok or the error code) and configured corp name.",
		}, []string{"result", "corp"})
		metrics.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "api_calls_total",
			Help: "Calls to the WeCom server API by endpoint and errcode (or transport, http_<status>, bad_response).",
		}, []string{"endpoint", "errcode"})
		metrics.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Name: "api_call_duration_seconds",
			Help:    "Latency of calls to the WeCom server API.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"endpoint"})
		metrics.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "token_refreshes_total",
			Help: "access_token fetches from WeCom (cache misses and refreshes) by corpid.",
		}, []string{"corpid"})
		metrics.rechecks = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "rechecks_total",
			Help: "User rechecks against WeCom by outcome: ok, denied, unavailable (stale_grace decides).",
		}, []string{"result"})
		metrics.callbacks = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "callbacks_total",
			Help: "WeCom callbacks by event (verify, the change_contact type, other; unknown when refused) and result (ok, failed, or why it was refused).",
		}, []string{"event", "result"})
		metrics.deferred = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "deferred_calls_total",
			Help: "WeCom calls not made because this instance's share of the quota was spent (by priority: login, recheck, recheck_stale, background; the last two also while a refused login waits) or a 45009 paused the API (paused).",
		}, []string{"corp", "endpoint", "reason"})
		metrics.pauses = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "quota_pauses_total",
			Help: "45009 answers that paused an API of a corp for every instance for 60 s.",
		}, []string{"corp", "endpoint"})
		metrics.aheadRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "background_refreshes_total",
			Help: "Answers in use refreshed in the background before recheck ran out, by kind and result (ok, failed, deferred by the budget, claimed_elsewhere by another instance, overtaken by a newer answer while it waited its turn, queue_full when too many waited).",
		}, []string{"kind", "result"})
		metrics.sharedFacts = prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Name: "shared_facts_used_total",
			Help: "WeCom answers taken from another instance through storage instead of asking WeCom, by kind.",
		}, []string{"kind"})
	})
}

// registerMetrics adds the collectors to a config's registry.
func registerMetrics(reg *prometheus.Registry) error {
	initMetrics()
	if reg == nil {
		return nil
	}
	for _, c := range append([]prometheus.Collector{metrics.logins, metrics.calls, metrics.latency, metrics.refreshes, metrics.rechecks, metrics.callbacks,
		metrics.deferred, metrics.pauses, metrics.aheadRefreshes, metrics.sharedFacts, quotaCollector{}}, cluster.Collectors()...) {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
		}
	}
	return nil
}

// observer feeds the WeCom client's calls into the collectors.
type observer struct{}

func (observer) Call(endpoint, result string, d time.Duration) {
	metrics.calls.WithLabelValues(endpoint, result).Inc()
	metrics.latency.WithLabelValues(endpoint).Observe(d.Seconds())
}

func (observer) TokenRefresh(corpID string) { metrics.refreshes.WithLabelValues(corpID).Inc() }
