package wecomauth_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
)

// The gateway behind Caddy's own forward_auth, as a deployment that keeps
// its proxy would use it (nginx auth_request works the same way).
func TestBehindCaddyForwardAuth(t *testing.T) {
	front := fmt.Sprintf("http://127.0.0.1:%d", testcaddy.Ports(t, 1)[0])
	e := startEnvSites(t, reviewBlock, "", "", func(e *env) string {
		return front + ` {
	route {
		# forward_auth deletes and copies only the headers it names: drop
		# every other client X-WeCom-* header first.
		request_header -X-WeCom-*
		forward_auth ` + strings.TrimPrefix(e.gw, "http://") + ` {
			uri /wecom/auth
			copy_headers X-WeCom-UserId X-WeCom-CorpId X-WeCom-Corp X-WeCom-Name X-WeCom-Department X-WeCom-Review
		}
		reverse_proxy ` + e.backend.addr + `
	}
}`
	})
	get := func(path string, hdrs ...string) reply {
		saved := e.gw
		e.gw = front
		defer func() { e.gw = saved }()
		return e.do(http.MethodGet, path, "", hdrs...)
	}

	tok := e.login("acme", "zhangsan")
	r := get("/api/x", "Authorization: Bearer "+tok, "X-WeCom-Review: 1", "X-WeCom-Extra: x")
	if r.status != 200 {
		t.Fatalf("through forward_auth: %d %s", r.status, r.raw)
	}
	got := e.backend.last(t)
	if got.Header.Get("X-WeCom-UserId") != "zhangsan" || got.Header.Get("X-WeCom-Corp") != "acme" ||
		got.Header.Get("X-WeCom-Department") != "1,2" {
		t.Errorf("identity through forward_auth: %v", got.Header)
	}
	if got.Header.Get("X-WeCom-Review") != "" || got.Header.Get("X-WeCom-Extra") != "" {
		t.Errorf("a client X-WeCom header passed forward_auth: %v", got.Header)
	}

	expectError(t, get("/api/x", "X-WeCom-UserId: boss"), http.StatusUnauthorized, "unauthenticated")
	e.backend.none(t)

	// Review sessions are judged on the original path (X-Forwarded-Uri).
	rv := e.do(http.MethodPost, "/wecom/review/login", `{"username":"reviewer","password":"review-demo"}`)
	auth := "Authorization: Bearer " + rv.str("token")
	if r := get("/api/public/a", auth); r.status != 200 {
		t.Fatalf("review session on an allowed path: %d %s", r.status, r.raw)
	}
	if got := e.backend.last(t); got.Header.Get("X-WeCom-Review") != "1" {
		t.Errorf("review header not copied: %v", got.Header)
	}
	expectError(t, get("/api/orders", auth), http.StatusForbidden, "review_forbidden")
	expectError(t, get("/api/public/../orders", auth), http.StatusForbidden, "review_forbidden")
	e.backend.none(t)
}

// Metrics are on Caddy's metrics endpoint, named wecom_*.
func TestMetrics(t *testing.T) {
	admin := fmt.Sprintf("127.0.0.1:%d", testcaddy.Ports(t, 1)[0])
	e := startEnvGlobal(t, "recheck 1s", "", "admin "+admin+"\n\tmetrics")
	scrape := func() map[string]float64 {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		m := map[string]float64{}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "wecom_") {
				continue
			}
			i := strings.LastIndexByte(line, ' ')
			v, _ := strconv.ParseFloat(line[i+1:], 64)
			m[line[:i]] = v
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return m
	}
	before := scrape()
	tok := e.login("acme", "zhangsan")
	e.do(http.MethodPost, "/wecom/login", `{"code":"nope"}`)
	e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "lisi")))
	after := scrape()

	delta := func(series string) float64 { return after[series] - before[series] }
	for series, want := range map[string]float64{
		`wecom_logins_total{corp="acme",result="ok"}`:                      1,
		`wecom_logins_total{corp="acme",result="invalid_code"}`:            1,
		`wecom_logins_total{corp="acme",result="user_inactive"}`:           1,
		`wecom_api_calls_total{endpoint="jscode2session",errcode="0"}`:     2,
		`wecom_api_calls_total{endpoint="jscode2session",errcode="40029"}`: 1,
		`wecom_api_calls_total{endpoint="user/get",errcode="0"}`:           2,
		`wecom_api_call_duration_seconds_count{endpoint="user/get"}`:       2,
	} {
		if d := delta(series); d != want {
			t.Errorf("%s rose by %v, want %v", series, d, want)
		}
	}
	if after[`wecom_token_refreshes_total{corpid="wwacme"}`] < 1 {
		t.Error("no token refresh counted")
	}

	e.simJSON(http.MethodPut, "/sim/users", map[string]any{"corp": "acme", "userid": "zhangsan", "status": 2}, nil)
	defer e.simJSON(http.MethodPut, "/sim/users", map[string]any{"corp": "acme", "userid": "zhangsan", "status": 1}, nil)
	testcaddy.WaitFor(t, 3e9, "a recheck", func() bool {
		return e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok).status == 403
	})
	if d := scrape()[`wecom_rechecks_total{result="denied"}`] - before[`wecom_rechecks_total{result="denied"}`]; d != 1 {
		t.Errorf("denied rechecks rose by %v, want 1", d)
	}
}
