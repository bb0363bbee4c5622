package wecomsim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	acmeID     = "ww0000000000acme"
	acmeSecret = "acme-demo-secret"
	betaID     = "ww0000000000beta"
	betaSecret = "beta-demo-secret"
)

func testConfig() Config {
	return Config{Corps: []Corp{
		{Name: "acme", CorpID: acmeID, Secret: acmeSecret, Users: []User{
			{UserID: "zhangsan", Name: "张三", Departments: []int64{2, 3}},
			{UserID: "lisi", Name: "李四"},
			{UserID: "wangwu", Name: "王五", Status: StatusDisabled},
			{UserID: "hidden", Name: "隐", Hidden: true},
		}, Tags: []Tag{{ID: 1, Name: "管理层", UserIDs: []string{"zhangsan"}}}},
		{Name: "beta", CorpID: betaID, Secret: betaSecret, Users: []User{
			{UserID: "zhaoliu", Name: "赵六"},
		}},
	}}
}

// answer is a decoded WeCom answer with the raw body kept for leak checks.
type answer struct {
	status int
	body   string
	m      map[string]any
}

func (a answer) errcode() int {
	v, ok := a.m["errcode"].(float64)
	if !ok {
		return -999
	}
	return int(v)
}

func (a answer) str(k string) string { s, _ := a.m[k].(string); return s }

// call performs a GET of a WeCom path on h; params alternate names and values.
func call(t *testing.T, h http.Handler, path string, params ...string) answer {
	t.Helper()
	return callCtx(t, context.Background(), h, path, params...)
}

func callCtx(t *testing.T, ctx context.Context, h http.Handler, path string, params ...string) answer {
	t.Helper()
	q := url.Values{}
	for i := 0; i+1 < len(params); i += 2 {
		q.Set(params[i], params[i+1])
	}
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, path+"?"+q.Encode(), nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	a := answer{status: w.Code, body: w.Body.String()}
	_ = json.Unmarshal(w.Body.Bytes(), &a.m)
	return a
}

func getToken(t *testing.T, s *Simulator, corpID, secret string) string {
	t.Helper()
	a := call(t, s, pathGetToken, "corpid", corpID, "corpsecret", secret)
	if a.errcode() != 0 || a.str("access_token") == "" {
		t.Fatalf("gettoken: %s", a.body)
	}
	return a.str("access_token")
}

func exchange(t *testing.T, s *Simulator, token, code string) answer {
	t.Helper()
	return call(t, s, pathJSCode2Session, "access_token", token, "js_code", code, "grant_type", "authorization_code")
}

func userGet(t *testing.T, s *Simulator, token, userID string) answer {
	t.Helper()
	return call(t, s, pathUserGet, "access_token", token, "userid", userID)
}

