package wecom_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

func TestCodeToSessionAndGetUser(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	s, err := e.c.CodeToSession(ctx, e.corp, e.mint(t, "main", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if s.CorpID != e.corp.ID || s.UserID != "alice" || s.SessionKey == "" {
		t.Fatalf("session = %v (has key: %v)", s, s.SessionKey != "")
	}
	u, err := e.c.GetUser(ctx, e.corp, "alice")
	if err != nil {
		t.Fatal(err)
	}
	want := wecom.User{Name: "Alice", Department: []int64{2, 3}, Status: 1}
	if u.Name != want.Name || !slices.Equal(u.Department, want.Department) || u.Status != want.Status {
		t.Fatalf("user = %+v, want %+v", u, want)
	}
}

func TestInvalidCode(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	code := e.mint(t, "main", "alice")
	if _, err := e.c.CodeToSession(ctx, e.corp, code); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.CodeToSession(ctx, e.corp, code) // spent
	if ee := asError(t, err); ee.Kind != wecom.KindInvalidCode || ee.Errcode != 40029 {
		t.Fatalf("reused code: %v (kind %v), want invalid_code 40029", err, ee.Kind)
	}
	if got := e.count(wecomsim.EndpointJSCode2Session); got != 2 {
		t.Fatalf("jscode2session called %d times, want 2: 40029 is not retried", got)
	}
	before := e.count(wecomsim.EndpointJSCode2Session)
	if _, err := e.c.CodeToSession(ctx, e.corp, ""); wecom.KindOf(err) != wecom.KindInvalidCode {
		t.Fatalf("empty code: %v", err)
	}
	if e.count(wecomsim.EndpointJSCode2Session) != before {
		t.Fatal("an empty code was sent to WeCom")
	}
}

func TestUserNotAllowed(t *testing.T) {
	e := newEnv(t)
	for user, errcode := range map[string]int{"hidden": 60011, "nobody": 60111} {
		_, err := e.c.GetUser(context.Background(), e.corp, user)
		if ee := asError(t, err); ee.Kind != wecom.KindUserNotAllowed || ee.Errcode != errcode {
			t.Fatalf("%s: %v (kind %v), want user_not_allowed %d", user, err, ee.Kind, errcode)
		}
	}
}

func TestCodeOfAnotherCorpReturnsItsCorpID(t *testing.T) {
	e := newEnv(t)
	// bob is in "other", but the code is exchanged with main's token.
	s, err := e.c.CodeToSession(context.Background(), e.corp, e.mint(t, "other", "bob"))
	if err != nil {
		t.Fatal(err)
	}
	if s.CorpID != e.other.ID || s.UserID == "bob" || !strings.HasPrefix(s.UserID, "wo") {
		t.Fatalf("session = %v, want corpid %s and an opaque userid", s, e.other.ID)
	}
}

func TestTransientFailures(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "http://" + closed.Addr().String()
	closed.Close()

	for _, tc := range []struct {
		name     string
		fault    wecomsim.Fault
		baseURL  string // overrides the simulator's
		timeout  time.Duration
		result   string // Observer result of each attempt
		attempts int    // user/get calls the simulator sees
		status   int
	}{
		{name: "garbage", fault: wecomsim.Fault{Endpoint: "user/get", Garbage: true}, result: "bad_response", attempts: 3},
		{name: "http500", fault: wecomsim.Fault{Endpoint: "user/get", Status: 500}, result: "http_500", attempts: 3, status: 500},
		{name: "slow", fault: wecomsim.Fault{Endpoint: "user/get", Delay: time.Second}, timeout: 40 * time.Millisecond, result: "transport", attempts: 3},
		{name: "busy", fault: wecomsim.Fault{Endpoint: "user/get", Errcode: -1}, result: "-1", attempts: 3},
		{name: "concurrency45033", fault: wecomsim.Fault{Endpoint: "user/get", Errcode: 45033}, result: "45033", attempts: 3},
		{name: "ratelimit45009", fault: wecomsim.Fault{Endpoint: "user/get", Errcode: 45009}, result: "45009", attempts: 1},
		{name: "refused", baseURL: refused, result: "transport"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *wecom.Options) {
				if tc.timeout > 0 {
					o.Timeout = tc.timeout
				}
			})
			ctx := context.Background()
			c := e.c
			if tc.baseURL != "" {
				c = wecom.New(wecom.Options{BaseURL: tc.baseURL, Backoff: time.Millisecond, Observer: e.rec})
			} else if _, err := c.Token(ctx, e.corp); err != nil {
				t.Fatal(err)
			}
			e.sim.InjectFault(tc.fault)
			e.sim.ResetCounts()
			start := time.Now()
			_, err := c.GetUser(ctx, e.corp, "alice")
			ee := asError(t, err)
			if ee.Kind != wecom.KindTransient || ee.HTTPStatus != tc.status {
				t.Fatalf("got %v (kind %v, status %d), want transient", err, ee.Kind, ee.HTTPStatus)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("took %v", d)
			}
			calls, _ := e.rec.snapshot()
			want := slices.Repeat([]string{"user/get " + tc.result}, max(tc.attempts, 1))
			if tc.baseURL != "" {
				want = slices.Repeat([]string{"gettoken transport"}, 3)
			}
			if got := calls[len(calls)-len(want):]; !slices.Equal(got, want) {
				t.Fatalf("observed %v, want %v", calls, want)
			}
			if got := e.count(wecomsim.EndpointUserGet); got != tc.attempts {
				t.Fatalf("user/get called %d times, want %d", got, tc.attempts)
			}
		})
	}
}

