package wecomsim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy"
)

const exampleCaddyfile = `wecom_simulator {
	token_ttl 2h
	code_ttl  5m
	dev_path  /sim
	corp acme {
		corp_id ww0000000000acme
		secret  acme-demo-secret
		user zhangsan {
			name       张三
			department 1 2
			status     1
			hidden
		}
		user lisi 李四          # short form: user <userid> [<name>] with optional block
	}
	corp beta {
		corp_id ww0000000000beta
		secret  {env.BETA_SECRET}
		user wangwu 王五 {
			status 2
			hidden false
		}
	}
}`

func exampleHandler() Handler {
	return Handler{
		TokenTTL: caddy.Duration(2 * time.Hour),
		CodeTTL:  caddy.Duration(5 * time.Minute),
		DevPath:  "/sim",
		Corps: []CorpConfig{
			{Name: "acme", CorpID: "ww0000000000acme", Secret: "acme-demo-secret", Users: []UserConfig{
				{UserID: "zhangsan", Name: "张三", Department: []int64{1, 2}, Status: 1, Hidden: true},
				{UserID: "lisi", Name: "李四"},
			}},
			{Name: "beta", CorpID: "ww0000000000beta", Secret: "{env.BETA_SECRET}", Users: []UserConfig{
				{UserID: "wangwu", Name: "王五", Status: 2},
			}},
		},
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(exampleCaddyfile)); err != nil {
		t.Fatal(err)
	}
	if want := exampleHandler(); !reflect.DeepEqual(h, want) {
		t.Fatalf("got  %+v\nwant %+v", h, want)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ input, want string }{
		{"wecom_simulator extra", "wecom_simulator: takes no arguments"},
		{"wecom_simulator {\n bogus 1\n}", `unknown subdirective "bogus"`},
		{"wecom_simulator {\n token_ttl soon\n}", "token_ttl"},
		{"wecom_simulator {\n code_ttl\n}", "code_ttl"},
		{"wecom_simulator {\n dev_path /a /b\n}", "dev_path"},
		{"wecom_simulator {\n corp {\n corp_id x\n }\n}", "corp: want exactly one name"},
		{"wecom_simulator {\n corp a {\n tenant x\n }\n}", `corp a: unknown subdirective "tenant"`},
		{"wecom_simulator {\n corp a {\n secret\n }\n}", "secret"},
		{"wecom_simulator {\n corp a {\n user\n }\n}", "user: want a userid"},
		{"wecom_simulator {\n corp a {\n user u {\n status 3\n }\n }\n}", "user u: status"},
		{"wecom_simulator {\n corp a {\n user u {\n department one\n }\n }\n}", "user u: department"},
		{"wecom_simulator {\n corp a {\n user u {\n hidden maybe\n }\n }\n}", "user u: hidden"},
		{"wecom_simulator {\n corp a {\n user u {\n email u@x\n }\n }\n}", `user u: unknown subdirective "email"`},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.input, err, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Handler)
		want   string
	}{
		{"no corps", func(h *Handler) { h.Corps = nil }, "at least one corp"},
		{"missing corp_id", func(h *Handler) { h.Corps[0].CorpID = "" }, "corp acme: corp_id is required"},
		{"missing secret", func(h *Handler) { h.Corps[1].Secret = "" }, "corp beta: secret is required"},
		{"duplicate corp_id", func(h *Handler) { h.Corps[1].CorpID = h.Corps[0].CorpID }, "already the name or corp_id"},
		{"duplicate name", func(h *Handler) { h.Corps[1].Name = "acme" }, "already the name or corp_id"},
		{"name is another corp's id", func(h *Handler) { h.Corps[1].Name = h.Corps[0].CorpID }, "already the name or corp_id"},
		{"duplicate user", func(h *Handler) { h.Corps[0].Users[1].UserID = "zhangsan" }, "configured twice"},
		{"bad status", func(h *Handler) { h.Corps[0].Users[0].Status = 3 }, "status 3"},
		{"relative dev_path", func(h *Handler) { h.DevPath = "sim" }, "dev_path"},
		{"dev_path under cgi-bin", func(h *Handler) { h.DevPath = "/cgi-bin" }, "dev_path"},
		{"negative ttl", func(h *Handler) { h.TokenTTL = -1 }, "token_ttl"},
	} {
		h := exampleHandler()
		tc.mutate(&h)
		if err := h.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	h := exampleHandler()
	h.Corps[0].Name = h.Corps[0].CorpID // a corp may be named by its own corp_id
	if err := h.Validate(); err != nil {
		t.Error(err)
	}
}

