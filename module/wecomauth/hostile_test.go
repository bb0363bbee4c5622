package wecomauth_test

// Bad input against a real Caddy: oversized and malformed headers and
// bodies, duplicate credentials, header injection, and path tricks against
// review `allow` rules, judged on what the recording backend received.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"net/url"
	"path"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawResponse is an answer to a request written byte for byte.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// rawDo writes req (a whole HTTP/1.1 request) to the gateway as is, so that
// requests Go's client refuses to build (CR/LF, bytes that are not UTF-8,
// odd paths) reach the server.
func rawDo(t *testing.T, base, req string) rawResponse {
	t.Helper()
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", truncate(req, 200), err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// rawGet builds a GET with the given header lines (each without CRLF).
func rawGet(e *env, target string, lines ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\n", target, strings.TrimPrefix(e.gw, "http://"))
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n")
	return b.String()
}

// onlyGatewayIdentity fails unless the X-WeCom-* headers the backend got
// are exactly want (canonical names).
func onlyGatewayIdentity(t *testing.T, what string, got http.Header, want map[string]string) {
	t.Helper()
	w := wecomHeaders(got)
	if !sameIdentity(w, want) {
		t.Errorf("%s: backend X-WeCom-* headers = %q, want exactly %q", what, w, want)
	}
}

var zhangsanAtBackend = map[string]string{
	"X-Wecom-Userid": "zhangsan", "X-Wecom-Corpid": "wwacme", "X-Wecom-Corp": "acme",
	"X-Wecom-Name": url.PathEscape("张三"), "X-Wecom-Department": "1,2",
}

// Oversized input is refused with a 4xx, never a 5xx, and never echoed.
// Caddy reads at most 16 KiB of request headers (431 beyond); below that
// the gateway itself answers.
func TestHostileOversizedInput(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: reviewBlock})
	for _, size := range []int{8 << 10, 64 << 10} {
		big := strings.Repeat("A", size)
		for _, c := range []struct {
			name, method, path, header string
			status                     int
			code                       string
		}{
			{"bearer", http.MethodGet, "/api/x", "Authorization: Bearer " + big, 401, "unauthenticated"},
			{"cookie", http.MethodGet, "/api/x", "Cookie: wecom_session=" + big, 401, "unauthenticated"},
			{"other scheme", http.MethodGet, "/api/x", "Authorization: Basic " + big, 401, "unauthenticated"},
			{"session", http.MethodGet, "/wecom/session", "Authorization: Bearer " + big, 401, "unauthenticated"},
			{"forward-auth", http.MethodGet, "/wecom/auth", "Authorization: Bearer " + big, 401, "unauthenticated"},
			{"inline code", http.MethodGet, "/api/x", "X-WeCom-Code: " + big, 400, "invalid_request"},
			{"inline corp", http.MethodGet, "/api/x", "X-WeCom-Corp: " + big, 401, "unauthenticated"},
			{"logout", http.MethodPost, "/wecom/logout", "Authorization: Bearer " + big, 204, ""},
			{"login", http.MethodPost, "/wecom/login", "Authorization: Bearer " + big, 400, "invalid_request"},
		} {
			name := fmt.Sprintf("%d KiB %s", size>>10, c.name)
			r := e.do(c.method, c.path, "", c.header)
			switch {
			case r.status >= 500 || r.status < 200:
				t.Errorf("%s: %d %s", name, r.status, truncate(r.raw, 200))
			case size > 16<<10:
				if r.status != http.StatusRequestHeaderFieldsTooLarge {
					t.Errorf("%s: %d, want 431 from the server", name, r.status)
				}
			case c.code == "":
				if r.status != c.status {
					t.Errorf("%s: %d, want %d", name, r.status, c.status)
				}
			default:
				expectError(t, r, c.status, c.code)
			}
			if strings.Contains(r.raw, big[:1024]) {
				t.Errorf("%s: the answer echoes the input", name)
			}
		}
	}

	// An inline code with an unknown corp name of 8 KiB: 400, echoing at most a bit.
	r := e.do(http.MethodGet, "/api/x", "", "X-WeCom-Code: "+e.code("acme", "zhangsan"), "X-WeCom-Corp: "+strings.Repeat("c", 8<<10))
	expectError(t, r, http.StatusBadRequest, "invalid_request")
	if len(r.raw) > 1024 {
		t.Errorf("an unknown 8 KiB corp name is answered with %d bytes", len(r.raw))
	}

	// Bodies: login and review login refuse more than a few KiB.
	for _, p := range []string{"/wecom/login", "/wecom/review/login"} {
		for _, body := range []string{
			`{"code":"` + strings.Repeat("a", 1<<20) + `"}`,
			`{"username":"reviewer","password":"` + strings.Repeat("p", 1<<20) + `"}`,
			strings.Repeat(" ", 1<<20) + `{"code":"x"}`,
			strings.Repeat("[", 100000),
			`{"code":"x","pad":"` + strings.Repeat("\\u0000", 10000) + `"}`,
		} {
			r := e.do(http.MethodPost, p, body)
			expectError(t, r, http.StatusBadRequest, "invalid_request")
		}
	}

	// 8 MiB to a protected path without a credential: 401, not a read of it all.
	r = e.do(http.MethodPost, "/api/upload", strings.Repeat("x", 8<<20))
	expectError(t, r, http.StatusUnauthorized, "unauthenticated")

	// Headers far beyond the server's limit: a 4xx from the server itself.
	huge := rawDo(t, e.gw, rawGet(e, "/api/x", "X-Big: "+strings.Repeat("b", 2<<20)))
	if huge.status < 400 || huge.status >= 500 {
		t.Errorf("2 MiB of headers: %d", huge.status)
	}

	// Many X-WeCom-* headers (as many as fit in 16 KiB): all stripped.
	tok := login(t, e, "acme", "zhangsan")
	lines := []string{"Authorization: Bearer " + tok}
	for i := range 200 {
		lines = append(lines, fmt.Sprintf("X-WeCom-Spoof-%d: %d", i, i), fmt.Sprintf("x-wecom-userid: boss%d", i))
	}
	many := rawDo(t, e.gw, rawGet(e, "/api/x", lines...))
	if many.status != http.StatusOK {
		t.Fatalf("400 spoofed headers with a valid session: %d %s", many.status, many.body)
	}
	for _, got := range e.backend.took() {
		onlyGatewayIdentity(t, "many spoofed headers", got.Header, zhangsanAtBackend)
	}
	e.backend.none(t)
}

