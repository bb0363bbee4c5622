package wecomauth_test

// Regression tests of the outside security review (issue 12): each fails
// on the gateway as it was before the fix it names.

import (
	"bufio"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/crypto/bcrypt"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
	"github.com/wecomgate/wecomgate/module/wecomauth"
)

// Item 1: a top-level wecom_auth protects handle, handle_path and route
// blocks; before, it was ordered after them and never saw their requests.
func TestTopLevelWecomAuthProtectsHandleBlocks(t *testing.T) {
	e := startGateway(t, gatewayOptions{site: `handle /api/* {
		reverse_proxy {backend}
	}
	handle_path /v2/* {
		reverse_proxy {backend}
	}
	route /r/* {
		reverse_proxy {backend}
	}
	%s`})
	tok := login(t, e, "acme", "zhangsan")
	for _, p := range []string{"/api/orders", "/v2/orders", "/r/orders"} {
		expectError(t, e.do(http.MethodGet, p, "", "X-WeCom-UserId: boss"), http.StatusUnauthorized, "unauthenticated")
		e.backend.none(t)
		r := e.do(http.MethodGet, p, "", "Authorization: Bearer "+tok, "X-WeCom-UserId: boss")
		if r.status != http.StatusOK {
			t.Fatalf("%s with a session: %d %s", p, r.status, r.raw)
		}
		if got := e.backend.last(t).Header.Get("X-WeCom-UserId"); got != "zhangsan" {
			t.Errorf("%s: backend X-WeCom-UserId = %q", p, got)
		}
	}
}

// Item 2: with a matcher, client X-WeCom-* headers still go from every
// request of the site, matched or not.
func TestMatchedWecomAuthStripsEveryRequest(t *testing.T) {
	e := startGateway(t, gatewayOptions{site: `wecom_auth /api/* %s
	reverse_proxy {backend}`})
	forged := []string{"X-WeCom-UserId: boss", "X-WeCom-Review: 1", "x-wecom-corp: acme", "X-WeCom_Department: 9", "Connection: X-WeCom-Foo"}
	for _, p := range []string{"/", "/static/app.js", "/apix", "/wecom"} {
		r := e.do(http.MethodGet, p, "", forged...)
		if r.status != http.StatusOK {
			t.Fatalf("%s (outside the matcher): %d %s", p, r.status, r.raw)
		}
		got := e.backend.last(t)
		for name := range got.Header {
			if strings.HasPrefix(strings.ToLower(strings.ReplaceAll(name, "_", "-")), "x-wecom-") {
				t.Errorf("%s: client header %s=%q reached the backend", p, name, got.Header[name])
			}
		}
	}
	expectError(t, e.do(http.MethodGet, "/api/x", "", forged...), http.StatusUnauthorized, "unauthenticated")
	e.backend.none(t)

	// The inline login still works behind the stripping step: the code is
	// handed over in the request's context, not a header.
	r := e.do(http.MethodGet, "/api/x", "", "X-WeCom-Code: "+e.code("acme", "zhangsan"))
	if r.status != http.StatusOK || r.header.Get("X-WeCom-Session") == "" {
		t.Fatalf("inline login under a matcher: %d %s", r.status, r.raw)
	}
	if got := e.backend.last(t); got.Header.Get("X-WeCom-UserId") != "zhangsan" || got.Header.Get("X-WeCom-Code") != "" {
		t.Errorf("inline login: backend headers %v", got.Header)
	}
}

// trailerBackend records the trailers each request arrived with.
type trailerBackend struct {
	mu       sync.Mutex
	trailers []http.Header
}

func (b *trailerBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	b.mu.Lock()
	b.trailers = append(b.trailers, r.Trailer.Clone())
	b.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (b *trailerBackend) last(t *testing.T) http.Header {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.trailers) == 0 {
		t.Fatal("the backend was not reached")
	}
	return b.trailers[len(b.trailers)-1]
}

