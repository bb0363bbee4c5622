package wecomauth

// The WeCom budget (SPEC §6b): WeCom allows each corp 10,000 calls a
// minute and 150,000 an hour per API, for all callers together
// (/document/path/90454, 主动调用频率限制), and answers 45009 past that
// with a block of a minute or an hour for the whole corp. The gateway
// counts its calls per corp and API against `quota`, each instance keeping
// to its share, claimed through the heartbeats (see "The shares" below),
// and never goes past it: a call that finds no room is not made. Logins come first; rechecks and background
// refreshes stop short of the share so that logins find room.
//
// The windows are sliding, not aligned to the clock: WeCom does not say
// how it counts, and a sliding count is the one that holds under either
// (a fixed window lets 2n through in one window's time across its edge).
// Each window is counted in windowBuckets+1 buckets, so the count covers
// at least the whole window: it may refuse a call a bucket early, never
// let one through late.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/internal/cluster"
	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

// QuotaLimit is one `quota` pair: Calls per corp and per API in any
// Window.
type QuotaLimit struct {
	Calls  int            `json:"calls"`
	Window caddy.Duration `json:"window"`
}

// DefaultQuota is WeCom's documented limit per corp and API
// (/document/path/90454).
var DefaultQuota = []QuotaLimit{
	{Calls: 10000, Window: caddy.Duration(time.Minute)},
	{Calls: 150000, Window: caddy.Duration(time.Hour)},
}

func validateQuota(q []QuotaLimit) error {
	if len(q) > 2 {
		return fmt.Errorf("quota: at most two <calls> <window> pairs, got %d", len(q))
	}
	for _, l := range q {
		switch {
		case l.Calls < 1:
			return fmt.Errorf("quota: %d is not a positive number of calls", l.Calls)
		case l.Window <= 0:
			return fmt.Errorf("quota: window %v is not a positive duration", time.Duration(l.Window))
		}
	}
	return nil
}

// priority orders the calls for the budget: what a caller may spend of
// the instance's share.
type priority int

const (
	prioBackground priority = iota // refresh ahead: nobody waits
	prioStale                      // a recheck whose user passes on stale facts if refused
	prioRecheck                    // a user's request waits, with nothing within stale_grace
	prioLogin                      // a sign-in: nothing else can admit the user
)

// shareOf is the part of an instance's share a priority may spend: logins
// all of it, rechecks with nothing to fall back on leave a tenth for
// logins, the calls someone can do without (background refreshes, rechecks
// of users who would pass on stale facts) a quarter. Those also yield
// altogether while logins are being refused (loginsWait): the room that
// frees as calls leave the window goes to the logins trying again.
func shareOf(p priority, share int) int {
	switch p {
	case prioLogin:
		return share
	case prioRecheck:
		return share * 9 / 10
	}
	return share * 3 / 4
}

// yields tells whether p gives way to logins being refused.
func (p priority) yields() bool { return p < prioRecheck }

func (p priority) String() string {
	switch p {
	case prioLogin:
		return "login"
	case prioRecheck:
		return "recheck"
	case prioStale:
		return "recheck_stale"
	}
	return "background"
}

const windowBuckets = 60

// sliding counts calls over the last window in windowBuckets+1 buckets.
type sliding struct {
	bucket time.Duration
	idx    [windowBuckets + 1]int64 // bucket number each slot holds
	n      [windowBuckets + 1]int
}

func newSliding(window time.Duration) *sliding {
	b := window / windowBuckets
	if b <= 0 {
		b = 1
	}
	return &sliding{bucket: b}
}

// countEpoch is what the buckets count from: times are compared with it
// by the monotonic clock where they carry it (time.Now's do), so that a
// step of the wall clock (NTP) neither forgets counted calls nor counts
// them twice.
var countEpoch = time.Now()