// Bytes that are not UTF-8, in header names and values and in bodies.
func TestHostileNonUTF8(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")

	// Header names with such bytes are not HTTP tokens: the server refuses them.
	for _, name := range []string{"X-WeCom-UserId\xff", "X-We\xc3\x87om-UserId", "\xff\xfe"} {
		r := rawDo(t, e.gw, rawGet(e, "/api/x", "Authorization: Bearer "+tok, name+": boss"))
		if r.status < 400 || r.status >= 500 {
			t.Errorf("header name %q: %d", name, r.status)
		}
		for _, got := range e.backend.took() {
			onlyGatewayIdentity(t, fmt.Sprintf("name %q", name), got.Header, zhangsanAtBackend)
		}
	}
	// Values may carry such bytes (obs-text); spoofed ones are still stripped.
	r := rawDo(t, e.gw, rawGet(e, "/api/x", "Authorization: Bearer "+tok, "X-WeCom-UserId: \xff\xfeboss", "X-Other: \xff"))
	if r.status != http.StatusOK {
		t.Errorf("a value with 0xff: %d %s", r.status, r.body)
	}
	for _, got := range e.backend.took() {
		onlyGatewayIdentity(t, "value 0xff", got.Header, zhangsanAtBackend)
	}
	// …and as a credential they are simply not one.
	for _, line := range []string{"Authorization: Bearer \xff\xfe\xfd", "Cookie: wecom_session=\xff" + tok, "X-WeCom-Code: \xc3\x28"} {
		r := rawDo(t, e.gw, rawGet(e, "/api/x", line))
		if r.status != http.StatusUnauthorized && r.status != http.StatusBadRequest {
			t.Errorf("%q: %d %s", truncate(line, 40), r.status, r.body)
		}
	}
	// An inline corp name that is not UTF-8 is named back as valid JSON.
	r = rawDo(t, e.gw, rawGet(e, "/api/x", "X-WeCom-Code: "+e.code("acme", "zhangsan"), "X-WeCom-Corp: \xff\xfe"))
	if r.status != http.StatusBadRequest || !strings.Contains(r.body, `"invalid_request"`) || !isUTF8JSON(r.body) {
		t.Errorf("non-UTF-8 corp: %d %q", r.status, r.body)
	}
	// In a login body.
	for _, body := range []string{"{\"code\":\"\xff\xfe\"}", "\xff{\"code\":\"x\"}", "{\"code\":\"" + e.code("acme", "zhangsan") + "\",\"corp\":\"\xff\"}"} {
		r := e.do(http.MethodPost, "/wecom/login", body)
		if r.status != http.StatusBadRequest && r.status != http.StatusUnauthorized {
			t.Errorf("body %q: %d %s", body, r.status, r.raw)
		}
		if !isUTF8JSON(r.raw) {
			t.Errorf("body %q: answer is not UTF-8 JSON: %q", body, r.raw)
		}
	}
	e.backend.none(t)
}

