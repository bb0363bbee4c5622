package wecomauth_test

// SPEC §6: no access_token, corpsecret, session token or session_key ever
// appears in a log line, an error message or a response. This test drives
// every flow with Caddy logging at DEBUG (global log and the gateway's
// access log, both to files), in front of an in-process simulator whose
// answers are tapped so that every access_token and session_key WeCom gave
// the gateway is known, then searches all logs, answers and requests the
// backend got for them.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
	"github.com/wecomgate/wecomgate/module/wecomauth"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

// wrongOtherSecret is what the gateway is configured with for corp other:
// WeCom answers 40001.
const wrongOtherSecret = "other-WRONG-secret-987654321"

// secretTap sits between the gateway and the simulator and notes every
// secret that crosses: corpsecret and access_token in the queries,
// access_token and session_key in the answers.
type secretTap struct {
	sim     *wecomsim.Simulator
	mu      sync.Mutex
	secrets map[string]string // value → what it is
	// stall is a login code whose exchange fails twice with HTTP 500 and
	// then answers later than the gateway waits (5 s), see stalled; the
	// simulator's faults would hit every login meanwhile.
	stall  string
	stalls int
}

// stalled answers a jscode2session call for the stall code itself, and
// reports whether it did.
func (s *secretTap) stalled(w http.ResponseWriter, r *http.Request) bool {
	s.mu.Lock()
	mine := s.stall != "" && r.URL.Query().Get("js_code") == s.stall
	if mine {
		s.stalls++
	}
	n := s.stalls
	s.mu.Unlock()
	switch {
	case !mine:
		return false
	case n <= 2:
		http.Error(w, "stalled", http.StatusInternalServerError)
	default:
		select {
		case <-r.Context().Done(): // the gateway gave up, as it must
		case <-time.After(6 * time.Second):
			http.Error(w, "too late", http.StatusGatewayTimeout)
		}
	}
	return true
}

func (s *secretTap) note(v, what string) {
	if v == "" {
		return
	}
	s.mu.Lock()
	s.secrets[v] = what
	s.mu.Unlock()
}

func (s *secretTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/cgi-bin/") {
		s.sim.ServeHTTP(w, r) // the development interface
		return
	}
	q := r.URL.Query()
	s.note(q.Get("corpsecret"), "corpsecret")
	s.note(q.Get("access_token"), "access_token")
	if s.stalled(w, r) {
		return
	}
	rec := httptest.NewRecorder()
	s.sim.ServeHTTP(rec, r)
	var a struct {
		AccessToken string `json:"access_token"`
		SessionKey  string `json:"session_key"`
	}
	if json.Unmarshal(rec.Body.Bytes(), &a) == nil {
		s.note(a.AccessToken, "access_token")
		s.note(a.SessionKey, "session_key")
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

func (s *secretTap) all() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.secrets))
	for k, v := range s.secrets {
		out[k] = v
	}
	return out
}

// spellings are the forms a secret may take in a log or an answer.
func spellings(v string) []string {
	out := []string{v}
	if q := url.QueryEscape(v); q != v {
		out = append(out, q)
	}
	if p := url.PathEscape(v); p != v {
		out = append(out, p)
	}
	if j, _ := json.Marshal(v); string(j[1:len(j)-1]) != v {
		out = append(out, string(j[1:len(j)-1]))
	}
	return out
}

// seen is one answer of the gateway, with the session tokens it issued
// itself (which it alone may carry, in its body, Set-Cookie and
// X-WeCom-Session).
type seen struct {
	what   string
	r      reply
	issued []string
}

// recordingGateway is the env that keeps every answer of the gateway and
// the session tokens it issued.
type recordingGateway struct {
	*env
	what    string // names the next answer; "" is its method and path
	answers []seen
	tokens  []string
}

func (g *recordingGateway) send(t testing.TB, method, path, body string, headers ...string) reply {
	t.Helper()
	return g.keep(method+" "+path, g.env.send(t, method, path, body, headers...))
}

