package wecom

import (
	"testing"
	"time"
)

// InvalidateToken exposes the compare-and-delete of the token cache, so a
// test can play a request whose stale token failed after a refresh.
func InvalidateToken(c *Client, corp Corp, token string) bool {
	return c.tokens.invalidate(c.keyOf(corp), token)
}

// SetBeforeFlightHook runs f in Token between the cache miss and joining
// the single flight, until the test ends.
func SetBeforeFlightHook(t testing.TB, f func()) {
	testHookBeforeFlight = f
	t.Cleanup(func() { testHookBeforeFlight = nil })
}

// NoJitter makes every backoff its full length until the test ends.
func NoJitter(t testing.TB) {
	old := jitter
	jitter = func(d time.Duration) time.Duration { return d }
	t.Cleanup(func() { jitter = old })
}

// TokenDropAt is when the cache stops handing out corp's token, so that a
// test can check a lifetime without waiting for it.
func TokenDropAt(c *Client, corp Corp) (time.Time, bool) {
	c.tokens.mu.RLock()
	defer c.tokens.mu.RUnlock()
	t, ok := c.tokens.tokens[c.keyOf(corp)]
	return t.dropAt, ok
}

// SetClock makes c's token cache read time from now.
func SetClock(c *Client, now func() time.Time) { c.tokens.now = now }