func isUTF8JSON(s string) bool {
	return strings.HasPrefix(s, "{") && strings.ToValidUTF8(s, "\uFFFD") == s
}

// More than one credential: refused when they are of one kind, decided by
// the Bearer token when they differ, and none reaches the backend.
func TestHostileDuplicateCredentials(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	a := login(t, e, "acme", "zhangsan")
	b := login(t, e, "partner", "zhaoliu")

	expectError(t, e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+a, "Authorization: Bearer "+a),
		http.StatusUnauthorized, "unauthenticated")
	expectError(t, e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+a, "Authorization: Bearer "+b),
		http.StatusUnauthorized, "unauthenticated")
	expectError(t, e.do(http.MethodGet, "/api/x", "", "Cookie: wecom_session="+a+"; wecom_session="+b),
		http.StatusUnauthorized, "unauthenticated")
	expectError(t, e.do(http.MethodGet, "/api/x", "", "Cookie: wecom_session="+a, "Cookie: wecom_session="+a),
		http.StatusUnauthorized, "unauthenticated")
	// Two inline codes are no credential at all (and spend no code).
	expectError(t, e.do(http.MethodGet, "/api/x", "", "X-WeCom-Code: "+e.code("acme", "zhangsan"), "X-WeCom-Code: "+e.code("acme", "zhangsan")),
		http.StatusUnauthorized, "unauthenticated")
	// A bad Bearer is not rescued by a good cookie.
	expectError(t, e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer junk", "Cookie: wecom_session="+a),
		http.StatusUnauthorized, "unauthenticated")
	e.backend.none(t)

	// Bearer and a cookie of another user: the Bearer decides, and neither
	// token goes on.
	r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+b, "Cookie: theme=dark; wecom_session="+a)
	if r.status != http.StatusOK {
		t.Fatalf("bearer + cookie: %d %s", r.status, r.raw)
	}
	got := e.backend.last(t)
	if got.Header.Get("X-WeCom-UserId") != "zhaoliu" || got.Header.Get("Authorization") != "" {
		t.Errorf("bearer + cookie: backend identity %q, Authorization %q", got.Header.Get("X-WeCom-UserId"), got.Header.Get("Authorization"))
	}
	if c := got.Header.Get("Cookie"); c != "theme=dark" {
		t.Errorf("bearer + cookie: backend Cookie = %q", c)
	}

	// A session and an inline code of someone else: the session decides.
	r = e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+a, "X-WeCom-Code: "+e.code("partner", "zhaoliu"), "X-WeCom-Corp: partner")
	if r.status != http.StatusOK || r.header.Get("X-WeCom-Session") != "" {
		t.Fatalf("bearer + inline code: %d %v", r.status, r.header)
	}
	onlyGatewayIdentity(t, "bearer + inline code", e.backend.last(t).Header, zhangsanAtBackend)
}