// Item 2: X-WeCom-* request trailers never reach the backend, declared or
// not, over HTTP/1.1 chunked and over h2c.
func TestClientTrailersAreStripped(t *testing.T) {
	tb := &trailerBackend{}
	backend := httptest.NewUnstartedServer(tb)
	backend.Config.Protocols = new(http.Protocols)
	backend.Config.Protocols.SetHTTP1(true)
	backend.Config.Protocols.SetUnencryptedHTTP2(true)
	backend.Start()
	t.Cleanup(backend.Close)
	e := startGateway(t, gatewayOptions{
		site:   "%s\n\treverse_proxy " + strings.TrimPrefix(backend.URL, "http://"),
		global: "servers {\n\t\tprotocols h1 h2c\n\t}",
	})
	tok := login(t, e, "acme", "zhangsan")

	check := func(what string) {
		t.Helper()
		got := tb.last(t)
		if got.Get("X-Other") != "kept" {
			t.Errorf("%s: the client's own trailer did not arrive: %v", what, got)
		}
		for name := range got {
			if strings.HasPrefix(strings.ToLower(name), "x-wecom") {
				t.Errorf("%s: trailer %s=%q reached the backend", what, name, got[name])
			}
		}
	}

	// HTTP/1.1: one declared X-WeCom trailer, one undeclared.
	addr := strings.TrimPrefix(e.gw, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST /api/upload HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\nTrailer: X-WeCom-UserId, X-Other\r\n\r\n"+
		"5\r\nhello\r\n0\r\nX-WeCom-UserId: boss\r\nX-WeCom-Review: 1\r\nX-Other: kept\r\n\r\n", addr, tok)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chunked upload: %d", resp.StatusCode)
	}
	check("HTTP/1.1")

	// h2c: trailers declared up front, as HTTP/2 requires.
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodPost, e.gw+"/api/upload", io.NopCloser(strings.NewReader("hello")))
	req.ContentLength = -1
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Trailer = http.Header{"X-Wecom-Userid": {"boss"}, "X-Wecom-Review": {"1"}, "X-Other": {"kept"}}
	resp, err = tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		t.Fatalf("h2c upload: %d over %s", resp.StatusCode, resp.Proto)
	}
	check("h2c")
}

// assertionOf verifies a JWT with a JWKS and returns its claims.
func assertionOf(t *testing.T, token string, jwks []byte) (jwt.Claims, map[string]any, error) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("jwks: %v", err)
	}
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("parsing assertion: %v", err)
	}
	var std jwt.Claims
	extra := map[string]any{}
	for _, k := range set.Keys {
		if err = parsed.Claims(k.Key.(*ecdsa.PublicKey), &std, &extra); err == nil {
			return std, extra, nil
		}
	}
	return std, extra, err
}

