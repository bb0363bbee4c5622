package wecomauth_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
)

// Failed sign-ins from one address are limited; the limit answers 429 with
// Retry-After, and it blocks good sign-ins from that address too until the
// window passes. 403s (real users WeCom refuses) are not counted.
func TestLoginRateLimit(t *testing.T) {
	e := startEnv(t, "login_rate 3 1m\n\t\t"+reviewBlock)
	for range 5 {
		r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "lisi")))
		expectError(t, r, http.StatusForbidden, "user_inactive")
	}
	for range 3 {
		expectError(t, e.do(http.MethodPost, "/wecom/login", `{"code":"guess"}`), 401, "invalid_code")
	}
	r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
	expectError(t, r, http.StatusTooManyRequests, "rate_limited")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	expectError(t, e.do(http.MethodPost, "/wecom/review/login", `{"username":"reviewer","password":"review-demo"}`),
		http.StatusTooManyRequests, "rate_limited")
	expectError(t, e.do(http.MethodGet, "/api/x", "", "X-WeCom-Code: abc"), http.StatusTooManyRequests, "rate_limited")
	e.backend.none(t)
}
