package wecomauth_test

// POST /wecom/decrypt (SPEC §4, issue 19): what wx.qy.getMobile returns is
// decrypted with the session_key of the user's latest login, on any
// instance with the session keys, and every bad input gets the same 400.

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
	"github.com/wecomgate/wecomgate/module/wecomauth"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

func withDecrypt(h *wecomauth.Handler) { h.Decrypt = wecomsim.DefaultMiniProgramAppID }

// userData is what wx.qy.getMobile (or getEmail) would give the mini
// program now, as the body /wecom/decrypt takes.
func userData(t *testing.T, sim *wecomsim.Simulator, user, kind string) string {
	t.Helper()
	data, iv, err := sim.UserData("acme", user, kind)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{"encrypted_data": data, "iv": iv})
	return string(b)
}

func TestDecryptGetMobile(t *testing.T) {
	g := newUnitGW(t, withDecrypt)
	if err := g.sim.SetUser("acme", wecomsim.User{UserID: "zhangsan", Name: "张三", Departments: []int64{1, 2}, Mobile: "13800000000", Email: "zs@acme.example"}); err != nil {
		t.Fatal(err)
	}
	tok := login(t, g, "acme", "zhangsan")
	r := g.send(t, http.MethodPost, "/wecom/decrypt", userData(t, g.sim, "zhangsan", "mobile"), "Authorization: Bearer "+tok)
	if r.status != http.StatusOK || r.str("mobile") != "13800000000" || r.body["watermark"] != nil {
		t.Fatalf("decrypt getMobile: %d %s", r.status, r.raw)
	}
	r = g.send(t, http.MethodPost, "/wecom/decrypt", userData(t, g.sim, "zhangsan", "email"), "Authorization: Bearer "+tok)
	if r.status != http.StatusOK || r.str("email") != "zs@acme.example" {
		t.Fatalf("decrypt getEmail: %d %s", r.status, r.raw)
	}

	// Another instance with the same session keys decrypts too: the
	// session_key travels sealed in the token.
	other := &wecomauth.Handler{APIBase: g.simURL, Corps: gatewayCorps(), SessionKeys: []string{testSessionKey}}
	withDecrypt(other)
	if err := other.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Cleanup() })
	g2 := &unitGW{h: other, sim: g.sim, simURL: g.simURL, clock: g.clock}
	if r := g2.send(t, http.MethodPost, "/wecom/decrypt", userData(t, g.sim, "zhangsan", "mobile"), "Authorization: Bearer "+tok); r.status != http.StatusOK || r.str("mobile") != "13800000000" {
		t.Errorf("decrypt on a second instance: %d %s", r.status, r.raw)
	}

	// The latest login wins: data encrypted after a new login does not open
	// with the older token's key.
	newer := login(t, g, "acme", "zhangsan")
	body := userData(t, g.sim, "zhangsan", "mobile")
	expectError(t, g.send(t, http.MethodPost, "/wecom/decrypt", body, "Authorization: Bearer "+tok), http.StatusBadRequest, "invalid_request")
	if r := g.send(t, http.MethodPost, "/wecom/decrypt", body, "Authorization: Bearer "+newer); r.status != http.StatusOK {
		t.Errorf("decrypt with the newest token: %d %s", r.status, r.raw)
	}

	// Logout ends it.
	if r := g.send(t, http.MethodPost, "/wecom/logout", "", "Authorization: Bearer "+newer); r.status != http.StatusNoContent {
		t.Fatalf("logout: %d", r.status)
	}
	expectError(t, g.send(t, http.MethodPost, "/wecom/decrypt", body, "Authorization: Bearer "+newer), http.StatusUnauthorized, "unauthenticated")
}

