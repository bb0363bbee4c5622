package wecomauth_test

// Fuzz targets of the wecom_auth handler, on the direct-handler fixture
// (unit_test.go): no Caddy is started per input, so each one costs a few
// hundred microseconds. The seeds are the f.Add calls here; a crasher the
// fuzzer finds goes into them too.
//
//	go test -run '^$' -fuzz '^FuzzLoginBody$' -fuzztime 20s ./module/wecomauth/
//	go test -run '^$' -fuzz '^FuzzHeaderHygiene$' -fuzztime 20s ./module/wecomauth/
//	go test -run '^$' -fuzz '^FuzzCaddyfile$' -fuzztime 20s ./module/wecomauth/

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/wecomgate/wecomgate/module/wecomauth"
)

// fuzzLimits keeps the login limiter out of the way: failures are what a
// fuzzer produces, and it must not answer every later input with 429.
func fuzzLimits(h *wecomauth.Handler) {
	h.LoginRate = &wecomauth.LoginRate{Failures: 1 << 30, Window: caddy.Duration(time.Hour)}
}

// Placeholders a login body may hold: each becomes a code freshly minted
// for that user, so the fuzzer can reach the successful paths without
// knowing a code. Only bodies that held one may sign in.
var loginPlaceholders = []struct{ mark, corp, user string }{
	{"@ACME@", "acme", "zhangsan"},
	{"@PARTNER@", "partner", "zhaoliu"},
	{"@LISI@", "acme", "lisi"},
	{"@OTHER@", "other", "sunjiu"},
}

var fzLoginSeeds = []string{
	`{"code":"@ACME@"}`,
	`{"code":"@ACME@","corp":"acme"}`,
	`{"code":"@PARTNER@","corp":"partner"}`,
	`{"code":"@PARTNER@"}`,
	`{"code":"@ACME@","corp":"partner"}`,
	`{"code":"@LISI@"}`,
	`{"code":"@OTHER@"}`,
	`{"CODE":"@ACME@","Corp":"ACME"}`,
	`{"code":"@ACME@","code":"nope"}`,
	`{"code":"nope","code":"@ACME@"}`,
	`{"code":"@ACME@"}]`,
	`{"code":"@ACME@"} {}`,
	`{"code":"@ACME@"}` + "\n",
	`{"code":["@ACME@"]}`,
	`{"code":"@ACME@\u0000"}`,
	`{"code":"\u0040ACME@"}`,
	`{"code":"@ACME@","corp":"` + strings.Repeat("x", 100) + `"}`,
	`{"code":"` + strings.Repeat("a", 300) + `"}`,
	`{"code":"` + strings.Repeat("a", 5000) + `"}`,
	`{"code":"0123456789abcdef0123456789abcdef"}`,
	`{"code":"../../cgi-bin/gettoken?corpid=wwacme&corpsecret=x"}`,
	`{"code":"a&access_token=x#"}`,
	`{}`, `[]`, `null`, `""`, `"abc"`, `{"code":1}`, `{"code":null}`, `{`, ``, "\xff\xfe{", `{"code":"\ud800"}`,
	`{"username":"reviewer","password":"review-demo"}`,
	`{"username":"reviewer","password":"review-demo"}]`,
	`{"username":"REVIEWER","password":"review-demo"}`,
	`{"username":"reviewer","password":"review-demo\u0000"}`,
	`{"username":"reviewer","password":"nope"}`,
	`{"username":"ghost","password":"review-demo"}`,
	`{"username":"reviewer"}`,
	`{"username":"","password":""}`,
	`{"username":"reviewer","password":"` + strings.Repeat("p", 100) + `"}`,
}