func mint(t *testing.T, s *Simulator, corp, userID string) string {
	t.Helper()
	code, err := s.MintCode(corp, userID)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func wantErrcode(t *testing.T, what string, a answer, want int) {
	t.Helper()
	if a.status != http.StatusOK || a.errcode() != want {
		t.Fatalf("%s: want HTTP 200 errcode %d, got HTTP %d %s", what, want, a.status, a.body)
	}
}

func TestGetTokenSameWhileValid(t *testing.T) {
	s := New(testConfig())
	a1 := call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", acmeSecret)
	a2 := call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", acmeSecret)
	wantErrcode(t, "first gettoken", a1, 0)
	if a1.str("errmsg") != "ok" {
		t.Errorf("errmsg = %q, want ok", a1.str("errmsg"))
	}
	tok := a1.str("access_token")
	if len(tok) < 64 {
		t.Errorf("token %d chars, want at least 64", len(tok))
	}
	if a2.str("access_token") != tok {
		t.Error("a second gettoken within validity returned another token")
	}
	if exp := a1.m["expires_in"].(float64); exp != 7200 {
		t.Errorf("expires_in = %v, want 7200", exp)
	}
	if getToken(t, s, betaID, betaSecret) == tok {
		t.Error("two corps share a token")
	}
}

func TestGetTokenExpiresInCountsDown(t *testing.T) {
	s := New(Config{TokenTTL: 3 * time.Second, Corps: testConfig().Corps})
	a1 := call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", acmeSecret)
	time.Sleep(1100 * time.Millisecond)
	a2 := call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", acmeSecret)
	if a1.m["expires_in"].(float64) != 3 || a2.m["expires_in"].(float64) != 2 {
		t.Fatalf("expires_in went %v then %v, want 3 then 2", a1.m["expires_in"], a2.m["expires_in"])
	}
}

func TestGetTokenErrors(t *testing.T) {
	s := New(testConfig())
	for _, tc := range []struct {
		name           string
		corpID, secret string
		want           int
	}{
		{"unknown corpid", "wwnosuchcorp", acmeSecret, 40013},
		{"wrong secret", acmeID, "wrong-secret-value", 40001},
		{"another corp's secret", acmeID, betaSecret, 40001},
		{"missing corpid", "", acmeSecret, 41002},
		{"missing secret", acmeID, "", 41004},
	} {
		a := call(t, s, pathGetToken, "corpid", tc.corpID, "corpsecret", tc.secret)
		wantErrcode(t, tc.name, a, tc.want)
		if a.str("access_token") != "" {
			t.Errorf("%s: answered a token", tc.name)
		}
		if tc.secret != "" && strings.Contains(a.body, tc.secret) {
			t.Errorf("%s: answer echoes the secret: %s", tc.name, a.body)
		}
	}
	a := call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", "wrong")
	msg := a.str("errmsg")
	for _, part := range []string{"invalid credential, hint: [", "], from ip: 192.0.2.1, more info at https://open.work.weixin.qq.com/devtool/query?e=40001"} {
		if !strings.Contains(msg, part) {
			t.Errorf("errmsg %q lacks %q", msg, part)
		}
	}
}

func TestExpireTokens(t *testing.T) {
	for _, errcode := range []int{42001, 40014} {
		s := New(testConfig())
		old := getToken(t, s, acmeID, acmeSecret)
		betaTok := getToken(t, s, betaID, betaSecret)
		s.ExpireTokens("acme", errcode)

		a := userGet(t, s, old, "lisi")
		wantErrcode(t, "user/get with the expired token", a, errcode)
		if strings.Contains(a.body, old) {
			t.Errorf("answer echoes the token: %s", a.body)
		}
		wantErrcode(t, "jscode2session with the expired token", exchange(t, s, old, mint(t, s, "acme", "lisi")), errcode)
		wantErrcode(t, "other corp's token", userGet(t, s, betaTok, "zhaoliu"), 0)

		fresh := getToken(t, s, acmeID, acmeSecret)
		if fresh == old {
			t.Fatal("gettoken after ExpireTokens returned the old token")
		}
		wantErrcode(t, "user/get with the new token", userGet(t, s, fresh, "lisi"), 0)
		if getToken(t, s, acmeID, acmeSecret) != fresh {
			t.Fatal("the new token is not kept while valid")
		}
	}

	s := New(testConfig())
	a, b := getToken(t, s, acmeID, acmeSecret), getToken(t, s, betaID, betaSecret)
	s.ExpireTokens("", 0) // all corps, 42001 by default
	wantErrcode(t, "acme after expiring all", userGet(t, s, a, "lisi"), 42001)
	wantErrcode(t, "beta after expiring all", userGet(t, s, b, "zhaoliu"), 42001)
}

func TestTokenTTL(t *testing.T) {
	s := New(Config{TokenTTL: 40 * time.Millisecond, Corps: testConfig().Corps})
	old := getToken(t, s, acmeID, acmeSecret)
	wantErrcode(t, "fresh token", userGet(t, s, old, "lisi"), 0)
	time.Sleep(60 * time.Millisecond)
	wantErrcode(t, "user/get after TTL", userGet(t, s, old, "lisi"), 42001)
	fresh := getToken(t, s, acmeID, acmeSecret)
	if fresh == old {
		t.Fatal("gettoken after TTL returned the expired token")
	}
	wantErrcode(t, "new token", userGet(t, s, fresh, "lisi"), 0)
}

func TestTokenErrors(t *testing.T) {
	s := New(testConfig())
	wantErrcode(t, "missing token", userGet(t, s, "", "lisi"), 40014)
	wantErrcode(t, "unknown token", userGet(t, s, "not-a-token", "lisi"), 40014)
	wantErrcode(t, "missing token, jscode2session", exchange(t, s, "", "abc"), 40014)
}

func TestJSCode2Session(t *testing.T) {
	s := New(testConfig())
	tok := getToken(t, s, acmeID, acmeSecret)
	code := mint(t, s, "acme", "zhangsan")

	a := exchange(t, s, tok, code)
	wantErrcode(t, "first use", a, 0)
	if a.str("corpid") != acmeID || a.str("userid") != "zhangsan" || a.str("errmsg") != "ok" {
		t.Errorf("answer %s", a.body)
	}
	if len(a.str("session_key")) < 16 {
		t.Errorf("session_key %q", a.str("session_key"))
	}
	if v, ok := a.m["deviceid"]; !ok || v != "" {
		t.Errorf("deviceid %v, want present and empty", v)
	}
	if strings.Contains(a.body, tok) {
		t.Error("answer echoes the token")
	}
	wantErrcode(t, "second use", exchange(t, s, tok, code), 40029)
	wantErrcode(t, "unknown code", exchange(t, s, tok, "0a1b2c3d"), 40029)
	wantErrcode(t, "missing code", exchange(t, s, tok, ""), 41008)

	// MintCode takes a corp_id, and "" means the first corp.
	wantErrcode(t, "code minted by corp_id", exchange(t, s, tok, mint(t, s, acmeID, "lisi")), 0)
	wantErrcode(t, "code minted for the first corp", exchange(t, s, tok, mint(t, s, "", "lisi")), 0)
	if _, err := s.MintCode("nosuch", "lisi"); err == nil {
		t.Error("MintCode for an unknown corp succeeded")
	}
	if _, err := s.MintCode("acme", "nobody"); err == nil {
		t.Error("MintCode for an unknown user succeeded")
	}
}

func TestCodeExpiry(t *testing.T) {
	s := New(Config{CodeTTL: 30 * time.Millisecond, Corps: testConfig().Corps})
	tok := getToken(t, s, acmeID, acmeSecret)
	code := mint(t, s, "acme", "lisi")
	time.Sleep(50 * time.Millisecond)
	wantErrcode(t, "expired code", exchange(t, s, tok, code), 40029)
}

func TestCrossCorpCode(t *testing.T) {
	s := New(testConfig())
	acmeTok, betaTok := getToken(t, s, acmeID, acmeSecret), getToken(t, s, betaID, betaSecret)

	code := mint(t, s, "beta", "zhaoliu")
	a := exchange(t, s, acmeTok, code)
	wantErrcode(t, "beta's code with acme's token", a, 0)
	opaque := a.str("userid")
	if a.str("corpid") != betaID {
		t.Errorf("corpid %q, want the user's corp %q", a.str("corpid"), betaID)
	}
	if !strings.HasPrefix(opaque, "wo") || strings.Contains(opaque, "zhaoliu") {
		t.Errorf("userid %q is not opaque", opaque)
	}
	wantErrcode(t, "the code is spent by a foreign exchange", exchange(t, s, betaTok, code), 40029)

	again := exchange(t, s, acmeTok, mint(t, s, "beta", "zhaoliu"))
	if again.str("userid") != opaque {
		t.Errorf("opaque userid not deterministic: %q then %q", opaque, again.str("userid"))
	}
	wantErrcode(t, "opaque userid in the token's corp", userGet(t, s, acmeTok, opaque), 60111)
	wantErrcode(t, "opaque userid in the user's corp", userGet(t, s, betaTok, opaque), 60111)

	own := exchange(t, s, betaTok, mint(t, s, "beta", "zhaoliu"))
	if own.str("userid") != "zhaoliu" {
		t.Errorf("own corp's token gave userid %q", own.str("userid"))
	}
}

func TestUserGet(t *testing.T) {
	s := New(testConfig())
	tok := getToken(t, s, acmeID, acmeSecret)

	a := userGet(t, s, tok, "zhangsan")
	wantErrcode(t, "active user", a, 0)
	var u struct {
		UserID         string  `json:"userid"`
		Name           string  `json:"name"`
		Department     []int64 `json:"department"`
		MainDepartment int64   `json:"main_department"`
		Status         int     `json:"status"`
		Position       *string `json:"position"`
		IsLeaderInDept []int   `json:"is_leader_in_dept"`
	}
	if err := json.Unmarshal([]byte(a.body), &u); err != nil {
		t.Fatal(err)
	}
	if u.UserID != "zhangsan" || u.Name != "张三" || len(u.Department) != 2 || u.Department[0] != 2 ||
		u.Department[1] != 3 || u.MainDepartment != 2 || u.Status != 1 || u.Position == nil || len(u.IsLeaderInDept) != 2 {
		t.Errorf("user/get answered %s", a.body)
	}

	if a := userGet(t, s, tok, "lisi"); a.str("name") != "李四" || !strings.Contains(a.body, `"department":[1]`) {
		t.Errorf("a user without departments is in the root department: %s", a.body)
	}
	disabled := userGet(t, s, tok, "wangwu")
	wantErrcode(t, "disabled user", disabled, 0)
	if disabled.m["status"] != float64(StatusDisabled) {
		t.Errorf("disabled user's status %v", disabled.m["status"])
	}
	wantErrcode(t, "hidden user", userGet(t, s, tok, "hidden"), 60011)
	wantErrcode(t, "unknown user", userGet(t, s, tok, "nobody"), 60111)
	wantErrcode(t, "user of another corp", userGet(t, s, tok, "zhaoliu"), 60111)
	wantErrcode(t, "missing userid", userGet(t, s, tok, ""), 41009)

	if err := s.SetUser("acme", User{UserID: "nobody", Name: "新人", Status: StatusLeft}); err != nil {
		t.Fatal(err)
	}
	if a := userGet(t, s, tok, "nobody"); a.errcode() != 0 || a.m["status"] != float64(StatusLeft) {
		t.Errorf("user added by SetUser: %s", a.body)
	}
	if err := s.SetUser("acme", User{UserID: "x", Status: 3}); err == nil {
		t.Error("SetUser accepted status 3")
	}
	if err := s.SetUser("nosuch", User{UserID: "x"}); err == nil {
		t.Error("SetUser accepted an unknown corp")
	}
}

func TestFaultErrcodeCount(t *testing.T) {
	s := New(testConfig())
	tok := getToken(t, s, acmeID, acmeSecret)
	s.InjectFault(Fault{Endpoint: "user/get", Errcode: -1, Count: 2})
	wantErrcode(t, "faulted 1", userGet(t, s, tok, "lisi"), -1)
	wantErrcode(t, "gettoken is not affected", call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", acmeSecret), 0)
	wantErrcode(t, "faulted 2", userGet(t, s, tok, "lisi"), -1)
	wantErrcode(t, "count used up", userGet(t, s, tok, "lisi"), 0)

	s.InjectFault(Fault{Endpoint: "*", Errcode: 45009}) // until cleared
	for i := 0; i < 3; i++ {
		a := call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", acmeSecret)
		wantErrcode(t, "all endpoints", a, 45009)
		if !strings.Contains(a.str("errmsg"), "api freq out of limit") {
			t.Errorf("errmsg %q", a.str("errmsg"))
		}
	}
	wantErrcode(t, "all endpoints, user/get", userGet(t, s, tok, "lisi"), 45009)
	s.ClearFaults()
	wantErrcode(t, "after ClearFaults", userGet(t, s, tok, "lisi"), 0)

	// The fault takes precedence over whatever the call would have answered.
	s.InjectFault(Fault{Endpoint: "/cgi-bin/miniprogram/jscode2session", Errcode: 40001, Count: 1})
	wantErrcode(t, "fault given by path", exchange(t, s, tok, "whatever"), 40001)
}

func TestFaultStatusAndGarbage(t *testing.T) {
	s := New(testConfig())
	s.InjectFault(Fault{Endpoint: "gettoken", Status: http.StatusBadGateway, Count: 1})
	s.InjectFault(Fault{Endpoint: "gettoken", Garbage: true, Count: 1})

	a := call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", acmeSecret)
	if a.status != http.StatusBadGateway || a.m != nil {
		t.Errorf("status fault: HTTP %d %q", a.status, a.body)
	}
	a = call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", acmeSecret)
	if a.status != http.StatusOK || a.body == "" || json.Valid([]byte(a.body)) {
		t.Errorf("garbage fault: HTTP %d %q", a.status, a.body)
	}
	wantErrcode(t, "after both faults", call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", acmeSecret), 0)
}

func TestFaultDelay(t *testing.T) {
	s := New(testConfig())
	tok := getToken(t, s, acmeID, acmeSecret)

	s.InjectFault(Fault{Endpoint: "user/get", Delay: 50 * time.Millisecond, Count: 1})
	start := time.Now()
	wantErrcode(t, "delayed normal answer", userGet(t, s, tok, "lisi"), 0)
	if d := time.Since(start); d < 50*time.Millisecond {
		t.Errorf("answered after %v, want at least 50ms", d)
	}

	s.InjectFault(Fault{Endpoint: "user/get", Delay: 30 * time.Millisecond, Errcode: -1, Count: 1})
	start = time.Now()
	wantErrcode(t, "delay then errcode", userGet(t, s, tok, "lisi"), -1)
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("answered after %v, want at least 30ms", d)
	}

	s.InjectFault(Fault{Endpoint: "user/get", Delay: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start = time.Now()
	callCtx(t, ctx, s, pathUserGet, "access_token", tok, "userid", "lisi")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("a cancelled request waited %v for its delay", d)
	}
}

func TestCounts(t *testing.T) {
	s := New(testConfig())
	tok := getToken(t, s, acmeID, acmeSecret)
	call(t, s, pathGetToken, "corpid", "bad", "corpsecret", "bad")
	s.InjectFault(Fault{Endpoint: "user/get", Status: 500, Count: 1})
	userGet(t, s, tok, "lisi")
	userGet(t, s, tok, "lisi")
	exchange(t, s, tok, "nope")
	call(t, s, "/cgi-bin/other")
	s.InjectFault(Fault{Endpoint: "tag/get", Errcode: -1, Count: 1})
	call(t, s, pathTagGet, "access_token", tok, "tagid", "1")
	call(t, s, pathDepartmentList, "access_token", tok)
	call(t, s, pathDepartmentList, "access_token", "bad")

	want := map[string]int{"gettoken": 2, "jscode2session": 1, "user/get": 2, "department/simplelist": 2, "tag/get": 1}
	got := s.Counts()
	if len(got) != len(want) {
		t.Fatalf("counts %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("counts %v, want %v", got, want)
		}
	}
	s.ResetCounts()
	for k, v := range s.Counts() {
		if v != 0 {
			t.Errorf("after ResetCounts %s = %d", k, v)
		}
	}
}

func TestUnknownPath(t *testing.T) {
	s := New(testConfig())
	a := call(t, s, "/cgi-bin/message/send")
	if a.status != http.StatusNotFound || a.str("error") != "not_found" {
		t.Errorf("unknown path: HTTP %d %s", a.status, a.body)
	}
}

// TestConcurrent is for the race detector as much as for the one-use rule under contention.
func TestConcurrent(t *testing.T) {
	s := New(testConfig())
	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// No t.Fatal off the test goroutine: report through errs instead.
			tok := call(t, s, pathGetToken, "corpid", acmeID, "corpsecret", acmeSecret).str("access_token")
			code, err := s.MintCode("acme", "zhangsan")
			if err != nil {
				errs <- err.Error()
				return
			}
			if a := exchange(t, s, tok, code); a.str("userid") != "zhangsan" {
				errs <- "exchange: " + a.body
			}
			if a := userGet(t, s, tok, "zhangsan"); a.errcode() != 0 {
				errs <- "user/get: " + a.body
			}
			if i%100 == 0 {
				s.ExpireTokens("beta", 40014)
				_ = s.SetUser("acme", User{UserID: "lisi", Name: "李四"})
				s.Counts()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}

	// One code, many simultaneous exchanges: exactly one wins.
	tok := getToken(t, s, acmeID, acmeSecret)
	code := mint(t, s, "acme", "lisi")
	var mu sync.Mutex
	wins := 0
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if exchange(t, s, tok, code).errcode() == 0 {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d exchanges of one code succeeded, want 1", wins)
	}
	if c := s.Counts(); c["gettoken"] != n+1 || c["user/get"] != n {
		t.Errorf("counts %v", c)
	}
}
