package wecomauth_test

// WeCom's callbacks end to end (SPEC §4a): the simulator, configured with
// the gateway's callback URL, token and key, sends what WeCom would when
// contacts change through its development interface; the test also sends
// hand-made callbacks for the refusals. Token and key are {env.X}
// placeholders on both sides, so that the DEBUG log, which shows the
// config, must not show them either.

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/wxcrypt"
	"github.com/wecomgate/wecomgate/module/wecomauth"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

const (
	cbTokenEnv = "WECOMGATE_TEST_CB_TOKEN"
	cbKeyEnv   = "WECOMGATE_TEST_CB_KEY"
	cbToken    = "cbTokenDoNotLog0123456789"
	cbKey      = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM"
)

// callbackOptions is o with callbacks for acme and partner on both sides,
// and a DEBUG JSON log in logFile.
func callbackOptions(t *testing.T, o gatewayOptions, logFile string) gatewayOptions {
	t.Helper()
	t.Setenv(cbTokenEnv, cbToken)
	t.Setenv(cbKeyEnv, cbKey)
	cb := &wecomauth.CallbackConfig{Token: "{env." + cbTokenEnv + "}", AESKey: "{env." + cbKeyEnv + "}"}
	o.corps = gatewayCorps()
	for i := range o.corps {
		o.corps[i].Callback = cb
	}
	o.world = func(gw string) []wecomsim.Corp {
		w := testWorld()
		for i := range w {
			if w[i].Name != "other" {
				w[i].Callback = &wecomsim.Callback{URL: gw + "/wecom/callback/" + w[i].Name, Token: cb.Token, AESKey: cb.AESKey}
			}
		}
		return w
	}
	if logFile != "" {
		o.global += fmt.Sprintf("\n\tlog {\n\t\toutput file %s\n\t\tlevel DEBUG\n\t\tformat json\n\t}", logFile)
	}
	return o
}

func startCallbackGateway(t *testing.T, o gatewayOptions) (*env, string) {
	t.Helper()
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	return startGateway(t, callbackOptions(t, o, logFile)), logFile
}

