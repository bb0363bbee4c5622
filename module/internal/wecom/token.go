package wecom

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"
)

const (
	// failureTTL is how long a definitive gettoken failure (40001 wrong
	// secret, 40013, 60020, …) is answered from memory. WeCom bans an IP for
	// an hour after many wrong-secret calls, so a flood of logins must cost
	// at most one gettoken per window.
	failureTTL = 30 * time.Second
	// rateLimitTTL: after 45009 WeCom blocks the API for a minute; asking
	// sooner only extends the block.
	rateLimitTTL = 60 * time.Second
	// A token is used until WeCom's expiry, not refreshed early: within
	// its validity gettoken answers the same token with what is left of its
	// life (/document/path/91039), so an early refresh buys nothing but
	// another gettoken, and learning the shorter life made the old cache
	// refresh again and again (0, 134, 148, 150 s of a 150 s token). A call
	// that meets the expiry answers 42001, and withToken fetches the new
	// token and repeats the call once. expirySlack covers expires_in being
	// whole seconds.
	expirySlack = time.Second
	// minTokenTTL and maxTokenTTL bound gettoken's expires_in, which
	// WeCom documents as 7200 s (/document/path/91039). Whoever answers in
	// WeCom's place may send 0, a negative number, a fraction or
	// 9223372036854775807: unbounded, that overflows time.Duration into a
	// token dropped at once (a gettoken per login, spending the corp's
	// quota) or one kept for centuries.
	//
	// The floor is a minute rather than "do not cache": a token that really
	// is dead is answered 40014/42001 and replaced by withToken anyway, so
	// using it a minute costs at most one failed call, while not caching
	// would cost a gettoken per request; whatever expires_in says, an app
	// then fetches at most about once a minute. The ceiling is twice
	// WeCom's lifetime: room should WeCom lengthen it somewhat (a longer
	// one is cut short, costing one gettoken per 4 h), yet a bogus answer
	// is forgotten within hours.
	minTokenTTL = time.Minute
	maxTokenTTL = 2 * 7200 * time.Second
)

// tokenKey identifies one app's token at the Client's API base. The secret
// is kept only as a salted SHA-256 so that neither a heap dump nor a
// debugger shows it in the cache.
type tokenKey struct {
	corpID string
	secret [sha256.Size]byte
}

func (c *Client) keyOf(corp Corp) tokenKey {
	h := sha256.New()
	h.Write(c.tokens.salt[:])
	h.Write([]byte(corp.Secret))
	k := tokenKey{corpID: corp.ID}
	h.Sum(k.secret[:0])
	return k
}

func (k tokenKey) flight() string { return k.corpID + "\x00" + string(k.secret[:]) }

// tokenStore caches tokens and recent gettoken failures, and lets at most
// one gettoken per key be in flight. Each Client has its own: a store lives
// exactly as long as the Client, so whoever must keep tokens across a
// config reload keeps the Client (the gateway pools one per API base), and
// there is no process-wide state to reset between tests or to outlive a
// configuration that no longer names the corp.
type tokenStore struct {
	// salt makes the hashes in memory useless for guessing secrets offline.
	salt     [32]byte
	mu       sync.RWMutex
	tokens   map[tokenKey]cachedToken
	failures map[tokenKey]cachedFailure
	// seen is the latest token fetched per key with when it was first
	// seen, kept when the token is dropped: a gettoken that answers a token
	// already seen is not a new token (not counted, its life not restarted).
	seen    map[tokenKey]seenToken
	flights singleflight.Group
	now     func() time.Time
}

type cachedToken struct {
	value  string
	dropAt time.Time
}

type seenToken struct {
	value     string
	firstSeen time.Time
}

type cachedFailure struct {
	err   Error
	until time.Time
}

func newTokenStore() *tokenStore {
	s := &tokenStore{tokens: map[tokenKey]cachedToken{}, failures: map[tokenKey]cachedFailure{},
		seen: map[tokenKey]seenToken{}, now: time.Now}
	_, _ = rand.Read(s.salt[:]) // never fails on supported platforms
	return s
}

// lookup returns a usable token, or a recent failure to repeat, or neither.
func (s *tokenStore) lookup(k tokenKey, now time.Time) (string, *Error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if t, ok := s.tokens[k]; ok && now.Before(t.dropAt) {
		return t.value, nil
	}
	if f, ok := s.failures[k]; ok && now.Before(f.until) {
		e := f.err // a copy per caller: callers may keep or change it
		e.Err = errRepeated{cause: f.err.Err, left: f.until.Sub(now).Round(time.Second)}
		return "", &e
	}
	return "", nil
}

