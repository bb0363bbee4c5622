package wecomsim

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// localRequest is a request as a developer's own tools send it: from a loopback client to a
// loopback Host, writes with a JSON content type.
func localRequest(method, target string, body io.Reader) *http.Request {
	r := httptest.NewRequest(method, target, body)
	r.RemoteAddr = "127.0.0.1:49152"
	r.Host = "127.0.0.1:8081"
	if isWrite(method) {
		r.Header.Set("Content-Type", "application/json")
	}
	return r
}

// dev sends a local request to the development interface and decodes a JSON answer, if any.
func dev(t *testing.T, s *Simulator, method, target, body string) (int, map[string]any, string) {
	t.Helper()
	return serveDevRequest(t, s, localRequest(method, target, strings.NewReader(body)))
}

// serveDevRequest serves r and decodes a JSON answer, if any.
func serveDevRequest(t *testing.T, h http.Handler, r *http.Request) (int, map[string]any, string) {
	t.Helper()
	what := r.Method + " " + r.URL.RequestURI()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	m, body := decodeAnswer(t, what, w.Body.Bytes())
	return w.Code, m, body
}

// decodeAnswer decodes a JSON answer of the development interface, if any.
func decodeAnswer(t *testing.T, what string, b []byte) (map[string]any, string) {
	t.Helper()
	var m map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: answer is not JSON: %q", what, b)
		}
	}
	return m, string(b)
}

func wantStatus(t *testing.T, what string, got, want int, body string) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: HTTP %d, want %d: %s", what, got, want, body)
	}
}

func TestDevCode(t *testing.T) {
	s := New(testConfig())
	tok := getToken(t, s, betaID, betaSecret)

	st, m, body := dev(t, s, "POST", "/sim/code", `{"corp":"beta","userid":"zhaoliu"}`)
	wantStatus(t, "mint by JSON", st, 200, body)
	if m["expires_in"] != float64(300) {
		t.Errorf("expires_in %v", m["expires_in"])
	}
	code, _ := m["code"].(string)
	if a := exchange(t, s, tok, code); a.str("userid") != "zhaoliu" {
		t.Errorf("minted code exchanges to %s", a.body)
	}

	st, m, body = dev(t, s, "POST", "/sim/code", `{"corp":"`+betaID+`","userid":"zhaoliu"}`)
	wantStatus(t, "mint naming the corp by corp_id", st, 200, body)
	if a := exchange(t, s, tok, m["code"].(string)); a.str("userid") != "zhaoliu" {
		t.Errorf("minted code exchanges to %s", a.body)
	}

	// Query parameters were once read on writes; now they are refused, not silently ignored.
	st, m, body = dev(t, s, "POST", "/sim/code?corp="+betaID+"&userid=zhaoliu", "")
	if st != 400 || m["error"] != "invalid_request" || !strings.Contains(m["message"].(string), "JSON body") {
		t.Errorf("mint by query: HTTP %d %s, want 400 asking for a JSON body", st, body)
	}

	st, _, body = dev(t, s, "POST", "/sim/code", `{"userid":"lisi"}`) // the first corp
	wantStatus(t, "mint for the default corp", st, 200, body)

	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{`{"corp":"nosuch","userid":"lisi"}`, 404, "not_found"},
		{`{"corp":"acme","userid":"nobody"}`, 404, "not_found"},
		{`{"corp":"acme"}`, 400, "invalid_request"},
		{`{"corp":"acme","user":"lisi"}`, 400, "invalid_request"}, // misspelt field
		{`{"corp":`, 400, "invalid_request"},
	} {
		st, m, body := dev(t, s, "POST", "/sim/code", tc.body)
		if st != tc.status || m["error"] != tc.code || m["message"] == "" {
			t.Errorf("%s: HTTP %d %s, want %d %s", tc.body, st, body, tc.status, tc.code)
		}
	}
	st, _, body = dev(t, s, "GET", "/sim/code", "")
	wantStatus(t, "GET on a POST endpoint", st, http.StatusMethodNotAllowed, body)
	st, _, body = dev(t, s, "GET", "/sim/nothing", "")
	wantStatus(t, "unknown dev endpoint", st, 404, body)
}

