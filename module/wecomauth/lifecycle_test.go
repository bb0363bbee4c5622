package wecomauth_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// A user changed in WeCom is refused on the first request after `recheck`,
// and until then passes on what WeCom said before.
func TestRecheckRefusesChangedUsers(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "recheck 1m"})
	cases := []struct {
		corp, user string
		change     map[string]any
		want       string
	}{
		{"acme", "zhangsan", map[string]any{"status": 2}, "user_inactive"},
		{"acme", "zhangsan", map[string]any{"status": 5}, "user_inactive"},
		{"acme", "zhangsan", map[string]any{"hidden": true}, "user_not_allowed"},
		{"partner", "zhaoliu", map[string]any{"department": []int{8}}, "user_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprint(tc.user, tc.change), func(t *testing.T) {
			restore := map[string]any{"status": 1, "hidden": false}
			if tc.user == "zhaoliu" {
				restore = map[string]any{"department": []int{7}}
			}
			e.setUser(tc.corp, tc.user, restore)
			tok := login(t, e, tc.corp, tc.user)
			auth := "Authorization: Bearer " + tok

			e.setUser(tc.corp, tc.user, tc.change)
			if r := e.do(http.MethodGet, "/api/x", "", auth); r.status != 200 {
				t.Fatalf("refused within recheck: %d %s", r.status, r.raw)
			}
			e.clock.Advance(time.Minute + time.Second)
			expectError(t, e.do(http.MethodGet, "/api/x", "", auth), http.StatusForbidden, tc.want)
			e.backend.last(t) // the one request that passed
		})
	}
	e.setUser("acme", "zhangsan", map[string]any{"status": 1, "hidden": false})
}

// However many of a user's requests arrive at once, a recheck is one
// user/get.
func TestRecheckIsOneCallPerUser(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "recheck 1m"})
	tok := login(t, e, "acme", "zhangsan")
	e.clock.Advance(time.Minute + time.Second)
	// Slow user/get so that every request arrives while it is in flight.
	e.simJSON(http.MethodPost, "/sim/faults", map[string]any{"endpoint": "user/get", "delay": "300ms", "count": 1}, nil)
	before := e.counts()["user/get"]

	var wg sync.WaitGroup
	statuses := make(chan int, 50)
	for range 50 {
		wg.Go(func() {
			statuses <- e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok).status
		})
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Fatalf("a concurrent request got %d", s)
		}
	}
	if n := e.counts()["user/get"] - before; n != 1 {
		t.Errorf("50 concurrent requests after recheck made %d user/get calls, want 1", n)
	}
}

// While WeCom is down, users checked within stale_grace pass; older
// checks get 503. Logins need WeCom and get 503 at once.
func TestStaleGrace(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "recheck 1m\n\t\tstale_grace 3m"})
	tok := login(t, e, "acme", "zhangsan")
	auth := "Authorization: Bearer " + tok
	e.simJSON(http.MethodPost, "/sim/faults", map[string]any{"status": 502}, nil)
	defer e.simJSON(http.MethodDelete, "/sim/faults", nil, nil)

	e.clock.Advance(time.Minute + time.Second) // past recheck, within grace
	if r := e.do(http.MethodGet, "/api/x", "", auth); r.status != 200 {
		t.Fatalf("refused within stale_grace: %d %s", r.status, r.raw)
	}
	r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
	expectError(t, r, http.StatusServiceUnavailable, "wecom_unavailable")

	e.clock.Advance(2 * time.Minute) // past grace
	r = e.do(http.MethodGet, "/api/x", "", auth)
	expectError(t, r, http.StatusServiceUnavailable, "wecom_unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}
