package wecomauth_test

// Who may pass (SPEC §3a, issue 13): allow-lists that add up, userids in
// any case, sub-departments, tags, wecom_require, chained wecom_auth. On
// direct handlers with a clock the test moves, so changes in WeCom are
// seen "after recheck" without waiting.

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wecomgate/wecomgate/module/wecomauth"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

// The tree of the tests, in corp acme:
//
//	1 ─┬─ 2 销售部 ── 3 华北 ── 4 华北东
//	   └─ 5 研发部
//
// tag 1 管理层: zhangsan, and department 5; tag 2: department 3.
func authzWorld() wecomsim.Config {
	return wecomsim.Config{Corps: []wecomsim.Corp{{
		Name: "acme", CorpID: "wwacme", Secret: acmeSecret,
		Departments: []wecomsim.Department{
			{ID: 2, ParentID: 1, Name: "销售部"}, {ID: 3, ParentID: 2, Name: "华北"},
			{ID: 4, ParentID: 3, Name: "华北东"}, {ID: 5, ParentID: 1, Name: "研发部"},
		},
		Users: []wecomsim.User{
			{UserID: "zhangsan", Name: "张三", Departments: []int64{1}},
			{UserID: "sunba", Name: "孙八", Departments: []int64{4}},
			{UserID: "zhouji", Name: "周九", Departments: []int64{5}},
			{UserID: "LiSi", Name: "李四", Departments: []int64{1}},
		},
		Tags: []wecomsim.Tag{
			{ID: 1, Name: "管理层", UserIDs: []string{"zhangsan"}, Departments: []int64{5}},
			{ID: 2, Name: "华北", Departments: []int64{3}},
		},
	}}}
}

type authzGW struct {
	sim   *wecomsim.Simulator
	clock *movedClock
	ctx   caddy.Context
	url   string
}

func newAuthzGW(t *testing.T) *authzGW {
	t.Helper()
	sim := wecomsim.New(authzWorld())
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &authzGW{sim: sim, clock: newMovedClock(), ctx: caddyContext(t), url: srv.URL}
}

// handler provisions a wecom_auth with corp acme as given.
func (g *authzGW) handler(t *testing.T, acme wecomauth.CorpConfig) *wecomauth.Handler {
	t.Helper()
	acme.Name, acme.CorpID, acme.Secret = "acme", "wwacme", acmeSecret
	h := &wecomauth.Handler{
		APIBase: g.url, Corps: []wecomauth.CorpConfig{acme}, SessionKeys: []string{testSessionKey},
		Recheck: caddy.Duration(10 * time.Minute), StaleGrace: caddy.Duration(time.Hour),
	}
	wecomauth.SetClock(h, g.clock.Now)
	if err := h.Provision(g.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	return h
}

// login signs user in through h and returns the status and the token.
func (g *authzGW) login(t *testing.T, h caddyhttp.MiddlewareHandler, user string) (int, string) {
	t.Helper()
	code, err := g.sim.MintCode("acme", user)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, prepareRequest(jsonPost("/wecom/login", `{"code":"`+code+`"}`)), &nextProbe{}); err != nil {
		t.Fatal(err)
	}
	var out struct{ Token string }
	_ = json.Unmarshal(rec.Body.Bytes(), &out)
	return rec.Code, out.Token
}

// get sends GET path with token through the chain.
func get(t *testing.T, h caddyhttp.MiddlewareHandler, next caddyhttp.Handler, path, token string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, prepareRequest(r), next); err != nil {
		t.Fatal(err)
	}
	return rec
}

func TestAllowListsAddUp(t *testing.T) {
	g := newAuthzGW(t)
	h := g.handler(t, wecomauth.CorpConfig{AllowUsers: []string{"zhouji"}, AllowDepartments: []int64{2}})
	for user, want := range map[string]int{
		"sunba":    http.StatusOK,        // department 4, a grandchild of 2
		"zhouji":   http.StatusOK,        // allow_users only: outside department 2
		"zhangsan": http.StatusForbidden, // neither
	} {
		if got, _ := g.login(t, h, user); got != want {
			t.Errorf("%s: %d, want %d", user, got, want)
		}
	}
}

func TestAllowUsersIgnoresLetterCase(t *testing.T) {
	g := newAuthzGW(t)
	h := g.handler(t, wecomauth.CorpConfig{AllowUsers: []string{"lisi"}})
	if got, _ := g.login(t, h, "LiSi"); got != http.StatusOK {
		t.Errorf("allow_users lisi, WeCom userid LiSi: %d", got)
	}
}

