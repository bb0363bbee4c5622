package wecomauth_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// slowUserGet stands before the simulator as a WeCom whose user/get takes
// latency on a clock of its own, which moves only when the test sets it
// (the handler reads it too): a background refresh is in flight for that
// long, and a request that waits on user/get cannot be answered until the
// test moves the clock, which it does not do while serving one. A user/get
// made while a request is being served and still held after patience (real
// time) is one that request waits on: it is counted in waited and let
// through.
type slowUserGet struct {
	next     atomic.Pointer[http.Handler]
	latency  time.Duration
	patience time.Duration
	waited   atomic.Int64
	passing  atomic.Bool // while signing in: nothing is held
	open     atomic.Bool // the test is over: nothing is held

	mu      sync.Mutex
	now     time.Time
	moved   chan struct{}     // closed when the clock moves
	serving chan struct{}     // while a request is served; closed when it is answered
	dues    map[int]time.Time // the user/get held, by when they answer
	seq     int
}

func newSlowUserGet(start time.Time, latency time.Duration) *slowUserGet {
	return &slowUserGet{latency: latency, patience: 250 * time.Millisecond, now: start,
		moved: make(chan struct{}), dues: map[int]time.Time{}}
}

func (g *slowUserGet) Now() time.Time {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.now
}

func (g *slowUserGet) set(t time.Time) {
	g.mu.Lock()
	g.now = t
	close(g.moved)
	g.moved = make(chan struct{})
	g.mu.Unlock()
}

// held is how many user/get are held for a later time.
func (g *slowUserGet) held() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, due := range g.dues {
		if due.After(g.now) {
			n++
		}
	}
	return n
}

func (g *slowUserGet) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/"+wecomsim.EndpointUserGet) && !g.passing.Load() {
		g.hold(r)
	}
	(*g.next.Load()).ServeHTTP(w, r)
}

func (g *slowUserGet) hold(r *http.Request) {
	g.mu.Lock()
	id, due, done := g.seq, g.now.Add(g.latency), g.serving
	g.seq++
	g.dues[id] = due
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.dues, id)
		g.mu.Unlock()
	}()
	var patience <-chan time.Time
	if done != nil {
		t := time.NewTimer(g.patience)
		defer t.Stop()
		patience = t.C
	}
	for !g.open.Load() {
		g.mu.Lock()
		if !g.now.Before(due) {
			g.mu.Unlock()
			return
		}
		moved := g.moved
		g.mu.Unlock()
		select {
		case <-moved:
		case <-r.Context().Done(): // the caller gave up on it
			return
		case <-done: // answered without it: a background refresh
			done, patience = nil, nil
		case <-patience:
			g.waited.Add(1)
			return
		}
	}
}

// serve runs fn as one request and tells whether it waited on user/get.
func (g *slowUserGet) serve(fn func()) (waited bool) {
	before := g.waited.Load()
	done := make(chan struct{})
	g.mu.Lock()
	g.serving = done
	g.mu.Unlock()
	fn()
	g.mu.Lock()
	g.serving = nil
	g.mu.Unlock()
	close(done)
	return g.waited.Load() != before
}

// settle waits until every background refresh of h is either held by a
// user/get that answers at a later time or waiting for one of those to
// end, as it would be if no real time passed.
func (g *slowUserGet) settle(t *testing.T, h *wecomauth.Handler) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		running, waiting := wecomauth.BackgroundRefreshes(h)
		held := g.held()
		if running == held && (waiting == 0 || running == wecomauth.MaxRefreshing) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("background refreshes did not settle: %d running, %d waiting, %d user/get held", running, waiting, held)
		}
		time.Sleep(50 * time.Microsecond) // for the refreshes' goroutines, not for the clock
	}
}

