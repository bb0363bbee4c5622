package wecomauth_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wecomgate/wecomgate/module/wecomauth"
)

func TestLoginAnswersTokenAndCookie(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
	if r.status != http.StatusOK {
		t.Fatalf("login: %d %s", r.status, r.raw)
	}
	want := map[string]any{"token_type": "Bearer", "userid": "zhangsan", "corpid": "wwacme", "corp": "acme", "name": "张三"}
	for k, v := range want {
		if r.body[k] != v {
			t.Errorf("login %s = %v, want %v", k, r.body[k], v)
		}
	}
	if exp, _ := r.body["expires_in"].(float64); exp < 86000 || exp > 86400 {
		t.Errorf("expires_in = %v, want about 24h", r.body["expires_in"])
	}
	tok := r.str("token")
	cookie := r.header.Get("Set-Cookie")
	for _, part := range []string{"wecom_session=" + tok, "Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(cookie, part) {
			t.Errorf("Set-Cookie %q lacks %q", cookie, part)
		}
	}
}

func TestBearerSessionReachesBackendWithIdentity(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	r := e.do(http.MethodGet, "/api/orders?x=1", "", "Authorization: Bearer "+tok)
	if r.status != http.StatusOK {
		t.Fatalf("protected request: %d %s", r.status, r.raw)
	}
	got := e.backend.last(t)
	want := map[string]string{
		"X-WeCom-UserId":     "zhangsan",
		"X-WeCom-CorpId":     "wwacme",
		"X-WeCom-Corp":       "acme",
		"X-WeCom-Name":       url.PathEscape("张三"),
		"X-WeCom-Department": "1,2",
	}
	for k, v := range want {
		if g := got.Header.Get(k); g != v {
			t.Errorf("backend %s = %q, want %q", k, g, v)
		}
	}
	if got.Header.Get("X-WeCom-Review") != "" {
		t.Error("a WeCom session carried X-WeCom-Review")
	}
	if got.Header.Get("Authorization") != "" {
		t.Error("the gateway's token reached the backend in Authorization")
	}
	if got.URL.RawQuery != "x=1" {
		t.Errorf("query changed: %q", got.URL.RawQuery)
	}
}

func TestCookieSessionKeepsOtherCookies(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	r := e.do(http.MethodGet, "/api/x", "", "Cookie: theme=dark; wecom_session="+tok+"; lang=zh")
	if r.status != http.StatusOK {
		t.Fatalf("cookie session: %d %s", r.status, r.raw)
	}
	got := e.backend.last(t)
	if c := got.Header.Get("Cookie"); c != "theme=dark; lang=zh" {
		t.Errorf("backend Cookie = %q, want the other cookies only", c)
	}
	if got.Header.Get("X-WeCom-UserId") != "zhangsan" {
		t.Errorf("no identity for a cookie session")
	}
}

// Spoofed identity headers never pass, whatever their case, with or
// without a valid session, and on every path.
func TestClientWeComHeadersAreStripped(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	spoof := []string{
		"X-WeCom-UserId: boss", "x-wecom-corpid: wwacme", "X-WECOM-CORP: acme",
		"X-Wecom-Review: 1", "X-WeCom-Department: 1", "X-WeCom-Name: boss", "X-WeCom-Anything: x",
	}

	r := e.do(http.MethodGet, "/api/x", "", spoof...)
	expectError(t, r, http.StatusUnauthorized, "unauthenticated")
	e.backend.none(t)

	tok := login(t, e, "partner", "zhaoliu")
	r = e.do(http.MethodGet, "/api/x", "", append(spoof, "Authorization: Bearer "+tok)...)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	got := e.backend.last(t)
	for name := range got.Header {
		if !strings.HasPrefix(strings.ToLower(name), "x-wecom-") {
			continue
		}
		switch strings.ToLower(name) {
		case "x-wecom-userid", "x-wecom-corpid", "x-wecom-corp", "x-wecom-name", "x-wecom-department":
		default:
			t.Errorf("client header %s reached the backend", name)
		}
	}
	if got.Header.Get("X-WeCom-UserId") != "zhaoliu" || got.Header.Get("X-WeCom-Corp") != "partner" ||
		got.Header.Get("X-WeCom-Department") != "7" {
		t.Errorf("identity overridden by client headers: %v", got.Header)
	}
	if len(got.Header.Values("X-WeCom-UserId")) != 1 {
		t.Errorf("X-WeCom-UserId has %d values", len(got.Header.Values("X-WeCom-UserId")))
	}
}