func TestAllowTagsByUserlistAndPartylist(t *testing.T) {
	g := newAuthzGW(t)
	h := g.handler(t, wecomauth.CorpConfig{AllowTags: []int64{1}})
	for user, want := range map[string]int{
		"zhangsan": http.StatusOK,        // in the tag's userlist
		"zhouji":   http.StatusOK,        // in its partylist's department 5
		"sunba":    http.StatusForbidden, // neither
	} {
		if got, _ := g.login(t, h, user); got != want {
			t.Errorf("tag 1, %s: %d, want %d", user, got, want)
		}
	}
	h2 := g.handler(t, wecomauth.CorpConfig{AllowTags: []int64{2}})
	if got, _ := g.login(t, h2, "sunba"); got != http.StatusOK {
		t.Errorf("tag 2 (department 3), sunba in its sub-department 4: %d", got)
	}
	if got, _ := g.login(t, g.handler(t, wecomauth.CorpConfig{AllowTags: []int64{99}}), "zhangsan"); got != http.StatusForbidden {
		t.Errorf("an unknown tag admitted someone: %d", got)
	}
}

// A department moved out from under the allowed one refuses its members at
// their first request after recheck, not before; the tree is asked once
// per recheck however many users there are.
func TestMovedDepartmentRefusedAfterRecheck(t *testing.T) {
	g := newAuthzGW(t)
	h := g.handler(t, wecomauth.CorpConfig{AllowDepartments: []int64{2}})
	_, tok := g.login(t, h, "sunba")
	if tok == "" {
		t.Fatal("sunba could not sign in")
	}
	if err := g.sim.SetUser("acme", wecomsim.User{UserID: "wuer", Name: "吴二", Departments: []int64{3}}); err != nil {
		t.Fatal(err)
	}
	_, tok2 := g.login(t, h, "wuer")
	if n := g.sim.Counts()["department/simplelist"]; n != 1 {
		t.Errorf("two users of one allowed department: %d simplelist calls, want 1", n)
	}
	if err := g.sim.SetDepartment("acme", wecomsim.Department{ID: 3, ParentID: 5, Name: "华北"}); err != nil {
		t.Fatal(err)
	}
	g.clock.Advance(5 * time.Minute)
	if rec := get(t, h, &nextProbe{}, "/api/x", tok); rec.Code != http.StatusOK {
		t.Errorf("within recheck after the move: %d", rec.Code)
	}
	g.clock.Advance(5*time.Minute + time.Second)
	for _, tk := range []string{tok, tok2} {
		if rec := get(t, h, &nextProbe{}, "/api/x", tk); rec.Code != http.StatusForbidden {
			t.Errorf("after recheck, a member of the moved department: %d %s", rec.Code, rec.Body)
		}
	}
}

// While WeCom cannot answer, the last tree serves within stale_grace;
// past it the user gets 503, not a wrong answer.
func TestDepartmentTreeServesStaleWithinGrace(t *testing.T) {
	g := newAuthzGW(t)
	h := g.handler(t, wecomauth.CorpConfig{AllowDepartments: []int64{2}})
	_, tok := g.login(t, h, "sunba")
	g.sim.InjectFault(wecomsim.Fault{Endpoint: "department/simplelist", Errcode: -1})
	g.clock.Advance(30 * time.Minute)
	if rec := get(t, h, &nextProbe{}, "/api/x", tok); rec.Code != http.StatusOK {
		t.Errorf("WeCom failing, tree 30 min old: %d %s", rec.Code, rec.Body)
	}
	g.clock.Advance(31 * time.Minute)
	rec := get(t, h, &nextProbe{}, "/api/x", tok)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "wecom_unavailable") {
		t.Errorf("WeCom failing, tree past stale_grace: %d %s", rec.Code, rec.Body)
	}
}

// requireHandler provisions a wecom_require.
func requireHandler(t *testing.T, ctx caddy.Context, q *wecomauth.Require) *wecomauth.Require {
	t.Helper()
	if err := q.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := q.Validate(); err != nil {
		t.Fatal(err)
	}
	return q
}

// chained is wecom_auth, then h2 (a wecom_require or another wecom_auth),
// then the probe, as one handler.
type chained struct {
	h  *wecomauth.Handler
	h2 caddyhttp.MiddlewareHandler
}