// store caches a token fetched at now for ttl (clamped) or, for a token
// already seen, for left (what WeCom says remains, not clamped up: WeCom
// said the same token before, so the number is its and is believed). It
// reports whether the token is new, and when it was first seen.
func (s *tokenStore) store(k tokenKey, value string, ttl, left time.Duration, now time.Time) (fresh bool, firstSeen time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now) // stores are rare (one per app per ~2h): a fine time to forget stale entries
	if prev, ok := s.seen[k]; ok && prev.value == value {
		// WeCom answered the token it gave before: it ends when WeCom
		// says, and is not fetched again before then (unless a call finds
		// it invalid: withToken).
		s.tokens[k] = cachedToken{value: value, dropAt: now.Add(max(min(left, maxTokenTTL), 0) + expirySlack)}
		delete(s.failures, k)
		return false, prev.firstSeen
	}
	s.seen[k] = seenToken{value: value, firstSeen: now}
	s.tokens[k] = cachedToken{value: value, dropAt: now.Add(ttl + expirySlack)}
	delete(s.failures, k)
	return true, now
}

func (s *tokenStore) fail(k tokenKey, e *Error, ttl time.Duration, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweep(now)
	s.failures[k] = cachedFailure{err: *e, until: now.Add(ttl)}
}

// invalidate drops the cached token only if it is still the one that
// failed: a caller whose stale token failed after another one refreshed
// must not throw the fresh token away and fetch yet another.
func (s *tokenStore) invalidate(k tokenKey, failed string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[k]; ok && t.value == failed {
		delete(s.tokens, k)
		return true
	}
	return false
}

// forgetFailures drops the remembered gettoken failures but 45009's: a
// rate limit is WeCom's block, which no configuration fixes and an early
// call only extends.
func (s *tokenStore) forgetFailures() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, f := range s.failures {
		if f.err.Errcode != errcodeRateLimited {
			delete(s.failures, k)
		}
	}
}

func (s *tokenStore) sweep(now time.Time) {
	for k, t := range s.tokens {
		if !now.Before(t.dropAt) {
			delete(s.tokens, k)
		}
	}
	for k, f := range s.failures {
		if !now.Before(f.until) {
			delete(s.failures, k)
		}
	}
}

// errRepeated says that a failure was answered from memory.
type errRepeated struct {
	cause error
	left  time.Duration
}

func (e errRepeated) Error() string {
	msg := "repeated from memory, WeCom not asked again for " + e.left.String()
	if e.cause != nil {
		msg = e.cause.Error() + " (" + msg + ")"
	}
	return msg
}

func (e errRepeated) Unwrap() error { return e.cause }

// ForgetFailures makes the next call for each corp ask WeCom again instead
// of repeating a remembered gettoken failure (40001, 60020, …), so that
// configuration fixed outside the Caddyfile, such as a trusted IP added in
// WeCom's console, takes effect at a config reload (SPEC §6a) rather than
// up to 30 s later. Cached tokens are kept, and so is a remembered 45009:
// WeCom's rate-limit block lasts its minute whatever the configuration.
// A gettoken in flight may still remember its failure afterwards.
func (c *Client) ForgetFailures() { c.tokens.forgetFailures() }

// Token returns corp's access token, from the cache while it is valid.
func (c *Client) Token(ctx context.Context, corp Corp) (string, error) {
	if err := checkCorp(endpointToken, corp); err != nil {
		return "", err
	}
	return c.token(ctx, corp, c.keyOf(corp))
}