// FuzzLoginBody: any body posted to /wecom/login or /wecom/review/login is
// answered, as JSON, with 200 and a working token only for a real code or
// the right password, and otherwise with a §6 error.
func FuzzLoginBody(f *testing.F) {
	g := newUnitGW(f, fuzzLimits)
	for _, s := range fzLoginSeeds {
		f.Add(false, []byte(s))
		f.Add(true, []byte(s))
	}
	f.Fuzz(func(t *testing.T, review bool, raw []byte) {
		body := string(raw)
		minted := map[string]struct{ corp, user string }{}
		for _, p := range loginPlaceholders {
			if strings.Contains(body, p.mark) {
				code := g.mint(t, p.corp, p.user)
				minted[code] = struct{ corp, user string }{p.corp, p.user}
				body = strings.ReplaceAll(body, p.mark, code)
			}
		}
		path := "/wecom/login"
		if review {
			path = "/wecom/review/login"
		}
		req := jsonPost(path, body)
		req.Header.Set("Content-Type", "application/json")
		rec, next := g.serve(t, req)
		if next.called {
			t.Fatalf("a login request reached the next handler")
		}
		if rec.Code != http.StatusOK {
			expectErrorOf(t, recorded(rec), "invalid_request", "unauthenticated", "invalid_code", "corp_not_allowed",
				"wrong_corp", "user_not_allowed", "user_inactive", "wecom_unavailable", "wecom_error")
			return
		}

		// 200: the body must have been one JSON object naming a real code or
		// the right password, and the token must work for that user.
		var ans struct {
			Token, TokenType, UserID, Corp string
			Review                         bool
		}
		ansRaw := rec.Body.Bytes()
		if err := json.Unmarshal(ansRaw, &ans); err != nil || ans.Token == "" {
			t.Fatalf("200 without a token: %s", ansRaw)
		}
		var answer map[string]any
		_ = json.Unmarshal(ansRaw, &answer)
		if answer["token_type"] != "Bearer" {
			t.Fatalf("token_type = %v", answer["token_type"])
		}
		if c := rec.Header().Get("Set-Cookie"); !strings.Contains(c, "wecom_session="+ans.Token) {
			t.Fatalf("200 without the session cookie: %q", c)
		}
		wantUser := ""
		if review {
			var in struct{ Username, Password string }
			_ = json.NewDecoder(strings.NewReader(body)).Decode(&in)
			if in.Username != reviewUser || in.Password != reviewPassword {
				t.Fatalf("review login succeeded for %q/%q", in.Username, in.Password)
			}
			wantUser = "review:" + reviewUser
		} else {
			var in struct{ Code, Corp string }
			_ = json.NewDecoder(strings.NewReader(body)).Decode(&in)
			who, ok := minted[in.Code]
			if !ok {
				t.Fatalf("login succeeded without a minted code: body %q", body)
			}
			if who.corp != answer["corp"] {
				t.Fatalf("code of %s/%s signed in to corp %v", who.corp, who.user, answer["corp"])
			}
			wantUser = who.user
		}
		if answer["userid"] != wantUser {
			t.Fatalf("signed in as %v, want %s", answer["userid"], wantUser)
		}
		if !json.Valid([]byte(body)) {
			t.Fatalf("login accepted a body that is not one JSON value: %q "+
				"(endpoints.go decodeBody: dec.More() is false before a stray ']' or '}'; "+
				"check that dec.Token() then gives io.EOF)", body)
		}
		// The token works for exactly that user.
		sreq := httptest.NewRequest(http.MethodGet, "/wecom/session", nil)
		sreq.Header.Set("Authorization", "Bearer "+ans.Token)
		srec, _ := g.serve(t, sreq)
		var sess struct{ UserID string }
		if srec.Code != http.StatusOK || json.Unmarshal(srec.Body.Bytes(), &sess) != nil || sess.UserID != wantUser {
			t.Fatalf("token of a 200 login: session answers %d %s", srec.Code, srec.Body)
		}
	})
}

// Expected identity headers at the next handler, canonical names.
var (
	identityZhangsan = map[string]string{
		"X-Wecom-Userid":     "zhangsan",
		"X-Wecom-Corpid":     "wwacme",
		"X-Wecom-Corp":       "acme",
		"X-Wecom-Name":       url.PathEscape("张三"),
		"X-Wecom-Department": "1,2",
	}
	identityReviewer = map[string]string{
		"X-Wecom-Userid": "review:" + reviewUser,
		"X-Wecom-Review": "1",
	}
)

// wecomHeaders returns every header whose name starts with X-WeCom- in any
// letter case, as the map holds it.
func wecomHeaders(h http.Header) map[string][]string {
	out := map[string][]string{}
	for name, vals := range h {
		if len(name) >= 8 && strings.EqualFold(name[:8], "x-wecom-") {
			out[name] = vals
		}
	}
	return out
}

