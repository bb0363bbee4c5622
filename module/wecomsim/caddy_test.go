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
		tag 1 管理层 {
			users       zhangsan
			departments 4
		}
		department 4 {          # before its parent: the tree is checked once the corp is read
			name   华北东
			parent 3
		}
		department 2 销售部 {
			order 10
		}
		department 3 华北 {
			parent 2
		}
		department 5 华南       # short form: under the root
		tag 2 {
			users lisi
			users zhangsan
		}
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
			}, Departments: []DepartmentConfig{
				{ID: 4, Parent: 3, Name: "华北东"},
				{ID: 2, Name: "销售部", Order: 10},
				{ID: 3, Parent: 2, Name: "华北"},
				{ID: 5, Name: "华南"},
			}, Tags: []TagConfig{
				{ID: 1, Name: "管理层", Users: []string{"zhangsan"}, Departments: []int64{4}},
				{ID: 2, Users: []string{"lisi", "zhangsan"}},
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
		{"wecom_simulator {\n corp a {\n user u {\n phone 1\n }\n }\n}", `user u: unknown subdirective "phone"`},
		{"wecom_simulator {\n corp a {\n department\n }\n}", "department: want an id"},
		{"wecom_simulator {\n corp a {\n department 2 a b\n }\n}", "department: want an id and optionally a name"},
		{"wecom_simulator {\n corp a {\n department two\n }\n}", `department: "two" is not a department id`},
		{"wecom_simulator {\n corp a {\n department 0\n }\n}", `department: "0" is not a department id`},
		{"wecom_simulator {\n corp a {\n department 2 {\n parent\n }\n }\n}", "parent: expected exactly one value"},
		{"wecom_simulator {\n corp a {\n department 2 {\n parent one\n }\n }\n}", `department 2: parent: "one" is not a department id`},
		{"wecom_simulator {\n corp a {\n department 1 {\n parent 2\n }\n }\n}", "department 1 is the root: it has no parent"},
		{"wecom_simulator {\n corp a {\n department 2 {\n order -1\n }\n }\n}", `department 2: order: "-1"`},
		{"wecom_simulator {\n corp a {\n department 2 {\n manager u\n }\n }\n}", `department 2: unknown subdirective "manager"`},
		{"wecom_simulator {\n corp a {\n department 2\n department 2 x\n }\n}", "corp a: department 2 is declared twice"},
		{"wecom_simulator {\n corp a {\n department 3 {\n parent 2\n }\n }\n}", "corp a: department 3: parent 2 is not declared"},
		{"wecom_simulator {\n corp a {\n user u {\n department 2\n }\n department 3 {\n parent 2\n }\n }\n}", "department 3: parent 2 is not declared"},
		{"wecom_simulator {\n corp a {\n department 2 {\n parent 2\n }\n }\n}", "department 2: parent 2: a department cannot be its own parent"},
		{"wecom_simulator {\n corp a {\n department 2 {\n parent 4\n }\n department 3 {\n parent 2\n }\n department 4 {\n parent 3\n }\n }\n}", "corp a: department 2: parent cycle 2 → 4 → 3 → 2"},
		{"wecom_simulator {\n corp a {\n tag\n }\n}", "tag: want a tagid"},
		{"wecom_simulator {\n corp a {\n tag x\n }\n}", `tag: "x" is not a tag id`},
		{"wecom_simulator {\n corp a {\n tag 1 {\n users\n }\n }\n}", "tag 1: users: want one or more userids"},
		{"wecom_simulator {\n corp a {\n tag 1 {\n departments\n }\n }\n}", "tag 1: departments: want one or more"},
		{"wecom_simulator {\n corp a {\n tag 1 {\n departments 0\n }\n }\n}", `tag 1: departments: "0" is not a department id`},
		{"wecom_simulator {\n corp a {\n tag 1 {\n members u\n }\n }\n}", `tag 1: unknown subdirective "members"`},
		{"wecom_simulator {\n corp a {\n tag 1\n tag 1\n }\n}", "corp a: tag 1 is declared twice"},
		{"wecom_simulator {\n corp a {\n user u\n tag 1 {\n users u nobody\n }\n }\n}", `corp a: tag 1: users: "nobody" is not a user of this corp`},
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
		{"unknown parent", func(h *Handler) { h.Corps[0].Departments[0].Parent = 7 }, "corp acme: department 4: parent 7 is not declared"},
		{"cycle", func(h *Handler) { h.Corps[0].Departments[1].Parent = 4 }, "corp acme: department 4: parent cycle 4 → 3 → 2 → 4"},
		{"duplicate department", func(h *Handler) { h.Corps[0].Departments[3].ID = 2 }, "corp acme: department 2 is declared twice"},
		{"root with a parent", func(h *Handler) { h.Corps[0].Departments[3] = DepartmentConfig{ID: 1, Parent: 2} }, "department 1 is the root"},
		{"duplicate tag", func(h *Handler) { h.Corps[0].Tags[1].ID = 1 }, "corp acme: tag 1 is declared twice"},
		{"tag of a stranger", func(h *Handler) { h.Corps[0].Tags[1].Users = []string{"wangwu"} }, `corp acme: tag 2: users: "wangwu" is not a user`},
		{"user department 0", func(h *Handler) { h.Corps[1].Users[0].Department = []int64{0} }, "corp beta: user wangwu: department: 0 is not a department id"},
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
		`"userid":"zhangsan"`, `"department":[1,2]`, `"status":2`, `"hidden":true`, `"secret":"{env.BETA_SECRET}"`,
		`"departments":[{"id":4,"parent":3,"name":"华北东"},{"id":2,"name":"销售部","order":10},`,
		`"tags":[{"id":1,"name":"管理层","users":["zhangsan"],"departments":[4]},{"id":2,"users":["lisi","zhangsan"]}]`} {
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
		"/cgi-bin/department/simplelist":          http.StatusOK,
		"/cgi-bin/tag/get":                        http.StatusOK,
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

// TestProvisionedContacts: the Caddyfile's departments and tags reach the Simulator, and a
// change to them is a new configuration, with a new Simulator.
func TestProvisionedContacts(t *testing.T) {
	t.Setenv("BETA_SECRET", "beta-from-env")
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(exampleCaddyfile)); err != nil {
		t.Fatal(err)
	}
	provision(t, &h)
	defer h.Cleanup()
	tok := getToken(t, h.sim, "ww0000000000acme", "acme-demo-secret")
	if got := tree(t, simplelist(t, h.sim, tok)); got != "1<0 2<1 3<2 4<3 5<1" {
		t.Errorf("the Caddyfile's tree: %s", got)
	}
	if a := tagGet(t, h.sim, tok, "1"); !strings.Contains(a.body, `"tagname":"管理层","userlist":[],"partylist":[4]`) {
		t.Errorf("tag 1 (its member zhangsan is hidden): %s", a.body)
	}
	if a := tagGet(t, h.sim, tok, "2"); !strings.Contains(a.body, `"userlist":[{"userid":"lisi","name":"李四"}]`) {
		t.Errorf("tag 2: %s", a.body)
	}

	moved := exampleHandler()
	moved.Corps[0].Departments[2].Parent = 5
	provision(t, &moved)
	defer moved.Cleanup()
	if moved.sim == h.sim {
		t.Fatal("a changed tree shares the Simulator of the old one")
	}
}

// TestCaddyfileContactsErrorLine: a tree error found once the corp is read points at the
// department or tag at fault, not at the corp's closing brace.
func TestCaddyfileContactsErrorLine(t *testing.T) {
	for _, tc := range []struct{ input, want string }{
		{"wecom_simulator {\n corp a {\n department 2\n department 3 {\n parent 9\n }\n }\n}", "department 3: parent 9 is not declared in this corp (declare it with its own department line, or use 1, the root), at Testfile:4"},
		{"wecom_simulator {\n corp a {\n department 2 {\n parent 3\n }\n department 3 {\n parent 2\n }\n }\n}", "corp a: department 2: parent cycle 2 → 3 → 2: a department cannot be under its own sub-department, at Testfile:3"},
		{"wecom_simulator {\n corp a {\n user u\n\n tag 7 {\n users v\n }\n }\n}", `corp a: tag 7: users: "v" is not a user of this corp, at Testfile:5`},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input))
		if err == nil || !strings.HasSuffix(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant …%s", tc.input, err, tc.want)
		}
	}
}