// Item 3: the audience is the configured one whatever Host or
// X-Forwarded-Host say, each audience has its own key, the claims name
// method and path, and /wecom/auth gives an assertion only to a trusted
// proxy.
func TestAssertionIsScopedByConfiguration(t *testing.T) {
	// A second site on the same storage with another audience.
	siteB := testcaddy.Listen(t, 1)[0].URL()
	e := startGateway(t, gatewayOptions{
		extra: "assertion app-a.example\n\t\tforward_auth_from 127.0.0.2",
		sites: func(e *env) string {
			return fmt.Sprintf("%s {\n\twecom_auth {\n\t\tapi_base %s\n%s\n\t\tassertion app-b.example\n\t}\n\trespond ok\n}",
				siteB, e.sim, corpBlocks(e.corps))
		},
	})
	tok := login(t, e, "acme", "zhangsan")
	jwksA := e.do(http.MethodGet, "/wecom/jwks.json", "").raw
	resp, err := http.Get(siteB + "/wecom/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	jwksB, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	r := e.do(http.MethodPost, "/api/orders?x=1", "{}", "Authorization: Bearer "+tok, "Host: app-b.example", "X-Forwarded-Host: app-b.example")
	if r.status != http.StatusOK {
		t.Fatalf("protected request: %d %s", r.status, r.raw)
	}
	a := e.backend.last(t).Header.Get("X-WeCom-Assertion")
	std, extra, err := assertionOf(t, a, []byte(jwksA))
	if err != nil {
		t.Fatalf("site A's assertion does not verify with site A's keys: %v", err)
	}
	if len(std.Audience) != 1 || std.Audience[0] != "app-a.example" {
		t.Errorf("aud = %v, want the configured app-a.example whatever the client's Host", std.Audience)
	}
	if extra["method"] != "POST" || extra["path"] != "/api/orders" {
		t.Errorf("method/path claims = %v %v", extra["method"], extra["path"])
	}
	if _, _, err := assertionOf(t, a, jwksB); err == nil {
		t.Error("site A's assertion verifies with site B's keys")
	}

	// /wecom/auth from an end client: identity, but no assertion.
	r = e.do(http.MethodGet, "/wecom/auth", "", "Authorization: Bearer "+tok, "X-Forwarded-Host: app-b.example")
	if r.status != http.StatusOK || r.header.Get("X-WeCom-UserId") != "zhangsan" {
		t.Fatalf("/wecom/auth: %d %s", r.status, r.raw)
	}
	if r.header.Get("X-WeCom-Assertion") != "" {
		t.Error("/wecom/auth handed an assertion to an end client")
	}
	// From the forward-auth peer: the assertion names the proxied request.
	r = doFrom(t, "127.0.0.2", e.gw+"/wecom/auth", "Authorization: Bearer "+tok,
		"X-Forwarded-Method: DELETE", "X-Forwarded-Uri: /api/orders/7?y=2", "X-Forwarded-Host: app-b.example")
	if r.status != http.StatusOK || r.header.Get("X-WeCom-Assertion") == "" {
		t.Fatalf("/wecom/auth from a trusted proxy: %d %v", r.status, r.header)
	}
	std, extra, err = assertionOf(t, r.header.Get("X-WeCom-Assertion"), []byte(jwksA))
	if err != nil || std.Audience[0] != "app-a.example" || extra["method"] != "DELETE" || extra["path"] != "/api/orders/7" || extra["query"] != "y=2" {
		t.Errorf("forward-auth assertion: %v aud=%v method=%v path=%v", err, std.Audience, extra["method"], extra["path"])
	}
}

// Item 3: a config without an audience is refused.
func TestAssertionNeedsAnAudience(t *testing.T) {
	err := testcaddy.LoadError(":0 {\n\twecom_auth {\n\t\tcorp a {\n\t\t\tcorp_id ww1\n\t\t\tsecret s\n\t\t}\n\t\tassertion\n\t}\n}")
	if err == nil || !strings.Contains(err.Error(), "audience") {
		t.Errorf("assertion without audience: %v", err)
	}
}

// Item 7: a review token is bound to its site's review block and the
// account's hash: another site's reviewer of the same name, or the same
// account after a password change, does not accept it.
func TestReviewSessionsAreBoundToTheirAccount(t *testing.T) {
	otherHash, err := bcrypt.GenerateFromPassword([]byte("other-password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	const key = "session_key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	e := startGateway(t, gatewayOptions{extra: reviewBlock + "\n\t\t" + key})
	tok := reviewLogin(t, e)
	auth := "Authorization: Bearer " + tok
	if r := e.do(http.MethodGet, "/api/public/a", "", auth); r.status != http.StatusOK {
		t.Fatalf("review session: %d %s", r.status, r.raw)
	}
	e.reload(reviewCaddyfile(string(otherHash)) + "\n\t\t" + key)
	expectError(t, e.do(http.MethodGet, "/api/public/a", "", auth), http.StatusUnauthorized, "unauthenticated")
	// The same account and hash with other allowed paths is another site's.
	e.reload(strings.Replace(reviewBlock, "/api/version", "/api/admin/*", 1) + "\n\t\t" + key)
	expectError(t, e.do(http.MethodGet, "/api/public/a", "", auth), http.StatusUnauthorized, "unauthenticated")
	// Back to the original block: the token opens again.
	e.reload(reviewBlock + "\n\t\t" + key)
	if r := e.do(http.MethodGet, "/api/public/a", "", auth); r.status != http.StatusOK {
		t.Errorf("review session under its own block again: %d %s", r.status, r.raw)
	}
}

// Item 8: session keys and review hashes may be runtime placeholders,
// which never become part of Caddy's JSON config.
func TestSessionKeyFromEnvironment(t *testing.T) {
	const k = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
	hash, err := bcrypt.GenerateFromPassword([]byte(reviewPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("WECOMGATE_TEST_SESSION_KEY", k)
	t.Setenv("WECOMGATE_TEST_REVIEW_HASH", string(hash))
	extra := "session_key {env.WECOMGATE_TEST_SESSION_KEY}\n\t\treview {\n\t\t\tuser reviewer {env.WECOMGATE_TEST_REVIEW_HASH}\n\t\t\tallow /api/public/*\n\t\t}"
	e := startGateway(t, gatewayOptions{extra: extra})
	cfg := e.config(extra)
	if adapted := string(testcaddy.Adapt(t, cfg)); strings.Contains(adapted, k) || strings.Contains(adapted, string(hash)) {
		t.Error("the adapted config holds the key or hash")
	}
	tok := login(t, e, "acme", "zhangsan")
	rtok := reviewLogin(t, e)
	// A gateway with the key written out accepts the tokens: they were
	// sealed with the key from the environment.
	e.reload("session_key " + k + "\n\t\treview {\n\t\t\tuser reviewer " + string(hash) + "\n\t\t\tallow /api/public/*\n\t\t}")
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != http.StatusOK {
		t.Errorf("token sealed with the placeholder key: %d %s", r.status, r.raw)
	}
	if r := e.do(http.MethodGet, "/api/public/x", "", "Authorization: Bearer "+rtok); r.status != http.StatusOK {
		t.Errorf("review token of the placeholder hash: %d %s", r.status, r.raw)
	}
}

// Item 9: api_base is https, or http only to a loopback address.
func TestAPIBaseMustBeHTTPSUnlessLoopback(t *testing.T) {
	cfg := func(base string) string {
		return ":0 {\n\twecom_auth {\n\t\tapi_base " + base + "\n\t\tcorp a {\n\t\t\tcorp_id ww1\n\t\t\tsecret {env.X}\n\t\t}\n\t}\n}"
	}
	t.Setenv("X", "s")
	for base, ok := range map[string]bool{
		"http://qyapi.weixin.qq.com":  false,
		"http://10.0.0.8:8081":        false,
		"ftp://127.0.0.1":             false,
		"https://qyapi.weixin.qq.com": true,
		"http://127.0.0.1:8081":       true,
		"http://[::1]:8081":           true,
		"http://localhost:8081":       true,
	} {
		err := testcaddy.LoadError(cfg(base))
		if (err == nil) != ok {
			t.Errorf("api_base %s: %v", base, err)
		}
	}
}

// Item 14: login bodies must come as application/json (no login CSRF from
// a cross-site form), and a refused one never reaches WeCom.
func TestLoginNeedsJSONContentType(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: reviewBlock})
	before := e.counts()["jscode2session"]
	code := e.code("acme", "zhangsan")
	for _, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", ""} {
		expectError(t, e.do(http.MethodPost, "/wecom/login", `{"code":"`+code+`"}`, "Content-Type: "+ct), http.StatusBadRequest, "invalid_request")
		expectError(t, e.do(http.MethodPost, "/wecom/review/login", reviewLoginBody, "Content-Type: "+ct), http.StatusBadRequest, "invalid_request")
	}
	if n := e.counts()["jscode2session"]; n != before {
		t.Errorf("refused logins reached WeCom: jscode2session %d → %d", before, n)
	}
	if r := e.do(http.MethodPost, "/wecom/login", `{"code":"`+code+`"}`, "Content-Type: application/json; charset=utf-8"); r.status != http.StatusOK {
		t.Errorf("JSON login with a charset: %d %s", r.status, r.raw)
	}
}

// Item 16: an inline code refused with 429 (so not spent at WeCom, and
// sitting in the access log) is worthless afterwards, from any address.
func TestInlineCodeRefusedWith429IsBurned(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "login_rate 1 1m"})
	expectError(t, e.do(http.MethodPost, "/wecom/login", `{"code":"bogus"}`), http.StatusUnauthorized, "invalid_code")
	code := e.code("acme", "zhangsan")
	expectError(t, e.do(http.MethodGet, "/api/x", "", "X-WeCom-Code: "+code), http.StatusTooManyRequests, "rate_limited")
	// A reload gives a fresh limiter; the burned code stays burned.
	e.reload("login_rate 1 1m")
	expectError(t, e.do(http.MethodGet, "/api/x", "", "X-WeCom-Code: "+code), http.StatusUnauthorized, "invalid_code")
	e.backend.none(t)
}

