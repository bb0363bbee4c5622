package wecomauth

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

var t0 = time.Unix(1000, 0)

// fail runs one failed attempt for key through the limiter, reporting
// whether it was let in.
func fail(l *failureLimiter, key netip.Prefix, now time.Time) bool {
	res, _, _ := l.reserve(key, codeSignIn, now)
	if res == nil {
		return false
	}
	l.settle(res, true, now)
	return true
}

// With limit 5, at most 5 attempts of one client are let in however many
// arrive at once; the others are refused while those are in flight, and
// once they fail the client waits for its window.
func TestFailureLimiterReservesBeforeAttempt(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 5})
	key := clientKey("192.0.2.1")
	var held []*reservation
	for range 5000 {
		res, retry, busy := l.reserve(key, codeSignIn, t0)
		if res != nil {
			held = append(held, res)
		} else if busy || retry != 1 {
			t.Fatalf("refused with busy=%v retry=%d while attempts are in flight; want retry 1", busy, retry)
		}
	}
	if len(held) != 5 {
		t.Fatalf("%d of 5000 concurrent attempts let in; want 5", len(held))
	}
	for _, res := range held {
		l.settle(res, true, t0)
	}
	if res, retry, _ := l.reserve(key, codeSignIn, t0.Add(10*time.Second)); res != nil || retry != 50 {
		t.Fatalf("after 5 failures: let in=%v retry=%d; want refused for 50 s", res != nil, retry)
	}
}

// An attempt that does not fail gives its unit back: a whole office may
// sign in from one address, at once and again and again, and leaves
// nothing behind in the limiter.
func TestFailureLimiterReleasesSuccesses(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 2})
	key := clientKey("192.0.2.1")
	for range 100 {
		a, _, _ := l.reserve(key, codeSignIn, t0)
		b, _, _ := l.reserve(key, codeSignIn, t0)
		if a == nil || b == nil {
			t.Fatal("a sign-in refused although nothing failed")
		}
		l.settle(a, false, t0)
		l.settle(b, false, t0)
	}
	if !fail(l, key, t0) {
		t.Fatal("refused after successes only")
	}
	if n := len(l.clients); n != 1 {
		t.Fatalf("limiter tracks %d clients; want only the one that failed", n)
	}
}

// Each client's window starts at its own first failure, so Retry-After is
// right for each, and one client's window ending frees only that client.
func TestFailureLimiterWindowPerClient(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 2, Window: caddy.Duration(time.Minute)})
	a, b := clientKey("192.0.2.1"), clientKey("192.0.2.2")
	fail(l, a, t0)
	fail(l, a, t0.Add(5*time.Second))
	fail(l, b, t0.Add(30*time.Second))
	fail(l, b, t0.Add(30*time.Second))
	at := t0.Add(40 * time.Second)
	if _, retry, _ := l.reserve(a, codeSignIn, at); retry != 20 {
		t.Errorf("a: retry %d; want 20", retry)
	}
	if _, retry, _ := l.reserve(b, codeSignIn, at); retry != 50 {
		t.Errorf("b: retry %d; want 50", retry)
	}
	at = t0.Add(time.Minute)
	if !fail(l, a, at) {
		t.Error("a still refused after its window")
	}
	if _, retry, _ := l.reserve(b, codeSignIn, at); retry != 30 {
		t.Errorf("b: retry %d after a's window; want 30", retry)
	}
	if !fail(l, b, t0.Add(90*time.Second)) {
		t.Error("b still refused after its window")
	}
}

// A flood of failures from more addresses than the limiter tracks makes it
// forget the oldest counts, never refuse a newcomer: a genuine sign-in from
// a new address (IPv6 or IPv4) is let in, and memory stays bounded.
func TestFailureLimiterFloodCannotLockOutNewcomers(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 1})
	for i := range 65_600 {
		key := clientKey(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff))
		if !fail(l, key, t0) {
			t.Fatalf("flood address %d refused on its first failure", i)
		}
	}
	if n := len(l.clients); n > maxTrackedClients {
		t.Fatalf("limiter tracks %d clients; bound is %d", n, maxTrackedClients)
	}
	for _, ip := range []string{"2001:db8:ffff::1", "198.51.100.1"} {
		res, retry, busy := l.reserve(clientKey(ip), codeSignIn, t0)
		if res == nil {
			t.Fatalf("new address %s refused (retry %d, busy %v) after a flood from others", ip, retry, busy)
		}
		l.settle(res, false, t0)
	}
	// The flood's latest addresses are still limited.
	if fail(l, clientKey("2001:db8:1:3f::1"), t0) {
		t.Error("the flood's last address was let in again")
	}
}