func TestDevExpireTokens(t *testing.T) {
	s := New(testConfig())
	tok := getToken(t, s, acmeID, acmeSecret)
	st, _, body := dev(t, s, "POST", "/sim/tokens/expire", `{"corp":"acme","errcode":40014}`)
	wantStatus(t, "expire", st, 204, body)
	wantErrcode(t, "expired by the dev interface", userGet(t, s, tok, "lisi"), 40014)

	tok = getToken(t, s, acmeID, acmeSecret)
	st, _, body = dev(t, s, "POST", "/sim/tokens/expire", "")
	wantStatus(t, "expire all with no body", st, 204, body)
	wantErrcode(t, "expired with the default errcode", userGet(t, s, tok, "lisi"), 42001)

	st, _, body = dev(t, s, "POST", "/sim/tokens/expire", `{"corp":"nosuch"}`)
	wantStatus(t, "unknown corp", st, 404, body)
}

func TestDevFaults(t *testing.T) {
	s := New(testConfig())
	tok := getToken(t, s, acmeID, acmeSecret)

	st, _, body := dev(t, s, "POST", "/sim/faults", `{"endpoint":"user/get","errcode":-1,"status":0,"garbage":false,"delay":"10ms","count":2}`)
	wantStatus(t, "inject", st, 204, body)
	st, m, body := dev(t, s, "GET", "/sim/state", "")
	wantStatus(t, "state", st, 200, body)
	faults := m["faults"].([]any)
	if len(faults) != 1 || faults[0].(map[string]any)["delay"] != "10ms" || faults[0].(map[string]any)["count"] != float64(2) {
		t.Errorf("state shows faults %v", faults)
	}
	start := time.Now()
	wantErrcode(t, "injected fault", userGet(t, s, tok, "lisi"), -1)
	if time.Since(start) < 10*time.Millisecond {
		t.Error("the delay was not applied")
	}

	st, _, body = dev(t, s, "DELETE", "/sim/faults", "")
	wantStatus(t, "clear", st, 204, body)
	wantErrcode(t, "after clearing", userGet(t, s, tok, "lisi"), 0)

	st, _, body = dev(t, s, "POST", "/sim/faults", `{"endpoint":"gettoken","status":503,"count":1}`)
	wantStatus(t, "inject an HTTP status", st, 204, body)
	if a := call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", acmeSecret); a.status != 503 {
		t.Errorf("injected HTTP status: HTTP %d", a.status)
	}

	for _, bad := range []string{
		`{"endpoint":"user/list","errcode":-1}`,
		`{"endpoint":"user/get"}`,
		`{"endpoint":"user/get","delay":2}`,
		`{"endpoint":"user/get","delay":"soon"}`,
		`{"endpoint":"user/get","status":1000}`,
		`{"endpoint":"user/get","errcode":-1,"count":-1}`,
		`{"endpoint":"user/get","errcode":-1,"oops":1}`,
	} {
		st, m, body := dev(t, s, "POST", "/sim/faults", bad)
		if st != 400 || m["error"] != "invalid_request" {
			t.Errorf("%s: HTTP %d %s, want 400", bad, st, body)
		}
	}
}

