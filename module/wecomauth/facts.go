package wecomauth

// Cached WeCom answers (a user, a department tree, a tag's members), all
// kept the same way (SPEC §6b):
//
//   - an answer younger than `recheck` serves, unless WeCom changed the
//     user or the directory since (callbacks, through the cluster's events);
//   - an older one is first looked for in Caddy's storage, where the
//     instances sharing it leave what WeCom told them, so that the cluster
//     asks WeCom once per `recheck` and not once per instance;
//   - else WeCom is asked, once for everyone waiting here, within the
//     budget (budget.go), and the answer is written back to storage;
//   - in the last part of `recheck` an answer that is still being used is
//     asked for again in the background, so that active users never wait
//     on WeCom while it answers;
//   - while WeCom cannot answer (or the budget is spent, or a 45009 pauses
//     the API) an answer younger than `stale_grace` serves, and after a
//     failed attempt WeCom is not asked again for a pause.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"sync"
	"time"

	"github.com/patrickmn/go-cache"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

// A used answer is refreshed in the background from a point between
// aheadFrom and aheadTo of `recheck`, each instance's own per answer, so
// that instances sharing the answer rarely refresh it together: the first
// writes it back, the others find it in storage. A user seen at least once
// in every tenth of `recheck` (1 − aheadTo) never waits on WeCom. The
// points cost about 1/0.9 calls per `recheck` (at a request a second and
// `recheck 10s`, 1.08 measured: bench/results.md, row 1); the first
// release's last fifth cost 1.16.
const (
	aheadFrom = 0.86
	aheadTo   = 0.90
)

// maxRefreshing bounds the background refreshes in flight per API base;
// maxRefreshWaiting the ones waiting for their turn. A refresh that
// finds the others busy waits rather than being left to the user's next
// request: users who signed in together reach their refresh points
// together, many at once, and the next request may come after recheck has
// run out, and wait on WeCom.
const (
	maxRefreshing     = 16
	maxRefreshWaiting = 1024
)

// fact is one cached answer. value is the kind's own (*userFacts,
// map[int64]bool, *tagSet).
type fact struct {
	checkedAt time.Time
	retryAt   time.Time // after a failed attempt: not asked again before this
	value     any
}

// factKind is how one kind of answer is kept and shared.
type factKind struct {
	name     string // metrics label, storage prefix: "users", "departments", "tags"
	endpoint string // the WeCom API asked, for the budget
	local    *cache.Cache
	flights  singleflight.Group
	encode   func(any) ([]byte, error)
	decode   func([]byte) (any, error)
}

// factQuery is one lookup of an answer.
type factQuery struct {
	kind *factKind
	corp *corp
	key  string // local key; also names the answer in storage (hashed)
	// floor is what is known besides the cache (the token's own user
	// facts), or nil.
	floor *fact
	// changed tells whether WeCom changed the answer after checkedAt (a
	// callback's event): such an answer is not used, shared or not.
	changed func(checkedAt time.Time) bool
	ask     func(ctx context.Context) (any, error)
	prio    priority
	// fresh skips the shared answers: a sign-in always asks WeCom.
	fresh bool
}

// errRecentlyFailed stands for "WeCom failed a moment ago": the pause
// after a failed attempt, with no answer young enough to serve.
var errRecentlyFailed = errors.New("WeCom failed a moment ago; not asked again yet")

func (h *Handler) usable(q *factQuery, f *fact, now time.Time) bool {
	return f != nil && !f.checkedAt.IsZero() && now.Sub(f.checkedAt) < time.Duration(h.Recheck) &&
		!q.changed(f.checkedAt)
}

func (q *factQuery) cached() *fact {
	var f *fact
	if v, ok := q.kind.local.Get(q.key); ok {
		f = v.(*fact)
	}
	if q.floor != nil && (f == nil || q.floor.checkedAt.After(f.checkedAt)) {
		keep := *q.floor
		if f != nil {
			keep.retryAt = f.retryAt
		}
		f = &keep
	}
	return f
}

// lookup returns the answer to serve for q: fresh, or within stale_grace
// while WeCom cannot be asked.
func (h *Handler) lookup(ctx context.Context, q *factQuery) (*fact, error) {
	now := h.now()
	last := q.cached()
	if h.usable(q, last, now) {
		h.refreshAhead(q, last, now)
		return last, nil
	}
	if last != nil && now.Before(last.retryAt) {
		return h.staleOr(last, now, errRecentlyFailed)
	}
	f, err := h.refresh(ctx, q, last)
	if err == nil {
		return f, nil
	}
	var nb *errNoBudget
	if !errors.As(err, &nb) || nb.paused {
		// Pause before asking again, even with nothing to serve (a
		// department first listed while WeCom is down): every request
		// would otherwise wait the whole call budget. The budget needs no
		// pause: its check costs nothing.
		h.noteFailure(q, last)
	}
	if cur := q.cached(); cur != nil && last != nil && cur.checkedAt.After(last.checkedAt) {
		return cur, nil // another request got a newer answer meanwhile
	}
	return h.staleOr(last, now, err)
}