// sameIdentity reports whether the X-WeCom-* headers are exactly want.
func sameIdentity(got map[string][]string, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for name, vals := range got {
		w, ok := want[name]
		if !ok || len(vals) != 1 || vals[0] != w {
			return false
		}
	}
	return true
}

var fzHygienePaths = []string{"/api/x", "/api/public/a", "/wecom/auth", "/wecom/session", "/API/PUBLIC/b", "/wecom"}

var fzHygieneSeeds = []struct {
	mode                     uint8
	name1, val1, name2, val2 string
}{
	{0, "X-WeCom-UserId", "boss", "X-Wecom-Review", "1"},
	{1, "x-wecom-userid", "boss", "X-WECOM-CORPID", "wwevil"},
	{2, "X-Wecom-Department", "1,2,3", "X-WeCom-Name", "%E8%80%81%E6%9D%BF"},
	{3, "X-WeCom-CorpId", "wwacme", "X-WeCom-Corp", "acme"},
	{4, "X-WeCom-Corp", "partner", "X-WeCom-Code", "junk"},
	{1, "X-WeCom-UserId\r\nX-Injected", "x", "X-Other", "a\r\nX-WeCom-UserId: boss"},
	{1, "X-WeCom-\xff", "\xfe", "X-Wéçom-UserId", "boss"},
	{0, "Authorization", "Bearer @TOKEN@", "X-WeCom-UserId", "boss"},
	{0, "Cookie", "a=1; wecom_session=@TOKEN@; b=2", "X-Wecom-Userid", "boss"},
	{0, "cookie", "wecom_session=@TOKEN@", "Authorization", "bearer  @TOKEN@ "},
	{0, "Cookie", "wecom_session =@TOKEN@", "X-A", "b"},
	{1, "Cookie", "wecom_session =@TOKEN@", "X-A", "b"},
	{0, "Cookie", "wecom_session=\"@TOKEN@\"", "X-A", "b"},
	{1, "Cookie", "wecom_session=@RTOKEN@", "X-A", "b"},
	{2, "Authorization", "Basic dXNlcjpwYXNz", "X-WeCom-Session", "@TOKEN@"},
	{0, "X-WeCom-Code", "@CODE@", "X-WeCom-Corp", "acme"},
	{0, "X-WeCom-Code", "@CODE@", "x-wecom-code", "@CODE@"},
	{5, "X-WeCom_UserId", "boss", "X_WeCom_Review", "1"},
	{8, "X-WeCom-Review", "1", "X-Forwarded-Uri", "/api/orders"},
	{13, "X-Forwarded-Uri", "/api/public/../orders", "X-WeCom-UserId", "boss"},
	{9, "Authorization", "Bearer @TOKEN@", "Authorization", "Bearer @TOKEN@"},
}