// crypter is what WeCom holds for a corp id.
func crypter(t testing.TB, corpID string) *wxcrypt.Crypter {
	t.Helper()
	c, err := wxcrypt.New(cbToken, cbKey, corpID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sealed is a callback as WeCom sends it: the query and the XML body.
type sealed struct {
	query url.Values
	body  string
}

// seal encrypts and signs msg at ts as WeCom would for cr.
func seal(t testing.TB, cr *wxcrypt.Crypter, msg string, ts time.Time) sealed {
	t.Helper()
	stamp := strconv.FormatInt(ts.Unix(), 10)
	ct, sig, err := cr.Seal([]byte(msg), stamp, "1372623149")
	if err != nil {
		t.Fatal(err)
	}
	return sealed{
		query: url.Values{"msg_signature": {sig}, "timestamp": {stamp}, "nonce": {"1372623149"}},
		body:  "<xml><ToUserName><![CDATA[wwacme]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID><Encrypt><![CDATA[" + ct + "]]></Encrypt></xml>",
	}
}

func contactXML(changeType, fields string) string {
	return "<xml><ToUserName><![CDATA[wwacme]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1700000000</CreateTime>" +
		"<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_contact]]></Event><ChangeType><![CDATA[" + changeType + "]]></ChangeType>" + fields + "</xml>"
}

// post sends a callback to the gateway.
func (e *env) post(t testing.TB, corp string, s sealed) reply {
	t.Helper()
	resp, err := e.client.Post(e.gw+"/wecom/callback/"+corp+"?"+s.query.Encode(), "text/xml", strings.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return newReply(resp.StatusCode, resp.Header, raw)
}

// simCallbacks are the callbacks the simulator sent, newest first.
func (e *env) simCallbacks() []wecomsim.CallbackResult {
	e.t.Helper()
	var out struct{ Callbacks []wecomsim.CallbackResult }
	e.simJSON(http.MethodGet, "/sim/callbacks", nil, &out)
	return out.Callbacks
}

// lastCallback checks that the simulator's newest callback was event and
// that the gateway answered it "success".
func (e *env) lastCallback(event string) {
	e.t.Helper()
	cbs := e.simCallbacks()
	if len(cbs) == 0 || cbs[0].Event != event || !cbs[0].OK || cbs[0].Answer != "success" {
		e.t.Fatalf("newest callback is not a successful %s: %+v", event, cbs)
	}
}

// URL verification, as WeCom's console runs it when the URL is saved: the
// simulator's and one by hand, answered with the plaintext exactly.
func TestCallbackURLVerification(t *testing.T) {
	e, _ := startCallbackGateway(t, gatewayOptions{})
	var res wecomsim.CallbackResult
	e.simJSON(http.MethodPost, "/sim/callback/verify", map[string]string{"corp": "acme"}, &res)
	if !res.OK || res.Status != 200 {
		t.Fatalf("simulator's verification: %+v", res)
	}

	cr := crypter(t, "wwacme")
	stamp := strconv.FormatInt(e.clock.Now().Unix(), 10)
	ct, sig, _ := cr.Seal([]byte("1288432023552776189"), stamp, "47744683")
	// A '+' sent unescaped arrives as a space: it is read back as '+'.
	q := "msg_signature=" + sig + "&timestamp=" + stamp + "&nonce=47744683&echostr=" + strings.ReplaceAll(url.QueryEscape(ct), "%2B", "+")
	r := e.do(http.MethodGet, "/wecom/callback/acme?"+q, "")
	if r.status != 200 || r.raw != "1288432023552776189" || !strings.HasPrefix(r.header.Get("Content-Type"), "text/plain") {
		t.Fatalf("verification: %d %q %q", r.status, r.raw, r.header.Get("Content-Type"))
	}

	// No callback block, no endpoint; and only GET and POST.
	expectError(t, e.do(http.MethodGet, "/wecom/callback/nosuch?"+q, ""), 404, "not_found")
	expectError(t, e.do(http.MethodGet, "/wecom/callback/?"+q, ""), 404, "not_found")
	r = e.do(http.MethodPut, "/wecom/callback/acme?"+q, "")
	expectError(t, r, 405, "method_not_allowed")
	if r.header.Get("Allow") != "GET, POST" {
		t.Errorf("Allow: %q", r.header.Get("Allow"))
	}
}

func TestCallbackNotFoundWithoutBlock(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	expectError(t, e.do(http.MethodGet, "/wecom/callback/acme?msg_signature=x&timestamp=1&nonce=1&echostr=x", ""), 404, "not_found")
}

// Every refusal is 403 with no detail and a WARN line naming the reason,
// and nothing of the token, the key or a plaintext reaches the log, even
// at DEBUG.
func TestCallbackRefusals(t *testing.T) {
	e, logFile := startCallbackGateway(t, gatewayOptions{})
	acme, other := crypter(t, "wwacme"), crypter(t, "wwsomeoneelse")
	now := e.clock.Now()
	const secretMsg = "<xml><Content>plaintext-do-not-log</Content></xml>"
	good := seal(t, acme, secretMsg, now)

	badSig := seal(t, acme, secretMsg, now)
	badSig.query.Set("msg_signature", strings.Repeat("0", 40))
	wrongToken, _ := wxcrypt.New("another-token", cbKey, "wwacme")
	stale := seal(t, acme, secretMsg, now.Add(-6*time.Minute))
	future := seal(t, acme, secretMsg, now.Add(6*time.Minute))
	// Signed with the right token, but not encrypted with the key.
	stamp := strconv.FormatInt(now.Unix(), 10)
	junk := "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	undecryptable := sealed{
		query: url.Values{"msg_signature": {wxcrypt.Signature(cbToken, stamp, "1", junk)}, "timestamp": {stamp}, "nonce": {"1"}},
		body:  "<xml><Encrypt>" + junk + "</Encrypt></xml>",
	}
	dtd := good
	dtd.body = `<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + good.body
	entity := good
	entity.body = strings.Replace(good.body, "<AgentID>", "<AgentID>&x;", 1)
	oversized := good
	oversized.body = strings.Replace(good.body, "</xml>", strings.Repeat(" ", 64<<10)+"</xml>", 1)

	cases := []struct {
		name, reason string
		s            sealed
	}{
		{"bad signature", "bad_signature", badSig},
		{"no signature", "bad_signature", sealed{query: url.Values{"timestamp": {stamp}}, body: good.body}},
		{"another token", "bad_signature", seal(t, wrongToken, secretMsg, now)},
		{"timestamp 6 min old", "bad_timestamp", stale},
		{"timestamp 6 min ahead", "bad_timestamp", future},
		{"another receiver", "wrong_receiver", seal(t, other, secretMsg, now)},
		{"undecryptable", "undecryptable", undecryptable},
		{"DTD", "dtd", dtd},
		{"undeclared entity", "malformed", entity},
		{"oversized", "oversized", oversized},
		{"not XML", "malformed", sealed{query: good.query, body: "{}"}},
	}
	for _, tc := range cases {
		r := e.post(t, "acme", tc.s)
		if r.status != http.StatusForbidden || r.raw != "" {
			t.Errorf("%s: %d %q; want 403 with no body", tc.name, r.status, r.raw)
		}
	}
	// The handler's clock decides what is stale: a message stamped now is
	// refused once the clock has moved 6 minutes on.
	e.clock.Advance(6 * time.Minute)
	if r := e.post(t, "acme", good); r.status != http.StatusForbidden {
		t.Errorf("a message 6 minutes old by the handler's clock: %d", r.status)
	}
	e.clock.Advance(-6 * time.Minute)
	if r := e.post(t, "acme", good); r.status != 200 || r.raw != "success" {
		t.Fatalf("the good message: %d %q", r.status, r.raw)
	}

	var res wecomsim.CallbackResult
	e.simJSON(http.MethodPost, "/sim/callback/verify", map[string]string{"corp": "acme"}, &res) // a plaintext echo in the log's way

	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	for _, tc := range cases {
		if !strings.Contains(log, `"msg":"WeCom callback refused","corp":"acme","reason":"`+tc.reason+`"`) {
			t.Errorf("%s: no WARN line with reason %s", tc.name, tc.reason)
		}
	}
	for what, s := range map[string]string{"token": cbToken, "key": cbKey, "plaintext": "plaintext-do-not-log", "echo": res.Answer} {
		if s == "" {
			t.Fatalf("no %s to look for", what)
		}
		if i := strings.Index(log, s); i >= 0 {
			t.Errorf("the %s is in the log: %s", what, logLineHead(log, i))
		}
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "WeCom callback refused") && !strings.Contains(line, `"level":"warn"`) {
			t.Errorf("a refusal not at WARN: %s", line)
		}
	}
}

// delete_user ends the user's sessions at once; a new login is refused by
// WeCom itself (60111).
func TestCallbackDeleteUser(t *testing.T) {
	e, _ := startCallbackGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	other := login(t, e, "acme", "zhangsan") // a second device
	for _, tk := range []string{tok, other} {
		if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tk); r.status != 200 {
			t.Fatalf("before: %d %s", r.status, r.raw)
		}
	}
	e.simJSON(http.MethodDelete, "/sim/users", map[string]string{"corp": "acme", "userid": "zhangsan"}, nil)
	e.lastCallback("delete_user")
	for _, tk := range []string{tok, other} {
		expectError(t, e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tk), 401, "unauthenticated")
	}
	e.backend.took()
}

// update_user: a user disabled in WeCom is refused at their next request,
// not after recheck; a userid change (NewUserID) refuses the old id.
func TestCallbackUpdateUser(t *testing.T) {
	e, _ := startCallbackGateway(t, gatewayOptions{extra: "recheck 1h"})
	tok := login(t, e, "acme", "zhangsan")
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != 200 {
		t.Fatalf("before: %d", r.status)
	}
	e.setUser("acme", "zhangsan", map[string]any{"status": wecomsim.StatusDisabled})
	e.lastCallback("update_user")
	expectError(t, e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok), 403, "user_inactive")

	e.setUser("acme", "zhangsan", map[string]any{"status": wecomsim.StatusActive})
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != 200 {
		t.Fatalf("enabled again: %d %s", r.status, r.raw)
	}
	e.setUser("acme", "zhangsan", map[string]any{"new_userid": "zhangsan2"})
	cbs := e.simCallbacks()
	if cbs[0].Event != "update_user" || cbs[0].Target != "zhangsan → zhangsan2" || !cbs[0].OK {
		t.Fatalf("rename callback: %+v", cbs[0])
	}
	expectError(t, e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok), 403, "user_not_allowed")
	if tok2 := login(t, e, "acme", "zhangsan2"); tok2 == "" {
		t.Fatal("the new userid cannot sign in")
	}
	e.backend.took()
}

// Department changes drop the cached trees: a department moved under an
// allowed one admits its members at once, and moved out refuses them.
func TestCallbackDepartmentChanges(t *testing.T) {
	e, _ := startCallbackGateway(t, gatewayOptions{extra: "recheck 1h"})
	// partner admits department 7 with its sub-departments; qianqi is in 8.
	expectError(t, e.send(t, http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q,"corp":"partner"}`, e.code("partner", "qianqi"))), 403, "user_not_allowed")
	e.simJSON(http.MethodPut, "/sim/departments", map[string]any{"corp": "partner", "id": 8, "parent": 7}, nil)
	e.lastCallback("update_party")
	tok := login(t, e, "partner", "qianqi")
	e.simJSON(http.MethodPut, "/sim/departments", map[string]any{"corp": "partner", "id": 8, "parent": 1}, nil)
	e.lastCallback("update_party")
	expectError(t, e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok), 403, "user_not_allowed")

	e.simJSON(http.MethodPut, "/sim/departments", map[string]any{"corp": "partner", "id": 9, "parent": 7}, nil)
	e.lastCallback("create_party")
	e.simJSON(http.MethodDelete, "/sim/departments", map[string]any{"corp": "partner", "id": 9}, nil)
	e.lastCallback("delete_party")
	e.simJSON(http.MethodPut, "/sim/tags", map[string]any{"corp": "partner", "id": 3, "users": []string{"qianqi"}}, nil)
	e.lastCallback("update_tag")
}

