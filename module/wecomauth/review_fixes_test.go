package wecomauth_test

// Regression tests of the independent review of the security fixes: each
// fails on the fixes as they first were.

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/wecomauth"
)

// Behind a load balancer every client comes through a trusted proxy:
// trusted_proxies must not make a client a forward-auth peer, or it could
// mint assertions for any method and path.
func TestForwardAuthPeersAreNotTrustedProxies(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "assertion app.example\n\t\tforward_auth_from 127.0.0.2", site: "", global: "servers {\n\t\ttrusted_proxies static 127.0.0.0/8\n\t}"})
	tok := login(t, e, "acme", "zhangsan")
	r := doFrom(t, "127.0.0.3", e.gw+"/wecom/auth", "Authorization: Bearer "+tok, "X-Forwarded-For: 203.0.113.7",
		"X-Forwarded-Method: DELETE", "X-Forwarded-Uri: /internal/admin/users/42")
	if r.status != http.StatusOK || r.header.Get("X-WeCom-UserId") != "zhangsan" {
		t.Fatalf("/wecom/auth through the load balancer: %d %s", r.status, r.raw)
	}
	if r.header.Get("X-WeCom-Assertion") != "" {
		t.Error("a client behind a trusted proxy got an assertion from /wecom/auth")
	}
	if r := doFrom(t, "127.0.0.2", e.gw+"/wecom/auth", "Authorization: Bearer "+tok, "X-Forwarded-Uri: /api/x"); r.header.Get("X-WeCom-Assertion") == "" {
		t.Error("the configured forward-auth peer got no assertion")
	}
}

// A matched wecom_auth's subroute takes the gateway's token out of what
// the matcher leaves out (the cookie goes to every path), and leaves a
// public path's own Bearer tokens alone.
func TestTokenNeverReachesPathsOutsideTheMatcher(t *testing.T) {
	e := startGateway(t, gatewayOptions{site: `@gateway path /api/* /wecom/*
	wecom_auth @gateway %s
	reverse_proxy {backend}`})
	tok := login(t, e, "acme", "zhangsan")
	r := e.do(http.MethodGet, "/static/app.js", "", "Cookie: theme=dark; wecom_session="+tok, "Authorization: Bearer "+tok)
	if r.status != http.StatusOK {
		t.Fatalf("public path: %d %s", r.status, r.raw)
	}
	got := e.backend.last(t)
	if strings.Contains(got.Header.Get("Cookie"), tok) || got.Header.Get("Authorization") != "" {
		t.Errorf("the session token reached a public path: Cookie %q Authorization %q", got.Header.Get("Cookie"), got.Header.Get("Authorization"))
	}
	if got.Header.Get("Cookie") != "theme=dark" {
		t.Errorf("other cookies: %q", got.Header.Get("Cookie"))
	}
	e.do(http.MethodGet, "/static/app.js", "", "Authorization: Bearer another-service.token")
	if a := e.backend.last(t).Header.Get("Authorization"); a != "Bearer another-service.token" {
		t.Errorf("a foreign Bearer token on a public path became %q", a)
	}
}

// An inline code refused for any reason before WeCom spent it is burned,
// not only on 429: a 400 (unknown corp) leaves it in the access log.
func TestInlineCodeRefusedAnyWayIsBurned(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	code := e.code("acme", "zhangsan")
	expectError(t, e.do(http.MethodGet, "/api/x", "", "X-WeCom-Code: "+code, "X-WeCom-Corp: acme-typo"), http.StatusBadRequest, "invalid_request")
	r := doFrom(t, "127.0.0.9", e.gw+"/api/x", "X-WeCom-Code: "+code)
	expectError(t, r, http.StatusUnauthorized, "invalid_code")
	e.backend.none(t)
}

// Review sessions lose the headers some backends route on instead of the
// request line.
func TestReviewSessionLosesRoutingOverrides(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: reviewBlock})
	tok := reviewLogin(t, e)
	r := e.do(http.MethodGet, "/api/public/a", "", "Authorization: Bearer "+tok, "X-Original-URL: /api/admin", "X-Rewrite-URL: /api/admin", "X-HTTP-Method-Override: DELETE")
	if r.status != http.StatusOK {
		t.Fatalf("review request: %d %s", r.status, r.raw)
	}
	got := e.backend.last(t)
	for _, h := range []string{"X-Original-Url", "X-Rewrite-Url", "X-Http-Method-Override"} {
		if v := got.Header.Get(h); v != "" {
			t.Errorf("%s=%q reached the backend with a review session", h, v)
		}
	}
}

// A login body larger than the limit and then dripping: the read deadline
// still ends the connection (it is not cleared before net/http drains
// what is left).
func TestOversizedDrippingLoginBodyIsCutOff(t *testing.T) {
	defer wecomauth.SetLoginBodyTimeout(300 * time.Millisecond)()
	e := startGateway(t, gatewayOptions{})
	took := dripLogin(t, e, 100000, `{"code":"`+strings.Repeat("a", 4300), func(br *bufio.Reader) {
		if resp, err := http.ReadResponse(br, nil); err == nil {
			resp.Body.Close()
		}
		// The server must close the connection once the deadline passes.
		_, _ = br.ReadByte()
	})
	if took > 3*time.Second {
		t.Errorf("closed after %v", took)
	}
}