func (c chained) ServeHTTP(w http.ResponseWriter, r *http.Request, probe caddyhttp.Handler) error {
	return c.h.ServeHTTP(w, r, caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		return c.h2.ServeHTTP(w, r, probe)
	}))
}

func chain(h *wecomauth.Handler, h2 caddyhttp.MiddlewareHandler) caddyhttp.MiddlewareHandler {
	return chained{h, h2}
}

func TestWecomRequire(t *testing.T) {
	g := newAuthzGW(t)
	h := g.handler(t, wecomauth.CorpConfig{})
	q := requireHandler(t, g.ctx, &wecomauth.Require{Departments: []int64{2}, Users: []string{"ZHOUJI"}})
	for user, want := range map[string]int{"sunba": 200, "zhouji": 200, "zhangsan": 403} {
		_, tok := g.login(t, h, user)
		probe := &nextProbe{}
		rec := get(t, chain(h, q), probe, "/api/admin/x", tok)
		if rec.Code != want || probe.called != (want == 200) {
			t.Errorf("wecom_require, %s: %d (backend reached: %v), want %d", user, rec.Code, probe.called, want)
		}
		if want == 403 && !strings.Contains(rec.Body.String(), "user_not_allowed") {
			t.Errorf("wecom_require refusal: %s", rec.Body)
		}
	}
	// Without a wecom_auth before it, nothing passes: 401.
	probe := &nextProbe{}
	rec := get(t, q, probe, "/api/admin/x", "")
	if rec.Code != http.StatusUnauthorized || probe.called {
		t.Errorf("wecom_require without wecom_auth: %d", rec.Code)
	}
	// A client header does not make an identity.
	r := httptest.NewRequest(http.MethodGet, "/api/admin/x", nil)
	r.Header.Set("X-WeCom-UserId", "sunba")
	rec = httptest.NewRecorder()
	if err := q.ServeHTTP(rec, prepareRequest(r), probe); err != nil || rec.Code != http.StatusUnauthorized || probe.called {
		t.Errorf("wecom_require with a forged header: %d %v", rec.Code, err)
	}
	if err := (&wecomauth.Require{}).Validate(); err == nil {
		t.Error("a wecom_require without conditions validates")
	}
}

// A later wecom_auth applies its own lists to the identity the first
// established, without looking for the token again (the first took it).
func TestChainedWecomAuth(t *testing.T) {
	g := newAuthzGW(t)
	first := g.handler(t, wecomauth.CorpConfig{})
	second := g.handler(t, wecomauth.CorpConfig{AllowTags: []int64{1}})
	for user, want := range map[string]int{"zhangsan": 200, "zhouji": 200, "sunba": 403} {
		_, tok := g.login(t, first, user)
		probe := &nextProbe{}
		rec := get(t, chain(first, second), probe, "/api/x", tok)
		if rec.Code != want || probe.called != (want == 200) {
			t.Errorf("chained, %s: %d %s, want %d", user, rec.Code, rec.Body, want)
		}
		if want == 200 && probe.header.Get("X-WeCom-UserId") != user {
			t.Errorf("chained, %s: backend identity %q", user, probe.header.Get("X-WeCom-UserId"))
		}
	}
}

// A department tree WeCom fails to give with nothing cached is not asked
// again at once: each request would otherwise wait the whole call budget.
func TestFirstTreeFailurePauses(t *testing.T) {
	g := newAuthzGW(t)
	h := g.handler(t, wecomauth.CorpConfig{AllowDepartments: []int64{2}})
	g.sim.InjectFault(wecomsim.Fault{Endpoint: "department/simplelist", Errcode: -1})
	if got, _ := g.login(t, h, "sunba"); got != http.StatusServiceUnavailable {
		t.Fatalf("login while the tree cannot be had: %d", got)
	}
	calls := g.sim.Counts()["department/simplelist"]
	if got, _ := g.login(t, h, "sunba"); got != http.StatusServiceUnavailable {
		t.Fatalf("second login: %d", got)
	}
	if n := g.sim.Counts()["department/simplelist"]; n != calls {
		t.Errorf("simplelist asked again during the pause: %d → %d", calls, n)
	}
	g.sim.ClearFaults()
	g.clock.Advance(11 * time.Second)
	if got, _ := g.login(t, h, "sunba"); got != http.StatusOK {
		t.Errorf("after the pause, WeCom answering: %d", got)
	}
}