// A tag change drops cached tag members: a user added to an allowed tag
// signs in at once.
func TestCallbackTagChange(t *testing.T) {
	e := startGateway(t, tagOptions(t, gatewayOptions{extra: "recheck 1h"}))
	expectError(t, e.send(t, http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q,"corp":"partner"}`, e.code("partner", "qianqi"))), 403, "user_not_allowed")
	e.simJSON(http.MethodPut, "/sim/tags", map[string]any{"corp": "partner", "id": 5, "users": []string{"qianqi"}}, nil)
	e.lastCallback("update_tag")
	login(t, e, "partner", "qianqi")
}

// tagOptions are callbackOptions with partner admitting tag 5 instead of
// department 7, and the simulator knowing an empty tag 5.
func tagOptions(t *testing.T, o gatewayOptions) gatewayOptions {
	o = callbackOptions(t, o, "")
	o.corps[1].AllowDepartments, o.corps[1].AllowTags = nil, []int64{5}
	world := o.world
	o.world = func(gw string) []wecomsim.Corp {
		w := world(gw)
		w[1].Tags = []wecomsim.Tag{{ID: 5, Name: "值班"}}
		return w
	}
	return o
}

// A resent event is harmless, other events are answered and ignored, and
// an event WeCom signed but that is not readable XML is answered too.
func TestCallbackResentAndOtherEvents(t *testing.T) {
	e, _ := startCallbackGateway(t, gatewayOptions{})
	tok := login(t, e, "acme", "zhangsan")
	acme := crypter(t, "wwacme")
	update := seal(t, acme, contactXML("update_user", "<UserID><![CDATA[zhangsan]]></UserID>"), e.clock.Now())
	for i := range 3 {
		if r := e.post(t, "acme", update); r.status != 200 || r.raw != "success" {
			t.Fatalf("update_user #%d: %d %q", i+1, r.status, r.raw)
		}
		if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != 200 {
			t.Fatalf("after update_user #%d: %d %s", i+1, r.status, r.raw)
		}
	}
	for _, msg := range []string{
		"<xml><MsgType>text</MsgType><Content>hi</Content></xml>",
		contactXML("create_user", "<UserID>newbie</UserID>"),
		contactXML("something_new", ""),
		contactXML("delete_user", "<UserID>not a userid!</UserID>"),
		"not xml at all",
	} {
		if r := e.post(t, "acme", seal(t, acme, msg, e.clock.Now())); r.status != 200 || r.raw != "success" {
			t.Fatalf("%q: %d %q", msg, r.status, r.raw)
		}
	}
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != 200 {
		t.Fatalf("after other events: %d %s", r.status, r.raw)
	}
	del := seal(t, acme, contactXML("delete_user", "<UserID>zhangsan</UserID>"), e.clock.Now())
	for range 2 {
		if r := e.post(t, "acme", del); r.status != 200 || r.raw != "success" {
			t.Fatalf("delete_user: %d %q", r.status, r.raw)
		}
	}
	expectError(t, e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok), 401, "unauthenticated")
	e.backend.took()
}

// A callback token or key written in the configuration is warned about at
// provision, as the secret is.
func TestCallbackLiteralSecretsWarn(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	corps := gatewayCorps()
	corps[0].Callback = &wecomauth.CallbackConfig{Token: "literal-token", AESKey: cbKey}
	startGateway(t, gatewayOptions{corps: corps, global: "log {\n\t\toutput file " + logFile + "\n\t\tformat json\n\t}"})
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"token", "aes_key"} {
		if !strings.Contains(string(b), `"msg":"a callback `+what+` is written in the configuration`) {
			t.Errorf("no warning for a literal callback %s", what)
		}
	}
}