func (s *sliding) cur(now time.Time) int64 {
	d := int64(now.Sub(countEpoch))
	b := d / int64(s.bucket)
	if d < 0 && d%int64(s.bucket) != 0 {
		b-- // floor: a moved test clock may be before the epoch
	}
	return b
}

// used is the calls of the buckets that overlap the last window, and of
// any later than now (a claim made with a time a little behind must not
// leave out the calls made since).
func (s *sliding) used(now time.Time) int {
	cur, total := s.cur(now), 0
	for i := range s.idx {
		if s.idx[i] > cur-int64(len(s.idx)) {
			total += s.n[i]
		}
	}
	return total
}

// freeIn is how long until the oldest counted call leaves the count.
func (s *sliding) freeIn(now time.Time) time.Duration {
	cur, oldest := s.cur(now), int64(math.MaxInt64)
	for i := range s.idx {
		if s.n[i] > 0 && s.idx[i] > cur-int64(len(s.idx)) && s.idx[i] <= cur && s.idx[i] < oldest {
			oldest = s.idx[i]
		}
	}
	if oldest == math.MaxInt64 {
		return 0
	}
	return countEpoch.Add(time.Duration(oldest+int64(len(s.idx))) * s.bucket).Sub(now)
}

func (s *sliding) add(now time.Time) {
	cur := s.cur(now)
	i := s.slot(cur)
	if s.idx[i] != cur {
		s.idx[i], s.n[i] = cur, 0
	}
	s.n[i]++
}

// move counts a call made at from as made at to, when it has returned: it
// reached WeCom at some time in between, so counting it until to's bucket
// leaves the window covers it however long it took.
func (s *sliding) move(from, to time.Time) {
	if f := s.cur(from); s.idx[s.slot(f)] == f && s.n[s.slot(f)] > 0 {
		s.n[s.slot(f)]--
	}
	s.add(to)
}

func (s *sliding) slot(b int64) int {
	i := int(b % int64(len(s.idx)))
	if i < 0 {
		i += len(s.idx)
	}
	return i
}

// apiBudget is one corp's API on this instance.
type apiBudget struct {
	claim   string // its name in the heartbeats' claims, less the window
	limits  []QuotaLimit
	windows map[time.Duration]*sliding
	// Per window: intent is the share last written in a heartbeat,
	// granted what may be spent, once the others' claims were read after
	// that write (claims.go in the cluster package says why).
	intent, granted map[time.Duration]int
	// Concurrency after a 45033: limit 0 is none.
	inFlight, limit int
	lowered         time.Time
	// loginsWait: until then a login refused here tries again, and the
	// calls that can be done without yield to it.
	loginsWait time.Time
}

