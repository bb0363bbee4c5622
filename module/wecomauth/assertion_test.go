package wecomauth_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// verifyAssertion checks a JWT against the gateway's published keys and
// returns its claims.
func verifyAssertion(t *testing.T, e *env, token, audience string) (jwt.Claims, map[string]any) {
	t.Helper()
	r := e.do(http.MethodGet, "/wecom/jwks.json", "")
	if r.status != 200 {
		t.Fatalf("jwks: %d %s", r.status, r.raw)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(r.raw), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks %s: %v", r.raw, err)
	}
	if set.Keys[0].IsPublic() != true {
		t.Fatal("jwks publishes a private key")
	}
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("assertion is not an ES256 JWT: %v", err)
	}
	var std jwt.Claims
	var extra map[string]any
	if err := parsed.Claims(set.Keys[0].Key, &std, &extra); err != nil {
		t.Fatalf("assertion does not verify with the published key: %v", err)
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Issuer: "wecomgate", AnyAudience: jwt.Audience{audience}, Time: time.Now()}, 0); err != nil {
		t.Fatalf("assertion claims: %v", err)
	}
	if ttl := std.Expiry.Time().Sub(std.IssuedAt.Time()); ttl > time.Minute {
		t.Errorf("assertion lives %v", ttl)
	}
	return std, extra
}

func TestSignedUpstreamAssertion(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "assertion api.example.com"})
	tok := login(t, e, "acme", "zhangsan")
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok, "X-WeCom-Assertion: forged"); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	got := e.backend.last(t).Header.Values("X-WeCom-Assertion")
	if len(got) != 1 || got[0] == "forged" {
		t.Fatalf("backend assertion headers = %q", got)
	}
	std, extra := verifyAssertion(t, e, got[0], "api.example.com")
	if std.Subject != "zhangsan" || extra["corpid"] != "wwacme" || extra["corp"] != "acme" || extra["name"] != "张三" || extra["department"] != "1,2" {
		t.Errorf("assertion claims: %+v %v", std, extra)
	}

	// Forward-auth hands the assertion to a forward-auth peer (loopback by
	// default) for the proxy to copy; TestAssertionIsScopedByConfiguration
	// checks that other callers get none.
	r := e.do(http.MethodGet, "/wecom/auth", "", "Authorization: Bearer "+tok, "X-Forwarded-Uri: /api/x")
	if r.status != 200 || r.header.Get("X-WeCom-Assertion") == "" {
		t.Fatalf("forward-auth from loopback without an assertion: %d %v", r.status, r.header)
	}
	verifyAssertion(t, e, r.header.Get("X-WeCom-Assertion"), "api.example.com")
}

func TestAssertionTTL(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "assertion api.example.com {\n\t\t\tttl 30s\n\t\t}"})
	tok := login(t, e, "acme", "zhangsan")
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	std, _ := verifyAssertion(t, e, e.backend.last(t).Header.Get("X-WeCom-Assertion"), "api.example.com")
	if ttl := std.Expiry.Time().Sub(std.IssuedAt.Time()); ttl != 30*time.Second {
		t.Errorf("ttl %v, want 30s", ttl)
	}
}

func TestNoAssertionByDefault(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok, "X-WeCom-Assertion: forged")
	if v := e.backend.last(t).Header.Get("X-WeCom-Assertion"); v != "" {
		t.Errorf("assertion %q without the assertion option", v)
	}
	expectError(t, e.do(http.MethodGet, "/wecom/jwks.json", ""), 404, "not_found")
}
