package wecomauth_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wecomgate/wecomgate/module/wecomauth"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

const scaleRecheck = 10 * time.Minute

func scaleGW(t *testing.T, quota ...wecomauth.QuotaLimit) *unitGW {
	t.Helper()
	return newUnitGW(t, func(h *wecomauth.Handler) {
		h.Recheck = caddy.Duration(scaleRecheck)
		h.Quota = quota
	})
}

func (g *unitGW) userGets() int { return g.sim.Counts()[wecomsim.EndpointUserGet] }

// A user seen in the last part of recheck is checked again in the
// background: the request that sees it does not wait for WeCom (here
// 400 ms slow), and after recheck has passed since the login the user is
// served on the background answer, again without waiting.
func TestRefreshAheadKeepsActiveUsersOffWeCom(t *testing.T) {
	g := scaleGW(t)
	tok := login(t, g, "acme", "zhangsan")
	if n := g.userGets(); n != 1 {
		t.Fatalf("login made %d user/get", n)
	}
	if err := g.sim.SetLatency(wecomsim.Latency{Endpoint: wecomsim.EndpointUserGet, Delay: 400 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	timed := func(what string) {
		t.Helper()
		start := time.Now()
		rec, next := g.get(t, "/api/x", tok)
		if rec.Code != 200 || !next.called {
			t.Fatalf("%s: %d %s", what, rec.Code, rec.Body)
		}
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Fatalf("%s waited %v: on WeCom's 400 ms", what, d)
		}
	}
	g.clock.Advance(scaleRecheck * 95 / 100)
	timed("request in the last part of recheck")
	wecomauth.WaitRefreshes(g.h)
	if n := g.userGets(); n != 2 {
		t.Fatalf("%d user/get after the refresh ahead, want 2", n)
	}
	g.clock.Advance(scaleRecheck / 10) // 1.05 recheck after the login
	timed("request after recheck since the login")
	if n := g.userGets(); n != 2 {
		t.Fatalf("%d user/get, want 2: the background answer serves", n)
	}
}

// A change in WeCom still refuses the user within recheck of the last
// check: the background refresh learns it, and the next request is
// refused.
func TestRefreshAheadStillRefusesAChangedUser(t *testing.T) {
	g := scaleGW(t)
	tok := login(t, g, "acme", "zhangsan")
	u := worldUser("acme", "zhangsan")
	u.Status = wecomsim.StatusDisabled
	if err := g.sim.SetUser("acme", u); err != nil {
		t.Fatal(err)
	}
	g.clock.Advance(scaleRecheck * 95 / 100)
	if rec, _ := g.get(t, "/api/x", tok); rec.Code != 200 {
		t.Fatalf("before the refresh: %d", rec.Code)
	}
	wecomauth.WaitRefreshes(g.h)
	rec, _ := g.get(t, "/api/x", tok)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "user_inactive") {
		t.Fatalf("after the refresh learnt the change: %d %s, want 403 user_inactive", rec.Code, rec.Body)
	}
}

