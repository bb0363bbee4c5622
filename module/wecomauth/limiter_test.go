package wecomauth

import (
	"context"
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
	res, w, _ := l.reserve(key, now)
	if w != nil {
		panic("fail: the attempt would wait")
	}
	if res == nil {
		return false
	}
	l.settle(res, true, now)
	return true
}

// turnOf is the turn a waiter has been served, or false if none yet.
func turnOf(w *waiter) (turn, bool) {
	select {
	case t := <-w.turn:
		return t, true
	default:
		return turn{}, false
	}
}

// With limit 5, at most 5 attempts of one client are let in however many
// arrive at once; the others wait, and once the 5 fail they are all
// refused until the client's window ends.
func TestFailureLimiterReservesBeforeAttempt(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 5})
	key := clientKey("192.0.2.1")
	var held []*reservation
	var waiting []*waiter
	for range 5000 {
		res, w, retry := l.reserve(key, t0)
		switch {
		case res != nil:
			held = append(held, res)
		case w != nil:
			waiting = append(waiting, w)
		default:
			t.Fatalf("refused (retry %d) before anything failed", retry)
		}
	}
	if len(held) != 5 {
		t.Fatalf("%d of 5000 concurrent attempts let in; want 5", len(held))
	}
	for _, res := range held {
		l.settle(res, true, t0)
	}
	for i, w := range waiting {
		if turn, ok := turnOf(w); !ok || turn.res != nil || turn.retryAfter != 60 {
			t.Fatalf("waiter %d after 5 failures: served %v, let in %v, retry %d; want refused for 60 s",
				i, ok, turn.res != nil, turn.retryAfter)
		}
	}
	if res, w, retry := l.reserve(key, t0.Add(10*time.Second)); res != nil || w != nil || retry != 50 {
		t.Fatalf("after 5 failures: let in=%v wait=%v retry=%d; want refused for 50 s", res != nil, w != nil, retry)
	}
}

// An attempt that does not fail gives its unit back, to the first waiter
// if any: an office signing in many people at once from one address is
// let through login_rate at a time, in order, and none is refused; and
// it leaves nothing behind in the limiter.
func TestFailureLimiterQueuesBurstOfSuccesses(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 2})
	key := clientKey("192.0.2.1")
	var running []*reservation
	var waiting []*waiter
	for range 10 {
		res, w, _ := l.reserve(key, t0)
		if res != nil {
			running = append(running, res)
		} else {
			waiting = append(waiting, w)
		}
	}
	if len(running) != 2 || len(waiting) != 8 {
		t.Fatalf("%d running, %d waiting; want 2 and 8", len(running), len(waiting))
	}
	for len(running) > 0 {
		l.settle(running[0], false, t0)
		running = running[1:]
		if len(waiting) == 0 {
			continue
		}
		turn, ok := turnOf(waiting[0])
		if !ok || turn.res == nil {
			t.Fatalf("the first waiter was not let in when a unit came back (served %v)", ok)
		}
		if _, ok := turnOf(waiting[1%len(waiting)]); ok && len(waiting) > 1 {
			t.Fatal("a unit served two waiters")
		}
		running = append(running, turn.res)
		waiting = waiting[1:]
	}
	if n := len(l.clients); n != 0 {
		t.Fatalf("limiter tracks %d clients after successes only", n)
	}
}

// A waiter that gives up leaves the queue; if it was served meanwhile, its
// unit goes on to the next waiter.
func TestFailureLimiterCancelPassesTurnOn(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 1})
	key := clientKey("192.0.2.1")
	res, _, _ := l.reserve(key, t0)
	_, w1, _ := l.reserve(key, t0)
	_, w2, _ := l.reserve(key, t0)
	_, w3, _ := l.reserve(key, t0)
	l.cancel(w1, t0) // still queued
	l.settle(res, false, t0)
	if w2.elem != nil {
		t.Fatal("the waiter after a cancelled one was not served")
	}
	l.cancel(w2, t0) // served, but it gave up at the same moment
	if turn, ok := turnOf(w3); !ok || turn.res == nil {
		t.Fatal("a cancelled waiter's unit did not go on to the next waiter")
	} else {
		l.settle(turn.res, false, t0)
	}
	if n := len(l.clients); n != 0 {
		t.Fatalf("limiter tracks %d clients after all gave up or succeeded", n)
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
	if _, _, retry := l.reserve(a, at); retry != 20 {
		t.Errorf("a: retry %d; want 20", retry)
	}
	if _, _, retry := l.reserve(b, at); retry != 50 {
		t.Errorf("b: retry %d; want 50", retry)
	}
	at = t0.Add(time.Minute)
	if !fail(l, a, at) {
		t.Error("a still refused after its window")
	}
	if _, _, retry := l.reserve(b, at); retry != 30 {
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
		res, w, retry := l.reserve(clientKey(ip), t0)
		if res == nil {
			t.Fatalf("new address %s not let in (wait %v, retry %d) after a flood from others", ip, w != nil, retry)
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
	res, _, _ := l.reserve(key, t0)
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

// Past the bound on sign-ins in flight, a sign-in gets no slot (here
// without waiting for one). Code and review sign-ins have bounds of their
// own, and a slot comes free when its attempt settles.
func TestFailureLimiterBoundsSignInsInFlight(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 1})
	l.slotWait = 0
	ctx := context.Background()
	reserve := func(ip string, kind signInKind) (*reservation, bool) {
		res, _, _ := l.reserve(clientKey(ip), t0)
		return res, l.takeSlot(ctx, res, kind)
	}
	var held []*reservation
	for i := range cap(l.slots[codeSignIn]) {
		res, ok := reserve(fmt.Sprintf("10.0.%d.%d", i>>8, i&255), codeSignIn)
		if !ok {
			t.Fatalf("sign-in %d got no slot below the bound", i)
		}
		held = append(held, res)
	}
	late, ok := reserve("192.0.2.1", codeSignIn)
	if ok {
		t.Fatal("a code sign-in past the bound got a slot")
	}
	l.settle(late, false, t0)
	review, ok := reserve("192.0.2.2", reviewSignIn)
	if !ok {
		t.Fatal("a review sign-in got no slot because code sign-ins are busy")
	}
	l.settle(review, false, t0)
	l.settle(held[0], false, t0)
	if _, ok := reserve("192.0.2.1", codeSignIn); !ok {
		t.Fatal("no slot once one came free")
	}

	for i := range cap(l.slots[reviewSignIn]) {
		if _, ok := reserve(fmt.Sprintf("10.1.%d.%d", i>>8, i&255), reviewSignIn); !ok {
			t.Fatalf("review sign-in %d got no slot below the bound", i)
		}
	}
	if _, ok := reserve("192.0.2.3", reviewSignIn); ok {
		t.Fatal("a review sign-in past its bound got a slot")
	}
}
