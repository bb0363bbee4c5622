package wecomsim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// wantRefused checks a 403 of the development interface: its JSON error shape, and a message
// that says how to let the caller in.
func wantRefused(t *testing.T, what string, st int, m map[string]any, body string) {
	t.Helper()
	msg, _ := m["message"].(string)
	if st != http.StatusForbidden || m["error"] != "forbidden" || !strings.Contains(msg, "dev_allow_remote") {
		t.Errorf("%s: HTTP %d %s, want 403 forbidden naming dev_allow_remote", what, st, body)
	}
}

// wantUntouched checks that refused writes changed nothing: no code minted, no user,
// department or tag created or deleted, no fault injected or cleared, counts kept.
func wantUntouched(t *testing.T, s *Simulator, faults int, counts map[string]int) {
	t.Helper()
	s.mu.Lock()
	codes := len(s.codes)
	s.mu.Unlock()
	if codes != 0 {
		t.Errorf("%d codes were minted", codes)
	}
	st, m, body := dev(t, s, "GET", "/sim/state", "")
	wantStatus(t, "state", st, 200, body)
	if strings.Contains(body, `"ceo"`) {
		t.Errorf("a user was created: %s", body)
	}
	acme := m["corps"].([]any)[0].(map[string]any)
	var depts, tags []float64
	for _, d := range acme["departments"].([]any) {
		depts = append(depts, d.(map[string]any)["id"].(float64))
	}
	for _, tg := range acme["tags"].([]any) {
		tags = append(tags, tg.(map[string]any)["id"].(float64))
	}
	if fmt.Sprint(depts) != "[1 2 3]" || fmt.Sprint(tags) != "[1]" {
		t.Errorf("departments %v and tags %v changed, want [1 2 3] and [1]: %s", depts, tags, body)
	}
	if got := len(m["faults"].([]any)); got != faults {
		t.Errorf("%d faults, want %d: %s", got, faults, body)
	}
	for k, v := range counts {
		if m["counts"].(map[string]any)[k] != float64(v) {
			t.Errorf("count %s changed: %s", k, body)
		}
	}
}

// remoteRequest is localRequest from another machine.
func remoteRequest(method, target, body string) *http.Request {
	r := localRequest(method, target, strings.NewReader(body))
	r.RemoteAddr = "203.0.113.7:40000"
	return r
}

func TestDevRefusesRemoteClients(t *testing.T) {
	s := New(testConfig())
	for _, tc := range []struct{ method, target, body string }{
		{"GET", "/sim/state", ""},
		{"GET", "/sim/counts", ""},
		{"POST", "/sim/code", `{"userid":"lisi"}`},
		{"POST", "/sim/userdata", `{"userid":"lisi","kind":"mobile"}`},
		{"PUT", "/sim/users", `{"userid":"ceo","name":"CEO"}`},
		{"PUT", "/sim/departments", `{"id":9,"parent":1}`},
		{"DELETE", "/sim/departments", `{"id":2}`},
		{"PUT", "/sim/tags", `{"id":9,"users":["lisi"]}`},
		{"DELETE", "/sim/tags", `{"id":1}`},
		{"POST", "/sim/faults", `{"errcode":-1}`},
		{"GET", "/sim/nothing", ""}, // refused before the 404, which would map the interface
	} {
		st, m, body := serveDevRequest(t, s, remoteRequest(tc.method, tc.target, tc.body))
		wantRefused(t, tc.method+" "+tc.target+" from 203.0.113.7", st, m, body)
	}
	for _, addr := range []string{"[2001:db8::1]:443", "10.0.0.2:1", "[::ffff:192.0.2.1]:1", "@", ""} {
		r := localRequest("GET", "/sim/state", nil)
		r.RemoteAddr = addr
		st, m, body := serveDevRequest(t, s, r)
		wantRefused(t, "a client at "+addr, st, m, body)
	}
	wantUntouched(t, s, 0, map[string]int{"gettoken": 0})

	for _, addr := range []string{"127.0.0.1:1", "127.8.9.10:1", "[::1]:1", "[::ffff:127.0.0.1]:1"} {
		r := localRequest("GET", "/sim/state", nil)
		r.RemoteAddr = addr
		st, _, body := serveDevRequest(t, s, r)
		wantStatus(t, "a client at "+addr, st, 200, body)
	}

	// The WeCom calls stay open to everyone: the gateway calling them may be elsewhere.
	r := remoteRequest("GET", pathGetToken+"?corpid="+acmeID+"&corpsecret="+acmeSecret, "")
	r.Host = "qyapi.example"
	if st, m, body := serveDevRequest(t, s, r); st != 200 || m["access_token"] == nil {
		t.Errorf("gettoken from a remote client: HTTP %d %s", st, body)
	}
}

