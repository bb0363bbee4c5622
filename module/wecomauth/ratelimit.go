package wecomauth

import (
	"container/list"
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
// not use. Clients with an attempt in flight are never forgotten and come
// on top, at most the bounds on sign-ins in flight below.
const maxTrackedClients = 1 << 16

// Bounds on sign-ins in flight across all clients; past them a sign-in is
// answered 429 at once (not counted as a failure) instead of queueing.
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
)

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
// or failed in a window.
type failureLimiter struct {
	limit       int
	window      time.Duration
	maxInFlight [signInKinds]int

	mu      sync.Mutex
	clients map[netip.Prefix]*client
	// idle holds the clients with failures and no attempt in flight, most
	// recently touched first; only these can be forgotten, so a
	// reservation's client is always the one in the map.
	idle     *list.List
	inFlight [signInKinds]int

	proxyWarned atomic.Bool
}

// client is one key's count.
type client struct {
	key      netip.Prefix
	failures int       // counted failures of the current window
	since    time.Time // the window's first counted failure
	inFlight int       // attempts reserved and not yet settled
	elem     *list.Element
}

// reservation is one attempt's hold on the limiter, from reserve to settle.
type reservation struct {
	c    *client
	kind signInKind
}

func newFailureLimiter(cfg *LoginRate) *failureLimiter {
	l := &failureLimiter{
		limit: DefaultLoginFailures, window: DefaultLoginWindow,
		maxInFlight: [signInKinds]int{
			codeSignIn:   maxCodeSignIns,
			reviewSignIn: reviewSignInsPerCPU * runtime.GOMAXPROCS(0),
		},
		clients: map[netip.Prefix]*client{},
		idle:    list.New(),
	}
	if cfg != nil && cfg.Failures > 0 {
		l.limit = cfg.Failures
	}
	if cfg != nil && cfg.Window > 0 {
		l.window = time.Duration(cfg.Window)
	}
	return l
}

// reserve holds one unit of key's budget and one slot of kind for an
// attempt. It refuses (nil) when the key's failures and attempts in flight
// reach the limit, telling after how many seconds to retry; or, with busy,
// when every slot of kind is taken.
func (l *failureLimiter) reserve(key netip.Prefix, kind signInKind, now time.Time) (res *reservation, retryAfter int, busy bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := l.clients[key]
	if c != nil {
		c.expire(now, l.window)
		if c.elem != nil {
			// A client that keeps trying stays tracked, refused or not.
			l.idle.MoveToFront(c.elem)
		}
		if c.failures+c.inFlight >= l.limit {
			return nil, c.retryAfter(now, l.limit, l.window), false
		}
	}
	if l.inFlight[kind] >= l.maxInFlight[kind] {
		return nil, 1, true
	}
	if c == nil {
		c = &client{key: key}
		l.clients[key] = c
	}
	if c.elem != nil {
		l.idle.Remove(c.elem)
		c.elem = nil
	}
	c.inFlight++
	l.inFlight[kind]++
	return &reservation{c: c, kind: kind}, 0, false
}

// settle ends an attempt: a counted failure keeps its unit as a failure of
// the client's window, anything else gives it back.
func (l *failureLimiter) settle(res *reservation, failed bool, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := res.c
	c.inFlight--
	l.inFlight[res.kind]--
	c.expire(now, l.window)
	if failed {
		if c.failures == 0 {
			c.since = now
		}
		c.failures++
	}
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

// retryAfter is when a refused client may try again: at the end of its
// window when its failures alone reach the limit, otherwise as soon as its
// attempts in flight have settled, a moment from now.
func (c *client) retryAfter(now time.Time, limit int, window time.Duration) int {
	if c.failures < limit {
		return 1
	}
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

// reserveSignIn lets one sign-in attempt start, or answers 429: for a
// client whose failures (counting its attempts in flight) reach the limit,
// or when too many sign-ins are in flight already.
func (h *Handler) reserveSignIn(r *http.Request, method string) (*reservation, *denial) {
	h.warnUntrustedProxy(r)
	kind := codeSignIn
	if method == "review" {
		kind = reviewSignIn
	}
	res, retry, busy := h.limiter.reserve(clientKey(clientIP(r)), kind, h.now())
	switch {
	case busy:
		return nil, &denial{status: http.StatusTooManyRequests, code: "rate_limited",
			message: "sign-ins are busy right now; try again in a moment", retryAfter: retry}
	case res == nil:
		return nil, &denial{status: http.StatusTooManyRequests, code: "rate_limited",
			message: "too many failed sign-ins from this address; try again later", retryAfter: retry}
	}
	return res, nil
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