// Inline login: X-WeCom-Code on any protected request signs in on the way
// and hands the new token back in X-WeCom-Session.
func TestInlineCodeLogin(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	r := e.do(http.MethodGet, "/api/x", "", "X-WeCom-Code: "+e.code("partner", "zhaoliu"), "X-WeCom-Corp: partner")
	if r.status != http.StatusOK {
		t.Fatalf("inline login: %d %s", r.status, r.raw)
	}
	got := e.backend.last(t)
	if got.Header.Get("X-WeCom-UserId") != "zhaoliu" || got.Header.Get("X-WeCom-Code") != "" {
		t.Errorf("backend headers after inline login: %v", got.Header)
	}
	tok := r.header.Get("X-WeCom-Session")
	if tok == "" {
		t.Fatal("no X-WeCom-Session in the answer")
	}
	if r := e.do(http.MethodGet, "/api/y", "", "Authorization: Bearer "+tok); r.status != http.StatusOK {
		t.Errorf("token from inline login refused: %d %s", r.status, r.raw)
	}
	e.backend.last(t)

	r = e.do(http.MethodGet, "/api/x", "", "X-WeCom-Code: not-a-code")
	expectError(t, r, http.StatusUnauthorized, "invalid_code")
	e.backend.none(t)
}

// A client retrying the same code gets a session for the same user, with a
// fresh token, and WeCom sees the code once.
func TestSameCodeTwiceYieldsSameUser(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	code := e.code("acme", "zhangsan")
	body := fmt.Sprintf(`{"code":%q}`, code)
	a := e.do(http.MethodPost, "/wecom/login", body)
	b := e.do(http.MethodPost, "/wecom/login", body)
	if a.status != 200 || b.status != 200 {
		t.Fatalf("logins: %d %s / %d %s", a.status, a.raw, b.status, b.raw)
	}
	if a.str("userid") != "zhangsan" || b.str("userid") != "zhangsan" {
		t.Errorf("users differ: %s / %s", a.str("userid"), b.str("userid"))
	}
	if a.str("token") == b.str("token") {
		t.Error("two logins got the same token: every login must issue a fresh one")
	}
	if n := e.counts()["jscode2session"]; n != 1 {
		t.Errorf("jscode2session called %d times, want 1", n)
	}
	// Repeating one code does not spend the corp's WeCom quota either.
	for range 5 {
		e.do(http.MethodPost, "/wecom/login", body)
	}
	if n := e.counts()["user/get"]; n != 1 {
		t.Errorf("user/get called %d times for one code presented 7 times, want 1", n)
	}
}