// TestDevUsesCaddysClientIP checks that the client address is the one Caddy determined: behind a
// trusted proxy on this machine, the real client is remote and refused.
func TestDevUsesCaddysClientIP(t *testing.T) {
	s := New(testConfig())
	withClientIP := func(ip string) *http.Request {
		r := localRequest("GET", "/sim/state", nil) // the connection itself is from 127.0.0.1
		ctx := context.WithValue(r.Context(), caddyhttp.VarsCtxKey, map[string]any{caddyhttp.ClientIPVarKey: ip})
		return r.WithContext(ctx)
	}
	st, m, body := serveDevRequest(t, s, withClientIP("203.0.113.7"))
	wantRefused(t, "a remote client behind a local proxy", st, m, body)
	if !strings.Contains(body, "203.0.113.7") {
		t.Errorf("the refusal does not name the client: %s", body)
	}
	st, _, body = serveDevRequest(t, s, withClientIP("::1"))
	wantStatus(t, "a loopback client by Caddy's client IP", st, 200, body)
}

// TestDevRefusesForeignHost sends real requests from 127.0.0.1 with a Host naming another
// machine, as a browser does after DNS rebinding.
func TestDevRefusesForeignHost(t *testing.T) {
	s := New(testConfig())
	srv := httptest.NewServer(s) // listens on 127.0.0.1:0
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	send := func(method, path, host, body string) (int, map[string]any, string) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if isWrite(method) {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		m, text := decodeAnswer(t, method+" "+path+" at "+host, b)
		return resp.StatusCode, m, text
	}

	for _, host := range []string{"evil.example:8081", "evil.example", "127.0.0.1.nip.io:" + port, "localhost.evil.example", "[2001:db8::1]:" + port, "0.0.0.0:" + port} {
		st, m, body := send("GET", "/sim/state", host, "")
		wantRefused(t, "GET with Host "+host, st, m, body)
		st, m, body = send("POST", "/sim/code", host, `{"userid":"lisi"}`)
		wantRefused(t, "POST with Host "+host, st, m, body)
		st, m, body = send("PUT", "/sim/users", host, `{"userid":"ceo"}`)
		wantRefused(t, "PUT with Host "+host, st, m, body)
	}
	wantUntouched(t, s, 0, nil)

	for _, host := range []string{"localhost:" + port, "LocalHost:" + port, "localhost", "127.0.0.1:" + port, "127.0.0.1", "127.0.0.2:" + port, "[::1]:" + port, "[::1]"} {
		st, _, body := send("GET", "/sim/state", host, "")
		wantStatus(t, "GET with Host "+host, st, 200, body)
	}
	st, m, body := send("POST", "/sim/code", "localhost:"+port, `{"userid":"lisi"}`)
	wantStatus(t, "POST with Host localhost", st, 200, body)
	if m["code"] == "" {
		t.Errorf("no code: %s", body)
	}
}

