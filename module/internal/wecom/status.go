package wecom

// What the Client remembers of its calls for operators: the last gettoken
// outcome per corp (the admin API's status), and a WARN line when WeCom
// says the server's IP is not trusted (60020). Fed by one hook in attempt,
// so the token logic itself needs no change.

import (
	"errors"
	"regexp"
	"sync"
	"time"

	"go.uber.org/zap"
)

const errcodeUntrustedIP = 60020

// untrustedWarnEvery bounds the 60020 WARN lines per corp: every login
// fails the same way until the IP is added, and the log must not drown.
const untrustedWarnEvery = time.Minute

// TokenResult is the outcome of the last gettoken a Client sent for a corp.
type TokenResult struct {
	At time.Time
	// OK is true when WeCom answered a token; otherwise Errcode is WeCom's
	// errcode (0 for a failure that was not an errcode answer) and Reason a
	// short text safe to show (no secret, no token: see Error).
	OK      bool
	Errcode int
	Reason  string
}

// callStatus is the Client's memory of call outcomes; its zero value is
// ready.
type callStatus struct {
	mu       sync.Mutex
	tokens   map[string]TokenResult // corp id →
	warnedAt map[string]time.Time   // corp id → last 60020 WARN
}

// noteAttempt records one attempt's outcome (called from attempt).
func (c *Client) noteAttempt(r *request, err error, now time.Time) {
	var e *Error
	isErr := errors.As(err, &e)
	if r.endpoint != endpointToken && !(isErr && e.Errcode == errcodeUntrustedIP) {
		return
	}
	s := &c.status
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.endpoint == endpointToken {
		res := TokenResult{At: now, OK: err == nil}
		switch {
		case isErr:
			res.Errcode, res.Reason = e.Errcode, e.Error()
		case err != nil:
			res.Reason = "failed"
		}
		if s.tokens == nil {
			s.tokens = map[string]TokenResult{}
		}
		s.tokens[r.corpID] = res
	}
	if isErr && e.Errcode == errcodeUntrustedIP {
		if s.warnedAt == nil {
			s.warnedAt = map[string]time.Time{}
		}
		if last, ok := s.warnedAt[r.corpID]; ok && now.Sub(last) < untrustedWarnEvery {
			return
		}
		s.warnedAt[r.corpID] = now
		ip := UntrustedIP(e.Errmsg)
		if ip == "" {
			ip = "(not named in WeCom's answer)"
		}
		c.log.Warn("WeCom refuses calls from this server's IP (60020): add the IP WeCom saw to the app's 企业可信IP (trusted IPs) in WeCom's admin console, or send WeCom calls through a fixed egress (HTTPS_PROXY) whose IP is listed there",
			zap.String("corp_id", r.corpID), zap.String("endpoint", r.endpoint), zap.String("ip", ip))
	}
}

// LastToken returns the outcome of the last gettoken sent for the corp id,
// if any was sent since the Client was made.
func (c *Client) LastToken(corpID string) (TokenResult, bool) {
	c.status.mu.Lock()
	defer c.status.mu.Unlock()
	r, ok := c.status.tokens[corpID]
	return r, ok
}

var fromIP = regexp.MustCompile(`from ip: ?([0-9A-Fa-f:.]+)`)

// UntrustedIP is the IP a 60020 errmsg names ("…, from ip: 203.0.113.7,
// more info at …"), or "".
func UntrustedIP(errmsg string) string {
	if m := fromIP.FindStringSubmatch(errmsg); m != nil {
		return m[1]
	}
	return ""
}