// dripLogin opens a connection to the gateway, sends a login request with
// contentLength and the first bytes of its body, then drips a byte every
// 100 ms until read (run in the background on the connection) returns. It
// returns how long that took; past 5 s the test fails.
func dripLogin(t *testing.T, e *env, contentLength int, first string, read func(*bufio.Reader)) time.Duration {
	t.Helper()
	addr := strings.TrimPrefix(e.gw, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	start := time.Now()
	fmt.Fprintf(c, "POST /wecom/login HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", addr, contentLength, first)
	done := make(chan struct{})
	go func() {
		defer close(done)
		read(bufio.NewReader(c))
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return time.Since(start)
		case <-tick.C:
			if time.Since(start) > 5*time.Second {
				t.Fatal("still reading a dripped body after 5 s")
			}
			_, _ = c.Write([]byte(" "))
		}
	}
}

// Item 17: a login body that drips in is cut off at the read deadline.
func TestLoginBodyHasAReadDeadline(t *testing.T) {
	defer wecomauth.SetLoginBodyTimeout(300 * time.Millisecond)()
	e := startGateway(t, gatewayOptions{})
	var resp *http.Response
	took := dripLogin(t, e, 100, "{", func(br *bufio.Reader) { resp, _ = http.ReadResponse(br, nil) })
	if resp == nil {
		t.Fatal("the connection closed without an answer")
	}
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("dripped body: %d, want 400", resp.StatusCode)
	}
	if took > 3*time.Second {
		t.Errorf("answered after %v", took)
	}
}