func TestTransientRetriedThenSuccess(t *testing.T) {
	for _, f := range []wecomsim.Fault{
		{Endpoint: "user/get", Errcode: -1, Count: 2},
		{Endpoint: "user/get", Status: 502, Count: 2},
		{Endpoint: "gettoken", Garbage: true, Count: 2},
	} {
		e := newEnv(t)
		e.sim.InjectFault(f)
		if _, err := e.c.GetUser(context.Background(), e.corp, "alice"); err != nil {
			t.Fatalf("%+v: %v", f, err)
		}
		if got := e.count(f.Endpoint); got != 3 {
			t.Fatalf("%+v: %s called %d times, want 3", f, f.Endpoint, got)
		}
	}
}

func TestDefinitiveNotRetried(t *testing.T) {
	e := newEnv(t)
	e.sim.InjectFault(wecomsim.Fault{Endpoint: "user/get", Errcode: 60020})
	_, err := e.c.GetUser(context.Background(), e.corp, "alice")
	if ee := asError(t, err); ee.Kind != wecom.KindDefinitive || ee.Errcode != 60020 {
		t.Fatalf("got %v, want definitive 60020", err)
	}
	if got := e.count(wecomsim.EndpointUserGet); got != 1 {
		t.Fatalf("user/get called %d times, want 1", got)
	}
}

func TestContextCancellationIsPrompt(t *testing.T) {
	e := newEnv(t, func(o *wecom.Options) { o.Timeout = 10 * time.Second })
	if _, err := e.c.Token(context.Background(), e.corp); err != nil {
		t.Fatal(err)
	}
	e.sim.InjectFault(wecomsim.Fault{Endpoint: "user/get", Delay: 5 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	_, err := e.c.GetUser(ctx, e.corp, "alice")
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancelled call returned after %v", d)
	}
	if !errors.Is(err, context.Canceled) || wecom.KindOf(err) != wecom.KindTransient {
		t.Fatalf("got %v, want a transient error wrapping context.Canceled", err)
	}
	if got := e.count(wecomsim.EndpointUserGet); got != 1 {
		t.Fatalf("user/get called %d times, want 1: no retry after cancellation", got)
	}

	// Cancelled during a backoff: returns at once, not when it ends.
	wecom.NoJitter(t)
	e2 := newEnv(t, func(o *wecom.Options) { o.Backoff = 2 * time.Second })
	if _, err := e2.c.Token(context.Background(), e2.corp); err != nil {
		t.Fatal(err)
	}
	e2.sim.InjectFault(wecomsim.Fault{Endpoint: "user/get", Errcode: -1})
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start = time.Now()
	_, err = e2.c.GetUser(ctx, e2.corp, "alice")
	if d := time.Since(start); d > 500*time.Millisecond || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled during backoff: %v after %v", err, d)
	}

	// A deadline shorter than the next backoff ends the call at once.
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start = time.Now()
	_, err = e2.c.GetUser(ctx, e2.corp, "alice")
	if d := time.Since(start); d > 500*time.Millisecond || asError(t, err).Errcode != -1 {
		t.Fatalf("deadline before backoff: %v after %v", err, d)
	}
}

