package wecomauth_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
	"github.com/wecomgate/wecomgate/module/wecomauth"
)

// Metrics are on Caddy's metrics endpoint, named wecom_*.
func TestMetrics(t *testing.T) {
	admin := testcaddy.Listen(t, 1)[0]
	e := startGateway(t, gatewayOptions{global: "admin " + admin.CaddyAddr() + "\n\tmetrics"})
	scrape := func() map[string]float64 {
		resp, err := http.Get(admin.URL() + "/metrics")
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
	tok := login(t, e, "acme", "zhangsan")
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
	e.clock.Advance(wecomauth.DefaultRecheck + time.Second)
	expectError(t, e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok), http.StatusForbidden, "user_inactive")
	if d := scrape()[`wecom_rechecks_total{result="denied"}`] - before[`wecom_rechecks_total{result="denied"}`]; d != 1 {
		t.Errorf("denied rechecks rose by %v, want 1", d)
	}
}
