package wecomauth_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
)

// The forward-auth recipes of docs/forward-auth.md, run as written there:
// the gateway (wecom_auth with an assertion and a review account) on one
// port, a fronting proxy (a second Caddy site of the same Caddy here, a real
// nginx in forwardauth_nginx_test.go) asking it at /wecom/auth, and the
// recording backend behind the proxy. The gateway's own site answers 404
// beyond its endpoints, so whatever reaches the backend came through the
// fronting proxy.

const (
	fwdAudience  = "app.example.com" // the doc's site and the gateway's assertion audience
	fwdForgedJWT = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJib3NzIn0.forged"
)

// fwdForged are the X-WeCom-* headers a hostile client sends, in spellings
// that backends would take for the gateway's (any letter case; CGI and
// FastCGI read '_' as '-', PHP also '.'). fwdDo sends header names exactly
// as written here.
var fwdForged = []string{
	"X-WeCom-UserId: boss",
	"X-WeCom-CorpId: wwevil",
	"X-WeCom-Corp: evil",
	"X-WECOM-NAME: evil",
	"x-wecom-department: 1",
	"X-WeCom-Review: 1",
	"X-WeCom-Assertion: " + fwdForgedJWT,
	"X-WeCom-Code: forged-code",
	"X-WeCom-Session: forged-session",
	"x-wecom-foo: forged",
	"X-WeCom_UserId: boss",
	"X_WeCom_Corp: evil",
	"X.WeCom.UserId: boss",
}

// fwdGatewayNames are the header names the gateway defines (SPEC §4, §5).
var fwdGatewayNames = []string{
	"X-WeCom-UserId", "X-WeCom-CorpId", "X-WeCom-Corp", "X-WeCom-Name", "X-WeCom-Department",
	"X-WeCom-Review", "X-WeCom-Assertion", "X-WeCom-Code", "X-WeCom-Session",
}

// fwdRecipe returns the fenced block that follows the marker
// `<!-- forward-auth recipe: name -->` in docs/forward-auth.md.
func fwdRecipe(t *testing.T, name string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "forward-auth.md"))
	if err != nil {
		t.Fatal(err)
	}
	marker := "<!-- forward-auth recipe: " + name + " -->"
	_, rest, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatalf("docs/forward-auth.md has no %q", marker)
	}
	rest = strings.TrimLeft(rest, "\n")
	if !strings.HasPrefix(rest, "```") {
		t.Fatalf("docs/forward-auth.md: no code fence right after %q", marker)
	}
	_, rest, _ = strings.Cut(rest, "\n")
	body, _, ok := strings.Cut(rest, "\n```")
	if !ok {
		t.Fatalf("docs/forward-auth.md: the %s recipe's fence is not closed", name)
	}
	return body + "\n"
}

// fwdSubstitute replaces the doc's example addresses with the test's,
// failing if one is missing (the doc changed under the test).
func fwdSubstitute(t *testing.T, s string, oldNew ...string) string {
	t.Helper()
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(s, oldNew[i]) {
			t.Fatalf("the recipe no longer contains %q:\n%s", oldNew[i], s)
		}
		s = strings.ReplaceAll(s, oldNew[i], oldNew[i+1])
	}
	return s
}

// fwdAddr is host:port of a base URL.
func fwdAddr(base string) string { return strings.TrimPrefix(base, "http://") }

// startForwardAuthGateway runs the gateway as docs/forward-auth.md sets it
// up (assertion, respond 404 beyond its endpoints, the fronting proxy's
// address 127.0.0.1 in its server's trusted_proxies) with the review
// account, plus the site blocks that sites returns.
func startForwardAuthGateway(t *testing.T, sites func(e *env) string) *env {
	t.Helper()
	return startGateway(t, gatewayOptions{
		extra: "assertion " + fwdAudience + "\n\t\t" + reviewBlock,
		site:  "route {\n\t\t%s\n\t\trespond 404\n\t}",
		sites: func(e *env) string {
			// Only the gateway's server trusts 127.0.0.1 (the fronting
			// proxy); a fronting Caddy must not trust the test client.
			e.global = "servers " + e.gwAddr.CaddyAddr() + " {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}"
			return sites(e)
		},
	})
}

