package wecomauth

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// From a review: a claim made with a time behind the calls (a heartbeat
// that took its time at the poll's start, then waited 2 s on storage)
// still counts the calls made since, so the record written over a lowered
// claim does not hand out room already spent. (The cluster now also asks
// with the time of each step.)
func TestClaimWithAnOldTimeCountsTheCallsSince(t *testing.T) {
	limits := []QuotaLimit{{Calls: 1000, Window: caddy.Duration(time.Minute)}}
	w := newBudgetWorld(t, limits, 1)
	a := w.start()
	w.beat(a) // lone: 950
	b := w.start()
	w.beat(b) // reserve: 50
	for range 50 {
		w.spend(b)
	}
	// a's poll starts at t0; its claims go out, then storage takes 2 s to
	// list and load the peers, while a's users sign in (a still holds 950).
	t0 := w.now
	w.write(a)
	w.now, w.mono = w.now.Add(2*time.Second), w.mono.Add(2*time.Second)
	for range 950 {
		if !w.spend(a) {
			t.Fatal("a refused within its grant")
		}
	}
	// The heartbeat reads and rewrites with the poll's now (t0), as
	// cluster.heartbeat does.
	a.writing = false
	a.b.Read(t0, w.peers(a), w.hold())
	granted := a.b.Granted(t0)
	for k, c := range granted {
		t.Logf("a's rewritten claim %s: used %d share %d (a made %d calls)", k, c.Used, c.Share, 950)
	}
	w.records[a] = budgetRecord{written: w.records[a].written, claims: granted}
	// b beats on; a's next poll is 5 s away.
	w.now, w.mono = w.now.Add(time.Second), w.mono.Add(time.Second)
	w.beat(b)
	for w.spend(b) {
	}
	n := 0
	for _, c := range w.calls {
		if w.now.Sub(c) < time.Minute {
			n++
		}
	}
	if n > 1000 {
		t.Errorf("WeCom counted %d calls in the last minute, quota 1000", n)
	}
}

// From a review: two handlers of one API base and corp with different
// `quota` (two sites, or the old and new config during a reload) share one
// budget; a spend by either must not drop a window from the claims while
// its calls still count (the newest config's limits apply, and a window
// no longer configured is claimed at what it spent until it empties).
func TestOtherHandlersQuotaKeepsEveryWindowClaimed(t *testing.T) {
	both := DefaultQuota
	minuteOnly := []QuotaLimit{{Calls: 10000, Window: caddy.Duration(time.Minute)}}
	b := newBudgets("http://wecom")
	now := time.Unix(1_800_000_000, 0)
	b.api(budgetKey, both)
	b.Read(now, nil, time.Minute)
	b.Claims(now)
	b.Read(now, nil, time.Minute)
	b.mu.Lock()
	b.api(budgetKey, minuteOnly) // the other handler's spend
	b.mu.Unlock()
	claims := b.Claims(now)
	if len(claims) != 2 {
		t.Errorf("claims %v: the hour window's claim is gone while its calls still count", claims)
	}
}

// A reload that drops a window keeps claiming it at what it spent until
// its calls have left it, then forgets it.
func TestDroppedWindowIsClaimedUntilItEmpties(t *testing.T) {
	b := newBudgets("http://wecom")
	now := time.Unix(1_800_000_000, 0)
	a := b.api(budgetKey, DefaultQuota)
	a.windows[time.Hour].add(now)
	a.setLimits([]QuotaLimit{{Calls: 10000, Window: caddy.Duration(time.Minute)}})
	hour := claimName(a, time.Hour)
	if c := b.Claims(now)[hour]; c.Used != 1 || c.Share != 1 {
		t.Fatalf("the dropped hour window claims %+v, want what it spent (1)", c)
	}
	if _, ok := b.Claims(now.Add(time.Hour + 2*time.Minute))[hour]; ok {
		t.Fatal("the dropped hour window is still claimed after its calls left it")
	}
}