func TestObserver(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	_, _ = e.c.GetUser(ctx, e.corp, "alice")
	_, _ = e.c.GetUser(ctx, e.corp, "hidden")
	_, _ = e.c.CodeToSession(ctx, e.corp, "not-a-code")
	e.sim.InjectFault(wecomsim.Fault{Endpoint: "user/get", Status: 503, Count: 1})
	_, _ = e.c.GetUser(ctx, e.corp, "alice")
	calls, refreshes := e.rec.snapshot()
	want := []string{"gettoken 0", "user/get 0", "user/get 60011", "jscode2session 40029", "user/get http_503", "user/get 0"}
	if !slices.Equal(calls, want) {
		t.Fatalf("calls = %v, want %v", calls, want)
	}
	if !slices.Equal(refreshes, []string{e.corp.ID}) {
		t.Fatalf("refreshes = %v", refreshes)
	}
}

func TestBadConfiguration(t *testing.T) {
	ctx := context.Background()
	c := wecom.New(wecom.Options{BaseURL: "ftp://example.com"})
	if _, err := c.Token(ctx, wecom.Corp{ID: "ww1", Secret: "s"}); wecom.KindOf(err) != wecom.KindDefinitive {
		t.Fatalf("bad base URL: %v", err)
	}
	if _, err := wecom.New(wecom.Options{}).Token(ctx, wecom.Corp{ID: "ww1"}); wecom.KindOf(err) != wecom.KindDefinitive {
		t.Fatalf("missing secret: %v", err)
	}
	if wecom.KindOf(errors.New("x")) != 0 || wecom.KindOf(nil) != 0 {
		t.Fatal("KindOf of a foreign error must be 0")
	}
}

func TestErrcodeKinds(t *testing.T) {
	for _, tc := range []struct {
		endpoint string
		errcode  int
		kind     wecom.Kind
		calls    int // of endpoint
	}{
		{"jscode2session", 40029, wecom.KindInvalidCode, 1},
		{"jscode2session", 40163, wecom.KindInvalidCode, 1},
		{"jscode2session", 41008, wecom.KindInvalidCode, 1},
		{"user/get", 60011, wecom.KindUserNotAllowed, 1},
		{"user/get", 60111, wecom.KindUserNotAllowed, 1},
		{"user/get", 40001, wecom.KindDefinitive, 1},
		{"user/get", 40013, wecom.KindDefinitive, 1},
		{"user/get", 48002, wecom.KindDefinitive, 1},
		{"user/get", 60020, wecom.KindDefinitive, 1},
		{"user/get", 12345, wecom.KindDefinitive, 1},
		{"user/get", -1, wecom.KindTransient, 3},
		{"user/get", 45033, wecom.KindTransient, 3},
		{"user/get", 45009, wecom.KindTransient, 1},
		{"user/get", 40014, wecom.KindTransient, 2}, // rejected again after the refresh
		{"user/get", 42001, wecom.KindTransient, 2},
		{"user/get", 42009, wecom.KindTransient, 2},
	} {
		e := newEnv(t)
		e.sim.InjectFault(wecomsim.Fault{Endpoint: tc.endpoint, Errcode: tc.errcode})
		var err error
		if tc.endpoint == "user/get" {
			_, err = e.c.GetUser(context.Background(), e.corp, "alice")
		} else {
			_, err = e.c.CodeToSession(context.Background(), e.corp, "some-code")
		}
		ee := asError(t, err)
		if ee.Kind != tc.kind || ee.Errcode != tc.errcode || ee.Endpoint != tc.endpoint || ee.CorpID != e.corp.ID {
			t.Errorf("%s %d: got %v (kind %v), want kind %v", tc.endpoint, tc.errcode, err, ee.Kind, tc.kind)
		}
		if got := e.count(tc.endpoint); got != tc.calls {
			t.Errorf("%s %d: called %d times, want %d", tc.endpoint, tc.errcode, got, tc.calls)
		}
		if !strings.Contains(err.Error(), "errcode "+strconv.Itoa(tc.errcode)) || !strings.Contains(err.Error(), e.corp.ID) {
			t.Errorf("error text %q must name the errcode and the corp", err)
		}
	}
}