// Every bad input gets the same 400 and message: no padding oracle.
func TestDecryptRefusesBadDataAlike(t *testing.T) {
	g := newUnitGW(t, withDecrypt)
	tok := login(t, g, "acme", "zhangsan")
	good := userData(t, g.sim, "zhangsan", "mobile")
	var in struct {
		Data string `json:"encrypted_data"`
		IV   string `json:"iv"`
	}
	_ = json.Unmarshal([]byte(good), &in)
	ct, _ := base64.StdEncoding.DecodeString(in.Data)
	flip := func(i int) string {
		b := bytes.Clone(ct)
		b[i] ^= 1
		return base64.StdEncoding.EncodeToString(b)
	}
	messages := map[string]bool{}
	for name, body := range map[string]string{
		"not base64":        fmt.Sprintf(`{"encrypted_data":"%%%%%%","iv":%q}`, in.IV),
		"bad padding":       fmt.Sprintf(`{"encrypted_data":%q,"iv":%q}`, flip(len(ct)-1), in.IV),
		"garbled":           fmt.Sprintf(`{"encrypted_data":%q,"iv":%q}`, flip(0), in.IV),
		"wrong length":      fmt.Sprintf(`{"encrypted_data":%q,"iv":%q}`, base64.StdEncoding.EncodeToString(ct[:len(ct)-3]), in.IV),
		"short iv":          fmt.Sprintf(`{"encrypted_data":%q,"iv":"AAAA"}`, in.Data),
		"missing fields":    `{}`,
		"not one JSON body": `{"encrypted_data":"a"} {}`,
	} {
		r := g.send(t, http.MethodPost, "/wecom/decrypt", body, "Authorization: Bearer "+tok)
		expectError(t, r, http.StatusBadRequest, "invalid_request")
		if name != "not one JSON body" {
			messages[r.str("message")] = true
		}
	}
	if len(messages) != 1 {
		t.Errorf("bad data got %d different messages: %v", len(messages), messages)
	}
	// Without a session, a review session, and without decrypt configured.
	expectError(t, g.send(t, http.MethodPost, "/wecom/decrypt", good), http.StatusUnauthorized, "unauthenticated")
	expectError(t, g.send(t, http.MethodPost, "/wecom/decrypt", good, "Authorization: Bearer "+reviewLogin(t, g)), http.StatusForbidden, "review_forbidden")
	plain := newUnitGW(t)
	ptok := login(t, plain, "acme", "zhangsan")
	expectError(t, plain.send(t, http.MethodPost, "/wecom/decrypt", good, "Authorization: Bearer "+ptok), http.StatusNotFound, "not_found")
}

// sessionKeyTap records the session_key of every jscode2session answer
// the simulator gives, as it passes to the gateway.
type sessionKeyTap struct {
	sim  http.Handler
	mu   sync.Mutex
	keys []string
}

func (s *sessionKeyTap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	s.sim.ServeHTTP(rec, r)
	var a struct {
		SessionKey string `json:"session_key"`
	}
	if json.Unmarshal(rec.Body.Bytes(), &a) == nil && a.SessionKey != "" {
		s.mu.Lock()
		s.keys = append(s.keys, a.SessionKey)
		s.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = io.Copy(w, rec.Body)
}

// WeCom's session_key never leaves the gateway: not in a response, a log
// line at DEBUG, or Caddy's storage; only sealed inside the token.
func TestSessionKeyNeverLeaves(t *testing.T) {
	sim := wecomsim.New(wecomsim.Config{Corps: testWorld()})
	tap := &sessionKeyTap{sim: sim}
	srv := httptest.NewServer(tap)
	t.Cleanup(srv.Close)
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	var cfg caddy.Config
	if err := json.Unmarshal([]byte(`{"logging":{"logs":{"default":{"level":"DEBUG","writer":{"output":"file","filename":`+fmt.Sprintf("%q", logFile)+`}}}}}`), &cfg); err != nil {
		t.Fatal(err)
	}
	pctx, err := caddy.ProvisionContext(&cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(pctx)
	t.Cleanup(cancel)
	h := &wecomauth.Handler{APIBase: srv.URL, Corps: gatewayCorps(), SessionKeys: []string{testSessionKey}, Review: reviewConfig()}
	withDecrypt(h)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	g := &unitGW{h: h, sim: sim, simURL: srv.URL, clock: newMovedClock()}

	var answers []string
	note := func(r reply) {
		answers = append(answers, r.raw)
		for k, v := range r.header {
			answers = append(answers, k+": "+strings.Join(v, ","))
		}
	}
	tok := login(t, g, "acme", "zhangsan")
	for _, req := range []struct{ method, path, body string }{
		{http.MethodPost, "/wecom/decrypt", userData(t, sim, "zhangsan", "mobile")},
		{http.MethodPost, "/wecom/decrypt", `{"encrypted_data":"AAAA","iv":"AAAA"}`},
		{http.MethodGet, "/wecom/session", ""},
		{http.MethodGet, "/wecom/auth", ""},
		{http.MethodGet, "/api/x", ""},
		{http.MethodPost, "/wecom/logout", ""},
	} {
		note(g.send(t, req.method, req.path, req.body, "Authorization: Bearer "+tok))
	}
	r := httptest.NewRequest(http.MethodGet, "/api/x", nil)
	r.Header.Set("X-WeCom-Code", g.mint(t, "acme", "zhangsan"))
	rec, next := g.serve(t, r)
	note(recorded(rec))
	answers = append(answers, fmt.Sprint(next.header))

	tap.mu.Lock()
	keys := append([]string(nil), tap.keys...)
	tap.mu.Unlock()
	if len(keys) < 2 {
		t.Fatalf("the tap saw %d session keys", len(keys))
	}
	logs, _ := os.ReadFile(logFile)
	var stored []string
	_ = filepath.Walk(os.Getenv("XDG_DATA_HOME"), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if b, err := os.ReadFile(p); err == nil {
				stored = append(stored, string(b))
			}
		}
		return nil
	})
	for _, k := range keys {
		raw, _ := base64.StdEncoding.DecodeString(k)
		for _, spelling := range []string{k, base64.RawStdEncoding.EncodeToString(raw), base64.RawURLEncoding.EncodeToString(raw), hex.EncodeToString(raw), string(raw)} {
			for _, a := range answers {
				if strings.Contains(a, spelling) {
					t.Errorf("a response holds the session_key: %.120s", a)
				}
			}
			if bytes.Contains(logs, []byte(spelling)) {
				t.Errorf("the log holds the session_key")
			}
			for _, s := range stored {
				if strings.Contains(s, spelling) {
					t.Errorf("Caddy's storage holds the session_key")
				}
			}
		}
	}
	if !bytes.Contains(logs, []byte("login")) {
		t.Error("the log recorded nothing: the test checked nothing")
	}
}

