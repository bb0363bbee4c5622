package wecomauth_test

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
)

// Three instances (this Caddy and two processes) on one file_system
// storage, with recheck 10s and user/get slowed to 200 ms: requests round
// robin across them for three recheck periods. Between them they ask
// user/get about once per recheck (not once per instance), no request
// waits on WeCom, and after a 45009 no instance calls that API. Real
// time: the other processes' clocks cannot be moved, so recheck is short.
func TestClusterSharesRechecksAndPauses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy processes")
	}
	storage := t.TempDir()
	global := "storage file_system " + storage
	// A refresh ahead starts at 0.9 to 0.95 of recheck: the rest (0.5 s at
	// least) must hold a user/get (200 ms) with room for a loaded CI
	// machine.
	const recheck = 10 * time.Second
	extra := "recheck 10s"
	e := startGateway(t, gatewayOptions{global: global, extra: extra})
	var (
		urls = []string{e.gw}
		wg   sync.WaitGroup
	)
	for _, addr := range testcaddy.Listen(t, 2) {
		urls = append(urls, addr.URL())
		wg.Go(func() { e.startPeer(t, addr, global, extra) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitForShares(t, e, urls...)
	tok := login(t, e, "acme", "zhangsan")
	e.simJSON(http.MethodPut, "/sim/limits", map[string]any{
		"latency": []map[string]any{{"endpoint": "user/get", "delay": "200ms"}},
	}, nil)
	before := e.counts()["user/get"]

	const periods = 3
	var slowest time.Duration
	deadline := time.Now().Add(periods * recheck)
	for i := 0; time.Now().Before(deadline); i++ {
		start := time.Now()
		r := e.at(urls[i%len(urls)], e.sim).do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok)
		if r.status != 200 {
			t.Fatalf("request %d: %d %s", i, r.status, r.raw)
		}
		slowest = max(slowest, time.Since(start))
		time.Sleep(30 * time.Millisecond)
	}
	e.backend.took()
	gets := e.counts()["user/get"] - before
	t.Logf("%d user/get in %d recheck periods across 3 instances; slowest request %v", gets, periods, slowest)
	// Once per period, and a race may add one; unshared it would be 3
	// per period.
	if gets > periods+2 {
		t.Errorf("%d user/get in %d periods: the instances did not share their rechecks", gets, periods)
	}
	if slowest >= 190*time.Millisecond {
		t.Errorf("a request took %v: it waited on user/get (200 ms)", slowest)
	}

	// A 45009 on one instance pauses jscode2session on all of them.
	e.simJSON(http.MethodPut, "/sim/limits", map[string]any{}, nil)
	e.simJSON(http.MethodPost, "/sim/faults", map[string]any{"endpoint": "jscode2session", "errcode": 45009, "count": 1}, nil)
	expectError(t, e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan"))),
		http.StatusServiceUnavailable, "wecom_unavailable")
	exchanges := e.counts()["jscode2session"]
	for _, url := range urls[1:] {
		r := e.at(url, e.sim).do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
		expectError(t, r, http.StatusServiceUnavailable, "wecom_unavailable")
		if s, _ := strconv.Atoi(r.header.Get("Retry-After")); s < 40 || s > 60 {
			t.Errorf("%s: Retry-After %q, want the seconds left of the pause", url, r.header.Get("Retry-After"))
		}
		if r := e.at(url, e.sim).do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != 200 {
			t.Errorf("%s: a session during the pause: %d %s", url, r.status, r.raw)
		}
	}
	if n := e.counts()["jscode2session"]; n != exchanges {
		t.Errorf("jscode2session called %d times during the pause", n-exchanges)
	}
}

// The budget holds while an instance joins: two instances spend all the
// quota lets them on logins, a third starts and joins the spending, and
// WeCom (the simulator, limited to the gateways' quota) never answers
// 45009. The first release divided the quota by the live instances: the
// newcomer spent its share of a window the others had already spent.
func TestClusterBudgetHoldsWhileAnInstanceJoins(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy processes")
	}
	storage := t.TempDir()
	global := "storage file_system " + storage
	const quota = 40
	extra := fmt.Sprintf("quota %d 1m", quota)
	e := startGateway(t, gatewayOptions{global: global, extra: extra})
	e.simJSON(http.MethodPut, "/sim/limits", map[string]any{"limits": []map[string]any{
		{"endpoint": "jscode2session", "calls": quota, "window": "1m", "block": "1m"},
		{"endpoint": "user/get", "calls": quota, "window": "1m", "block": "1m"},
	}}, nil)
	addrs := testcaddy.Listen(t, 2)
	e.startPeer(t, addrs[0], global, extra)
	urls := []string{e.gw, addrs[0].URL()}

	ok := 0
	burst := func(d time.Duration) {
		for deadline := time.Now().Add(d); time.Now().Before(deadline); {
			var wg sync.WaitGroup
			var mu sync.Mutex
			for _, url := range urls {
				wg.Go(func() {
					r := e.at(url, e.sim).do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
					switch {
					case r.status == 200:
						mu.Lock()
						ok++
						mu.Unlock()
					case r.status != http.StatusServiceUnavailable:
						t.Errorf("%s: login %d %s, want 200 or 503 for a spent budget", url, r.status, r.raw)
					}
				})
			}
			wg.Wait()
			time.Sleep(20 * time.Millisecond)
		}
	}
	burst(3 * time.Second)
	e.startPeer(t, addrs[1], global, extra) // joins a window the first two have spent
	urls = append(urls, addrs[1].URL())
	burst(12 * time.Second) // more than two heartbeats of the newcomer

	var lim struct{ Limited map[string]int }
	e.simJSON(http.MethodGet, "/sim/limits", nil, &lim)
	t.Logf("%d logins in the window, of a quota of %d; 45009s: %v", ok, quota, lim.Limited)
	if lim.Limited["jscode2session"] != 0 || lim.Limited["user/get"] != 0 {
		t.Errorf("WeCom answered 45009 %v: the instances together went past the quota", lim.Limited)
	}
	if ok < quota/2 {
		t.Errorf("%d logins, want at least half the quota of %d: the shares starve", ok, quota)
	}
}
