package wecomauth_test

// Unit-level regression tests of the outside security review (issue 12),
// on the direct-handler fixture with a clock the test moves.

import (
	"net/http"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/wecomauth"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

// Item 10: while WeCom hangs, a due user's first request waits for the
// call budget once; the pause after that failure counts from when the
// attempt ended, so the next request is served at once on stale facts
// instead of waiting again.
func TestHangingWeComPausesRechecksFromTheAttemptsEnd(t *testing.T) {
	g := newUnitGW(t)
	// A pause shorter than the budget: measured from the request's start,
	// as before, it would be over by the time the attempt ends.
	wecomauth.SetWeComTimings(g.h, 300*time.Millisecond, 200*time.Millisecond)
	tok := login(t, g, "acme", "zhangsan")
	// Past recheck (default 10m), within stale_grace (default 1h).
	g.clock.Advance(11 * time.Minute)
	g.sim.InjectFault(wecomsim.Fault{Endpoint: "user/get", Delay: 5 * time.Second})

	start := time.Now()
	if rec, next := g.get(t, "/api/x", tok); rec.Code != http.StatusOK || !next.called {
		t.Fatalf("first request while WeCom hangs: %d %s", rec.Code, rec.Body)
	}
	if took := time.Since(start); took < 250*time.Millisecond {
		t.Fatalf("the first request did not wait for WeCom (%v)", took)
	}
	calls := g.sim.Counts()["user/get"]
	start = time.Now()
	if rec, _ := g.get(t, "/api/x", tok); rec.Code != http.StatusOK {
		t.Fatalf("second request: %d %s", rec.Code, rec.Body)
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("the second request waited %v on a WeCom that just failed", took)
	}
	if n := g.sim.Counts()["user/get"]; n != calls {
		t.Errorf("user/get asked again during the pause: %d → %d", calls, n)
	}
	// After the pause WeCom is asked again.
	g.clock.Advance(200 * time.Millisecond)
	g.get(t, "/api/x", tok)
	if n := g.sim.Counts()["user/get"]; n <= calls {
		t.Errorf("user/get not asked after the pause: %d", n)
	}
}

// Item 12: a token from a replayed code carries the check of the first
// exchange, so a user disabled since is refused at recheck after that
// check, not after the replay.
func TestReplayedCodeKeepsItsCheckTime(t *testing.T) {
	g := newUnitGW(t)
	clock := g.clock
	code := g.mint(t, "acme", "zhangsan")
	login := func() string {
		t.Helper()
		r := g.send(t, http.MethodPost, "/wecom/login", `{"code":"`+code+`"}`)
		if r.status != http.StatusOK || r.str("token") == "" {
			t.Fatalf("login: %d %s", r.status, r.raw)
		}
		return r.str("token")
	}
	login()
	clock.Advance(50 * time.Second)
	replayed := login() // a retry: reuses the first check
	if err := g.sim.SetUser("acme", wecomsim.User{UserID: "zhangsan", Name: "张三", Departments: []int64{1, 2}, Status: wecomsim.StatusDisabled}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(9*time.Minute + 11*time.Second) // 10m1s after the check, 9m11s after the replay
	rec, next := g.get(t, "/api/x", replayed)
	if rec.Code != http.StatusForbidden || next.called {
		t.Errorf("disabled user with a replayed code's token, past recheck of the real check: %d %s", rec.Code, rec.Body)
	}
}

// A code is honoured again only within the replay window (a client retry),
// measured on the handler's clock.
func TestReplayWindowIsShort(t *testing.T) {
	g := newUnitGW(t)
	code := g.mint(t, "acme", "zhangsan")
	send := func() int {
		return g.send(t, http.MethodPost, "/wecom/login", `{"code":"`+code+`"}`).status
	}
	if c := send(); c != http.StatusOK {
		t.Fatalf("login: %d", c)
	}
	g.clock.Advance(30 * time.Second)
	if c := send(); c != http.StatusOK {
		t.Errorf("retry after 30 s: %d", c)
	}
	g.clock.Advance(31 * time.Second)
	if c := send(); c != http.StatusUnauthorized {
		t.Errorf("retry after 61 s: %d, want 401 invalid_code", c)
	}
}