// The count forgotten first is the one touched least recently: a client
// that keeps trying, even while refused, stays limited through a flood.
func TestFailureLimiterKeepsPersistentClient(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 1})
	guesser := clientKey("192.0.2.66")
	fail(l, guesser, t0)
	flood := func(from, n int) {
		for i := from; i < from+n; i++ {
			fail(l, clientKey(fmt.Sprintf("2001:db8:%x:%x::1", i>>16, i&0xffff)), t0)
		}
	}
	flood(0, maxTrackedClients/2)
	if fail(l, guesser, t0) {
		t.Fatal("the guesser was let in again")
	}
	flood(maxTrackedClients/2, maxTrackedClients-1)
	if fail(l, guesser, t0) {
		t.Fatal("the guesser was forgotten although it kept trying")
	}
}

// A client with an attempt in flight is never forgotten, so the attempt's
// failure still counts however many others fail meanwhile.
func TestFailureLimiterKeepsClientInFlight(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 1})
	key := clientKey("192.0.2.1")
	res, _, _ := l.reserve(key, codeSignIn, t0)
	for i := range maxTrackedClients + 100 {
		fail(l, clientKey(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)), t0)
	}
	l.settle(res, true, t0)
	if fail(l, key, t0) {
		t.Fatal("the failure of an attempt in flight during a flood was lost")
	}
}

// IPv4 addresses count alone (IPv4-mapped ones with them), IPv6 addresses
// by /64, and what does not parse under one key that no address shares.
func TestClientKey(t *testing.T) {
	same := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:ffff"},
		{"2001:db8:1:2::1", "2001:db8:1:2::1%eth0"},
		{"192.0.2.1", "::ffff:192.0.2.1"},
		{"", "not an address"},
	}
	for _, p := range same {
		if clientKey(p[0]) != clientKey(p[1]) {
			t.Errorf("%q and %q count apart: %v, %v", p[0], p[1], clientKey(p[0]), clientKey(p[1]))
		}
	}
	apart := [][2]string{
		{"2001:db8:1:2::1", "2001:db8:1:3::1"},
		{"192.0.2.1", "192.0.2.2"},
		{"", "0.0.0.0"},
		{"", "::"},
		{"0.0.0.0", "::"},
	}
	for _, p := range apart {
		if clientKey(p[0]) == clientKey(p[1]) {
			t.Errorf("%q and %q count together: %v", p[0], p[1], clientKey(p[0]))
		}
	}
}

// Past the bound on sign-ins in flight, a sign-in is refused as busy,
// retry in 1 s, and nothing is counted against its client. Code and
// review sign-ins have bounds of their own.
func TestFailureLimiterBoundsSignInsInFlight(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 1})
	var held []*reservation
	for i := range l.maxInFlight[codeSignIn] {
		res, _, _ := l.reserve(clientKey(fmt.Sprintf("10.0.%d.%d", i>>8, i&255)), codeSignIn, t0)
		if res == nil {
			t.Fatalf("sign-in %d refused below the bound", i)
		}
		held = append(held, res)
	}
	late := clientKey("192.0.2.1")
	for range 3 {
		if res, retry, busy := l.reserve(late, codeSignIn, t0); res != nil || !busy || retry != 1 {
			t.Fatalf("over the bound: let in=%v busy=%v retry=%d; want busy, retry 1", res != nil, busy, retry)
		}
	}
	if _, ok := l.clients[late]; ok {
		t.Error("a busy refusal was recorded against its client")
	}
	res, _, _ := l.reserve(late, reviewSignIn, t0)
	if res == nil {
		t.Fatal("a review sign-in refused because code sign-ins are busy")
	}
	l.settle(res, false, t0)
	l.settle(held[0], false, t0)
	if !fail(l, late, t0) {
		t.Fatal("refused once a slot was free")
	}

	for i := range l.maxInFlight[reviewSignIn] {
		if res, _, _ := l.reserve(clientKey(fmt.Sprintf("10.1.%d.%d", i>>8, i&255)), reviewSignIn, t0); res == nil {
			t.Fatalf("review sign-in %d refused below the bound", i)
		}
	}
	if _, _, busy := l.reserve(clientKey("192.0.2.2"), reviewSignIn, t0); !busy {
		t.Fatal("review sign-ins past their bound are not refused")
	}
}