// FuzzHeaderHygiene: whatever headers a client sends (names in any case,
// CR/LF, bytes that are not UTF-8), the next handler sees only the
// X-WeCom-* headers the gateway set, for the identity of a valid session,
// never the session token, and without a valid session it never runs.
//
// mode picks the credential the harness adds (0 none, 1 Bearer, 2 cookie,
// 3 review Bearer, 4 a fresh inline code) and the path. Values may hold
// @TOKEN@ / @RTOKEN@ (the user's / reviewer's valid token) and @CODE@ (a
// fresh code for zhangsan), so the fuzzer can vary how a credential is
// presented.
func FuzzHeaderHygiene(f *testing.F) {
	g := newUnitGW(f, fuzzLimits)
	userTok := login(f, g, "acme", "zhangsan")
	reviewTok := reviewLogin(f, g)

	for _, s := range fzHygieneSeeds {
		f.Add(s.mode, s.name1, s.val1, s.name2, s.val2)
	}

	f.Fuzz(func(t *testing.T, mode uint8, name1, val1, name2, val2 string) {
		cred := mode % 5
		path := fzHygienePaths[int(mode/5)%len(fzHygienePaths)]
		placed := false
		fill := func(s string) string {
			for mark, v := range map[string]string{"@TOKEN@": userTok, "@RTOKEN@": reviewTok} {
				if strings.Contains(s, mark) {
					placed = true
					s = strings.ReplaceAll(s, mark, v)
				}
			}
			if strings.Contains(s, "@CODE@") {
				placed = true
				s = strings.ReplaceAll(s, "@CODE@", g.mint(t, "acme", "zhangsan"))
			}
			return s
		}
		val1, val2 = fill(val1), fill(val2)

		r := httptest.NewRequest(http.MethodGet, path, nil)
		switch cred {
		case 1:
			r.Header.Set("Authorization", "Bearer "+userTok)
		case 2:
			r.Header.Set("Cookie", "theme=dark; wecom_session="+userTok)
		case 3:
			r.Header.Set("Authorization", "Bearer "+reviewTok)
		case 4:
			r.Header.Set("X-WeCom-Code", g.mint(t, "acme", "zhangsan"))
		}
		// As the map holds them: the first as given (a header map built by
		// another handler need not be canonical), the second canonicalized.
		r.Header[name1] = append(r.Header[name1], val1)
		r.Header.Add(name2, val2)

		rec, next := g.serve(t, r)
		res := rec.Result()
		if res.StatusCode >= 500 {
			t.Fatalf("%d for a client's headers: %s", res.StatusCode, rec.Body)
		}
		hasCred := cred != 0 || placed

		// The answer's own X-WeCom-* headers are the gateway's.
		respWeCom := wecomHeaders(res.Header)
		for _, tok := range []string{userTok, reviewTok} {
			for name, vals := range res.Header {
				for _, v := range vals {
					if strings.Contains(v, tok) && name != "X-Wecom-Session" && name != "Set-Cookie" {
						t.Fatalf("the answer carries a session token in %s", name)
					}
				}
			}
		}
		if next.called {
			if !hasCred {
				t.Fatalf("next ran without any credential: headers %q", r.Header)
			}
			if strings.HasPrefix(path, "/wecom") {
				t.Fatalf("next ran for the gateway's endpoint %s", path)
			}
			got := wecomHeaders(next.header)
			if !sameIdentity(got, identityZhangsan) && !sameIdentity(got, identityReviewer) {
				t.Fatalf("next saw X-WeCom-* headers the gateway did not set: %q", got)
			}
			if sameIdentity(got, identityReviewer) && !strings.HasPrefix(strings.ToLower(path), "/api/public/") {
				t.Fatalf("a review session reached %s", path)
			}
			checkTokenRemoved(t, next.header, userTok, reviewTok)
			delete(respWeCom, "X-Wecom-Session") // an inline login's new token
			if len(respWeCom) != 0 {
				t.Fatalf("a passed request's answer carries %q", respWeCom)
			}
			return
		}
		if path == "/wecom/auth" && res.StatusCode == http.StatusOK {
			if !hasCred {
				t.Fatal("forward-auth said 200 without a credential")
			}
			if !sameIdentity(respWeCom, identityZhangsan) && !sameIdentity(respWeCom, identityReviewer) {
				t.Fatalf("forward-auth answered X-WeCom-* headers the gateway did not set: %q", respWeCom)
			}
			return
		}
		if len(respWeCom) != 0 {
			t.Fatalf("answer %d carries %q", res.StatusCode, respWeCom)
		}
		if path == "/wecom/session" && res.StatusCode == http.StatusOK {
			if !hasCred {
				t.Fatal("session endpoint said 200 without a credential")
			}
			return
		}
		expectErrorOf(t, recorded(rec))
	})
}

// checkTokenRemoved: the gateway's token is neither in Authorization (as
// Bearer) nor among the cookies of a request going on (SPEC §5).
func checkTokenRemoved(t *testing.T, h http.Header, tokens ...string) {
	t.Helper()
	probe := &http.Request{Header: h}
	for _, tok := range tokens {
		for _, a := range h.Values("Authorization") {
			// Only a Bearer credential is the gateway's: a token a client
			// puts under another scheme was never presented to it.
			scheme, rest, _ := strings.Cut(a, " ")
			if strings.EqualFold(scheme, "Bearer") && strings.TrimSpace(rest) == tok {
				t.Fatalf("the session token went on in Authorization: %q", a)
			}
		}
		for _, c := range probe.Cookies() {
			if c.Value != tok {
				continue
			}
			if c.Name == "wecom_session" {
				raw := h.Values("Cookie")
				t.Fatalf("the session token went on in the Cookie header %q, which Go's cookie parser reads as "+
					"wecom_session: check.go sessionCookie and headers.go removeToken compare the untrimmed name; "+
					"removeToken should drop every pair whose trimmed name is the cookie name", raw)
			}
		}
	}
}

