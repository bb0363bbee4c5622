package wecomauth

import (
	"container/list"
	"context"
	"net/http"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// Defaults of login_rate: failed sign-ins per client IP and window.
const (
	DefaultLoginFailures = 30
	DefaultLoginWindow   = time.Minute
)

// maxTrackedClients bounds the limiter's memory under a flood from many
// addresses: past it, the client whose count was touched least recently is
// forgotten. A flood thus only ever forgets old counts; it never makes a
// newcomer share anyone's count, so it cannot lock out an address it did
// not use. Clients with a sign-in in flight (or waiting for a slot) are
// never forgotten; they come on top, at most one per open sign-in request.
const maxTrackedClients = 1 << 16

// Bounds on sign-ins in flight across all clients. A sign-in past them
// waits briefly for a slot (a burst of genuine sign-ins gets through) and is
// then answered 429 with Retry-After 1, not counted as a failure.
const (
	// A code sign-in mostly waits on WeCom (jscode2session, then user/get),
	// holding a goroutine, a connection and a share of the corp's API
	// quota. A sign-in takes about 100 ms, so this lets a few thousand a
	// second through — more than any office's morning — while a flood from
	// many addresses cannot pile up requests on WeCom that would spend the
	// quota genuine users need.
	maxCodeSignIns = 256
	// A review sign-in is a bcrypt comparison: about 50–100 ms of one CPU at
	// the usual cost. Two per CPU keeps every CPU busy; more would only make
	// each wait longer and starve ordinary requests of CPU. Only the app
	// store's reviewer signs in this way.
	reviewSignInsPerCPU = 2
	// How long a sign-in waits for a slot: long enough for a burst to drain
	// (a few rounds of WeCom calls), short enough that a flood is told to
	// come back rather than kept hanging.
	slotWait = time.Second
)

// clientWait is how long a sign-in waits for its client's attempts in
// flight to settle when they hold the client's whole budget: an office
// behind one NAT may sign in many people at once: they are let through
// login_rate attempts at a time rather than refused. Past it, 429 with
// Retry-After 1, not counted.
const clientWait = 10 * time.Second

// LoginRate limits failed sign-ins per client IP. Successes are not
// counted: a whole office may sign in from one address.
type LoginRate struct {
	Failures int            `json:"failures,omitempty"`
	Window   caddy.Duration `json:"window,omitempty"`
}

// signInKind tells which bound on sign-ins in flight an attempt takes.
type signInKind int

const (
	codeSignIn   signInKind = iota // code and inline logins: they wait on WeCom
	reviewSignIn                   // review logins: they spend bcrypt CPU
	signInKinds
)

// failureLimiter counts failed sign-ins per client key (see clientKey).
// An attempt reserves a unit of its client's budget before it runs and
// keeps it only if it fails, so concurrent attempts cannot overtake the
// count: with limit n, at most n attempts of one client are ever running
// or failed in a window. Attempts past that wait in the client's queue
// until a unit comes back or the failures reach the limit.
type failureLimiter struct {
	limit      int
	window     time.Duration
	clientWait time.Duration
	slotWait   time.Duration
	// slots holds a token per sign-in in flight, one channel per kind.
	slots [signInKinds]chan struct{}

	mu      sync.Mutex
	clients map[netip.Prefix]*client
	// idle holds the clients with failures and no attempt in flight, most
	// recently touched first; only these can be forgotten, so a
	// reservation's or a waiter's client is always the one in the map.
	idle *list.List

	proxyWarned atomic.Bool
}

// client is one key's count.
type client struct {
	key      netip.Prefix
	failures int       // counted failures of the current window
	since    time.Time // the window's first counted failure
	inFlight int       // units reserved and not yet settled
	elem     *list.Element
	// waiting holds *waiter, first come first; never empty unless
	// inFlight > 0, so a settle always comes to serve it.
	waiting list.List
}

// reservation is one attempt's hold on the limiter, from reserve to settle.
type reservation struct {
	c    *client
	kind signInKind
	slot bool // holds a token of slots[kind]
}

// waiter is a sign-in queued behind its client's attempts in flight.
type waiter struct {
	c    *client
	elem *list.Element // in c.waiting; nil once served
	turn chan turn     // receives exactly one turn once served
}

// turn serves a waiter: a unit of the budget, or a refusal.
type turn struct {
	res        *reservation
	retryAfter int
}

func newFailureLimiter(cfg *LoginRate) *failureLimiter {
	l := &failureLimiter{
		limit: DefaultLoginFailures, window: DefaultLoginWindow,
		clientWait: clientWait, slotWait: slotWait,
		clients: map[netip.Prefix]*client{},
		idle:    list.New(),
	}
	l.slots[codeSignIn] = make(chan struct{}, maxCodeSignIns)
	l.slots[reviewSignIn] = make(chan struct{}, reviewSignInsPerCPU*runtime.GOMAXPROCS(0))
	if cfg != nil && cfg.Failures > 0 {
		l.limit = cfg.Failures
	}
	if cfg != nil && cfg.Window > 0 {
		l.window = time.Duration(cfg.Window)
	}
	return l
}

// reserve asks for one unit of key's budget. It answers a reservation; or
// a waiter, when the client's attempts in flight hold the rest of its
// budget (its turn comes when one settles); or neither when the client's
// failures reach the limit, with the seconds until its window ends.
func (l *failureLimiter) reserve(key netip.Prefix, now time.Time) (*reservation, *waiter, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.clients[key]
	if c != nil {
		c.expire(now, l.window)
		l.serve(c, now)
		if c.elem != nil {
			// A client that keeps trying stays tracked, refused or not.
			l.idle.MoveToFront(c.elem)
		}
		if c.failures >= l.limit {
			return nil, nil, c.retryAfter(now, l.window)
		}
		if c.failures+c.inFlight >= l.limit || c.waiting.Len() > 0 {
			w := &waiter{c: c, turn: make(chan turn, 1)}
			w.elem = c.waiting.PushBack(w)
			return nil, w, 0
		}
	}
	if c == nil {
		c = &client{key: key}
		l.clients[key] = c
	}
	return l.take(c), nil, 0
}

// take gives c's next unit to an attempt.
func (l *failureLimiter) take(c *client) *reservation {
	if c.elem != nil {
		l.idle.Remove(c.elem)
		c.elem = nil
	}
	c.inFlight++
	return &reservation{c: c}
}

// serve hands c's free units to its waiters in order, or refuses them all
// once c's failures reach the limit.
func (l *failureLimiter) serve(c *client, now time.Time) {
	for c.waiting.Len() > 0 {
		var t turn
		switch {
		case c.failures >= l.limit:
			t.retryAfter = c.retryAfter(now, l.window)
		case c.failures+c.inFlight < l.limit:
			t.res = l.take(c)
		default:
			return
		}
		w := c.waiting.Remove(c.waiting.Front()).(*waiter)
		w.elem = nil
		w.turn <- t
	}
}

// cancel takes back a waiter that gives up. A unit it was served
// meanwhile goes on to the next waiter.
func (l *failureLimiter) cancel(w *waiter, now time.Time) {
	l.mu.Lock()
	if w.elem != nil {
		w.c.waiting.Remove(w.elem)
		w.elem = nil
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	if t := <-w.turn; t.res != nil {
		l.settle(t.res, false, now)
	}
}

// takeSlot gives res a slot of kind among the sign-ins in flight, waiting
// up to slotWait for one; false if none came (or ctx ended).
func (l *failureLimiter) takeSlot(ctx context.Context, res *reservation, kind signInKind) bool {
	res.kind = kind
	select {
	case l.slots[kind] <- struct{}{}:
		res.slot = true
		return true
	default:
	}
	if l.slotWait <= 0 {
		return false
	}
	timer := time.NewTimer(l.slotWait)
	defer timer.Stop()
	select {
	case l.slots[kind] <- struct{}{}:
		res.slot = true
	case <-timer.C:
	case <-ctx.Done():
	}
	return res.slot
}

// settle ends an attempt: a counted failure keeps its unit as a failure of
// the client's window, anything else gives it back (to the first waiter,
// if any).
func (l *failureLimiter) settle(res *reservation, failed bool, now time.Time) {
	if res.slot {
		<-l.slots[res.kind]
		res.slot = false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c := res.c
	c.inFlight--
	c.expire(now, l.window)
	if failed {
		if c.failures == 0 {
			c.since = now
		}
		c.failures++
	}
	l.serve(c, now)
	if c.inFlight > 0 {
		return
	}
	if c.failures == 0 {
		// Nothing to remember: successes take no room.
		delete(l.clients, c.key)
		return
	}
	c.elem = l.idle.PushFront(c)
	if l.idle.Len() > maxTrackedClients {
		old := l.idle.Remove(l.idle.Back()).(*client)
		old.elem = nil
		delete(l.clients, old.key)
	}
}

// expire starts a new window once the client's has passed.
func (c *client) expire(now time.Time, window time.Duration) {
	if c.failures > 0 && now.Sub(c.since) >= window {
		c.failures = 0
	}
}

// retryAfter is when a client whose failures reached the limit may try
// again: at the end of its window.
func (c *client) retryAfter(now time.Time, window time.Duration) int {
	return max(1, int((c.since.Add(window).Sub(now)+time.Second-1)/time.Second))
}

// clientKey is the count a client IP signs in under: an IPv4 address (also
// IPv4-mapped) on its own, an IPv6 address by its /64, which one subscriber
// usually holds whole, so rotating addresses inside it gains nothing. An IP
// that does not parse (Caddy found no client address) has a key of its own,
// the zero Prefix, which no address shares.
func clientKey(ip string) netip.Prefix {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	bits := 64
	if a.Is4() {
		bits = 32
	}
	p, _ := a.Prefix(bits)
	return p
}

// clientIP is Caddy's idea of the client address: the peer, or what a
// trusted proxy (the server's trusted_proxies) says, never a raw
// X-Forwarded-For.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// reserveSignIn lets one sign-in attempt start, waiting its turn behind
// the client's attempts in flight and for a slot among all sign-ins in
// flight; or answers 429: when the client's failures reach the limit, or
// when no turn or slot came in time (not counted as a failure).
func (h *Handler) reserveSignIn(r *http.Request, method string) (*reservation, *denial) {
	h.warnUntrustedProxy(r)
	kind := codeSignIn
	if method == "review" {
		kind = reviewSignIn
	}
	res, w, retry := h.limiter.reserve(clientKey(clientIP(r)), h.now())
	if w != nil {
		res, retry = h.awaitTurn(r.Context(), w)
	}
	switch {
	case res != nil:
		if h.limiter.takeSlot(r.Context(), res, kind) {
			return res, nil
		}
		h.limiter.settle(res, false, h.now())
	case retry > 0:
		return nil, &denial{status: http.StatusTooManyRequests, code: "rate_limited",
			message: "too many failed sign-ins from this address; try again later", retryAfter: retry}
	}
	return nil, &denial{status: http.StatusTooManyRequests, code: "rate_limited",
		message: "sign-ins are busy right now; try again in a moment", retryAfter: 1}
}

// awaitTurn waits up to clientWait for w's turn; neither a reservation nor
// a retry means none came.
func (h *Handler) awaitTurn(ctx context.Context, w *waiter) (*reservation, int) {
	timer := time.NewTimer(h.limiter.clientWait)
	defer timer.Stop()
	select {
	case t := <-w.turn:
		return t.res, t.retryAfter
	case <-timer.C:
	case <-ctx.Done():
	}
	h.limiter.cancel(w, h.now())
	return nil, 0
}

// countsAsFailure tells which refused sign-ins the limiter counts: those a
// guesser produces (malformed input, codes WeCom rejects, wrong review
// passwords). A 403 needs a genuine code of a real user, so a few
// disallowed colleagues behind the office NAT cannot lock everyone out;
// WeCom's outages and the wrong_corp step of a multi-corp sign-in are not
// the client's fault.
func countsAsFailure(d *denial) bool {
	return d.status == http.StatusBadRequest || d.status == http.StatusUnauthorized
}

// forwardingHeaders are what a proxy in front adds to a request.
var forwardingHeaders = []string{"X-Forwarded-For", "Forwarded", "X-Real-Ip"}

// warnUntrustedProxy warns, once per handler, when a sign-in seems to come
// through a proxy the server does not trust: Caddy then takes the proxy
// for the client, so everyone behind it shares one failure count and a few
// bad logins lock them all out.
func (h *Handler) warnUntrustedProxy(r *http.Request) {
	if h.limiter.proxyWarned.Load() {
		return
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		return
	}
	for _, name := range forwardingHeaders {
		if r.Header.Get(name) != "" && h.limiter.proxyWarned.CompareAndSwap(false, true) {
			h.logger.Warn("a sign-in came through a proxy that is not in the server's trusted_proxies: "+
				"every client behind that proxy shares one failed-login count (login_rate), so a few bad logins lock them all out; "+
				"add the proxy to trusted_proxies (global option: servers { trusted_proxies static <cidr> })",
				zap.String("proxy", clientIP(r)), zap.String("header", name))
			return
		}
	}
}