// keep notes an answer and a token it issued.
func (g *recordingGateway) keep(what string, r reply) reply {
	if g.what != "" {
		what, g.what = g.what, ""
	}
	s := seen{what: what, r: r}
	for _, tok := range []string{r.str("token"), r.header.Get("X-WeCom-Session")} {
		if tok != "" {
			s.issued = append(s.issued, tok)
			g.tokens = append(g.tokens, tok)
		}
	}
	g.answers = append(g.answers, s)
	return r
}

func TestSecretsNeverLeak(t *testing.T) {
	if testing.Short() {
		t.Skip("drives every flow, including a WeCom timeout of 5 s")
	}
	dir := t.TempDir()
	globalLog := filepath.Join(dir, "caddy.log")
	accessLog := filepath.Join(dir, "access.log")

	tap := &secretTap{secrets: map[string]string{}, sim: wecomsim.New(wecomsim.Config{Corps: append(testWorld(),
		wecomsim.Corp{Name: "stranger", CorpID: "wwstranger", Secret: "stranger-secret-0123456789", Users: []wecomsim.User{{UserID: "wu", Name: "吴"}}},
	)})}
	simSrv := httptest.NewServer(tap)
	t.Cleanup(simSrv.Close)

	// Runtime placeholders, as the README advises for production: the
	// config (which Caddy logs at DEBUG) holds no secret; see
	// TestSecretInConfigIsLoggedAtDebug for {$X} and literal secrets.
	t.Setenv("WECOMGATE_TEST_ACME_SECRET", acmeSecret)
	t.Setenv("WECOMGATE_TEST_PARTNER_SECRET", partnerSecret)
	t.Setenv("WECOMGATE_TEST_OTHER_SECRET", wrongOtherSecret)
	e := startGateway(t, gatewayOptions{
		sim:    simSrv.URL,
		global: "log {\n\t\toutput file " + globalLog + "\n\t\tlevel DEBUG\n\t\tformat json\n\t}",
		site:   "log {\n\t\toutput file " + accessLog + "\n\t}\n\t%s\n\treverse_proxy {backend}",
		corps: []wecomauth.CorpConfig{
			{Name: "acme", CorpID: "wwacme", Secret: "{env.WECOMGATE_TEST_ACME_SECRET}"},
			{Name: "partner", CorpID: "wwpartner", Secret: "{env.WECOMGATE_TEST_PARTNER_SECRET}", AllowDepartments: []int64{7}},
			{Name: "other", CorpID: "wwother", Secret: "{env.WECOMGATE_TEST_OTHER_SECRET}"},
		},
		extra: "recheck 1s\n\t\t" + reviewBlock,
	})
	g := &recordingGateway{env: e}

	// A timeout: two 500s, then an answer later than the gateway's 5 s. It
	// runs beside the rest, from a client of its own (its failure counts
	// against that client's login_rate, not the limiter test's below).
	tap.mu.Lock()
	tap.stall = e.code("acme", "zhangsan")
	tap.mu.Unlock()
	timedOut := make(chan reply, 1)
	go func() {
		timedOut <- postFrom(t, clientAt(t, "127.0.0.3"), e.gw+"/wecom/login", `{"code":"`+tap.stall+`"}`)
	}()

	// do sends a request and keeps the answer.
	do := func(what, method, path, body string, headers ...string) reply {
		t.Helper()
		g.what = what
		return g.send(t, method, path, body, headers...)
	}
	wantStatus := func(what string, r reply, status int) {
		t.Helper()
		if r.status != status {
			t.Errorf("%s: %d %s, want %d", what, r.status, r.raw, status)
		}
	}
	fault := func(f map[string]any) { e.simJSON(http.MethodPost, "/sim/faults", f, nil) }
	clearFaults := func() { e.simJSON(http.MethodDelete, "/sim/faults", nil, nil) }
	loginBody := func(corp, user string) string {
		return fmt.Sprintf(`{"code":%q,"corp":%q}`, e.code(corp, user), corp)
	}

	// Sign-ins that work, and the session in use.
	a := login(t, g, "acme", "zhangsan")
	b := login(t, g, "partner", "zhaoliu")
	wantStatus("bearer", do("bearer", http.MethodGet, "/api/orders?page=1", "", "Authorization: Bearer "+a), 200)
	wantStatus("cookie", do("cookie", http.MethodGet, "/api/orders", "", "Cookie: theme=dark; wecom_session="+b), 200)
	wantStatus("session", do("session", http.MethodGet, "/wecom/session", "", "Authorization: Bearer "+a), 200)
	wantStatus("forward-auth", do("forward-auth", http.MethodGet, "/wecom/auth", "", "Authorization: Bearer "+b), 200)
	inlineCode := e.code("acme", "zhangsan")
	r := do("inline", http.MethodGet, "/api/inline", "", "X-WeCom-Code: "+inlineCode, "X-WeCom-Corp: acme")
	wantStatus("inline", r, 200)
	if r.header.Get("X-WeCom-Session") == "" {
		t.Error("inline login: no X-WeCom-Session")
	}
	expectError(t, do("inline bad", http.MethodGet, "/api/inline", "", "X-WeCom-Code: 00000000000000000000000000000000"), 401, "invalid_code")
	code := e.code("acme", "zhangsan")
	wantStatus("same code twice 1", do("code twice", http.MethodPost, "/wecom/login", `{"code":"`+code+`"}`), 200)
	wantStatus("same code twice 2", do("code twice", http.MethodPost, "/wecom/login", `{"code":"`+code+`"}`), 200)

	// Review sign-in.
	rv := reviewLogin(t, g)
	expectError(t, do("review bad", http.MethodPost, "/wecom/review/login", `{"username":"reviewer","password":"review-dem0"}`), 401, "unauthenticated")
	expectError(t, do("review unknown", http.MethodPost, "/wecom/review/login", `{"username":"ghost","password":"review-demo"}`), 401, "unauthenticated")
	wantStatus("review allowed", do("review allowed", http.MethodGet, "/api/public/a", "", "Authorization: Bearer "+rv), 200)
	expectError(t, do("review forbidden", http.MethodGet, "/api/orders", "", "Authorization: Bearer "+rv), 403, "review_forbidden")
	wantStatus("review session", do("review session", http.MethodGet, "/wecom/session", "", "Cookie: wecom_session="+rv), 200)
	expectError(t, do("review fwd", http.MethodGet, "/wecom/auth", "", "Authorization: Bearer "+rv, "X-Forwarded-Uri: /api/orders"), 403, "review_forbidden")

	// Each §6 answer the simulator can bring about.
	expectError(t, do("malformed", http.MethodPost, "/wecom/login", `{"code":`), 400, "invalid_request")
	expectError(t, do("bad token", http.MethodGet, "/api/x", "", "Authorization: Bearer "+flipMiddleChar(a)), 401, "unauthenticated")
	expectError(t, do("junk code", http.MethodPost, "/wecom/login", `{"code":"0123456789abcdef0123456789abcdef"}`), 401, "invalid_code")
	expectError(t, do("corp not allowed", http.MethodPost, "/wecom/login", `{"code":"`+e.code("stranger", "wu")+`"}`), 403, "corp_not_allowed")
	expectError(t, do("wrong corp", http.MethodPost, "/wecom/login", `{"code":"`+e.code("partner", "zhaoliu")+`"}`), 409, "wrong_corp")
	expectError(t, do("60011", http.MethodPost, "/wecom/login", loginBody("acme", "wangwu")), 403, "user_not_allowed")
	expectError(t, do("department", http.MethodPost, "/wecom/login", loginBody("partner", "qianqi")), 403, "user_not_allowed")
	expectError(t, do("disabled", http.MethodPost, "/wecom/login", loginBody("acme", "lisi")), 403, "user_inactive")
	expectError(t, do("not activated", http.MethodPost, "/wecom/login", loginBody("acme", "zhouba")), 403, "user_inactive")
	fault(map[string]any{"endpoint": "user/get", "errcode": 60111, "count": 1})
	expectError(t, do("60111", http.MethodPost, "/wecom/login", loginBody("acme", "zhangsan")), 403, "user_not_allowed")
	fault(map[string]any{"endpoint": "jscode2session", "errcode": 40163, "count": 1})
	expectError(t, do("40163", http.MethodPost, "/wecom/login", loginBody("acme", "zhangsan")), 401, "invalid_code")
	expectError(t, do("40001", http.MethodPost, "/wecom/login", loginBody("other", "sunjiu")), 502, "wecom_error")
	expectError(t, do("40001 again", http.MethodGet, "/api/x", "", "X-WeCom-Code: "+e.code("other", "sunjiu"), "X-WeCom-Corp: other"), 502, "wecom_error")

	// WeCom's faults.
	for _, f := range []map[string]any{
		{"endpoint": "jscode2session", "status": 500},
		{"endpoint": "jscode2session", "garbage": true},
		{"endpoint": "jscode2session", "errcode": -1},
		{"endpoint": "jscode2session", "errcode": 45009},
		{"endpoint": "user/get", "status": 502},
		{"endpoint": "user/get", "errcode": 48002},
	} {
		fault(f)
		what := fmt.Sprintf("fault %v", f)
		r := do(what, http.MethodPost, "/wecom/login", loginBody("acme", "zhangsan"))
		if r.status != 503 && r.status != 502 {
			t.Errorf("%s: %d %s", what, r.status, r.raw)
		}
		clearFaults()
		if f["errcode"] == 45009 {
			// A 45009 pauses jscode2session for a minute (SPEC §6b).
			e.clock.Advance(61 * time.Second)
		}
	}

	// Token expiry mid-traffic: the next calls meet 42001 / 40014, the
	// gateway fetches anew and retries; rechecks (recheck 1s) and logins.
	e.clock.Advance(1100 * time.Millisecond)
	e.simJSON(http.MethodPost, "/sim/tokens/expire", map[string]any{"errcode": 42001}, nil)
	wantStatus("recheck after expiry", do("recheck expiry", http.MethodGet, "/api/x", "", "Authorization: Bearer "+a), 200)
	e.simJSON(http.MethodPost, "/sim/tokens/expire", map[string]any{"errcode": 40014}, nil)
	g.what = "login after 40014"
	login(t, g, "partner", "zhaoliu")
	// A recheck WeCom fails: stale grace admits, the log says why.
	e.clock.Advance(1100 * time.Millisecond)
	fault(map[string]any{"endpoint": "user/get", "status": 500})
	wantStatus("recheck during outage", do("recheck outage", http.MethodGet, "/api/x", "", "Authorization: Bearer "+b), 200)
	clearFaults()

	// Logout, and the ended session.
	wantStatus("logout", do("logout", http.MethodPost, "/wecom/logout", "", "Authorization: Bearer "+a), 204)
	expectError(t, do("after logout", http.MethodGet, "/api/x", "", "Authorization: Bearer "+a), 401, "unauthenticated")
	wantStatus("logout cookie", do("logout cookie", http.MethodPost, "/wecom/logout", "", "Cookie: wecom_session="+b), 204)

	// A login code is spent once, but the gateway honours it again for its
	// 5 minutes (a client retry, SPEC §4). Caddy's access log records the
	// request headers as they came in, so an inline login's X-WeCom-Code is
	// there unless a log filter drops it; the gateway therefore honours a
	// spent code only for the address that spent it. A reader of the log
	// replaying it from elsewhere (127.0.0.2 here) gets nothing.
	var replay string
	requests := 0 // to the gateway, besides g's
	if b, _ := os.ReadFile(accessLog); strings.Contains(string(b), inlineCode) {
		requests++
		r := doFrom(t, "127.0.0.2", e.gw+"/api/replayed", "X-WeCom-Code: "+inlineCode, "X-WeCom-Corp: acme")
		if r.status != http.StatusUnauthorized || r.str("error") != "invalid_code" {
			replay = fmt.Sprintf("an inline login's X-WeCom-Code is in the access log, and replaying it from "+
				"another address answered %d %s", r.status, r.raw)
		}
	}

	// Failures until the limiter answers.
	for i := 0; ; i++ {
		r := do("rate", http.MethodPost, "/wecom/login", `{"code":"`+fmt.Sprintf("%032d", i)+`"}`)
		if r.status == http.StatusTooManyRequests {
			break
		}
		if i > 100 {
			t.Fatal("never rate limited")
		}
	}

	select {
	case r := <-timedOut:
		expectError(t, g.keep("timeout", r), 503, "wecom_unavailable")
	case <-time.After(30 * time.Second):
		t.Fatal("the login WeCom stalls was not answered within 30 s")
	}

	// What to look for. Caddy writes an access log line once the answer
	// is out: wait for one per request.
	requests += len(g.answers)
	testcaddy.WaitFor(t, 5*time.Second, "the access log", func() bool {
		b, _ := os.ReadFile(accessLog)
		return bytes.Count(b, []byte("\n")) >= requests
	})
	answers, tokens := g.answers, g.tokens
	secrets := tap.all()
	for _, s := range []struct{ v, what string }{
		{acmeSecret, "corpsecret"}, {partnerSecret, "corpsecret"}, {otherSecret, "corpsecret"},
		{wrongOtherSecret, "corpsecret (wrong)"}, {"review-demo", "review password"},
	} {
		secrets[s.v] = s.what
	}
	kinds := map[string]int{}
	for _, what := range secrets {
		kinds[what]++
	}
	for _, tok := range tokens {
		secrets[tok] = "session token"
	}
	if kinds["access_token"] < 3 || kinds["session_key"] < 5 {
		t.Fatalf("the tap saw too few secrets to search for: %v", kinds)
	}
	t.Logf("searching for %d secrets (%v and %d session tokens) in %d answers and the logs", len(secrets), kinds, len(tokens), len(answers))

	// 1. Logs.
	for _, file := range []string{globalLog, accessLog} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Errorf("%s is empty: nothing was searched", filepath.Base(file))
		}
		for v, what := range secrets {
			for _, sp := range spellings(v) {
				if i := strings.Index(string(b), sp); i >= 0 {
					t.Errorf("%s holds a %s: %s …%s…", filepath.Base(file), what, logLineHead(string(b), i), lineAround(string(b), i))
				}
			}
		}
	}
	// The access log did record the traffic (so the search meant something),
	// and names users but not credentials.
	if b, _ := os.ReadFile(accessLog); !strings.Contains(string(b), `"user_id":"zhangsan"`) {
		t.Errorf("the access log shows no user_id: %s", tailLines(string(b), 3))
	}
	if b, _ := os.ReadFile(globalLog); !strings.Contains(string(b), `"level":"debug"`) {
		t.Error("the global log has no DEBUG lines: the test did not log at DEBUG")
	}

	// 2. Answers: only a sign-in's own token, in its own places.
	for _, s := range answers {
		for v, what := range secrets {
			own := slices.Contains(s.issued, v)
			for _, sp := range spellings(v) {
				if own {
					// Its body may carry it as "token"; its headers only in
					// Set-Cookie and X-WeCom-Session.
					for name, vals := range s.r.header {
						if name == "Set-Cookie" || name == "X-Wecom-Session" {
							continue
						}
						if strings.Contains(strings.Join(vals, "\n"), sp) {
							t.Errorf("%s: the answer's header %s carries its token", s.what, name)
						}
					}
					if strings.Count(s.r.raw, sp) > 1 {
						t.Errorf("%s: the answer's body carries its token more than once: %s", s.what, s.r.raw)
					}
					continue
				}
				if strings.Contains(s.r.raw, sp) {
					t.Errorf("%s: the answer's body carries a %s: %s", s.what, what, s.r.raw)
				}
				for name, vals := range s.r.header {
					if strings.Contains(strings.Join(vals, "\n"), sp) {
						t.Errorf("%s: the answer's header %s carries a %s", s.what, name, what)
					}
				}
			}
		}
	}

	// 3. The backend never got a session token or a WeCom secret.
	e.backend.mu.Lock()
	reqs := e.backend.reqs
	e.backend.mu.Unlock()
	if len(reqs) == 0 {
		t.Fatal("the backend saw nothing")
	}
	for _, req := range reqs {
		var all strings.Builder
		all.WriteString(req.RequestURI)
		names := make([]string, 0, len(req.Header))
		for name := range req.Header {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			fmt.Fprintf(&all, "\n%s: %s", name, strings.Join(req.Header[name], ", "))
		}
		for v, what := range secrets {
			if strings.Contains(all.String(), v) {
				t.Errorf("the backend got a %s with %s", what, req.RequestURI)
			}
		}
	}

	if replay != "" {
		t.Error(replay)
	}
}