// The session token never goes on in the Cookie header, however the
// cookie is spelled: a backend parses cookies as Go's net/http does
// (blanks around the name trimmed, one pair of quotes removed).
func TestHostileCookieSpellingsNeverReachBackend(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	var leaked []string
	for _, c := range []string{
		"wecom_session=" + tok,
		"a=1;wecom_session=" + tok + ";b=2",
		"  wecom_session=" + tok + "  ",
		`wecom_session="` + tok + `"`,
		`wecom_session="` + tok,
		"wecom_session =" + tok,
		"wecom_session\t=" + tok,
		"a=1; wecom_session  =" + tok,
		" wecom_session = " + tok,
	} {
		// Alone, and beside the same token as Bearer (which then decides).
		for _, extra := range [][]string{nil, {"Authorization: Bearer " + tok}} {
			r := e.do(http.MethodGet, "/api/x", "", append([]string{"Cookie: " + c}, extra...)...)
			if r.status != http.StatusOK {
				continue // not read as a session, and nothing went on
			}
			got := e.backend.last(t)
			for _, ck := range (&http.Request{Header: got.Header}).Cookies() {
				if ck.Name == "wecom_session" && ck.Value == tok {
					leaked = append(leaked, fmt.Sprintf("%q (with Bearer: %v)", truncate(c, 24), extra != nil))
				}
			}
		}
	}
	if len(leaked) > 0 {
		t.Run("BUG", func(t *testing.T) {
			t.Fatalf("the session token reached the backend as the cookie %s for %s: check.go sessionCookie and "+
				"headers.go removeToken compare the cookie name untrimmed (`strings.Cut(strings.TrimSpace(part), \"=\")`), "+
				"while Go's and most backends' cookie parsers trim blanks around it (textproto.TrimString); removeToken "+
				"should drop every pair whose trimmed name is the cookie name", "wecom_session", strings.Join(leaked, ", "))
		})
	}
}

// CR/LF in header values or the path cannot add headers toward the
// backend: the server refuses the request, or the spoof is one more
// X-WeCom-* header the gateway strips.
func TestHostileHeaderInjection(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	auth := "Authorization: Bearer " + tok
	for _, req := range []string{
		rawGet(e, "/api/x", auth, "X-Note: a\rX-WeCom-UserId: boss"),
		rawGet(e, "/api/x", auth, "X-Note: a\nX-WeCom-UserId: boss"),
		rawGet(e, "/api/x", auth, "X-Note: a", " X-WeCom-UserId: boss"), // obs-fold
		rawGet(e, "/api/x", auth, "X-Note: a", "\tX-WeCom-UserId: boss"),
		rawGet(e, "/api/x", auth, "X-Note: a\x00X-WeCom-UserId: boss"),
		rawGet(e, "/api/x", auth, "X-WeCom-UserId : boss"),
		rawGet(e, "/api/x", auth, " X-WeCom-UserId: boss"),
		rawGet(e, "/api/x", auth+"\r\nX-WeCom-UserId: boss"),
		rawGet(e, "/api/x", auth+"\rX-WeCom-UserId: boss"),
		rawGet(e, "/api/x%0d%0aX-WeCom-UserId:%20boss", auth),
		rawGet(e, "/api/x?q=%0d%0aX-WeCom-UserId:%20boss", auth),
		rawGet(e, "/api/x", auth, "X-WeCom-Code: a\rX-WeCom-UserId: boss"),
		rawGet(e, "/api/x", "X-WeCom-Code: "+e.code("acme", "zhangsan"), "X-WeCom-Corp: acme\rX-WeCom-UserId: boss"),
	} {
		r := rawDo(t, e.gw, req)
		if r.status >= 500 {
			t.Errorf("%q: %d %s", truncate(req, 120), r.status, r.body)
		}
		for _, got := range e.backend.took() {
			onlyGatewayIdentity(t, fmt.Sprintf("%q", truncate(req, 120)), got.Header, zhangsanAtBackend)
		}
	}

	// A display name from WeCom with CR/LF stays one percent-encoded value.
	e.setUser("acme", "zhangsan", map[string]any{"name": "张三\r\nX-WeCom-UserId: boss\r\n"})
	evil := login(t, e, "acme", "zhangsan")
	r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+evil)
	if r.status != http.StatusOK {
		t.Fatalf("name with CR/LF: %d %s", r.status, r.raw)
	}
	got := e.backend.last(t)
	want := map[string]string{}
	for k, v := range zhangsanAtBackend {
		want[k] = v
	}
	want["X-Wecom-Name"] = url.PathEscape("张三\r\nX-WeCom-UserId: boss\r\n")
	onlyGatewayIdentity(t, "name with CR/LF", got.Header, want)
}