// Every user stays off WeCom from the first recheck after signing in on,
// where bench/scale.sh found about one in six waiting (issue 15). As there,
// 100 users sign in within a second and a half, each then makes a request
// every second at its own phase, recheck is 10 s and user/get takes 300 ms:
// every user is seen in the last part of recheck before their first
// recheck, and no request, the first recheck's included, waits on user/get.
// (The users' refresh-ahead windows all come within a few seconds, more
// than maxRefreshing refreshes at once.)
func TestRefreshAheadCoversTheFirstRecheckAfterSignIn(t *testing.T) {
	const (
		users   = 100
		recheck = 10 * time.Second
		span    = 3 * recheck
	)
	wecom := newSlowUserGet(time.Date(2026, 12, 1, 23, 44, 0, 123_456_789, time.UTC), 300*time.Millisecond)
	front := httptest.NewServer(wecom)
	t.Cleanup(front.Close)
	t.Cleanup(func() { wecom.open.Store(true); wecom.set(wecom.Now()) }) // before the close
	g := newUnitGW(t, func(h *wecomauth.Handler) {
		h.Recheck = caddy.Duration(recheck)
		h.APIBase = front.URL
	})
	wecomauth.SetClock(g.h, wecom.Now)
	var sim http.Handler = g.sim
	wecom.next.Store(&sim)

	type event struct {
		at   time.Time
		user int
		k    int // -1: the sign-in; else the request's number
	}
	start := wecom.Now()
	signedIn := make([]time.Time, users)
	var events []event
	for i := range users {
		if err := g.sim.SetUser("acme", wecomsim.User{UserID: fmt.Sprintf("s%04d", i), Name: fmt.Sprintf("用户%d", i)}); err != nil {
			t.Fatal(err)
		}
		signedIn[i] = start.Add(time.Duration(i) * 13 * time.Millisecond)
		events = append(events, event{at: signedIn[i], user: i, k: -1})
	}
	run := signedIn[users-1].Add(50 * time.Millisecond)
	for i := range users {
		phase := time.Duration(i*7919%1000) * time.Millisecond
		for k := 0; time.Duration(k)*time.Second+phase < span; k++ {
			events = append(events, event{at: run.Add(phase + time.Duration(k)*time.Second), user: i, k: k})
		}
	}
	sort.SliceStable(events, func(a, b int) bool { return events[a].at.Before(events[b].at) })

	tokens := make([]string, users)
	var late []string
	for _, e := range events {
		wecom.set(e.at)
		wecom.settle(t, g.h)
		if e.k < 0 {
			wecom.passing.Store(true)
			tokens[e.user] = login(t, g, "acme", fmt.Sprintf("s%04d", e.user))
			wecom.passing.Store(false)
			continue
		}
		var rec *httptest.ResponseRecorder
		waited := wecom.serve(func() { rec, _ = g.get(t, "/api/x", tokens[e.user]) })
		if rec.Code != http.StatusOK {
			t.Fatalf("s%04d, request %v after signing in: %d %s", e.user, e.at.Sub(signedIn[e.user]), rec.Code, rec.Body)
		}
		if waited {
			late = append(late, fmt.Sprintf("s%04d at %v", e.user, e.at.Sub(signedIn[e.user]).Round(time.Millisecond)))
		}
	}
	wecom.open.Store(true)
	wecom.set(wecom.Now())
	wecomauth.WaitRefreshes(g.h)
	if len(late) > 0 {
		t.Errorf("%d requests of %d users waited on user/get: %s", len(late), users, strings.Join(late, ", "))
	}
	// One user/get per user at sign-in and one per recheck after (a
	// refresh ahead comes a little earlier than recheck).
	if n, most := g.userGets(), users*(1+int(span/recheck)+1); n > most {
		t.Errorf("%d user/get, want at most %d", n, most)
	}
}

// Logins are served first even when the window is full of rechecks: a
// login refused for the budget makes the calls that can be done without
// (background refreshes, rechecks of users who pass on stale facts) give
// way until it tries again, so the room that frees as calls leave the
// window goes to it. Of a quota of 21 this lone instance's share is 20;
// stale rechecks stop at 15.
func TestStaleRechecksYieldToRefusedLogins(t *testing.T) {
	g := newUnitGW(t, func(h *wecomauth.Handler) {
		h.Recheck = caddy.Duration(scaleRecheck)
		h.StaleGrace = caddy.Duration(3 * time.Hour)
		h.Quota = []wecomauth.QuotaLimit{{Calls: 21, Window: caddy.Duration(time.Hour)}}
	})
	var toks []string
	for i := range 10 {
		u := fmt.Sprintf("staff%d", i)
		if err := g.sim.SetUser("acme", wecomsim.User{UserID: u, Name: u, Departments: []int64{1}}); err != nil {
			t.Fatal(err)
		}
		toks = append(toks, login(t, g, "acme", u)) // user/get 1–10
	}
	g.clock.Advance(scaleRecheck + time.Second)
	for _, tok := range toks {
		if rec, _ := g.get(t, "/api/x", tok); rec.Code != 200 {
			t.Fatalf("recheck: %d %s", rec.Code, rec.Body)
		}
	}
	if n := g.userGets(); n != 15 {
		t.Fatalf("%d user/get, want 15: stale rechecks stop at three quarters of the share", n)
	}
	for range 5 {
		login(t, g, "acme", "staff0") // user/get 16–20
	}
	r := g.send(t, http.MethodPost, "/wecom/login", `{"code":"`+g.mint(t, "acme", "staff0")+`"}`)
	expectError(t, r, http.StatusServiceUnavailable, "wecom_unavailable")

	// When the login was told to try again, the sign-ins' calls have left
	// the window (10 in it now): a stale recheck coming first gives way
	// (and passes), and the login gets in.
	retry, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || retry < 60 {
		t.Fatalf("Retry-After %q, want the time until the first calls leave the window", r.header.Get("Retry-After"))
	}
	g.clock.Advance(time.Duration(retry)*time.Second + time.Second)
	if rec, _ := g.get(t, "/api/x", toks[9]); rec.Code != 200 {
		t.Fatalf("stale recheck while a login waits: %d %s, want 200 on stale facts", rec.Code, rec.Body)
	}
	if n := g.userGets(); n != 20 {
		t.Fatalf("%d user/get, want 20: a stale recheck spent while a refused login waited", n)
	}
	login(t, g, "acme", "staff1") // user/get 21
	// Past the wait, rechecks spend again.
	g.clock.Advance(7 * time.Minute)
	if rec, _ := g.get(t, "/api/x", toks[9]); rec.Code != 200 {
		t.Fatalf("recheck after the login: %d", rec.Code)
	}
	if n := g.userGets(); n != 22 {
		t.Fatalf("%d user/get, want 22: once the login is served, rechecks spend again", n)
	}
}
