package wecomauth

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecomgate/wecomgate/module/internal/session"
)

// SealSession seals c as h's login would, bound to the app of the corp it
// names: benchmarks make more sessions than logins could.
func SealSession(h *Handler, c *session.Claims) (string, error) {
	tok, _, err := h.ring.Seal(c)
	return tok, err
}

// SetLoginBodyTimeout shortens the login body read deadline; the returned
// func restores it.
func SetLoginBodyTimeout(d time.Duration) (restore func()) {
	old := loginBodyTimeout
	loginBodyTimeout = d
	return func() { loginBodyTimeout = old }
}

// SetClock makes h read time from now (Provision keeps a clock set before
// it runs).
func SetClock(h *Handler, now func() time.Time) { h.setClock(now) }

// SetWeComTimings sets how long one WeCom call may take in all and how
// long a failed recheck is not retried.
func SetWeComTimings(h *Handler, callBudget, recheckPause time.Duration) {
	h.callBudget, h.recheckPause = callBudget, recheckPause
}

// MaxCodeSignIns is the bound on code sign-ins in flight across all
// clients, for the test that fills it.
const MaxCodeSignIns = maxCodeSignIns

// NoSlotWait makes h answer busy at once when the sign-ins in flight are
// at their bound, instead of waiting up to slotWait for a slot.
func NoSlotWait(h *Handler) { h.limiter.slotWait = 0 }

// EndUserSessions, RecheckUser and DropDirectory are what callbacks and
// the admin API do to the cluster.
func EndUserSessions(h *Handler, corpID, userID string) error {
	return h.endUserSessions(context.Background(), corpID, userID)
}

func RecheckUser(h *Handler, corpID, userID string) error {
	return h.recheckUser(context.Background(), corpID, userID)
}

func DropDirectory(h *Handler, corpID string) error {
	return h.dropDirectory(context.Background(), corpID)
}

// SyncCluster runs one poll of the cluster state now.
func SyncCluster(h *Handler) { h.cluster.Sync(context.Background()) }

// SetRevocationPoll sets how often h's revocation list reads storage (the
// list is shared by the handlers of one storage).
func SetRevocationPoll(h *Handler, d time.Duration) { h.cluster.SetInterval(d) }

// ForgetLocalFacts drops what h's API base keeps in memory of users,
// departments, tags and 45009 pauses: h then knows only what storage and
// tokens say, as another instance would.
func ForgetLocalFacts(h *Handler) {
	h.shared.users.Flush()
	h.shared.directory.Flush()
	b := h.shared.budgets
	b.mu.Lock()
	clear(b.paused)
	b.mu.Unlock()
}

// WaitRefreshes waits for the background refreshes running or waiting.
func WaitRefreshes(h *Handler) { h.shared.refreshWG.Wait() }

// QuotaInUse is quotaInUse, for tests.
func QuotaInUse(h *Handler) map[string]map[string]int {
	out := map[string]map[string]int{}
	for corp, apis := range h.quotaInUse() {
		out[corp] = map[string]int{}
		for api, u := range apis {
			out[corp][api] = u.Used
		}
	}
	return out
}

// QuotaCollector is the collector of the quota metrics, for tests.
func QuotaCollector() prometheus.Collector { return quotaCollector{} }

// MaxRefreshing is how many background refreshes run at once per API base.
const MaxRefreshing = maxRefreshing

// BackgroundRefreshes is how many background refreshes of h's API base are
// running (or about to) and how many wait for their turn.
func BackgroundRefreshes(h *Handler) (running, waiting int) {
	s := &h.shared.refreshers
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.workers, len(s.waiting)
}