func shortestWindow(limits []QuotaLimit) time.Duration {
	var w time.Duration
	for _, l := range limits {
		if d := time.Duration(l.Window); w == 0 || d < w {
			w = d
		}
	}
	return w
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// budgets holds every corp's API budgets of one API base (in shared).
type budgets struct {
	mu      sync.Mutex
	apiBase string
	apis    map[string]*apiBudget // corp id + "\x00" + endpoint
	// paused: corp id + "\x00" + endpoint → end of a 45009 pause.
	paused map[string]time.Time
	freed  chan struct{} // closed and replaced when a concurrency slot frees
	// The other instances' claims as last read (once there is a view),
	// and how long a claim holds (cluster.State.Hold): that
	// long after its last claim was written (claimedAt, wrote), the others
	// count this instance as gone, and it spends nothing until it writes
	// and reads again. That is a matter of storage answering in real time,
	// so it is timed by mono (time.Now; a test's moved clock jumps minutes
	// between two polls).
	peers     []cluster.Peer
	viewed    bool
	claimedAt time.Time // the last Claims, just before its write
	wrote     time.Time // the claimedAt of the last write the others were read after
	hold      time.Duration
	mono      func() time.Time
	stopped   bool          // the instance left: no more calls
	callMax   time.Duration // the longest a WeCom call takes (callBudget)
}

func newBudgets(apiBase string) *budgets {
	return &budgets{apiBase: apiBase, apis: map[string]*apiBudget{}, paused: map[string]time.Time{}, freed: make(chan struct{}), mono: time.Now}
}

// errNoBudget refuses a call the budget has no room for; retryAfter is
// when room frees up.
type errNoBudget struct {
	endpoint   string
	prio       priority
	retryAfter time.Duration
	paused     bool // a 45009 pause rather than the count
	instances  int  // the share was of this many instances
}

func (e *errNoBudget) Error() string {
	if e.paused {
		return fmt.Sprintf("wecom %s paused after WeCom's frequency limit (45009) for %v more", e.endpoint, e.retryAfter.Round(time.Second))
	}
	return fmt.Sprintf("wecom %s: this instance's share of the quota (%d live instances) is spent for %s calls, or it could not claim one in storage; room in %v",
		e.endpoint, e.instances, e.prio, e.retryAfter.Round(time.Second))
}

// RetryAfter is what the 503 says.
func (e *errNoBudget) RetryAfter() time.Duration { return e.retryAfter }

// pauseFor is WeCom's block after a 45009 (/document/path/90454: a minute
// block lasts 60 s). An hour block cannot be told from a minute one by the
// errcode; the pause is renewed by the next 45009 after it.
const pauseFor = 60 * time.Second

// minConcurrencyHold is how long a concurrency lowered after a 45033
// holds before it doubles again, up to maxLoweredConcurrency and then no
// limit (45033's limit is not documented).
const (
	minConcurrencyHold    = 10 * time.Second
	maxLoweredConcurrency = 64
)

func (h *Handler) quotaLimits() []QuotaLimit {
	if len(h.Quota) > 0 {
		return h.Quota
	}
	return DefaultQuota
}

// spend runs call as one WeCom call for corp's endpoint if the budget and
// any 45009 pause allow it at p, keeping the count, and acts on the
// frequency errcodes it answers.
func (h *Handler) spend(ctx context.Context, c *corp, endpoint string, p priority, call func(context.Context) error) error {
	b := h.shared.budgets
	key := c.id + "\x00" + endpoint
	if left := h.pausedFor(ctx, c, endpoint); left > 0 {
		metrics.deferred.WithLabelValues(c.name, endpoint, "paused").Inc()
		return &errNoBudget{endpoint: endpoint, prio: p, retryAfter: left, paused: true}
	}
	var started time.Time
	for {
		now := h.now()
		b.mu.Lock()
		a := b.api(key, h.quotaLimits())
		if wait, ok := b.roomLocked(a, p, now); !ok {
			if p == prioLogin {
				// Until the login tries again, and a little longer (a tenth
				// of the shortest window), what frees up is kept for it.
				a.loginsWait = maxTime(a.loginsWait, now.Add(wait+shortestWindow(a.limits)/10))
			}
			b.mu.Unlock()
			metrics.deferred.WithLabelValues(c.name, endpoint, p.String()).Inc()
			return &errNoBudget{endpoint: endpoint, prio: p, retryAfter: wait, instances: h.cluster.Instances()}
		}
		if a.limit > 0 && now.Sub(a.lowered) > minConcurrencyHold {
			// Creep back up, a step per hold; far enough up, no limit.
			a.limit, a.lowered = a.limit*2, now
			if a.limit > maxLoweredConcurrency {
				a.limit = 0
			}
		}
		if a.limit == 0 || a.inFlight < a.limit {
			for _, l := range a.limits {
				a.windows[time.Duration(l.Window)].add(now)
			}
			started = now
			a.inFlight++
			b.mu.Unlock()
			break
		}
		freed := b.freed
		b.mu.Unlock()
		if p == prioBackground {
			return &errNoBudget{endpoint: endpoint, prio: p, retryAfter: time.Second}
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	err := call(ctx)
	b.mu.Lock()
	a := b.api(key, h.quotaLimits())
	for _, l := range a.limits {
		a.windows[time.Duration(l.Window)].move(started, h.now())
	}
	a.inFlight--
	var we *wecom.Error
	if errors.As(err, &we) && we.Errcode == 45033 {
		// Too many at once: hold this API to half of what was in flight.
		a.limit, a.lowered = max(1, (a.inFlight+1)/2), h.now()
		h.logger.Info("WeCom answered 45033 (too many concurrent calls): this API's concurrency is lowered",
			zap.String("corp", c.name), zap.String("endpoint", endpoint), zap.Int("limit", a.limit))
	}
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
	if errors.As(err, &we) && we.Errcode == 45009 {
		h.pause(c, endpoint)
	}
	return err
}

// api is key's budget, made with limits if it is new. The limits of a
// budget kept are the newest config's (declareBudgets), whichever handler
// spends.
func (b *budgets) api(key string, limits []QuotaLimit) *apiBudget {
	a := b.apis[key]
	if a == nil {
		sum := sha256.Sum256([]byte(b.apiBase + "\x00" + key))
		a = &apiBudget{
			claim:   hex.EncodeToString(sum[:8]),
			windows: map[time.Duration]*sliding{},
			intent:  map[time.Duration]int{},
			granted: map[time.Duration]int{},
		}
		b.apis[key] = a
		a.setLimits(limits)
	}
	return a
}

// setLimits makes limits a's, as a config is provisioned. A lower quota
// holds at once for this instance (the others lower theirs at their next
// heartbeat, having read its claim); a window no longer configured keeps
// being claimed at what it spent until its calls have left it.
func (a *apiBudget) setLimits(limits []QuotaLimit) {
	a.limits = limits
	for _, l := range limits {
		win := time.Duration(l.Window)
		if a.windows[win] == nil {
			a.windows[win] = newSliding(win)
		}
		most := l.Calls - reserveOf(l.Calls)
		a.granted[win] = min(a.granted[win], most)
		if i, ok := a.intent[win]; ok {
			a.intent[win] = min(i, most)
		}
	}
}

// retiredLocked adds to out the claims of a's windows that are no longer
// configured, at what they spent, and forgets those with nothing left.
func (a *apiBudget) retiredLocked(now time.Time, out map[string]cluster.Claim) {
	for win, w := range a.windows {
		if a.limitOf(win) != nil {
			continue
		}
		used := w.used(now)
		if used == 0 {
			delete(a.windows, win)
			delete(a.intent, win)
			delete(a.granted, win)
			continue
		}
		out[claimName(a, win)] = cluster.Claim{Used: used, Share: used, Window: win}
	}
}

func (a *apiBudget) limitOf(win time.Duration) *QuotaLimit {
	for i := range a.limits {
		if time.Duration(a.limits[i].Window) == win {
			return &a.limits[i]
		}
	}
	return nil
}

// budgetedEndpoints are the WeCom APIs that spend the budget (gettoken is
// called once per token: its own rules keep it far below any quota).
var budgetedEndpoints = []string{"jscode2session", "user/get", "department/simplelist", "tag/get"}

// declare makes the budgets of h's corps before the cluster's first
// heartbeat, so that the instance claims its room in it.
func (h *Handler) declareBudgets() {
	b := h.shared.budgets
	b.mu.Lock()
	defer b.mu.Unlock()
	b.callMax = max(b.callMax, h.callBudget)
	for _, c := range h.corps {
		for _, e := range budgetedEndpoints {
			b.api(c.id+"\x00"+e, h.quotaLimits()).setLimits(h.quotaLimits())
		}
	}
}

// roomLocked tells whether a call at p fits every window now, or how long
// until it would.
func (b *budgets) roomLocked(a *apiBudget, p priority, now time.Time) (time.Duration, bool) {
	if p.yields() && now.Before(a.loginsWait) {
		return a.loginsWait.Sub(now), false
	}
	var wait time.Duration
	ok := true
	for _, l := range a.limits {
		win := time.Duration(l.Window)
		share := b.shareLocked(a, win)
		w := a.windows[win]
		if w.used(now) >= shareOf(p, share) {
			ok = false
			wait = max(wait, w.freeIn(now), time.Second)
		}
	}
	return wait, ok
}

// shareLocked is what this instance may spend of a's window now: its
// grant, unless it left or its last claim is older than what the others
// leave room for.
func (b *budgets) shareLocked(a *apiBudget, win time.Duration) int {
	if b.stopped || b.wrote.IsZero() || b.mono().Sub(b.wrote) > b.hold {
		return 0
	}
	return a.granted[win]
}

// The shares. Every instance publishes, per corp, API and window, the
// calls it has made and the most it may make (a cluster.Claim). Of a quota
// Q, a twentieth (reserve) is left for instances that join: a new instance
// may spend that much at once, before the others have seen it and made
// room; the rest is split evenly among the live instances. What an
// instance may spend is never more than Q less what the others may spend
// by their claims:
//   - a live instance may spend up to the larger of its share and what it
//     has spent (past its share, it makes no calls until its count falls);
//   - one that left has spent what it said, and that counts until the
//     window (and a hold, for calls under way) has passed;
//   - one that went quiet (crashed, or cut off from storage) may have
//     gone on to its share until it stopped (a hold after its last
//     heartbeat; then it stops by itself), and that counts a window more;
//   - one that claims nothing at all (a release before claims) is
//     counted as taking its even part.
//
// Over-counting only costs room; the sum of what all instances may spend
// never passes Q, even while one joins, leaves or restarts.
const reserveDivisor = 20

func reserveOf(quota int) int { return max(1, quota/reserveDivisor) }

// claimName names a budget's window in the claims.
func claimName(a *apiBudget, win time.Duration) string {
	return a.claim + "@" + win.String()
}

// Claims implements cluster.Claimer: what this instance may spend (its
// intent) and has spent, for every budget and window. The intent is used
// only once the others' claims have been read after it was written (Read).
func (b *budgets) Claims(now time.Time) map[string]cluster.Claim {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.claimedAt = b.mono()
	return b.claimsLocked(now, func(a *apiBudget, l QuotaLimit) int {
		win := time.Duration(l.Window)
		// A share at most doubles from one heartbeat to the next, and is
		// cut to what the others leave once they are read (Read; the
		// heartbeat then writes the grant over this claim, so a claim on
		// a view a poll old holds the room for a moment only). The first
		// claim is made on a view just read: the cluster's first
		// heartbeat reads before it writes, so a lone instance takes its
		// part at once.
		var intent int
		if _, claimed := a.intent[win]; claimed {
			intent = min(l.Calls-reserveOf(l.Calls), max(reserveOf(l.Calls), 2*a.granted[win]))
		} else {
			intent = b.fairLocked(a, l, now)
		}
		a.intent[win] = intent
		return max(intent, a.granted[win]) // until the read that follows, the old grant still holds
	})
}

// Read implements cluster.Claimer: with the others' claims read after
// this instance's own were written, each grant becomes the smaller of the
// intent written and what the others now leave.
func (b *budgets) Read(now time.Time, peers []cluster.Peer, hold time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.peers, b.viewed, b.hold = peers, true, hold
	if !b.claimedAt.IsZero() {
		b.wrote = b.claimedAt // a first read, before any claim, confirms none
	}
	for _, a := range b.apis {
		for _, l := range a.limits {
			win := time.Duration(l.Window)
			a.granted[win] = min(a.intent[win], b.fairLocked(a, l, now))
		}
	}
}

// Granted implements cluster.Claimer: what this instance may spend now,
// for every budget and window.
func (b *budgets) Granted(now time.Time) map[string]cluster.Claim {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.claimsLocked(now, func(a *apiBudget, l QuotaLimit) int {
		return b.shareLocked(a, time.Duration(l.Window))
	})
}

// Leave implements cluster.Claimer: the instance leaves; it spends nothing
// more, and what it spent is its share.
func (b *budgets) Leave(now time.Time) map[string]cluster.Claim {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	return b.claimsLocked(now, func(a *apiBudget, l QuotaLimit) int {
		return a.windows[time.Duration(l.Window)].used(now)
	})
}

// claimsLocked is every budget's claims: what each configured window has
// spent, with share's answer as its share, and the windows no longer
// configured at what they spent (retiredLocked).
func (b *budgets) claimsLocked(now time.Time, share func(*apiBudget, QuotaLimit) int) map[string]cluster.Claim {
	out := make(map[string]cluster.Claim, 2*len(b.apis))
	for _, a := range b.apis {
		for _, l := range a.limits {
			win := time.Duration(l.Window)
			out[claimName(a, win)] = cluster.Claim{Used: a.windows[win].used(now), Share: share(a, l), Window: win}
		}
		a.retiredLocked(now, out)
	}
	return out
}

// fairLocked is what this instance may spend of l by the claims last read:
// its even part of the quota left by the reserve and the instances gone,
// or the reserve if that is more, and never more than the others leave.
// Before any read it is the reserve: a new instance's claim.
func (b *budgets) fairLocked(a *apiBudget, l QuotaLimit, now time.Time) int {
	q, win := l.Calls, time.Duration(l.Window)
	reserve := reserveOf(q)
	if !b.viewed {
		return reserve
	}
	live, gone, n, unclaimed := 0, 0, 1, 0
	for _, p := range b.peers {
		c, ok := p.Claims[claimName(a, win)]
		if !ok {
			if p.Live && len(p.Claims) == 0 {
				unclaimed++
			}
			continue // a peer whose config does not call this API
		}
		switch age := now.Sub(p.Seen); {
		case p.Live:
			live += max(c.Used, c.Share)
			n++
		case p.Left && age < b.hold+win:
			gone += c.Used
		case !p.Left && age < b.hold+b.callMax+win:
			// It may start a call until a hold after its last write, and
			// that call may reach WeCom up to callMax later.
			gone += b.quietBound(a, p, c)
		}
	}
	n += unclaimed
	even := (q - reserve - gone) / n
	return max(0, min(q-live-gone-unclaimed*even, max(even, reserve)))
}

// quietBound is what an instance that went quiet may have spent of the
// window c: up to its share, and at most, beyond what it had spent, what
// its shortest window allowed it in the time it went on (b.hold).
func (b *budgets) quietBound(a *apiBudget, p cluster.Peer, c cluster.Claim) int {
	bound := max(c.Used, c.Share)
	for _, l := range a.limits {
		short, ok := p.Claims[claimName(a, time.Duration(l.Window))]
		if !ok || short.Window >= c.Window || short.Window <= 0 {
			continue
		}
		spans := int((b.hold + short.Window - 1) / short.Window)
		bound = min(bound, c.Used+spans*short.Share)
	}
	return bound
}

// quotaUse is one API's budget on this instance in one window: the calls
// made and the share it may make (of the whole quota, by the claims).
type quotaUse struct{ Used, Share int }

// quotaInUse is, per configured corp name and API, the calls this instance
// made within the first `quota` window (by default the last minute) and
// its share there, for the admin status endpoint (SPEC §6a).
func (h *Handler) quotaInUse() map[string]map[string]quotaUse {
	return h.quotaInWindow(time.Duration(h.quotaLimits()[0].Window))
}

func (h *Handler) quotaInWindow(win time.Duration) map[string]map[string]quotaUse {
	out := map[string]map[string]quotaUse{}
	if h.shared == nil {
		return out
	}
	now := h.now()
	b := h.shared.budgets
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range h.corps {
		apis := map[string]quotaUse{}
		for key, a := range b.apis {
			id, endpoint, _ := strings.Cut(key, "\x00")
			if id != c.id {
				continue
			}
			if w := a.windows[win]; w != nil {
				apis[endpoint] = quotaUse{Used: w.used(now), Share: b.shareLocked(a, win)}
			}
		}
		out[c.name] = apis
	}
	return out
}

// pauseKey is the 45009 pause's fact in storage: one per corp and API
// (of the API base: a simulator's corp is not WeCom's).
func (h *Handler) pauseKey(c *corp, endpoint string) string {
	return "pause/" + safeKey(c.id) + "/" + safeKey(h.APIBase+"\x00"+endpoint)
}

// pause stops every instance calling corp's endpoint for pauseFor: here
// at once, elsewhere when they next look (before each call).
func (h *Handler) pause(c *corp, endpoint string) {
	until := h.now().Add(pauseFor)
	b := h.shared.budgets
	b.mu.Lock()
	b.paused[c.id+"\x00"+endpoint] = until
	b.mu.Unlock()
	metrics.pauses.WithLabelValues(c.name, endpoint).Inc()
	h.logger.Warn("WeCom answered 45009 (frequency limit): no instance calls this API for this corp for a minute; users checked within stale_grace pass, logins answer 503",
		zap.String("corp", c.name), zap.String("endpoint", endpoint))
	ctx, cancel := context.WithTimeout(context.Background(), publishWait)
	defer cancel()
	_ = h.cluster.PutFact(ctx, h.pauseKey(c, endpoint), nil, until) // kept and retried if storage fails
}

// pausedFor is how long corp's endpoint stays paused after a 45009 seen
// here or by another instance (read from storage before each call: a
// pause must hold before the next call, not the next poll).
func (h *Handler) pausedFor(ctx context.Context, c *corp, endpoint string) time.Duration {
	now := h.now()
	b := h.shared.budgets
	key := c.id + "\x00" + endpoint
	b.mu.Lock()
	until := b.paused[key]
	b.mu.Unlock()
	if now.Before(until) {
		return until.Sub(now)
	}
	_, exp, err := h.cluster.Fact(ctx, h.pauseKey(c, endpoint))
	if err != nil || !now.Before(exp) {
		return 0
	}
	b.mu.Lock()
	b.paused[key] = exp
	b.mu.Unlock()
	return exp.Sub(now)
}

// quotaCollector reports the quota in use and the shares at scrape time
// (a gauge set at each call would hold its last value long after the
// window moved on).
type quotaCollector struct{}

var (
	quotaDesc = prometheus.NewDesc("wecom_quota_in_use",
		"WeCom calls this instance made within each quota window, per configured corp and endpoint.",
		[]string{"corp", "endpoint", "window"}, nil)
	shareDesc = prometheus.NewDesc("wecom_quota_share",
		"WeCom calls this instance may make within each quota window, per configured corp and endpoint: its share of the quota, by the instances' claims in storage.",
		[]string{"corp", "endpoint", "window"}, nil)
)

func (quotaCollector) Describe(ch chan<- *prometheus.Desc) { ch <- quotaDesc; ch <- shareDesc }

func (quotaCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[[3]string]bool{}
	for _, h := range liveHandlers() {
		for _, l := range h.quotaLimits() {
			win := time.Duration(l.Window)
			for corp, apis := range h.quotaInWindow(win) {
				for endpoint, u := range apis {
					key := [3]string{corp, endpoint, win.String()}
					if seen[key] {
						continue
					}
					seen[key] = true
					ch <- prometheus.MustNewConstMetric(quotaDesc, prometheus.GaugeValue, float64(u.Used), key[:]...)
					ch <- prometheus.MustNewConstMetric(shareDesc, prometheus.GaugeValue, float64(u.Share), key[:]...)
				}
			}
		}
	}
}