// Names that a backend folds into an X-WeCom-* header: CGI/FastCGI
// (PHP), WSGI and Rack turn "-", "_" (and, in PHP, ".") alike into "_"
// (HTTP_X_WECOM_USERID), so "X-WeCom_UserId" is X-WeCom-UserId to them.
// Caddy's fastcgi transport builds the environment from the header map in
// map order, so such a client header would win about half the time, and
// always where the gateway sets none (corp headers of a review session,
// X-WeCom-Review of a user). stripClientHeaders matches "X-WeCom-" only;
// what stops these is Caddy's server (2.11+), which drops header names with
// "_" or "." unless allowlisted (GHSA-f59h-q822-g45g). This test keeps that
// true. Go's net/http/fcgi stands in for PHP-FPM.
func TestHostileUnderscoreHeadersToFastCGI(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []http.Header
	go func() {
		_ = fcgi.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Header.Clone())
			mu.Unlock()
			_, _ = io.WriteString(w, "ok")
		}))
	}()
	t.Cleanup(func() { l.Close() })

	e := startGateway(t, gatewayOptions{extra: reviewBlock, site: "%s\n\treverse_proxy " + l.Addr().String() + " {\n\t\ttransport fastcgi\n\t}"})
	tok := login(t, e, "acme", "zhangsan")
	rtok := reviewLogin(t, e)

	spoofed := map[string]bool{}
	for range 40 {
		r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok,
			"X-WeCom_UserId: boss", "X_WeCom_Review: 1", "X-WECOM_DEPARTMENT: 1,2,3,999", "X-WeCom.Name: boss",
			"X.WeCom_Department: 999")
		if r.status != http.StatusOK {
			t.Fatalf("through fastcgi: %d %s", r.status, r.raw)
		}
		r = e.do(http.MethodGet, "/api/public/a", "", "Authorization: Bearer "+rtok,
			"X-WeCom_CorpId: wwacme", "X-WeCom_Corp: acme")
		if r.status != http.StatusOK {
			t.Fatalf("review through fastcgi: %d %s", r.status, r.raw)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Fatal("the FastCGI backend saw nothing")
	}
	for _, h := range seen {
		if h.Get("X-Wecom-Review") == "1" && h.Get("X-Wecom-Corp") != "" {
			spoofed["X-WeCom-Review on a user session"] = true
		}
		if h.Get("X-Wecom-Userid") == "boss" || h.Get("X-Wecom-Name") == "boss" {
			spoofed["X-WeCom-UserId"] = true
		}
		if strings.Contains(h.Get("X-Wecom-Department"), "999") {
			spoofed["X-WeCom-Department"] = true
		}
		if h.Get("X-Wecom-Review") == "1" && h.Get("X-Wecom-Corpid") == "wwacme" {
			spoofed["X-WeCom-CorpId on a review session"] = true
		}
	}
	for n := range spoofed {
		t.Errorf("a client spoofed %s at a FastCGI backend with \"_\" or \".\" for \"-\" in the header name", n)
	}
}