func TestDevUsers(t *testing.T) {
	s := New(testConfig())
	tok := getToken(t, s, acmeID, acmeSecret)

	st, m, body := dev(t, s, "PUT", "/sim/users", `{"corp":"acme","userid":"zhouqi","name":"周七","department":[4,5],"status":1,"hidden":false}`)
	wantStatus(t, "create", st, 200, body)
	if m["userid"] != "zhouqi" || m["name"] != "周七" || m["corp"] != "acme" {
		t.Errorf("created %s", body)
	}
	if a := userGet(t, s, tok, "zhouqi"); a.str("name") != "周七" || a.m["main_department"] != float64(4) {
		t.Errorf("created user answers %s", a.body)
	}

	// Partial update: only status changes; name and departments stay.
	st, m, body = dev(t, s, "PUT", "/sim/users", `{"corp":"acme","userid":"zhangsan","status":2}`)
	wantStatus(t, "partial update", st, 200, body)
	if m["name"] != "张三" || m["status"] != float64(2) || m["hidden"] != false {
		t.Errorf("partial update answered %s", body)
	}
	a := userGet(t, s, tok, "zhangsan")
	if a.str("name") != "张三" || a.m["status"] != float64(2) || !strings.Contains(a.body, `"department":[2,3]`) {
		t.Errorf("after partial update user/get answers %s", a.body)
	}

	st, _, body = dev(t, s, "PUT", "/sim/users", `{"corp":"acme","userid":"zhangsan","hidden":true}`)
	wantStatus(t, "hide", st, 200, body)
	wantErrcode(t, "hidden by the dev interface", userGet(t, s, tok, "zhangsan"), 60011)

	st, _, body = dev(t, s, "PUT", "/sim/users", `{"corp":"acme","userid":"zhangsan","hidden":false,"department":[7,8]}`)
	wantStatus(t, "unhide and move", st, 200, body)
	if a := userGet(t, s, tok, "zhangsan"); !strings.Contains(a.body, `"department":[7,8]`) {
		t.Errorf("after unhiding and moving: %s", a.body)
	}

	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"corp":"acme","userid":"zhangsan","status":3}`, 400},
		{`{"corp":"acme","name":"无名"}`, 400},
		{`{"corp":"nosuch","userid":"x"}`, 404},
		{`{"corp":"acme","userid":"x","department":"1"}`, 400},
	} {
		if st, _, body := dev(t, s, "PUT", "/sim/users", tc.body); st != tc.status {
			t.Errorf("%s: HTTP %d %s, want %d", tc.body, st, body, tc.status)
		}
	}
}

func TestDevCountsAndState(t *testing.T) {
	s := New(testConfig())
	tok := getToken(t, s, acmeID, acmeSecret)
	userGet(t, s, tok, "lisi")

	st, m, body := dev(t, s, "GET", "/sim/counts", "")
	wantStatus(t, "counts", st, 200, body)
	if m["gettoken"] != float64(1) || m["user/get"] != float64(1) || m["jscode2session"] != float64(0) {
		t.Errorf("counts %s", body)
	}
	st, _, body = dev(t, s, "DELETE", "/sim/counts", "")
	wantStatus(t, "reset counts", st, 204, body)
	if c := s.Counts(); c["gettoken"] != 0 || c["user/get"] != 0 {
		t.Errorf("counts after reset %v", c)
	}

	st, m, body = dev(t, s, "GET", "/sim/state", "")
	wantStatus(t, "state", st, 200, body)
	corps := m["corps"].([]any)
	acme := corps[0].(map[string]any)
	if len(corps) != 2 || acme["name"] != "acme" || acme["corp_id"] != acmeID || len(acme["users"].([]any)) != 4 {
		t.Errorf("state %s", body)
	}
	for _, secret := range []string{acmeSecret, betaSecret, tok} {
		if strings.Contains(body, secret) {
			t.Errorf("state reveals a secret or token: %s", body)
		}
	}
}

func TestDevPathConfigurable(t *testing.T) {
	s := New(Config{DevPath: "dev/", Corps: testConfig().Corps})
	if st, _, body := dev(t, s, "GET", "/dev/counts", ""); st != 200 {
		t.Errorf("custom dev path: HTTP %d %s", st, body)
	}
	if st, _, _ := dev(t, s, "GET", "/sim/counts", ""); st != 404 {
		t.Errorf("the default dev path still answers: HTTP %d", st)
	}
	if !s.handles("/dev") || !s.handles("/dev/code") || s.handles("/devices") || !s.handles(pathUserGet) {
		t.Error("handles does not match the dev path exactly")
	}
}