func TestDevWritesNeedJSON(t *testing.T) {
	s := New(testConfig())
	tok := getToken(t, s, acmeID, acmeSecret)
	st, _, body := dev(t, s, "POST", "/sim/faults", `{"endpoint":"user/get","errcode":-1,"count":100}`)
	wantStatus(t, "inject a fault", st, 204, body)

	for _, tc := range []struct{ method, target, contentType, body string }{
		// What a cross-site HTML form can send.
		{"POST", "/sim/code", "application/x-www-form-urlencoded", "userid=ceo"},
		{"POST", "/sim/code", "application/x-www-form-urlencoded", `{"userid":"lisi"}`},
		{"POST", "/sim/code", "multipart/form-data; boundary=x", "--x--"},
		{"POST", "/sim/code", "text/plain", `{"userid":"lisi"}`},
		{"POST", "/sim/userdata", "text/plain", `{"userid":"lisi","kind":"mobile"}`},
		{"POST", "/sim/userdata", "application/x-www-form-urlencoded", "userid=lisi&kind=mobile"},
		{"PUT", "/sim/users", "application/x-www-form-urlencoded", `{"userid":"ceo"}`},
		{"PUT", "/sim/departments", "text/plain", `{"id":9}`},
		{"DELETE", "/sim/departments", "application/x-www-form-urlencoded", `{"id":2}`},
		{"PUT", "/sim/tags", "text/plain", `{"id":9,"users":["lisi"]}`},
		{"DELETE", "/sim/tags", "", `{"id":1}`},
		{"POST", "/sim/faults", "text/plain", `{"errcode":-1}`},
		// Body-less writes, once the curl shortcut.
		{"POST", "/sim/code?userid=lisi", "", ""},
		{"PUT", "/sim/users?userid=ceo", "", ""},
		{"POST", "/sim/tokens/expire", "", ""},
		{"DELETE", "/sim/faults", "", ""},
		{"DELETE", "/sim/counts", "", ""},
		{"PATCH", "/sim/users", "", `{"userid":"ceo"}`},
		// Near misses.
		{"POST", "/sim/code", "application/jsonx", `{"userid":"lisi"}`},
		{"POST", "/sim/code", "application/json-patch+json", `{"userid":"lisi"}`},
	} {
		r := localRequest(tc.method, tc.target, strings.NewReader(tc.body))
		r.Header.Del("Content-Type")
		if tc.contentType != "" {
			r.Header.Set("Content-Type", tc.contentType)
		}
		st, m, body := serveDevRequest(t, s, r)
		msg, _ := m["message"].(string)
		if st != http.StatusUnsupportedMediaType || m["error"] != "unsupported_media_type" || !strings.Contains(msg, "Content-Type: application/json") {
			t.Errorf("%s %s as %q: HTTP %d %s, want 415 naming application/json", tc.method, tc.target, tc.contentType, st, body)
		}
	}
	wantUntouched(t, s, 1, map[string]int{"gettoken": 1})
	wantErrcode(t, "the token after refused writes", call(t, s, pathUserGet, "access_token", tok, "userid", "lisi"), -1)

	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "Application/JSON;charset=UTF-8"} {
		r := localRequest("POST", "/sim/code", strings.NewReader(`{"userid":"lisi"}`))
		r.Header.Set("Content-Type", ct)
		st, m, body := serveDevRequest(t, s, r)
		wantStatus(t, "mint as "+ct, st, 200, body)
		if code, _ := m["code"].(string); code == "" {
			t.Errorf("mint as %s: no code in %s", ct, body)
		}
	}
	st, _, body = dev(t, s, "DELETE", "/sim/faults", "")
	wantStatus(t, "clear faults with a JSON content type and no body", st, 204, body)

	// Reads need no content type.
	r := localRequest("GET", "/sim/counts", nil)
	r.Header.Set("Content-Type", "text/plain")
	st, _, body = serveDevRequest(t, s, r)
	wantStatus(t, "GET with any content type", st, 200, body)
}

// playgroundHandler is exampleHandler with the playground, provisioned.
func playgroundHandler(t *testing.T, allowRemote bool) *Handler {
	t.Helper()
	h := exampleHandler()
	h.Playground = "/gateway"
	h.DevAllowRemote = allowRemote
	provision(t, &h)
	t.Cleanup(func() { _ = h.Cleanup() })
	return &h
}

// serveHandler serves r through the Caddy handler; what it passes on answers 418.
func serveHandler(t *testing.T, h *Handler, r *http.Request) (int, string) {
	t.Helper()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, r, next); err != nil {
		t.Fatal(err)
	}
	return w.Code, w.Body.String()
}