// Review sessions and path tricks. A review session may reach only paths
// matching its allow rules (/api/public/*, /api/version) as the backend
// sees them: the path the gateway judged must be the path that goes on.
func TestHostileReviewPathTricks(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: reviewBlock})
	rtok := reviewLogin(t, e)
	auth := "Authorization: Bearer " + rtok

	tricks := []string{
		// dot segments, plain and encoded
		"/api/orders/../public/x", "/api/orders/./../public/x", "/api/orders/%2e%2e/public/x",
		"/api/orders/.%2e/public/x", "/api/orders/%2E%2E/public/x", "/api/public/../orders",
		"/api/public/%2e%2e/orders", "/api/public/x/../../orders", "/API/PUBLIC/../ORDERS",
		"/api/public/x/..", "/api/public/.", "/./api/public/x", "/api/./public/x",
		// encoded slashes and backslashes
		"/api/orders%2F..%2Fpublic/x", "/api/orders/..%2Fpublic/x", "/api/public%2F..%2Forders",
		"/api/public/%2e%2e%2forders", "/api%2Fpublic/x", "/api/public/..%5Corders",
		"/api/public/..\\orders", "/api/public/\\..\\..\\orders", "/api/public/%5c..%5c..%5corders",
		"/api/orders\\..\\public\\x", "/api/orders%5c..%5cpublic%5cx",
		// path parameters (Tomcat, Jetty, Spring read "..;" as "..")
		"/api/public/..;/orders", "/api/public/..%3B/orders", "/api/public;/../orders", "/api/version;x",
		"/api/public/x;/../../orders",
		// double slashes
		"//api/orders", "//api/public/x", "/api/public//x", "/api//public/x", "/api/public//../orders",
		// trailing dots, spaces, NUL, case
		"/api/version.", "/api/version..", "/api/version%2e", "/api/version/", "/api/version%20",
		"/api/version%00", "/api/public/x/..%00/../orders", "/API/VERSION", "/Api/Public/x",
		// query and fragment never count
		"/api/public/x?/../../orders", "/api/orders?next=/api/public/x", "/api/public/x#/../../orders",
		// absolute form
		e.gw + "/api/orders/../public/x", e.gw + "/api/public/x",
	}
	// What the backend must not be able to read as a path outside the rules.
	type pathFinding struct{ key, text string }
	var passed []pathFinding
	for _, p := range tricks {
		r := rawDo(t, e.gw, rawGet(e, p, auth))
		reqs := e.backend.took()
		switch {
		case r.status >= 500:
			t.Errorf("%s: %d", p, r.status)
		case r.status != http.StatusOK:
			if len(reqs) != 0 {
				t.Errorf("%s: answered %d but the backend was reached", p, r.status)
			}
			continue
		}
		if len(reqs) != 1 {
			t.Errorf("%s: 200 but the backend got %d requests", p, len(reqs))
			continue
		}
		if bad := reviewPathProblem(reqs[0]); bad != "" {
			key := strings.Replace(p, e.gw, "abs:", 1)
			passed = append(passed, pathFinding{key, fmt.Sprintf("%s → backend %q (%s)", p, reqs[0].RequestURI, bad)})
		}
	}
	// Forward-auth judges X-Forwarded-Uri the same way; what the front
	// proxy then sends on is that URI.
	for _, p := range []string{"/api/orders/../public/x", "/api/orders/%2e%2e/public/x", "/api/public/..;/orders", "/api/public/..%5Corders"} {
		r := e.do(http.MethodGet, "/wecom/auth", "", auth, "X-Forwarded-Uri: "+p)
		if r.status == http.StatusOK {
			fake := &http.Request{RequestURI: p}
			fake.URL, _ = url.ParseRequestURI(p)
			if fake.URL != nil {
				if bad := reviewPathProblem(fake); bad != "" {
					passed = append(passed, pathFinding{"fwd:" + p, fmt.Sprintf("forward-auth X-Forwarded-Uri %s → 200 (%s)", p, bad)})
				}
			}
		}
	}
	e.backend.none(t)

	for _, f := range passed {
		t.Errorf("review session passed with a path the backend may read outside the allow rules: %s", f.text)
	}
}

// reviewPathProblem says why a path the backend received could be read as
// outside /api/public/* and /api/version by some backend, or "".
func reviewPathProblem(r *http.Request) string {
	raw, _, _ := strings.Cut(r.RequestURI, "?")
	if u, err := url.Parse(raw); err == nil && u.IsAbs() {
		raw = u.EscapedPath()
	}
	decoded := r.URL.Path
	readings := map[string]string{
		"as received":                   decoded,
		"dot segments resolved":         path.Clean(decoded),
		"';' parameters dropped":        path.Clean(dropPathParams(decoded)),
		"'\\' as '/'":                   path.Clean(strings.ReplaceAll(decoded, `\`, "/")),
		"raw, escapes kept":             raw,
		"raw, dot segments resolved":    path.Clean(raw),
		"raw, ';' parameters dropped":   path.Clean(dropPathParams(raw)),
		"%2e and %2f decoded once more": path.Clean(strings.NewReplacer("%2e", ".", "%2E", ".", "%2f", "/", "%2F", "/", "%5c", "/", "%5C", "/").Replace(raw)),
	}
	for name, p := range readings {
		if !literallyAllowed(p) {
			return name + ": " + p
		}
	}
	return ""
}

// literallyAllowed matches the review rules without any normalizing.
func literallyAllowed(p string) bool {
	lp := strings.ToLower(p)
	return lp == "/api/version" || (strings.HasPrefix(lp, "/api/public/") && len(lp) > len("/api/public/") &&
		!strings.Contains(lp, "/../") && !strings.HasSuffix(lp, "/..") && !strings.Contains(lp, "/./") &&
		!strings.HasSuffix(lp, "/.") && !strings.Contains(lp, "//") && !strings.ContainsAny(lp, `\;`) &&
		!strings.Contains(lp, "\x00"))
}

func dropPathParams(p string) string {
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i], _, _ = strings.Cut(s, ";")
	}
	return strings.Join(segs, "/")
}