// fwdCheckTrustedProxies checks that of the servers of the running config
// only the gateway's has trusted_proxies.
func fwdCheckTrustedProxies(t *testing.T, e *env) {
	t.Helper()
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Listen         []string        `json:"listen"`
					TrustedProxies json.RawMessage `json:"trusted_proxies"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(testcaddy.Adapt(t, e.config(e.extra)), &cfg); err != nil {
		t.Fatal(err)
	}
	found := false
	for name, srv := range cfg.Apps.HTTP.Servers {
		isGW := slices.Contains(srv.Listen, e.gwAddr.CaddyAddr())
		found = found || isGW
		if isGW != (len(srv.TrustedProxies) > 0) {
			t.Errorf("server %s %v: trusted_proxies %s", name, srv.Listen, srv.TrustedProxies)
		}
	}
	if !found {
		t.Errorf("no server listens on the gateway's %s", e.gwAddr.CaddyAddr())
	}
}

// fwdDo sends a request to base; headers are "Name: value" lines whose
// names are sent exactly as written (not canonicalised).
func fwdDo(e *env, base, method, path, body string, headers ...string) reply {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, h := range headers {
		name, val, _ := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		req.Header[name] = append(req.Header[name], strings.TrimSpace(val))
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// fwdIsWeCom reports whether a header name is one a backend may read as the
// gateway's: X-WeCom- in any case, '_' and '.' read as '-' (CGI, FastCGI
// and PHP fold them together).
func fwdIsWeCom(name string) bool {
	n := strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(name))
	return strings.HasPrefix(n, "x-wecom-")
}

func fwdIsGatewayName(name string) bool {
	return slices.ContainsFunc(fwdGatewayNames, func(g string) bool { return strings.EqualFold(g, name) })
}

// fwdWant is what the backend must get for one request.
type fwdWant struct {
	identity map[string]string // identity headers; the other gateway names must be absent
	cookies  []string          // cookies (name=value) the backend's own that must survive
	authz    string            // the Authorization the backend must get ("" for none)
	token    string            // the gateway token, which must appear nowhere
	method   string
	uri      string
	nginx    bool // stock nginx passes unknown X-WeCom-* names (docs/forward-auth.md)
}

// fwdCheckBackend checks the request the backend got against want: the
// gateway's identity headers and assertion, no client X-WeCom-* value, and
// no trace of the gateway's token.
func fwdCheckBackend(t *testing.T, e *env, got *http.Request, want fwdWant) {
	t.Helper()
	if got.Method != want.method || got.URL.RequestURI() != want.uri {
		t.Errorf("backend got %s %s; want %s %s", got.Method, got.URL.RequestURI(), want.method, want.uri)
	}
	for name, vals := range got.Header {
		if !fwdIsWeCom(name) {
			continue
		}
		canon := http.CanonicalHeaderKey(name)
		if _, ok := want.identity[canon]; ok || canon == "X-Wecom-Assertion" {
			continue // checked below
		}
		if want.nginx && !fwdIsGatewayName(name) && !strings.ContainsAny(name, "_.") {
			t.Logf("as docs/forward-auth.md says, stock nginx passes unknown client names: %s: %q", name, vals)
			continue
		}
		t.Errorf("backend got %s: %q, which the gateway did not set", name, vals)
	}
	for name, v := range want.identity {
		if vals := got.Header.Values(name); len(vals) != 1 || vals[0] != v {
			t.Errorf("backend got %s: %q; want %q", name, vals, v)
		}
	}

	jwts := got.Header.Values("X-WeCom-Assertion")
	if len(jwts) != 1 || jwts[0] == fwdForgedJWT {
		t.Errorf("backend got X-WeCom-Assertion %q; want the gateway's one", jwts)
	} else {
		std, extra := verifyAssertion(t, e, jwts[0], fwdAudience)
		if std.Subject != want.identity["X-Wecom-Userid"] {
			t.Errorf("assertion for %q, request of %q", std.Subject, want.identity["X-Wecom-Userid"])
		}
		// The assertion names the request it was issued for once the gateway
		// takes it from the proxy's X-Forwarded-Method / X-Forwarded-Uri.
		if m, ok := extra["method"]; ok && m != want.method {
			t.Errorf("assertion method claim %v; the backend got %s", m, want.method)
		}
		if p, ok := extra["path"]; ok && p != got.URL.Path {
			t.Errorf("assertion path claim %v; the backend got %s", p, got.URL.Path)
		}
	}

	if a := got.Header.Values("Authorization"); want.authz == "" && len(a) > 0 || want.authz != "" && !slices.Equal(a, []string{want.authz}) {
		t.Errorf("backend got Authorization %q; want %q", a, want.authz)
	}
	for _, c := range got.Cookies() {
		if c.Name == "wecom_session" {
			t.Errorf("backend got the session cookie %q", c.Value)
		}
	}
	var have []string
	for _, c := range got.Cookies() {
		have = append(have, c.Name+"="+c.Value)
	}
	for _, c := range want.cookies {
		if !slices.Contains(have, c) {
			t.Errorf("backend cookies %q; %s was lost (Cookie: %q)", have, c, got.Header.Values("Cookie"))
		}
	}
	if want.token != "" {
		for name, vals := range got.Header {
			for _, v := range vals {
				if strings.Contains(v, want.token) {
					t.Errorf("backend got the gateway's token in %s", name)
				}
			}
		}
	}
}

// fwdCred is one way of presenting a session, and what of the client's own
// Cookie and Authorization the backend must still get.
type fwdCred struct {
	headers []string
	cookies []string // name=value
	authz   string   // the Authorization the backend gets; "" for none
}

// fwdCredentials are the two ways a session comes: the mini program's
// Bearer token, and the cookie among the backend's own cookies (in each
// position of the Cookie header, in a Cookie line of its own, beside a
// Basic Authorization for the backend).
func fwdCredentials(tok string, nginx bool) map[string]fwdCred {
	both := []string{"theme=dark", "lang=zh"}
	creds := map[string]fwdCred{
		"bearer":        {headers: []string{"Authorization: Bearer " + tok, "Cookie: theme=dark; lang=zh"}, cookies: both},
		"cookie middle": {headers: []string{"Cookie: theme=dark; wecom_session=" + tok + "; lang=zh"}, cookies: both},
		"cookie first":  {headers: []string{"Cookie: wecom_session=" + tok + "; theme=dark; lang=zh"}, cookies: both},
		"cookie last":   {headers: []string{"Cookie: theme=dark;lang=zh;wecom_session=" + tok}, cookies: both},
		"cookie line":   {headers: []string{"Cookie: theme=dark; lang=zh", "Cookie: wecom_session=" + tok}, cookies: both},
		"cookie and Basic": {
			headers: []string{"Authorization: Basic YXBwOnNlY3JldA==", "Cookie: theme=dark; wecom_session=" + tok + "; lang=zh"},
			cookies: both, authz: "Basic YXBwOnNlY3JldA==",
		},
		// The gateway takes the Bearer token and ignores the cookies; both
		// copies of the session cookie must still go. The nginx recipe drops
		// every cookie then (docs/forward-auth.md).
		"bearer and two session cookies": {headers: []string{"Authorization: Bearer " + tok,
			"Cookie: wecom_session=" + tok + "; theme=dark; wecom_session=" + tok + "; lang=zh"}, cookies: both},
	}
	if nginx {
		c := creds["bearer and two session cookies"]
		c.cookies = nil
		creds["bearer and two session cookies"] = c
	}
	return creds
}

// exerciseForwardAuth runs what both recipes must do, through the fronting
// proxy at front.
func exerciseForwardAuth(t *testing.T, e *env, front string, nginx bool) {
	tok := login(t, e.at(front, e.sim), "acme", "zhangsan")
	e.backend.none(t)
	user := map[string]string{
		"X-Wecom-Userid":     "zhangsan",
		"X-Wecom-Corpid":     "wwacme",
		"X-Wecom-Corp":       "acme",
		"X-Wecom-Name":       url.PathEscape("张三"),
		"X-Wecom-Department": "1,2",
	}

	t.Run("user", func(t *testing.T) {
		for name, cred := range fwdCredentials(tok, nginx) {
			for _, m := range []string{http.MethodGet, http.MethodPost} {
				t.Run(name+" "+m, func(t *testing.T) {
					hdrs := append(append(slices.Clone(fwdForged), cred.headers...),
						"Connection: X-WeCom-UserId, X-WeCom-Assertion, X-WeCom-Department")
					r := fwdDo(e, front, m, "/api/orders/7?x=1", `{"item":1}`, hdrs...)
					if r.status != http.StatusOK || r.body["backend"] != true {
						e.backend.took()
						t.Fatalf("%d %s", r.status, r.raw)
					}
					fwdCheckBackend(t, e, e.backend.last(t), fwdWant{
						identity: user, cookies: cred.cookies, authz: cred.authz, token: tok,
						method: m, uri: "/api/orders/7?x=1", nginx: nginx,
					})
				})
			}
		}
	})

	t.Run("review session names identity headers in Connection", func(t *testing.T) {
		rtok := reviewLogin(t, e.at(front, e.sim))
		review := map[string]string{"X-Wecom-Userid": "review:reviewer", "X-Wecom-Review": "1"}
		for name, cred := range fwdCredentials(rtok, nginx) {
			t.Run(name, func(t *testing.T) {
				hdrs := append(append(slices.Clone(fwdForged), cred.headers...),
					"Connection: X-WeCom-Review, keep-alive, X-WeCom-UserId,X-WeCom-Assertion")
				r := fwdDo(e, front, http.MethodGet, "/api/public/a", "", hdrs...)
				if r.status != http.StatusOK {
					e.backend.took()
					t.Fatalf("%d %s", r.status, r.raw)
				}
				fwdCheckBackend(t, e, e.backend.last(t), fwdWant{
					identity: review, cookies: cred.cookies, authz: cred.authz, token: rtok,
					method: http.MethodGet, uri: "/api/public/a", nginx: nginx,
				})
			})
		}
		// Judged on the original path, which the proxy sends in
		// X-Forwarded-Uri over the client's own.
		for _, p := range []string{"/api/orders", "/api/public/../orders"} {
			r := fwdDo(e, front, http.MethodGet, p, "", "Authorization: Bearer "+rtok, "X-Forwarded-Uri: /api/public/a")
			if nginx {
				expectError(t, r, http.StatusForbidden, "user_not_allowed") // nginx's error_page
			} else {
				expectError(t, r, http.StatusForbidden, "review_forbidden")
			}
		}
		e.backend.none(t)
	})

	t.Run("no session", func(t *testing.T) {
		for _, cred := range [][]string{
			nil,
			{"Authorization: Bearer not-a-token"},
			{"Cookie: theme=dark; wecom_session=not-a-token"},
			{"Authorization: Basic Ym9zczpib3Nz"},
		} {
			hdrs := append(slices.Clone(fwdForged), cred...)
			r := fwdDo(e, front, http.MethodGet, "/api/orders", "", hdrs...)
			expectError(t, r, http.StatusUnauthorized, "unauthenticated")
		}
		e.backend.none(t)
	})

	t.Run("the forward-auth answer is for the proxy alone", func(t *testing.T) {
		for _, p := range []string{
			"/wecom/auth", "/wecom/auth?x=1", "/wecom//auth", "/wecom/./auth", "/wecom/%61uth",
			"/x/../wecom/auth", "/WECOM/AUTH", "/wecom/auth/", "//wecom/auth", "/_wecom_auth",
		} {
			r := fwdDo(e, front, http.MethodGet, p, "", "Authorization: Bearer "+tok,
				"X-Forwarded-Method: DELETE", "X-Forwarded-Uri: /api/admin/all", "X-Forwarded-Host: "+fwdAudience)
			for name, vals := range r.header {
				if fwdIsWeCom(name) {
					t.Errorf("%s answered %d with %s: %q", p, r.status, name, vals)
				}
			}
			if r.status == http.StatusOK && r.body["backend"] != true {
				t.Errorf("%s: 200 not from the backend: %v %q", p, r.header, r.raw)
			}
			if p == "/wecom/auth" && r.status != http.StatusNotFound {
				t.Errorf("%s: %d %s; want 404", p, r.status, r.raw)
			}
		}
		// A path the proxy sends to the backend is authenticated as usual.
		e.backend.took()
	})

	t.Run("the gateway's endpoints", func(t *testing.T) {
		r := fwdDo(e, front, http.MethodGet, "/wecom/session", "", "Authorization: Bearer "+tok)
		if r.status != http.StatusOK || r.str("userid") != "zhangsan" {
			t.Errorf("session through the proxy: %d %s", r.status, r.raw)
		}
		if r := fwdDo(e, front, http.MethodGet, "/wecom/jwks.json", ""); r.status != http.StatusOK || !strings.Contains(r.raw, `"keys"`) {
			t.Errorf("jwks through the proxy: %d %s", r.status, r.raw)
		}
		other := login(t, e.at(front, e.sim), "acme", "zhangsan")
		if r := fwdDo(e, front, http.MethodPost, "/wecom/logout", "", "Cookie: theme=dark; wecom_session="+other); r.status != http.StatusNoContent {
			t.Errorf("logout through the proxy: %d %s", r.status, r.raw)
		}
		expectError(t, fwdDo(e, front, http.MethodGet, "/api/orders", "", "Authorization: Bearer "+other),
			http.StatusUnauthorized, "unauthenticated")
		e.backend.none(t)
	})
}

// TestForwardAuthCaddyRecipe runs docs/forward-auth.md's Caddy recipe: a
// second site of the same Caddy with forward_auth to the gateway.
//
// Caddy drops client headers with '_' or '.' in their names by default
// (2.11); the recipe strips the '_' spellings itself all the same, for
// servers that let some in (expected_underscore_headers) and older Caddy. A
// second copy of the recipe on a server that lets them in shows it does.
func TestForwardAuthCaddyRecipe(t *testing.T) {
	addrs := testcaddy.Listen(t, 2)
	front, lax := addrs[0].URL(), addrs[1].URL()
	var site string
	e := startForwardAuthGateway(t, func(e *env) string {
		recipe := func(addr string) string {
			return fwdSubstitute(t, fwdRecipe(t, "caddy"),
				fwdAudience+" {", addr+" {",
				"127.0.0.1:8080", fwdAddr(e.gw),
				"127.0.0.1:9000", e.backend.addr)
		}
		e.global += fmt.Sprintf("\n\tservers %s {\n\t\texpected_underscore_headers %s\n\t}",
			addrs[1].CaddyAddr(), strings.Join(fwdUnderscoreNames, " "))
		site = recipe(front)
		return site + "\n" + recipe(lax)
	})
	fwdCheckTrustedProxies(t, e)
	fwdCheckCaddyOrder(t, site)
	exerciseForwardAuth(t, e, front, false)

	t.Run("underscore spellings the server lets in", func(t *testing.T) {
		tok := login(t, e.at(lax, e.sim), "acme", "zhangsan")
		hdrs := []string{"Authorization: Bearer " + tok, "Cookie: theme=dark"}
		for _, n := range fwdUnderscoreNames {
			hdrs = append(hdrs, n+": forged")
		}
		if r := fwdDo(e, lax, http.MethodGet, "/api/x", "", hdrs...); r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		fwdCheckBackend(t, e, e.backend.last(t), fwdWant{
			identity: map[string]string{
				"X-Wecom-Userid": "zhangsan", "X-Wecom-Corpid": "wwacme", "X-Wecom-Corp": "acme",
				"X-Wecom-Name": url.PathEscape("张三"), "X-Wecom-Department": "1,2",
			},
			cookies: []string{"theme=dark"}, token: tok, method: http.MethodGet, uri: "/api/x",
		})
	})
}

// fwdUnderscoreNames are '_' spellings of the gateway's headers (the server
// of the second recipe copy lets exactly these in).
var fwdUnderscoreNames = []string{"X-WeCom_UserId", "X_WeCom_Corp", "X_WeCom-Review", "X-WeCom_Assertion"}

// fwdCheckCaddyOrder checks what the Caddy recipe adapts to: the route
// around forward_auth runs its handlers in the order written.
func fwdCheckCaddyOrder(t *testing.T, site string) {
	t.Helper()
	var cfg any
	if err := json.Unmarshal(testcaddy.Adapt(t, "{\n\tadmin off\n}\n"+site), &cfg); err != nil {
		t.Fatal(err)
	}
	var steps []string
	var walk func(v any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case map[string]any:
			if routes, ok := v["routes"].([]any); ok && v["handler"] == "subroute" {
				var s []string
				isIt := false
				for _, r := range routes {
					route, _ := r.(map[string]any)
					hs, _ := route["handle"].([]any)
					for _, h := range hs {
						step := fwdStep(h.(map[string]any))
						isIt = isIt || strings.HasPrefix(step, "forward_auth")
						if route["match"] != nil {
							step += " (matched)"
						}
						s = append(s, step)
					}
				}
				if isIt {
					steps = s
					return true
				}
			}
			for _, c := range v {
				if walk(c) {
					return true
				}
			}
		case []any:
			for _, c := range v {
				if walk(c) {
					return true
				}
			}
		}
		return false
	}
	walk(cfg)
	want := []string{
		"-X-WeCom-*", "-X-WeCom_*", "-X_WeCom-*", "-X_WeCom_*", "Connection~",
		"forward_auth /wecom/auth",
		"-Authorization (matched)", "Cookie~", "Cookie~",
		"reverse_proxy",
	}
	if !slices.Equal(steps, want) {
		t.Errorf("the recipe's route adapts to\n\t%q\nwant\n\t%q", steps, want)
	}
}

// fwdStep names one handler of the adapted recipe.
func fwdStep(h map[string]any) string {
	switch h["handler"] {
	case "headers":
		req, _ := h["request"].(map[string]any)
		var parts []string
		if del, ok := req["delete"].([]any); ok {
			for _, d := range del {
				parts = append(parts, fmt.Sprint("-", d))
			}
		}
		if rep, ok := req["replace"].(map[string]any); ok {
			for f := range rep {
				parts = append(parts, f+"~")
			}
		}
		return strings.Join(parts, " ")
	case "reverse_proxy":
		if rw, ok := h["rewrite"].(map[string]any); ok {
			return fmt.Sprint("forward_auth ", rw["uri"])
		}
		return "reverse_proxy"
	}
	return fmt.Sprint(h["handler"])
}