// doFrom sends a GET from another loopback address, as another client.
func doFrom(t *testing.T, localIP, url string, headers ...string) reply {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)},
	}).DialContext}}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for _, h := range headers {
		name, val, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(val))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return newReply(resp.StatusCode, resp.Header, raw)
}

// flipMiddleChar changes a character in the middle of a token so that it no
// longer opens (the last one may carry only padding bits).
func flipMiddleChar(s string) string {
	i := len(s) / 2
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// lineAround returns some context around i in s, on one line.
func lineAround(s string, i int) string {
	start, end := max(0, i-120), min(len(s), i+60)
	return strings.ReplaceAll(s[start:end], "\n", " ⏎ ")
}

// logLineHead returns the logger and message of the JSON log line holding i.
func logLineHead(s string, i int) string {
	start := strings.LastIndexByte(s[:i], '\n') + 1
	end := strings.IndexByte(s[i:], '\n')
	if end < 0 {
		end = len(s)
	} else {
		end += i
	}
	var line struct{ Level, Logger, Msg string }
	_ = json.Unmarshal([]byte(s[start:end]), &line)
	return fmt.Sprintf("[%s %s %q]", line.Level, line.Logger, line.Msg)
}

// With `secret {$X}` (substituted when the Caddyfile is adapted, as in
// Caddyfile.example and offered by the README) or a literal secret, the
// corpsecret is part of Caddy's JSON config, and Caddy itself logs that
// config at DEBUG (http.auto_https "adjusted config"); the admin API's
// GET /config/ shows it too. Only runtime placeholders ({env.X},
// {file.PATH}) keep it out.
func TestSecretInConfigIsLoggedAtDebug(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "caddy.log")
	t.Setenv("WECOMGATE_TEST_DOLLAR_SECRET", "dollar-secret-0123456789")
	site := testcaddy.Listen(t, 1)[0]
	testcaddy.Start(t, fmt.Sprintf(`{
	%s
	admin off
	log {
		output file %s
		level DEBUG
		format json
	}
}
%s {
	wecom_auth {
		api_base http://127.0.0.1:9
		corp acme {
			corp_id wwacme
			secret {$WECOMGATE_TEST_DOLLAR_SECRET}
		}
		corp partner {
			corp_id wwpartner
			secret literal-secret-0123456789
		}
		session_key AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=
	}
	respond "ok"
}
`, testcaddy.DefaultBind, logFile, site.URL()))
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	// Caddy itself logs the adapted config at DEBUG, so a secret that is in
	// the config ({$X} is substituted at adapt time, or a literal) is in the
	// log: the README says to use {env.X}, and the gateway warns.
	for _, secret := range []string{"dollar-secret-0123456789", "literal-secret-0123456789"} {
		if i := strings.Index(string(b), secret); i >= 0 {
			t.Logf("as documented, Caddy logged a secret written in the config: %s", logLineHead(string(b), i))
		}
	}
	for _, corp := range []string{"acme", "partner"} {
		if !strings.Contains(string(b), `"msg":"the secret is written in the configuration`) ||
			!strings.Contains(string(b), `"corp":"`+corp+`"`) {
			t.Errorf("no warning for corp %s, whose secret is written in the configuration", corp)
		}
	}
	for what, msg := range map[string]string{
		"a session key written in the config": `"msg":"a session_key is written in the configuration`,
		"a plain-http api_base":               `"msg":"api_base is plain http`,
	} {
		if !strings.Contains(string(b), msg) {
			t.Errorf("no warning for %s", what)
		}
	}
}