func TestLoginErrors(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	post := func(body string) reply { return e.do(http.MethodPost, "/wecom/login", body) }
	code := func(corp, user string) string { return fmt.Sprintf(`{"code":%q}`, e.code(corp, user)) }

	cases := []struct {
		name   string
		r      func() reply
		status int
		code   string
	}{
		{"malformed body", func() reply { return post(`{"code":`) }, 400, "invalid_request"},
		{"not an object", func() reply { return post(`"abc"`) }, 400, "invalid_request"},
		{"missing code", func() reply { return post(`{}`) }, 400, "invalid_request"},
		{"oversized body", func() reply { return post(`{"code":"` + strings.Repeat("a", 10000) + `"}`) }, 400, "invalid_request"},
		{"code too long", func() reply { return post(`{"code":"` + strings.Repeat("a", 1000) + `"}`) }, 400, "invalid_request"},
		{"unknown corp name", func() reply { return post(`{"code":"abc","corp":"nope"}`) }, 400, "invalid_request"},
		{"rejected code", func() reply { return post(`{"code":"0123456789abcdef"}`) }, 401, "invalid_code"},
		{"corp not configured", func() reply { return post(code("other", "sunjiu")) }, 403, "corp_not_allowed"},
		{"disabled user", func() reply { return post(code("acme", "lisi")) }, 403, "user_inactive"},
		{"not activated user", func() reply { return post(code("acme", "zhouba")) }, 403, "user_inactive"},
		{"outside visible range (60011)", func() reply { return post(code("acme", "wangwu")) }, 403, "user_not_allowed"},
		{"outside allow_departments", func() reply {
			return post(fmt.Sprintf(`{"code":%q,"corp":"partner"}`, e.code("partner", "qianqi")))
		}, 403, "user_not_allowed"},
		{"wrong method", func() reply { return e.do(http.MethodGet, "/wecom/login", "") }, 405, "method_not_allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { expectError(t, tc.r(), tc.status, tc.code) })
	}
	e.backend.none(t)
}

// A code of another configured corp, exchanged with the first corp's
// token, is answered wrong_corp naming the corp to retry with.
func TestWrongCorpNamesTheCorp(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("partner", "zhaoliu")))
	expectError(t, r, http.StatusConflict, "wrong_corp")
	if r.str("corp") != "partner" {
		t.Errorf("wrong_corp names %q, want partner", r.str("corp"))
	}
	r = e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q,"corp":"partner"}`, e.code("partner", "zhaoliu")))
	if r.status != 200 || r.str("userid") != "zhaoliu" {
		t.Fatalf("retry with the named corp: %d %s", r.status, r.raw)
	}
}

func TestAllowUsers(t *testing.T) {
	e := startGateway(t, gatewayOptions{corps: []wecomauth.CorpConfig{
		{Name: "acme", CorpID: "wwacme", Secret: acmeSecret, AllowUsers: []string{"lisi", "zhangsan"}},
	}})
	if r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan"))); r.status != 200 {
		t.Fatalf("allowed user refused: %d %s", r.status, r.raw)
	}
	e.setUser("acme", "qianba", map[string]any{"name": "钱八", "department": []int64{2}})
	r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "qianba")))
	expectError(t, r, http.StatusForbidden, "user_not_allowed")
	// WeCom decides first (SPEC §3a): a user who is not active is told so,
	// listed or not.
	r = e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhouba")))
	expectError(t, r, http.StatusForbidden, "user_inactive")
}

func TestWeComFailures(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan") // gettoken and user/get now cached

	e.simJSON(http.MethodPost, "/sim/faults", map[string]any{"endpoint": "jscode2session", "status": 500}, nil)
	r := e.do(http.MethodPost, "/wecom/login", `{"code":"abcdef"}`)
	expectError(t, r, http.StatusServiceUnavailable, "wecom_unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	// An existing session does not need WeCom.
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != 200 {
		t.Errorf("session refused while WeCom fails: %d %s", r.status, r.raw)
	}
	e.simJSON(http.MethodDelete, "/sim/faults", nil, nil)

	e.simJSON(http.MethodPost, "/sim/faults", map[string]any{"endpoint": "jscode2session", "errcode": 48002}, nil)
	r = e.do(http.MethodPost, "/wecom/login", `{"code":"abcdef"}`)
	expectError(t, r, http.StatusBadGateway, "wecom_error")
	e.simJSON(http.MethodDelete, "/sim/faults", nil, nil)
}

func TestWrongSecretIsWeComError(t *testing.T) {
	e := startGateway(t, gatewayOptions{corps: []wecomauth.CorpConfig{
		{Name: "acme", CorpID: "wwacme", Secret: "not-the-secret"},
	}})
	r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
	expectError(t, r, http.StatusBadGateway, "wecom_error")
	if strings.Contains(r.raw, "not-the-secret") {
		t.Error("the secret appears in the answer")
	}
}

func TestUnauthenticated(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	tampered := flipMiddleChar(tok) // the last character may carry only padding bits
	cases := map[string][]string{
		"no credential":               nil,
		"garbage bearer":              {"Authorization: Bearer abc.def"},
		"tampered token":              {"Authorization: Bearer " + tampered},
		"truncated token":             {"Authorization: Bearer " + tok[:40]},
		"garbage cookie":              {"Cookie: wecom_session=xyz"},
		"two Authorization headers":   {"Authorization: Bearer " + tok, "Authorization: Bearer " + tok},
		"two session cookies":         {"Cookie: wecom_session=" + tok + "; wecom_session=" + tok},
		"basic auth is not a session": {"Authorization: Basic dXNlcjpwYXNz"},
	}
	for name, hdrs := range cases {
		t.Run(name, func(t *testing.T) {
			expectError(t, e.do(http.MethodGet, "/api/x", "", hdrs...), http.StatusUnauthorized, "unauthenticated")
		})
	}
	e.backend.none(t)
}

func TestSessionEndpointAndLogout(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	auth := "Authorization: Bearer " + tok

	r := e.do(http.MethodGet, "/wecom/session", "", auth)
	if r.status != 200 || r.str("userid") != "zhangsan" || r.str("corp") != "acme" || r.str("corpid") != "wwacme" ||
		r.str("name") != "张三" || r.body["review"] != false {
		t.Fatalf("session: %d %s", r.status, r.raw)
	}
	if d, _ := r.body["department"].([]any); len(d) != 2 || d[0] != 1.0 || d[1] != 2.0 {
		t.Errorf("department = %v, want [1 2]", r.body["department"])
	}
	expectError(t, e.do(http.MethodGet, "/wecom/session", ""), http.StatusUnauthorized, "unauthenticated")

	r = e.do(http.MethodPost, "/wecom/logout", "", auth)
	if r.status != http.StatusNoContent {
		t.Fatalf("logout: %d %s", r.status, r.raw)
	}
	if c := r.header.Get("Set-Cookie"); !strings.Contains(c, "wecom_session=;") || !strings.Contains(c, "Max-Age=0") {
		t.Errorf("logout does not clear the cookie: %q", c)
	}
	expectError(t, e.do(http.MethodGet, "/api/x", "", auth), http.StatusUnauthorized, "unauthenticated")
	expectError(t, e.do(http.MethodGet, "/wecom/session", "", auth), http.StatusUnauthorized, "unauthenticated")
	e.backend.none(t)

	// Another session of the same user lives on.
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+login(t, e, "acme", "zhangsan")); r.status != 200 {
		t.Errorf("a new session after logout: %d %s", r.status, r.raw)
	}
}

func TestForwardAuthEndpoint(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	r := e.do(http.MethodGet, "/wecom/auth", "", "Authorization: Bearer "+tok, "X-WeCom-UserId: boss")
	if r.status != 200 || r.header.Get("X-WeCom-UserId") != "zhangsan" || r.header.Get("X-WeCom-Corp") != "acme" ||
		r.header.Get("X-WeCom-Department") != "1,2" {
		t.Fatalf("forward-auth: %d %v", r.status, r.header)
	}
	expectError(t, e.do(http.MethodGet, "/wecom/auth", ""), http.StatusUnauthorized, "unauthenticated")
	e.backend.none(t)
}

func TestUnknownEndpoint(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	expectError(t, e.do(http.MethodGet, "/wecom/nope", ""), http.StatusNotFound, "not_found")
	// A path that merely starts with the prefix's letters is an ordinary
	// protected path.
	expectError(t, e.do(http.MethodGet, "/wecomx", ""), http.StatusUnauthorized, "unauthenticated")
}

// Placeholders reach later handlers; http.auth.user.id is what Caddy's
// access log shows as user_id.
func TestPlaceholders(t *testing.T) {
	e := startGateway(t, gatewayOptions{site: `route {
		%s
		request_header X-Seen-User "{http.auth.user.id}|{http.auth.user.corpid}|{http.auth.user.corp}|{http.auth.user.name}|{http.auth.user.department}"
		reverse_proxy {backend}
	}`})
	tok := login(t, e, "acme", "zhangsan")
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if got := e.backend.last(t).Header.Get("X-Seen-User"); got != "zhangsan|wwacme|acme|张三|1,2" {
		t.Errorf("placeholders = %q", got)
	}
}

func TestCustomCookieAndEndpoints(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "cookie_name sid\n\t\tendpoints /auth/wecom/"})
	r := e.do(http.MethodPost, "/auth/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
	if r.status != 200 || !strings.HasPrefix(r.header.Get("Set-Cookie"), "sid=") {
		t.Fatalf("login at custom prefix: %d %v", r.status, r.header)
	}
	if r := e.do(http.MethodGet, "/api/x", "", "Cookie: sid="+r.str("token")); r.status != 200 {
		t.Errorf("custom cookie refused: %d %s", r.status, r.raw)
	}
	expectError(t, e.do(http.MethodPost, "/wecom/login", `{"code":"x"}`), http.StatusUnauthorized, "unauthenticated")
}