func (h *Handler) noteFailure(q *factQuery, last *fact) {
	failed := &fact{}
	if cur := q.cached(); cur != nil {
		*failed = *cur
	} else if last != nil {
		*failed = *last
	}
	// From when the attempt ended, not when the request came: a WeCom that
	// hangs for the whole call budget must not be asked again at once.
	failed.retryAt = h.now().Add(h.recheckPause)
	q.kind.local.Set(q.key, failed, h.factLife())
}

func (h *Handler) staleOr(f *fact, now time.Time, err error) (*fact, error) {
	if h.staleUsable(f, now) {
		return f, nil
	}
	return nil, err
}

// staleUsable tells whether f may still be served when WeCom cannot be
// asked (stale_grace).
func (h *Handler) staleUsable(f *fact, now time.Time) bool {
	return f != nil && !f.checkedAt.IsZero() && now.Sub(f.checkedAt) < time.Duration(h.StaleGrace)
}

// hasStale tells whether a recheck that the budget refuses would still
// pass its user on last: such a recheck can give way to logins.
func (h *Handler) hasStale(last *fact) bool { return h.staleUsable(last, h.now()) }

// refresh gets a newer answer than last: from storage if another instance
// asked within `recheck`, else from WeCom. One flight per answer and
// priority serves everyone waiting here at that priority (a background
// refresh never makes a request wait, and a sign-in never takes a
// recheck's refusal by the budget for its own).
func (h *Handler) refresh(ctx context.Context, q *factQuery, last *fact) (*fact, error) {
	if q.prio == prioRecheck && h.hasStale(last) {
		// Refused, the user passes on last (staleOr): the recheck can
		// give way to logins. Its own flight, so that a request with
		// nothing to fall back on never takes its refusal.
		stale := *q
		stale.prio = prioStale
		q = &stale
	}
	return h.flight(ctx, q, last, q.key+"\x00"+q.prio.String())
}

