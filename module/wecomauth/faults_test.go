package wecomauth_test

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// unboundPort is a port that was free a moment ago: bound and closed at
// once. It is only for ports that cannot be testcaddy sockets: one where
// nothing must listen (nothing in this binary binds it later; were another
// process to, the test would fail, not pass wrongly), and nginx's, which
// nginx binds itself (startNginx retries "address in use").
func unboundPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WeCom failing in each way it can: logins answer 503 with Retry-After,
// sessions already issued keep working.
func TestWeComFaultsGiveRetryableLogins(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	faults := []struct {
		name       string
		fault      map[string]any
		retryAfter string
	}{
		{"HTTP 500", map[string]any{"status": 500}, "5"},
		{"HTTP 502", map[string]any{"status": 502}, "5"},
		{"garbage body", map[string]any{"garbage": true}, "5"},
		{"system busy (-1)", map[string]any{"errcode": -1}, "5"},
		{"too many concurrent calls (45033)", map[string]any{"errcode": 45033}, "5"},
		// Last: it pauses jscode2session for a minute (SPEC §6b).
		{"frequency limit (45009)", map[string]any{"errcode": 45009}, "60"},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			f.fault["endpoint"] = "jscode2session"
			e.simJSON(http.MethodPost, "/sim/faults", f.fault, nil)
			defer e.simJSON(http.MethodDelete, "/sim/faults", nil, nil)
			r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
			expectError(t, r, http.StatusServiceUnavailable, "wecom_unavailable")
			if got := r.header.Get("Retry-After"); got != f.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, f.retryAfter)
			}
			if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != 200 {
				t.Errorf("session refused during the fault: %d %s", r.status, r.raw)
			}
			e.backend.last(t)
		})
	}
}

// A WeCom that refuses connections is an outage too, never a 500.
func TestWeComUnreachable(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	e.reload(fmt.Sprintf("api_base http://127.0.0.1:%d", unboundPort(t))) // nothing listens there
	r := e.do(http.MethodPost, "/wecom/login", `{"code":"abc"}`)
	expectError(t, r, http.StatusServiceUnavailable, "wecom_unavailable")
	expectError(t, e.do(http.MethodGet, "/api/x", "", "X-WeCom-Code: abc"), http.StatusServiceUnavailable, "wecom_unavailable")
}

// 1,000 concurrent cold logins across two corps: one gettoken per corp,
// no failures; then every access token expires mid-traffic and is
// refreshed without a failed request.
func TestConcurrentColdLoginsAndTokenExpiry(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	const n = 1000
	type attempt struct{ corp, code string }
	attempts := make([]attempt, n)
	for i := range attempts {
		corp, user := "acme", "zhangsan"
		if i%2 == 1 {
			corp, user = "partner", "zhaoliu"
		}
		attempts[i] = attempt{corp, e.code(corp, user)}
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	login := func(a attempt) (int, string) {
		resp, err := client.Post(e.gw+"/wecom/login", "application/json",
			strings.NewReader(fmt.Sprintf(`{"code":%q,"corp":%q}`, a.code, a.corp)))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		var body struct{ Error, Token string }
		decodeJSON(t, resp, &body)
		return resp.StatusCode, body.Error
	}
	run := func(batch []attempt) {
		t.Helper()
		var wg sync.WaitGroup
		var mu sync.Mutex
		failures := map[string]int{}
		for _, a := range batch {
			wg.Go(func() {
				if status, msg := login(a); status != 200 {
					mu.Lock()
					failures[fmt.Sprint(status, " ", msg)]++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(failures) > 0 {
			t.Fatalf("failed logins: %v", failures)
		}
	}

	run(attempts[:n/2])
	if c := e.counts(); c["gettoken"] != 2 {
		t.Fatalf("%d concurrent cold logins across two corps made %d gettoken calls, want 2", n/2, c["gettoken"])
	}

	// Tokens expire while the other half signs in.
	var wg sync.WaitGroup
	wg.Go(func() { run(attempts[n/2:]) })
	e.simJSON(http.MethodPost, "/sim/tokens/expire", map[string]any{"errcode": 42001}, nil)
	wg.Wait()
	// One more login per corp, so that each has met its expired token
	// however the timing fell: exactly one refresh per corp in all.
	run([]attempt{{"acme", e.code("acme", "zhangsan")}, {"partner", e.code("partner", "zhaoliu")}})
	if c := e.counts(); c["gettoken"] != 4 {
		t.Errorf("after tokens expired mid-traffic: %v, want 4 gettoken calls (one refresh per corp)", c)
	}
}
