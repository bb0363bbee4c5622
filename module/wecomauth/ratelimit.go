package wecomauth

import (
	"net/http"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Defaults of login_rate: failed sign-ins per client IP and window.
const (
	DefaultLoginFailures = 30
	DefaultLoginWindow   = time.Minute
)

// maxTrackedIPs bounds the limiter's memory under a flood from many
// addresses: past it, new addresses share one bucket, so a wide flood
// is limited as a whole rather than growing the map.
const maxTrackedIPs = 1 << 16

// LoginRate limits failed sign-ins per client IP. Successes are not
// counted: a whole office may sign in from one address.
type LoginRate struct {
	Failures int            `json:"failures,omitempty"`
	Window   caddy.Duration `json:"window,omitempty"`
}

// failureLimiter counts failures per IP in fixed windows.
type failureLimiter struct {
	limit  int
	window time.Duration

	mu     sync.Mutex
	start  time.Time
	counts map[string]int
}

const overflowBucket = "\x00overflow"

func newFailureLimiter(cfg *LoginRate) *failureLimiter {
	l := &failureLimiter{limit: DefaultLoginFailures, window: DefaultLoginWindow, counts: map[string]int{}}
	if cfg != nil && cfg.Failures > 0 {
		l.limit = cfg.Failures
	}
	if cfg != nil && cfg.Window > 0 {
		l.window = time.Duration(cfg.Window)
	}
	return l
}

// blocked reports whether ip has used up its failures, and for how many
// more seconds.
func (l *failureLimiter) blocked(ip string, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	n, ok := l.counts[ip]
	if !ok && len(l.counts) >= maxTrackedIPs {
		n = l.counts[overflowBucket]
	}
	if n < l.limit {
		return false, 0
	}
	return true, max(1, int(l.start.Add(l.window).Sub(now).Seconds()+0.999))
}

func (l *failureLimiter) fail(ip string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.roll(now)
	if _, ok := l.counts[ip]; !ok && len(l.counts) >= maxTrackedIPs {
		ip = overflowBucket
	}
	l.counts[ip]++
}

func (l *failureLimiter) roll(now time.Time) {
	if now.Sub(l.start) >= l.window {
		l.start = now
		clear(l.counts)
	}
}

// clientIP is Caddy's idea of the client address: the peer, or what a
// trusted proxy (the server's trusted_proxies) says, never a raw
// X-Forwarded-For.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// rateLimited answers 429 when the client has failed too often.
func (h *Handler) rateLimited(r *http.Request) *denial {
	if blocked, retry := h.limiter.blocked(clientIP(r), h.now()); blocked {
		return &denial{status: http.StatusTooManyRequests, code: "rate_limited",
			message: "too many failed sign-ins from this address; try again later", retryAfter: retry}
	}
	return nil
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

func (h *Handler) noteLoginResult(r *http.Request, d *denial) {
	if d != nil && countsAsFailure(d) {
		h.limiter.fail(clientIP(r), h.now())
	}
}