// An instance whose own facts are older than recheck takes what another
// instance asked WeCom meanwhile from storage, instead of asking again.
// (The other instance is played by the same handler forgetting what it
// keeps in memory: it then knows only its token and storage.)
func TestRechecksSharedThroughStorage(t *testing.T) {
	g := scaleGW(t)
	tok := login(t, g, "acme", "zhangsan")
	g.clock.Advance(scaleRecheck * 95 / 100)
	g.get(t, "/api/x", tok) // refreshed ahead, and written to storage
	wecomauth.WaitRefreshes(g.h)
	wecomauth.ForgetLocalFacts(g.h)
	g.clock.Advance(scaleRecheck / 10)
	if rec, _ := g.get(t, "/api/x", tok); rec.Code != 200 {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	if n := g.userGets(); n != 2 {
		t.Fatalf("%d user/get, want 2: the shared answer was not used", n)
	}
	// Past recheck of the shared answer too, WeCom is asked.
	wecomauth.ForgetLocalFacts(g.h)
	g.clock.Advance(scaleRecheck)
	g.get(t, "/api/x", tok)
	if n := g.userGets(); n != 3 {
		t.Fatalf("%d user/get, want 3", n)
	}
}

// The budget is never exceeded, and logins come first: rechecks stop at
// nine tenths of the share and pass on their stale facts (within
// stale_grace); a login that finds no room answers 503 with Retry-After.
// Of a quota of 5, this lone instance's share is 4: one is kept for an
// instance that joins.
func TestBudgetLoginsFirstAndNeverExceeded(t *testing.T) {
	g := scaleGW(t, wecomauth.QuotaLimit{Calls: 5, Window: caddy.Duration(time.Hour)})
	tok := login(t, g, "acme", "zhangsan") // user/get 1
	login(t, g, "acme", "zhangsan")        // user/get 2: a login always asks
	g.clock.Advance(scaleRecheck + time.Second)
	if rec, _ := g.get(t, "/api/x", tok); rec.Code != 200 { // recheck: user/get 3, the recheck's last
		t.Fatalf("recheck: %d", rec.Code)
	}
	g.clock.Advance(scaleRecheck + time.Second)
	if rec, _ := g.get(t, "/api/x", tok); rec.Code != 200 { // deferred: passes on its facts within stale_grace
		t.Fatalf("deferred recheck: %d %s, want 200 on the stale facts", rec.Code, rec.Body)
	}
	if n := g.userGets(); n != 3 {
		t.Fatalf("%d user/get, want 3: the recheck past its part was made", n)
	}
	login(t, g, "acme", "zhangsan") // the room rechecks left: user/get 4
	r := g.send(t, http.MethodPost, "/wecom/login", `{"code":"`+g.mint(t, "acme", "zhangsan")+`"}`)
	expectError(t, r, http.StatusServiceUnavailable, "wecom_unavailable")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 3600 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	if n := g.userGets(); n != 4 {
		t.Fatalf("%d user/get, want 4: the share of 4 was exceeded", n)
	}
	if got := wecomauth.QuotaInUse(g.h)["acme"]["user/get"]; got != 4 {
		t.Fatalf("quota in use %v, want user/get 4", wecomauth.QuotaInUse(g.h))
	}
}

// After a 45009 nobody calls that API of the corp for 60 s: users pass
// within stale_grace, logins answer 503 with Retry-After the seconds left,
// and an instance that did not see the 45009 itself finds the pause in
// storage.
func TestPauseAfter45009(t *testing.T) {
	g := scaleGW(t)
	tok := login(t, g, "acme", "zhangsan")
	g.sim.InjectFault(wecomsim.Fault{Endpoint: wecomsim.EndpointUserGet, Errcode: 45009, Count: 1})
	g.clock.Advance(scaleRecheck + time.Second)
	if rec, _ := g.get(t, "/api/x", tok); rec.Code != 200 {
		t.Fatalf("recheck meeting 45009: %d %s, want 200 within stale_grace", rec.Code, rec.Body)
	}
	calls := g.userGets()
	g.clock.Advance(10 * time.Second)
	wecomauth.ForgetLocalFacts(g.h) // another instance: only storage tells it of the pause
	if rec, _ := g.get(t, "/api/x", tok); rec.Code != 200 {
		t.Fatalf("during the pause: %d %s", rec.Code, rec.Body)
	}
	r := g.send(t, http.MethodPost, "/wecom/login", `{"code":"`+g.mint(t, "acme", "zhangsan")+`"}`)
	expectError(t, r, http.StatusServiceUnavailable, "wecom_unavailable")
	if s, _ := strconv.Atoi(r.header.Get("Retry-After")); s < 45 || s > 50 {
		t.Fatalf("Retry-After %q, want the ~50 s left of the pause", r.header.Get("Retry-After"))
	}
	if n := g.userGets(); n != calls {
		t.Fatalf("user/get called %d times during the pause", n-calls)
	}
	g.clock.Advance(51 * time.Second)
	login(t, g, "acme", "zhangsan")
}

func TestQuotaCaddyfile(t *testing.T) {
	var h wecomauth.Handler
	d := caddyfile.NewTestDispenser("wecom_auth {\n corp a {\n corp_id wwa\n secret s\n }\n quota 100 10s 1000 1m\n}")
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if len(h.Quota) != 2 || h.Quota[1].Calls != 1000 || time.Duration(h.Quota[1].Window) != time.Minute {
		t.Fatalf("quota %+v", h.Quota)
	}
	for _, bad := range []string{"quota 0 1m", "quota 10 soon", "quota 10", "quota 1 1m 2 2m 3 3m"} {
		var h wecomauth.Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("wecom_auth {\n" + bad + "\n}"))
		if err == nil || !strings.Contains(err.Error(), "quota") {
			t.Errorf("%q: %v, want an error naming quota", bad, err)
		}
	}
	h = wecomauth.Handler{Corps: gatewayCorps(), Quota: []wecomauth.QuotaLimit{{Calls: -1, Window: caddy.Duration(time.Minute)}}}
	if err := h.Validate(); err == nil || !strings.Contains(err.Error(), "quota") {
		t.Errorf("JSON quota of -1 calls: %v", err)
	}
}

// The quota metrics say, per corp, API and window, what this instance
// spent and may spend.
func TestQuotaMetrics(t *testing.T) {
	g := scaleGW(t)
	login(t, g, "acme", "zhangsan")
	reg := prometheus.NewRegistry()
	reg.MustRegister(wecomauth.QuotaCollector())
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["corp"] == "acme" && labels["endpoint"] == "user/get" {
				got[f.GetName()+" "+labels["window"]] = m.GetGauge().GetValue()
			}
		}
	}
	want := map[string]float64{
		"wecom_quota_in_use 1m0s": 1, "wecom_quota_in_use 1h0m0s": 1,
		"wecom_quota_share 1m0s": 9500, "wecom_quota_share 1h0m0s": 142500,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}