func (c *Client) token(ctx context.Context, corp Corp, k tokenKey) (string, error) {
	if tok, e := c.tokens.lookup(k, c.tokens.now()); tok != "" || e != nil {
		return tok, nilIfNone(e)
	}
	// The fetch is shared by every caller waiting for it, so no caller's
	// cancellation may end it; it is bounded by the per-attempt timeout and
	// the attempt count instead. Each waiter still leaves on its own ctx.
	shared := context.WithoutCancel(ctx)
	if testHookBeforeFlight != nil {
		testHookBeforeFlight()
	}
	ch := c.tokens.flights.DoChan(k.flight(), func() (any, error) {
		// A flight that ended between our lookup and DoChan has stored its
		// result already: use it rather than fetch again.
		if tok, e := c.tokens.lookup(k, c.tokens.now()); tok != "" || e != nil {
			return tok, nilIfNone(e)
		}
		return c.fetchToken(shared, corp, k)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return "", cloneError(r.Err)
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", ctxError(ctx, endpointToken, corp.ID)
	}
}

// testHookBeforeFlight lets a test hold a caller between its cache miss
// and joining the flight.
var testHookBeforeFlight func()

// fetchToken asks WeCom for a token and caches the outcome.
func (c *Client) fetchToken(ctx context.Context, corp Corp, k tokenKey) (string, error) {
	a, err := call[tokenAnswer](ctx, c, &request{
		endpoint: endpointToken,
		path:     "/cgi-bin/gettoken",
		corpID:   corp.ID,
		query:    url.Values{"corpid": {corp.ID}, "corpsecret": {corp.Secret}},
		secrets:  []string{corp.Secret},
	})
	now := c.tokens.now()
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			if ttl := failureTTLOf(e); ttl > 0 {
				c.tokens.fail(k, e, ttl, now)
				c.log.Debug("wecom gettoken failure cached",
					zap.String("corp_id", corp.ID), zap.Int("errcode", e.Errcode), zap.Duration("for", ttl))
			}
		}
		return "", err
	}
	ttl, clamped := tokenTTL(a.ExpiresIn)
	fresh, firstSeen := c.tokens.store(k, a.AccessToken, ttl, secondsLeft(a.ExpiresIn), now)
	if !fresh {
		c.log.Debug("wecom answered the access token it gave before; kept until its expiry",
			zap.String("corp_id", corp.ID), zap.Duration("first_seen_ago", now.Sub(firstSeen)),
			zap.String("expires_in", a.ExpiresIn.String()))
		return a.AccessToken, nil
	}
	if c.obs != nil {
		c.obs.TokenRefresh(corp.ID)
	}
	c.log.Debug("wecom access token fetched", zap.String("corp_id", corp.ID),
		zap.Duration("expires_in", ttl), zap.Bool("expires_in_clamped", clamped))
	return a.AccessToken, nil
}

// failureTTLOf says how long a gettoken failure is repeated from memory
// instead of asking WeCom again. Transport failures and -1 are not: the
// single flight and the bounded retries already limit them, and WeCom
// coming back should be noticed at once.
func failureTTLOf(e *Error) time.Duration {
	switch {
	case e.Errcode == errcodeRateLimited:
		return rateLimitTTL
	case e.Kind == KindDefinitive:
		return failureTTL
	}
	return 0
}

// tokenTTL turns expires_in into a lifetime within [minTokenTTL,
// maxTokenTTL], and says whether it had to be moved there. A missing,
// fractional or out-of-range value is not a bad response: the token itself
// is usable, only its lifetime is in doubt, and the bounds make that safe.
func tokenTTL(expiresIn json.Number) (time.Duration, bool) {
	// ParseFloat takes every JSON number, and on overflow returns ±Inf
	// with ErrRange, which the bounds then handle like any huge value.
	secs, err := strconv.ParseFloat(string(expiresIn), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		secs = 0 // missing or null
	}
	ns := secs * float64(time.Second) // compared as floats: no conversion can overflow
	switch {
	case !(ns >= float64(minTokenTTL)): // also NaN, which JSON cannot carry but costs nothing to refuse
		return minTokenTTL, true
	case ns > float64(maxTokenTTL):
		return maxTokenTTL, true
	}
	return time.Duration(ns), false
}

// secondsLeft is expires_in as it is, for a token already seen: 0 when it
// is not a usable number (the token is then tried once more and dropped).
func secondsLeft(expiresIn json.Number) time.Duration {
	secs, err := strconv.ParseFloat(string(expiresIn), 64)
	if err != nil || !(secs > 0) {
		return 0
	}
	if ns := secs * float64(time.Second); ns < float64(maxTokenTTL) {
		return time.Duration(ns)
	}
	return maxTokenTTL
}

type tokenAnswer struct {
	apiStatus
	AccessToken string `json:"access_token"`
	// ExpiresIn is a json.Number so that a fraction or a number beyond
	// int64 decodes and is clamped by tokenTTL instead of failing the
	// whole answer as garbage, which would be retried on every login.
	ExpiresIn json.Number `json:"expires_in"`
}

func (a *tokenAnswer) check() error {
	if a.AccessToken == "" {
		return errors.New("no access_token")
	}
	return nil
}

func nilIfNone(e *Error) error {
	if e == nil {
		return nil
	}
	return e
}

// cloneError gives each waiter of a shared flight its own *Error.
func cloneError(err error) error {
	if e, ok := err.(*Error); ok {
		c := *e
		return &c
	}
	return err
}