// Item 18: every token that does not pass gets the same message, so a
// holder cannot tell an authentic-but-ended token from a forged one.
func TestOneMessageForEveryBadToken(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	ended := login(t, e, "acme", "zhangsan")
	if r := e.do(http.MethodPost, "/wecom/logout", "", "Authorization: Bearer "+ended); r.status != http.StatusNoContent {
		t.Fatalf("logout: %d", r.status)
	}
	messages := map[string]string{}
	for what, t2 := range map[string]string{"forged": flipMiddleChar(tok), "garbage": "abc", "ended": ended} {
		r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+t2)
		expectError(t, r, http.StatusUnauthorized, "unauthenticated")
		messages[what] = r.str("message")
	}
	if messages["forged"] != messages["ended"] || messages["garbage"] != messages["ended"] {
		t.Errorf("messages differ: %v", messages)
	}
}

// Item 13: a user whose facts do not fit a token still signs in, with a
// JSON answer, and their requests carry the right headers.
func TestOversizedUserFactsStillSignIn(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	depts := make([]int64, 151)
	for i := range depts {
		depts[i] = 1000000000 + int64(i)
	}
	name := strings.Repeat("名", 2000) // 6,000 bytes
	e.simJSON(http.MethodPut, "/sim/users", map[string]any{"corp": "acme", "userid": "bigboss", "name": name, "department": depts}, nil)
	tok := login(t, e, "acme", "bigboss")
	r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok)
	if r.status != http.StatusOK {
		t.Fatalf("request of a user with large facts: %d %s", r.status, r.raw)
	}
	got := e.backend.last(t)
	if d := got.Header.Get("X-WeCom-Department"); !strings.HasPrefix(d, "1000000000,1000000001,") {
		t.Errorf("X-WeCom-Department = %.40q…", d)
	}
	if len(got.Header.Get("X-WeCom-Name")) < 6000 {
		t.Errorf("X-WeCom-Name lost the name: %d bytes", len(got.Header.Get("X-WeCom-Name")))
	}
}