var fzCaddyfileSeeds = []string{
	"",
	"api_base http://127.0.0.1:9\ncorp acme {\ncorp_id wwacme\nsecret s3cr3t\n}",
	"corp acme {\ncorp_id wwacme\nsecret {env.NOPE}\nallow_users a b\nallow_departments 1 -2 x\n}",
	"corp a {\ncorp_id x\nsecret y\n}\ncorp a {\ncorp_id x\nsecret y\n}",
	"corp {\n}",
	"corp a b c",
	"corp a {\ncorp {\ncorp_id x\n}\n}",
	"session_ttl 0\nrecheck -1s\nstale_grace 1d\n",
	"session_ttl 1h1h1h\nrecheck 9999999999999999h",
	"session_key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= short\n",
	"session_key !!!!",
	"cookie_name \"a b\"\ncookie_name ;\nendpoints *\nendpoints /",
	"endpoints \"\"\nendpoints ///\nendpoints /a?b",
	"review {\nuser reviewer $2a$10$gj7argJclI6sBw5KGGCtXud16zwhsehRL7iZ3X6KTa2uIFjkZh.hy\nallow /api/* {path} *\n}",
	"review {\nuser a\n}\nreview {\n}",
	"review x {\n}",
	"review {\nuser a $2a$04$\nallow [\n}",
	"login_rate 0 1m\nlogin_rate 3\nlogin_rate -1 -1s\nlogin_rate 99999999999999999999 1m",
	"{\n}\n}\n{",
	"unknown_thing 1 2 3",
	"corp acme {\ncorp_id wwacme\nsecret s\n}\nendpoints /\nreview {\nuser u $2a$04$0123456789012345678901234567890123456789012345678901u\nallow {http.request.uri}\n}",
	"corp acme {\ncorp_id wwacme\nsecret s\n}\napi_base \"\"\ncookie_name c\nendpoints /a/b/\nsession_ttl 1m",
	"corp acme {\n\tcorp_id \" wwacme \"\n\tsecret `s`\n}\n<<EOF\nx\nEOF",
	"import foo\n(snip) {\n}",
}

// FuzzCaddyfile: no text inside wecom_auth { … } makes parsing panic, and a
// configuration that parses provisions, validates and serves without
// panicking either.
func FuzzCaddyfile(f *testing.F) {
	ctx := caddyContext(f)
	for _, s := range fzCaddyfileSeeds {
		f.Add(s)
	}
	var mu sync.Mutex // one provision at a time: they share Caddy's pools
	f.Fuzz(func(t *testing.T, inner string) {
		input := "wecom_auth {\n" + inner + "\n}"
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil {
			return // the lexer refused it before the directive saw anything
		}
		var h wecomauth.Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if _, err := json.Marshal(&h); err != nil {
			t.Fatalf("a parsed config does not marshal to JSON: %v", err)
		}
		mu.Lock()
		defer mu.Unlock()
		if err := h.Provision(ctx); err != nil {
			_ = h.Cleanup()
			return
		}
		defer func() { _ = h.Cleanup() }()
		if err := h.Validate(); err != nil {
			return
		}
		// A provisioned, valid handler answers a request without a
		// credential with an error of its own, never a 5xx or a panic.
		for _, p := range []string{"/api/x", "/wecom/session", "/"} {
			r := httptest.NewRequest(http.MethodGet, p, nil)
			r.Header.Set("X-WeCom-UserId", "boss")
			rec := httptest.NewRecorder()
			next := &nextProbe{}
			if err := h.ServeHTTP(rec, prepareRequest(r), next); err != nil {
				t.Fatalf("%s: ServeHTTP error %v", p, err)
			}
			if next.called {
				t.Fatalf("%s: passed without a credential (config %q)", p, inner)
			}
			if rec.Code >= 500 {
				t.Fatalf("%s: %d %s", p, rec.Code, rec.Body)
			}
		}
	})
}