// TestHostileAnswers covers what a proxy, a captive portal or an impostor
// may answer in WeCom's place.
func TestHostileAnswers(t *testing.T) {
	var answer func(w http.ResponseWriter, r *http.Request)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w, r) }))
	defer srv.Close()
	rec := &recorder{}
	for _, tc := range []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		kind   wecom.Kind
		result string
	}{
		{"oversized", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"errcode":0,"expires_in":7200,"access_token":"%s"}`, strings.Repeat("a", 2<<20))
		}, wecom.KindTransient, "bad_response"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere?"+r.URL.RawQuery, http.StatusFound)
		}, wecom.KindDefinitive, "http_302"},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, wecom.KindDefinitive, "http_404"},
		{"too many requests", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(429) }, wecom.KindTransient, "http_429"},
		{"success without token", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"errcode":0,"errmsg":"ok"}`)
		}, wecom.KindDefinitive, "bad_response"},
		{"errcode not a number", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"errcode":"0","access_token":"x","expires_in":7200}`)
		}, wecom.KindTransient, "bad_response"},
		{"truncated", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, `{"errcode":0,"access_tok`)
		}, wecom.KindTransient, "bad_response"},
	} {
		answer = tc.answer
		// A Client per case: a definitive failure is remembered by the Client.
		c := wecom.New(wecom.Options{BaseURL: srv.URL, Attempts: 2, Backoff: time.Millisecond, Observer: rec})
		_, err := c.Token(context.Background(), wecom.Corp{ID: "wwhostile", Secret: "hostile-secret"})
		if ee := asError(t, err); ee.Kind != tc.kind {
			t.Errorf("%s: %v (kind %v), want %v", tc.name, err, ee.Kind, tc.kind)
		}
		calls, _ := rec.snapshot()
		if last := calls[len(calls)-1]; last != "gettoken "+tc.result {
			t.Errorf("%s: observed %q, want result %q", tc.name, last, tc.result)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[wecom.Kind]string{
		wecom.KindTransient: "transient", wecom.KindTokenInvalid: "token_invalid", wecom.KindInvalidCode: "invalid_code",
		wecom.KindUserNotAllowed: "user_not_allowed", wecom.KindDefinitive: "definitive", wecom.KindNotFound: "not_found",
		0: "kind(0)",
	} {
		if k.String() != want {
			t.Errorf("%d: %q, want %q", int(k), k.String(), want)
		}
	}
}

func TestValidUserID(t *testing.T) {
	for s, want := range map[string]bool{
		"alice":                 true,
		"a.b-c_d@e":             true,
		"Zhang.San@example.com": true,
		"0":                     true,
		strings.Repeat("a", 64): true,
		"wo" + strings.Repeat("0123456789abcdef", 3): true, // jscode2session's opaque ids
		"":                      false,
		strings.Repeat("a", 65): false,
		"review:boss":           false,
		"a b":                   false,
		"a/b":                   false,
		"zhāng":                 false,
		"张三":                    false,
		"a\nb":                  false,
		"a\x00":                 false,
		"_lead":                 false, // WeCom wants a letter or digit first
		".":                     false,
		"..":                    false,
		"-x":                    false,
		"@x":                    false,
		"a+b":                   false,
		"a%2Fb":                 false,
	} {
		if got := wecom.ValidUserID(s); got != want {
			t.Errorf("ValidUserID(%q) = %v, want %v", s, got, want)
		}
	}
}

// badUserIDs are userids an API base may answer that WeCom cannot have
// issued; a nil one leaves the field out.
var badUserIDs = []*string{
	ptr("review:boss"), ptr(""), nil, ptr(strings.Repeat("a", 65)), ptr("a b"), ptr("zhāng"), ptr("a/b"),
	ptr("a\r\nX-WeCom-UserId: boss"), ptr("_lead"), ptr(".."),
}

var goodUserIDs = []string{strings.Repeat("a", 64), "a.b-c_d@e", "0", "wo" + strings.Repeat("ab", 15)}

func ptr(s string) *string { return &s }

func showID(p *string) string {
	if p == nil {
		return "(missing)"
	}
	return strconv.Quote(*p)
}

// sessionBody is a successful jscode2session answer; nil fields are left out.
func sessionBody(corpID, userID *string) map[string]any {
	m := map[string]any{"errcode": 0, "errmsg": "ok", "session_key": "c2Vzc2lvbi1rZXktZmFrZQ==", "deviceid": ""}
	if corpID != nil {
		m["corpid"] = *corpID
	}
	if userID != nil {
		m["userid"] = *userID
	}
	return m
}

// TestImpossibleIdentitiesRefused: an answer naming a userid or corpid
// WeCom cannot have issued fails definitively (the gateway's 502
// wecom_error), once, without being retried and without echoing the value.
func TestImpossibleIdentitiesRefused(t *testing.T) {
	f := newFakeWeCom(t)
	f.set("/cgi-bin/gettoken", `{"errcode":0,"errmsg":"ok","access_token":"fake-access-token","expires_in":7200}`)
	rec := &recorder{}
	c := wecom.New(wecom.Options{BaseURL: f.srv.URL, Attempts: 3, Backoff: time.Millisecond, Observer: rec})
	ctx := context.Background()
	corp := fakeCorp

	refused := func(t *testing.T, what, path string, call func() error, value *string) {
		t.Helper()
		before := f.count(path)
		err := call()
		ee := asError(t, err)
		if ee.Kind != wecom.KindDefinitive || ee.Errcode != 0 || ee.CorpID != corp.ID {
			t.Errorf("%s: got %v (kind %v), want a definitive bad response", what, err, ee.Kind)
		}
		if n := f.count(path) - before; n != 1 {
			t.Errorf("%s: %s asked %d times, want 1 (not retried)", what, path, n)
		}
		if calls, _ := rec.snapshot(); !strings.HasSuffix(calls[len(calls)-1], " bad_response") {
			t.Errorf("%s: observed %q, want bad_response", what, calls[len(calls)-1])
		}
		if value != nil && len(*value) > 2 && strings.Contains(err.Error(), *value) {
			t.Errorf("%s: error %q repeats the answered value", what, err)
		}
	}

	okCorp := corp.ID
	for _, id := range badUserIDs {
		f.setJSON(t, "/cgi-bin/miniprogram/jscode2session", sessionBody(&okCorp, id))
		refused(t, "jscode2session userid "+showID(id), "/cgi-bin/miniprogram/jscode2session", func() error {
			_, err := c.CodeToSession(ctx, corp, "some-code")
			return err
		}, id)

		u := map[string]any{"errcode": 0, "errmsg": "ok", "name": "Boss", "status": 1}
		if id != nil {
			u["userid"] = *id
		}
		f.setJSON(t, "/cgi-bin/user/get", u)
		refused(t, "user/get userid "+showID(id), "/cgi-bin/user/get", func() error {
			_, err := c.GetUser(ctx, corp, "alice")
			return err
		}, id)

		// Nor does GetUser send one: no member can have it.
		if id != nil {
			before := f.count("/cgi-bin/user/get")
			_, err := c.GetUser(ctx, corp, *id)
			if wecom.KindOf(err) != wecom.KindDefinitive || f.count("/cgi-bin/user/get") != before {
				t.Errorf("GetUser(%s): %v, sent: %v; want definitive, not sent", showID(id), err, f.count("/cgi-bin/user/get") != before)
			}
		}
	}

	goodUser := "alice"
	for _, id := range []*string{
		ptr(""), nil, ptr("ww:evil"), ptr("ww evil"), ptr("ww\tx"), ptr("ww\x7f"), ptr("wwé"),
		ptr("ww" + strings.Repeat("0", 63)),
	} {
		f.setJSON(t, "/cgi-bin/miniprogram/jscode2session", sessionBody(id, &goodUser))
		refused(t, "jscode2session corpid "+showID(id), "/cgi-bin/miniprogram/jscode2session", func() error {
			_, err := c.CodeToSession(ctx, corp, "some-code")
			return err
		}, id)
	}
}

// TestPossibleIdentitiesAccepted covers the edges of what WeCom may answer.
func TestPossibleIdentitiesAccepted(t *testing.T) {
	f := newFakeWeCom(t)
	f.set("/cgi-bin/gettoken", `{"errcode":0,"errmsg":"ok","access_token":"fake-access-token","expires_in":7200}`)
	c := wecom.New(wecom.Options{BaseURL: f.srv.URL, Attempts: 1})
	ctx := context.Background()
	corp := fakeCorp
	for _, userID := range goodUserIDs {
		for _, corpID := range []string{corp.ID, "ww0123456789abcdef", "ww" + strings.Repeat("f", 62)} {
			f.setJSON(t, "/cgi-bin/miniprogram/jscode2session", sessionBody(&corpID, &userID))
			s, err := c.CodeToSession(ctx, corp, "some-code")
			if err != nil || s.UserID != userID || s.CorpID != corpID {
				t.Errorf("corpid %q userid %q: %v, %v", corpID, userID, s, err)
			}
		}
		f.setJSON(t, "/cgi-bin/user/get", map[string]any{"errcode": 0, "errmsg": "ok", "userid": userID, "name": "N", "status": 1})
		before := f.count("/cgi-bin/user/get")
		u, err := c.GetUser(ctx, corp, userID)
		if err != nil || u.Name != "N" || f.count("/cgi-bin/user/get") != before+1 {
			t.Errorf("GetUser(%q): %+v, %v", userID, u, err)
		}
	}
}