func TestPlaygroundLoopbackOnly(t *testing.T) {
	h := playgroundHandler(t, false)
	foreignHost := localRequest("GET", "/sim/playground", nil)
	foreignHost.Host = "evil.example:8081"
	for what, r := range map[string]*http.Request{
		"a remote client":    remoteRequest("GET", "/sim/playground", ""),
		"a foreign Host":     foreignHost,
		"HEAD from a remote": remoteRequest("HEAD", "/sim/playground/", ""),
	} {
		st, body := serveHandler(t, h, r)
		if st != http.StatusForbidden || strings.Contains(body, "<html") {
			t.Errorf("the playground for %s: HTTP %d %.200s, want 403 without the page", what, st, body)
		}
		if r.Method == "GET" && !strings.Contains(body, `"error":"forbidden"`) {
			t.Errorf("the playground for %s: %s, want the dev interface's JSON error", what, body)
		}
	}
	if st, body := serveHandler(t, h, localRequest("GET", "/sim/playground", nil)); st != 200 || !strings.Contains(body, "<html") {
		t.Errorf("the playground from 127.0.0.1: HTTP %d", st)
	}
	// Paths outside the dev interface, such as the gateway proxied under /gateway, are not the
	// simulator's to guard.
	if st, _ := serveHandler(t, h, remoteRequest("GET", "/gateway/wecom/session", "")); st != http.StatusTeapot {
		t.Errorf("/gateway from a remote client: HTTP %d, want it passed on", st)
	}
}

func TestDevAllowRemote(t *testing.T) {
	h := playgroundHandler(t, true)
	rebound := func(r *http.Request) *http.Request { r.Host = "evil.example:8081"; return r }

	if st, body := serveHandler(t, h, rebound(remoteRequest("GET", "/sim/playground", ""))); st != 200 || !strings.Contains(body, "<html") {
		t.Errorf("the playground for a remote client with dev_allow_remote: HTTP %d %.200s", st, body)
	}
	st, body := serveHandler(t, h, rebound(remoteRequest("POST", "/sim/code", `{"userid":"lisi"}`)))
	if st != 200 || !strings.Contains(body, `"code"`) {
		t.Errorf("a remote mint with dev_allow_remote: HTTP %d %s", st, body)
	}
	// Writes still need JSON: the opt-in is about who may call, not how.
	r := rebound(remoteRequest("POST", "/sim/code", "userid=lisi"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if st, body := serveHandler(t, h, r); st != http.StatusUnsupportedMediaType {
		t.Errorf("a remote form post with dev_allow_remote: HTTP %d %s, want 415", st, body)
	}

	// The same configuration without the option refuses the same request.
	closed := playgroundHandler(t, false)
	if closed.sim == h.sim {
		t.Fatal("the simulator with dev_allow_remote is shared with one without")
	}
	if st, body := serveHandler(t, closed, rebound(remoteRequest("POST", "/sim/code", `{"userid":"lisi"}`))); st != http.StatusForbidden {
		t.Errorf("a remote mint without dev_allow_remote: HTTP %d %s", st, body)
	}
}

func TestDevAllowRemoteCaddyfile(t *testing.T) {
	const corp = "\n corp a {\n  corp_id wwa\n  secret s\n }\n}"
	for in, want := range map[string]bool{
		"wecom_simulator {" + corp:                          false,
		"wecom_simulator {\n dev_allow_remote" + corp:       true,
		"wecom_simulator {\n dev_allow_remote true" + corp:  true,
		"wecom_simulator {\n dev_allow_remote false" + corp: false,
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if h.DevAllowRemote != want {
			t.Errorf("%q: DevAllowRemote %v, want %v", in, h.DevAllowRemote, want)
		}
		if err := h.Validate(); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
	for in, want := range map[string]string{
		"wecom_simulator {\n dev_allow_remote maybe\n}":      `dev_allow_remote: "maybe" is not true or false`,
		"wecom_simulator {\n dev_allow_remote true false\n}": "dev_allow_remote: want no value, true or false",
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", in, err, want)
		}
	}

	// Golden: the adapted JSON carries the option, and only when it is on.
	adapt := func(block string) string {
		t.Helper()
		out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(":8081 {\n"+block+"\n}\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	const handler = `{"corps":[{"corp_id":"wwa","name":"a","secret":"s"}],"dev_allow_remote":true,"handler":"wecom_simulator"}`
	if js := adapt("wecom_simulator {\n dev_allow_remote" + corp); !strings.Contains(js, handler) {
		t.Errorf("adapted JSON lacks %s:\n%s", handler, js)
	}
	if js := adapt("wecom_simulator {" + corp); strings.Contains(js, "dev_allow_remote") {
		t.Errorf("adapted JSON without the option names it:\n%s", js)
	}
}