// An inline login's token carries the session_key too; the token grows by
// the key's 16 bytes sealed, and only where decrypt is on.
func TestInlineLoginTokenDecrypts(t *testing.T) {
	g := newUnitGW(t, withDecrypt)
	r := httptest.NewRequest(http.MethodGet, "/api/x", nil)
	r.Header.Set("X-WeCom-Code", g.mint(t, "acme", "zhangsan"))
	rec, _ := g.serve(t, r)
	tok := rec.Result().Header.Get("X-WeCom-Session") // as written: the live map loses it after
	if rec.Code != http.StatusOK || tok == "" {
		t.Fatalf("inline login: %d", rec.Code)
	}
	if r := g.send(t, http.MethodPost, "/wecom/decrypt", userData(t, g.sim, "zhangsan", "mobile"), "Authorization: Bearer "+tok); r.status != http.StatusOK {
		t.Errorf("decrypt with an inline login's token: %d %s", r.status, r.raw)
	}
	without := login(t, newUnitGW(t), "acme", "zhangsan")
	with := login(t, g, "acme", "zhangsan")
	t.Logf("token length: %d without decrypt, %d with", len(without), len(with))
	if d := len(with) - len(without); d < 20 || d > 24 {
		t.Errorf("the session_key adds %d characters to the token, want about 22 (16 bytes in base64)", d)
	}
}

// Through a real Caddy: a simulator-made getMobile payload decrypts at the
// site that signed the user in and at a second site on the same storage
// (another instance, as far as the token is concerned).
func TestDecryptThroughCaddy(t *testing.T) {
	siteB := testcaddy.Listen(t, 1)[0].URL()
	e := startGateway(t, gatewayOptions{
		extra: "decrypt " + wecomsim.DefaultMiniProgramAppID,
		sites: func(e *env) string {
			return fmt.Sprintf("%s {\n\twecom_auth {\n\t\tapi_base %s\n%s\n\t\tdecrypt %s\n\t}\n\trespond ok\n}",
				siteB, e.sim, corpBlocks(e.corps), wecomsim.DefaultMiniProgramAppID)
		},
	})
	e.setUser("acme", "zhangsan", map[string]any{"mobile": "13900000000"})
	tok := login(t, e, "acme", "zhangsan")
	var data map[string]string
	e.simJSON(http.MethodPost, "/sim/userdata", map[string]string{"corp": "acme", "userid": "zhangsan", "kind": "mobile"}, &data)
	body, _ := json.Marshal(data)
	for _, site := range []*env{e, e.at(siteB, e.sim)} {
		r := site.do(http.MethodPost, "/wecom/decrypt", string(body), "Authorization: Bearer "+tok)
		if r.status != http.StatusOK || r.str("mobile") != "13900000000" {
			t.Errorf("decrypt at %s: %d %s", site.gw, r.status, r.raw)
		}
	}
	expectError(t, e.do(http.MethodPost, "/wecom/decrypt", `{"encrypted_data":"AAAA","iv":"AAAA"}`, "Authorization: Bearer "+tok), http.StatusBadRequest, "invalid_request")
}