func TestJSONRoundTrip(t *testing.T) {
	h := exampleHandler()
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"token_ttl":7200000000000`, `"code_ttl":`, `"dev_path":"/sim"`, `"corp_id":"ww0000000000acme"`,
		`"userid":"zhangsan"`, `"department":[1,2]`, `"status":2`, `"hidden":true`, `"secret":"{env.BETA_SECRET}"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}
	var back Handler
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, h) {
		t.Errorf("round trip changed the config:\n%+v\n%+v", back, h)
	}
	// Caddy's JSON also accepts durations as strings.
	if err := json.Unmarshal([]byte(`{"token_ttl":"1m","code_ttl":"10s"}`), &back); err != nil || time.Duration(back.TokenTTL) != time.Minute {
		t.Errorf("string durations: %v %v", err, back.TokenTTL)
	}
}

func TestCaddyfileAdapt(t *testing.T) {
	input := ":8081 {\n" + exampleCaddyfile + "\nreverse_proxy 127.0.0.1:9000\n}\n"
	out, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		if !strings.Contains(w.Message, "not formatted") { // the nested example keeps its own indentation
			t.Errorf("warning: %v", w)
		}
	}
	js := string(out)
	sim := strings.Index(js, `"handler":"wecom_simulator"`)
	proxy := strings.Index(js, `"handler":"reverse_proxy"`)
	if sim < 0 || proxy < 0 || sim > proxy {
		t.Fatalf("want wecom_simulator ordered before reverse_proxy without an order option: %s", js)
	}
	if !strings.Contains(js, `"corp_id":"ww0000000000acme"`) {
		t.Errorf("adapted JSON lacks the corp: %s", js)
	}
}

func provision(t *testing.T, h *Handler) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestReloadKeepsState checks that a reload with the same configuration finds the same
// Simulator, as Caddy provisions the new config before cleaning up the old one.
func TestReloadKeepsState(t *testing.T) {
	t.Setenv("BETA_SECRET", "beta-from-env")
	old, reloaded, other := exampleHandler(), exampleHandler(), exampleHandler()
	other.CodeTTL = caddy.Duration(time.Minute)
	provision(t, &old)
	provision(t, &reloaded)
	provision(t, &other)
	if old.sim != reloaded.sim {
		t.Fatal("the same configuration got a new Simulator")
	}
	if other.sim == old.sim {
		t.Fatal("another configuration shares the Simulator")
	}
	for _, h := range []*Handler{&old, &other} {
		if err := h.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
	code := mint(t, reloaded.sim, "acme", "lisi")

	// The placeholder in beta's secret was resolved from the environment.
	if a := call(t, reloaded.sim, pathGetToken, "corpid", "ww0000000000beta", "corpsecret", "beta-from-env"); a.errcode() != 0 {
		t.Errorf("secret from {env.BETA_SECRET}: %s", a.body)
	}

	again := exampleHandler()
	provision(t, &again)
	defer again.Cleanup()
	tok := getToken(t, again.sim, "ww0000000000acme", "acme-demo-secret")
	wantErrcode(t, "a code minted before the reload", exchange(t, again.sim, tok, code), 0)
	if err := reloaded.Cleanup(); err != nil {
		t.Fatal(err)
	}
}

func TestMiddleware(t *testing.T) {
	h := exampleHandler()
	h.DevPath = "/_sim"
	provision(t, &h)
	defer h.Cleanup()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	for path, want := range map[string]int{
		"/cgi-bin/gettoken?corpid=x&corpsecret=y": http.StatusOK,
		"/cgi-bin/user/get":                       http.StatusOK,
		"/cgi-bin/miniprogram/jscode2session":     http.StatusOK,
		"/_sim/counts":                            http.StatusOK,
		"/_sim/nothing":                           http.StatusNotFound,
		"/api/orders":                             http.StatusTeapot,
		"/cgi-bin/message/send":                   http.StatusTeapot,
		"/sim/counts":                             http.StatusTeapot,
	} {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, localRequest("GET", path, nil), next); err != nil {
			t.Fatal(err)
		}
		if w.Code != want {
			t.Errorf("%s: HTTP %d, want %d", path, w.Code, want)
		}
	}
}
