package wecomauth_test

import (
	"net/http"
	"testing"
	"time"
)

func TestReviewSessionReachesOnlyAllowedPaths(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: reviewBlock})
	auth := "Authorization: Bearer " + reviewLogin(t, e)

	for _, p := range []string{"/api/public/a", "/api/public/a/b?x=1", "/api/version", "/API/PUBLIC/a"} {
		r := e.do(http.MethodGet, p, "", auth, "X-WeCom-CorpId: wwacme")
		if r.status != 200 {
			t.Errorf("%s: %d %s", p, r.status, r.raw)
			continue
		}
		got := e.backend.last(t)
		if got.Header.Get("X-WeCom-UserId") != "review:reviewer" || got.Header.Get("X-WeCom-Review") != "1" {
			t.Errorf("%s: review identity headers = %v", p, got.Header)
		}
		for _, h := range []string{"X-WeCom-CorpId", "X-WeCom-Corp", "X-WeCom-Department"} {
			if v := got.Header.Get(h); v != "" {
				t.Errorf("%s: review session carried %s=%q", p, h, v)
			}
		}
	}

	// Path tricks are judged on the cleaned path, never the query.
	for _, p := range []string{
		"/api/orders",
		"/api/orders?next=/api/public/x",
		"/api/public/../orders",
		"/api/public/%2e%2e/orders",
		"/api/public%2F..%2Forders",
		"//api/orders",
		"/api/versionx",
		"/api/public",
	} {
		expectError(t, e.do(http.MethodGet, p, "", auth), http.StatusForbidden, "review_forbidden")
	}
	e.backend.none(t)
}

// timedReviewHash is review-demo at bcrypt cost 7 (about 12 ms, 120 ms
// under -race): enough work that a comparison stands out from the
// request's own time and a busy machine's pauses, where the test world's
// cost-4 hash (1 ms) would not.
const timedReviewHash = "$2a$07$WIbkH91otz/HVzgo5doMsuUk6Oue59r1qhqMHexPzEr94YeBGhXTq"

func TestReviewLoginFailures(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: reviewCaddyfile(timedReviewHash)})
	post := func(body string) reply { return e.do(http.MethodPost, "/wecom/review/login", body) }
	expectError(t, post(`{"username":"reviewer","password":"nope"}`), 401, "unauthenticated")
	expectError(t, post(`{"username":"ghost","password":"review-demo"}`), 401, "unauthenticated")
	expectError(t, post(`{"username":"reviewer"}`), 400, "invalid_request")
	expectError(t, post(`[`), 400, "invalid_request")
	reviewLogin(t, e)

	// Unknown users cost the same bcrypt work as wrong passwords: compare
	// the quickest of a few tries each, loosely.
	timeOf := func(body string) time.Duration {
		var best time.Duration
		for range 3 {
			start := time.Now()
			post(body)
			if d := time.Since(start); best == 0 || d < best {
				best = d
			}
		}
		return best
	}
	wrong := timeOf(`{"username":"reviewer","password":"nope"}`)
	unknown := timeOf(`{"username":"ghost","password":"nope"}`)
	if unknown < wrong/3 {
		t.Errorf("unknown user answered in %v, wrong password in %v: the difference tells who exists", unknown, wrong)
	}
}

func TestNoReviewBlockMeansNoReviewLogin(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	expectError(t, e.do(http.MethodPost, "/wecom/review/login", `{"username":"a","password":"b"}`), 404, "not_found")
}

// A review token stops working when its account leaves the configuration.
func TestReviewSessionEndsWithItsAccount(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: reviewBlock + "\n\t\tsession_key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="})
	tok := reviewLogin(t, e)
	e.reload("session_key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	expectError(t, e.do(http.MethodGet, "/api/public/a", "", "Authorization: Bearer "+tok), 401, "unauthenticated")
}

func TestReviewSessionEndpointHasNoCorp(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: reviewBlock})
	r := e.do(http.MethodGet, "/wecom/session", "", "Authorization: Bearer "+reviewLogin(t, e))
	if r.status != 200 || r.body["review"] != true || r.str("userid") != "review:reviewer" {
		t.Fatalf("review session: %d %s", r.status, r.raw)
	}
	if _, ok := r.body["corp"]; ok {
		t.Errorf("review session names a corp: %s", r.raw)
	}
}

// A client's Connection header cannot make the proxy drop the gateway's
// own headers after wecom_auth set them.
func TestConnectionHeaderCannotDropIdentityHeaders(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: reviewBlock})
	auth := "Authorization: Bearer " + reviewLogin(t, e)
	if r := e.do(http.MethodGet, "/api/public/a", "", auth, "Connection: X-WeCom-Review, X-WeCom-UserId"); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	got := e.backend.last(t)
	if got.Header.Get("X-WeCom-Review") != "1" || got.Header.Get("X-WeCom-UserId") != "review:reviewer" {
		t.Errorf("identity headers dropped through Connection: %v", got.Header)
	}
}
