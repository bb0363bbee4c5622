package wecomauth_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
)

// adminCall sends a request to Caddy's admin endpoint.
func adminCall(t *testing.T, base, method, path, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// POST /wecom/revoke ends a user's sessions; the user signs in again and
// the new session works. Bad requests get a clear JSON error.
func TestAdminRevoke(t *testing.T) {
	admin := testcaddy.Listen(t, 1)[0]
	e, _ := startCallbackGateway(t, gatewayOptions{global: "admin " + admin.CaddyAddr()})
	tok := login(t, e, "acme", "zhangsan")
	lisiless := login(t, e, "partner", "zhaoliu")
	for _, tk := range []string{tok, lisiless} {
		if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tk); r.status != 200 {
			t.Fatalf("before: %d", r.status)
		}
	}
	status, body, _ := adminCall(t, admin.URL(), http.MethodPost, "/wecom/revoke", `{"corp":"acme","userid":"zhangsan"}`)
	if status != 200 || !strings.Contains(body, `"revoked":true`) {
		t.Fatalf("revoke: %d %s", status, body)
	}
	expectError(t, e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok), 401, "unauthenticated")
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+lisiless); r.status != 200 {
		t.Fatalf("another user's session ended too: %d", r.status)
	}
	fresh := login(t, e, "acme", "zhangsan")
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+fresh); r.status != 200 {
		t.Fatalf("a session issued after the revoke: %d %s", r.status, r.raw)
	}
	e.backend.took()

	for _, tc := range []struct {
		method, body string
		status       int
		says         string
	}{
		{http.MethodPost, `{"corp":"nosuch","userid":"zhangsan"}`, 400, "unknown corp"},
		{http.MethodPost, `{"corp":"acme"}`, 400, "userid is required"},
		{http.MethodPost, `{"userid":"zhangsan"}`, 400, "corp is required"},
		{http.MethodPost, `{"corp":"acme","userid":"a b"}`, 400, "not a WeCom userid"},
		{http.MethodPost, `not json`, 400, "JSON object"},
		{http.MethodPost, `{"corp":"acme","userid":"zhangsan","extra":1}`, 400, "JSON object"},
		{http.MethodGet, "", 405, "use POST"},
	} {
		status, body, _ := adminCall(t, admin.URL(), tc.method, "/wecom/revoke", tc.body)
		var out struct{ Error string }
		if status != tc.status || json.Unmarshal([]byte(body), &out) != nil || !strings.Contains(out.Error, tc.says) {
			t.Errorf("%s %s: %d %s; want %d saying %q", tc.method, tc.body, status, body, tc.status, tc.says)
		}
	}
}

// GET /wecom/status reports per corp the last gettoken, the users known and
// the callbacks, and nothing secret; the callbacks metric counts by event
// and result.
func TestAdminStatus(t *testing.T) {
	admin := testcaddy.Listen(t, 1)[0]
	e, _ := startCallbackGateway(t, gatewayOptions{global: "admin " + admin.CaddyAddr()})
	login(t, e, "acme", "zhangsan")
	login(t, e, "acme", "zhangsan")
	e.setUser("acme", "zhangsan", map[string]any{"name": "张三丰"}) // a callback
	e.post(t, "acme", sealed{body: "<xml/>"})                    // a refused one
	e.simJSON(http.MethodPost, "/sim/faults", map[string]any{"endpoint": "gettoken", "errcode": 40001, "count": 1}, nil)
	expectErrorOf(t, e.send(t, http.MethodPost, "/wecom/login", `{"code":"`+e.code("partner", "zhaoliu")+`","corp":"partner"}`), "wecom_error")

	status, body, hdr := adminCall(t, admin.URL(), http.MethodGet, "/wecom/status", "")
	if status != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("status: %d %s", status, body)
	}
	var out struct {
		Corps []struct {
			Name     string
			CorpID   string `json:"corp_id"`
			GetToken *struct {
				OK      bool
				Errcode int
				Error   string
			}
			KnownUsers int            `json:"known_users"`
			QuotaInUse map[string]int `json:"quota_in_use"`
			QuotaShare map[string]int `json:"quota_share"`
			Callbacks  struct {
				Enabled           bool
				Received, Refused int64
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Corps) != 2 {
		t.Fatalf("corps: %s", body)
	}
	acme, partner := out.Corps[0], out.Corps[1]
	if acme.Name != "acme" || acme.CorpID != "wwacme" || acme.GetToken == nil || !acme.GetToken.OK ||
		acme.KnownUsers != 1 || !acme.Callbacks.Enabled || acme.Callbacks.Received < 1 || acme.Callbacks.Refused < 1 {
		t.Errorf("acme: %s", body)
	}
	if acme.QuotaInUse["jscode2session"] < 1 || acme.QuotaInUse["user/get"] < 1 {
		t.Errorf("acme's quota in use does not count its login's calls: %s", body)
	}
	if acme.QuotaShare["user/get"] != 9500 { // the default 10,000 a minute, less the reserve
		t.Errorf("acme's user/get share in a lone instance, want 9500: %s", body)
	}
	if partner.Name != "partner" || partner.GetToken == nil || partner.GetToken.OK || partner.GetToken.Errcode != 40001 {
		t.Errorf("partner: %s", body)
	}
	for _, secret := range []string{acmeSecret, partnerSecret, cbToken, cbKey, "access_token"} {
		if strings.Contains(body, secret) {
			t.Errorf("status shows %q: %s", secret, body)
		}
	}
	_, metrics, _ := adminCall(t, admin.URL(), http.MethodGet, "/metrics", "")
	for _, want := range []string{`wecom_callbacks_total{event="update_user",result="ok"}`, `wecom_callbacks_total{event="unknown",result="bad_signature"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if status, _, _ := adminCall(t, admin.URL(), http.MethodPost, "/wecom/status", "{}"); status != 405 {
		t.Errorf("POST status: %d", status)
	}
}
