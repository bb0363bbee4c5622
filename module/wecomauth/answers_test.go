package wecomauth_test

// What both fixtures share: an answer of the gateway, signing in, and the
// check of a SPEC §6 error answer.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// reply is a gateway answer.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(key string) string { s, _ := r.body[key].(string); return s }

func newReply(status int, header http.Header, raw []byte) reply {
	r := reply{status: status, header: header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// recorded is the answer a handler wrote to a recorder.
func recorded(rec *httptest.ResponseRecorder) reply {
	return newReply(rec.Code, rec.Header(), rec.Body.Bytes())
}

// gateway is either fixture as the sign-in helpers use it: the e2e env
// (a Caddy) or the unitGW (a handler called directly).
type gateway interface {
	// mint is wx.qy.login: a fresh code for a simulator user.
	mint(t testing.TB, corp, user string) string
	// send sends a request; headers are "Name: value" lines, and a body
	// goes as application/json unless they name a Content-Type.
	send(t testing.TB, method, path, body string, headers ...string) reply
}

// login signs a user in through POST /wecom/login and returns the token.
func login(t testing.TB, g gateway, corp, user string) string {
	t.Helper()
	r := g.send(t, http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q,"corp":%q}`, g.mint(t, corp, user), corp))
	tok := r.str("token")
	if r.status != http.StatusOK || tok == "" {
		t.Fatalf("login %s/%s: %d %s", corp, user, r.status, r.raw)
	}
	if c := r.header.Get("Set-Cookie"); !strings.Contains(c, "="+tok+";") {
		t.Errorf("login %s/%s set no session cookie: %q", corp, user, c)
	}
	return tok
}

// reviewLogin signs the test world's review account in and returns the
// token.
func reviewLogin(t testing.TB, g gateway) string {
	t.Helper()
	r := g.send(t, http.MethodPost, "/wecom/review/login", reviewLoginBody)
	if r.status != http.StatusOK || r.body["review"] != true || r.str("userid") != "review:"+reviewUser || r.str("token") == "" {
		t.Fatalf("review login: %d %s", r.status, r.raw)
	}
	return r.str("token")
}

// errorStatus is SPEC §6 (and the endpoints' own 404/405): code → status.
var errorStatus = map[string]int{
	"invalid_request":    http.StatusBadRequest,
	"unauthenticated":    http.StatusUnauthorized,
	"invalid_code":       http.StatusUnauthorized,
	"corp_not_allowed":   http.StatusForbidden,
	"wrong_corp":         http.StatusConflict,
	"user_not_allowed":   http.StatusForbidden,
	"user_inactive":      http.StatusForbidden,
	"review_forbidden":   http.StatusForbidden,
	"rate_limited":       http.StatusTooManyRequests,
	"wecom_unavailable":  http.StatusServiceUnavailable,
	"wecom_error":        http.StatusBadGateway,
	"not_found":          http.StatusNotFound,
	"method_not_allowed": http.StatusMethodNotAllowed,
}

// expectError checks that r is the §6 error code with status.
func expectError(t testing.TB, r reply, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code {
		t.Fatalf("got %d %s; want %d with error %q", r.status, r.raw, status, code)
	}
	checkError(t, r)
}

// expectErrorOf checks that r is a §6 error answer with one of the codes
// (any, if none is given) and returns its code.
func expectErrorOf(t testing.TB, r reply, codes ...string) string {
	t.Helper()
	code := checkError(t, r)
	if len(codes) > 0 && !slices.Contains(codes, code) {
		t.Fatalf("error %q here; want one of %v (body %s)", code, codes, r.raw)
	}
	return code
}

// checkError checks what every §6 error answer has: a JSON body naming a
// code and a message, the code's status, the headers that status needs,
// and no cookie.
func checkError(t testing.TB, r reply) string {
	t.Helper()
	code := r.str("error")
	if want, known := errorStatus[code]; !known || want != r.status {
		t.Fatalf("answer %d with error %q: not a §6 code with that status (body %s)", r.status, code, r.raw)
	}
	if r.str("message") == "" {
		t.Errorf("error %s has no message", code)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error %s: Content-Type %q", code, ct)
	}
	switch r.status {
	case http.StatusUnauthorized:
		if r.header.Get("WWW-Authenticate") != `Bearer realm="wecom"` {
			t.Errorf("401 without WWW-Authenticate: %q", r.header.Get("WWW-Authenticate"))
		}
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if r.header.Get("Retry-After") == "" {
			t.Errorf("%d without Retry-After", r.status)
		}
	}
	if code == "wrong_corp" && r.str("corp") == "" {
		t.Errorf("wrong_corp names no corp: %s", r.raw)
	}
	if sc := r.header.Values("Set-Cookie"); len(sc) > 0 {
		t.Errorf("error %s sets a cookie: %q", code, sc)
	}
	return code
}
