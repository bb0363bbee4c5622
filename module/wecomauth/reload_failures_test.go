package wecomauth_test

import (
	"fmt"
	"net/http"
	"testing"
)

// A gettoken failure is remembered so that a flood of logins costs one
// call, but a config reload forgets it (SPEC §6a): an operator who fixed
// the trusted IP in WeCom's console (60020) reloads and the next login
// asks WeCom again, while the access tokens already cached stay.
func TestReloadForgetsGettokenFailures(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	login(t, e, "acme", "zhangsan")
	e.simJSON(http.MethodPost, "/sim/faults", map[string]any{"endpoint": "gettoken", "errcode": 60020, "count": 1}, nil)
	try := func(corp, user string) reply {
		return e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q,"corp":%q}`, e.code(corp, user), corp))
	}
	for range 2 {
		expectError(t, try("partner", "zhaoliu"), http.StatusBadGateway, "wecom_error")
	}
	if n := e.counts()["gettoken"]; n != 2 {
		t.Fatalf("gettoken called %d times, want 2: the 60020 is remembered, not asked again", n)
	}

	e.reload("recheck 5m")
	if r := try("partner", "zhaoliu"); r.status != http.StatusOK {
		t.Fatalf("login after the reload: %d %s, want WeCom asked again", r.status, r.raw)
	}
	login(t, e, "acme", "zhangsan")
	if n := e.counts()["gettoken"]; n != 3 {
		t.Fatalf("gettoken called %d times, want 3: one retry for partner, acme's token kept", n)
	}
}