func (h *Handler) flight(ctx context.Context, q *factQuery, last *fact, key string) (*fact, error) {
	v, err, _ := q.kind.flights.Do(key, func() (any, error) {
		ctx, cancel := detached(ctx, h.callBudget)
		defer cancel()
		if !q.fresh {
			if f := h.fromStorage(ctx, q, last); f != nil {
				return f, nil
			}
		}
		if q.prio == prioBackground && !h.claim(ctx, q) {
			return nil, errClaimed
		}
		var val any
		err := h.spend(ctx, q.corp, q.kind.endpoint, q.prio, func(ctx context.Context) error {
			var err error
			val, err = q.ask(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		f := &fact{checkedAt: h.now(), value: val}
		q.kind.local.Set(q.key, f, h.factLife())
		h.toStorage(ctx, q, f)
		return f, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*fact), nil
}

// errClaimed: another instance is refreshing the answer in the background;
// this one takes the result from storage when it is written.
var errClaimed = errors.New("another instance is refreshing this answer")

// claim tells the other instances that this one is asking WeCom for q in
// the background, so that those reaching their own refresh point while
// WeCom answers do not ask too (they would find nothing in storage yet).
// It reports false when another instance's claim holds. Not atomic: two
// instances claiming at the same instant both ask, which is the one extra
// call a race may cost.
func (h *Handler) claim(ctx context.Context, q *factQuery) bool {
	key := "claims/" + h.storageKey(q)
	if _, _, err := h.cluster.Fact(ctx, key); err == nil {
		return false
	}
	hold := min(h.callBudget, time.Duration(float64(h.Recheck)*(1-aheadTo)/2))
	_ = h.cluster.PutFact(ctx, key, nil, h.now().Add(hold))
	return true
}

// storageKey names an answer among the shared facts: the corp's id and a
// hash of the API base and the local key (which holds the app and the
// userid or the department): short, of safe characters, and telling
// nothing of the secret behind the app.
func (h *Handler) storageKey(q *factQuery) string {
	sum := sha256.Sum256([]byte(h.APIBase + "\x00" + q.key))
	return q.kind.name + "/" + safeKey(q.corp.id) + "/" + base64.RawURLEncoding.EncodeToString(sum[:18])
}

// fromStorage is the answer another instance left, if it is newer than
// last and still within `recheck`.
func (h *Handler) fromStorage(ctx context.Context, q *factQuery, last *fact) *fact {
	b, _, err := h.cluster.Fact(ctx, h.storageKey(q))
	if err != nil {
		return nil
	}
	if len(b) < 8 {
		return nil
	}
	at := time.UnixMilli(int64(binary.BigEndian.Uint64(b[:8])))
	if last != nil && !at.After(last.checkedAt) {
		return nil
	}
	val, err := q.kind.decode(b[8:])
	if err != nil {
		return nil // written by another version, or damaged: ask WeCom
	}
	f := &fact{checkedAt: at, value: val}
	if !h.usable(q, f, h.now()) {
		return nil
	}
	metrics.sharedFacts.WithLabelValues(q.kind.name).Inc()
	q.kind.local.Set(q.key, f, h.factLife())
	return f
}

func (h *Handler) toStorage(ctx context.Context, q *factQuery, f *fact) {
	val, err := q.kind.encode(f.value)
	if err != nil {
		return
	}
	b := binary.BigEndian.AppendUint64(nil, uint64(f.checkedAt.UnixMilli()))
	if err := h.cluster.PutFact(ctx, h.storageKey(q), append(b, val...), f.checkedAt.Add(h.factLife())); err != nil {
		// Kept and retried by the cluster; the others ask WeCom meanwhile.
		h.logger.Debug("a WeCom answer was not shared yet", zap.String("kind", q.kind.name), zap.Error(err))
	}
}

// refreshAhead asks again in the background for an answer in use that is
// in the last part of `recheck` (from this instance's own point in it),
// once at a time per answer, maxRefreshing at a time per API base and the
// others in turn.
func (h *Handler) refreshAhead(q *factQuery, f *fact, now time.Time) {
	recheck := time.Duration(h.Recheck)
	start := time.Duration(float64(recheck) * (aheadFrom + (aheadTo-aheadFrom)*h.spread(q.key)))
	if now.Sub(f.checkedAt) < start {
		return
	}
	s := h.shared
	if _, busy := s.refreshing.LoadOrStore(q.key, struct{}{}); busy {
		return
	}
	bg := *q
	bg.prio, bg.floor = prioBackground, nil
	s.refreshWG.Add(1)
	queued := s.enqueue(func() {
		defer func() {
			s.refreshing.Delete(q.key)
			s.refreshWG.Done()
		}()
		if cur := bg.cached(); cur != nil && cur.checkedAt.After(f.checkedAt) {
			// Renewed while it waited (by a request past recheck, a
			// sign-in, another instance's answer).
			metrics.aheadRefreshes.WithLabelValues(q.kind.name, "overtaken").Inc()
			return
		}
		_, err := h.refresh(context.Background(), &bg, f)
		result := "ok"
		var nb *errNoBudget
		switch {
		case errors.Is(err, errClaimed):
			result = "claimed_elsewhere"
		case errors.As(err, &nb):
			result = "deferred"
		case err != nil:
			result = "failed"
		}
		metrics.aheadRefreshes.WithLabelValues(q.kind.name, result).Inc()
	})
	if !queued {
		s.refreshing.Delete(q.key) // too many waiting: the next request tries again
		s.refreshWG.Done()
		metrics.aheadRefreshes.WithLabelValues(q.kind.name, "queue_full").Inc()
	}
}

// spread is a number in [0, 1) particular to this instance and key.
func (h *Handler) spread(key string) float64 {
	sum := sha256.Sum256([]byte(h.cluster.ID() + "\x00" + key))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}

// detached is a context for a call shared by several waiters: no waiter's
// cancellation ends it, but the earliest of its own deadline and budget
// does (a sign-in's bound on its total WeCom time holds).
func detached(ctx context.Context, budget time.Duration) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(budget)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

// safeKey keeps a storage key part to [A-Za-z0-9._-] (corp ids and
// endpoints are; anything else is hashed).
func safeKey(s string) string {
	ok := s != "" && len(s) <= 64
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = c == '.' || c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	if ok {
		return s
	}
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// refreshers are the shared state of background refreshes (in shared).
type refreshers struct {
	refreshing sync.Map // key → struct{}: waiting or running
	refreshWG  sync.WaitGroup

	mu      sync.Mutex
	waiting []func() // in the order they came
	workers int      // running them, at most maxRefreshing
}

// enqueue has run called by a worker, started if fewer than maxRefreshing
// run; false when maxRefreshWaiting wait already.
func (s *refreshers) enqueue(run func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.waiting) >= maxRefreshWaiting {
		return false
	}
	s.waiting = append(s.waiting, run)
	if s.workers < maxRefreshing {
		s.workers++
		go s.work()
	}
	return true
}

// work runs waiting refreshes until there are none.
func (s *refreshers) work() {
	s.mu.Lock()
	for len(s.waiting) > 0 {
		run := s.waiting[0]
		s.waiting[0] = nil
		s.waiting = s.waiting[1:]
		s.mu.Unlock()
		run()
		s.mu.Lock()
	}
	s.workers--
	s.mu.Unlock()
}
