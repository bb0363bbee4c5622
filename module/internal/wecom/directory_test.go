package wecom_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

const (
	pathGettoken   = "/cgi-bin/gettoken"
	pathSimplelist = "/cgi-bin/department/simplelist"
	pathTagGet     = "/cgi-bin/tag/get"
)

func tokenBody(tok string) string {
	return `{"errcode":0,"errmsg":"ok","access_token":"` + tok + `","expires_in":7200}`
}

func errcodeBody(code int) string {
	return `{"errcode":` + strconv.Itoa(code) + `,"errmsg":"errmsg of ` + strconv.Itoa(code) + `"}`
}

// newDirectoryFake is a fakeWeCom that hands out fake-access-token and a
// Client talking to it.
func newDirectoryFake(t testing.TB, tweak ...func(*wecom.Options)) (*fakeWeCom, *wecom.Client, *recorder) {
	t.Helper()
	f := newFakeWeCom(t)
	f.set(pathGettoken, tokenBody("fake-access-token"))
	rec := &recorder{}
	opts := wecom.Options{BaseURL: f.srv.URL, Timeout: 2 * time.Second, Attempts: 3, Backoff: time.Millisecond, Observer: rec}
	for _, tw := range tweak {
		tw(&opts)
	}
	return f, wecom.New(opts), rec
}

// directoryCall is one of the two calls, by WeCom path, so that a test can
// run against both.
type directoryCall struct {
	endpoint, path string
	ok             string // a successful answer
	do             func(c *wecom.Client, ctx context.Context, corp wecom.Corp) error
}

var directoryCalls = []directoryCall{
	{"department/simplelist", pathSimplelist,
		`{"errcode":0,"errmsg":"ok","department_id":[{"id":2,"parentid":1,"order":10}]}`,
		func(c *wecom.Client, ctx context.Context, corp wecom.Corp) error {
			_, err := c.DepartmentTree(ctx, corp, 2)
			return err
		}},
	{"tag/get", pathTagGet,
		`{"errcode":0,"errmsg":"ok","tagname":"t","userlist":[{"userid":"alice","name":"Alice"}],"partylist":[2]}`,
		func(c *wecom.Client, ctx context.Context, corp wecom.Corp) error {
			_, err := c.Tag(ctx, corp, 7)
			return err
		}},
}

func TestDepartmentTree(t *testing.T) {
	f, c, _ := newDirectoryFake(t)
	ctx := context.Background()
	f.set(pathSimplelist, `{"errcode":0,"errmsg":"ok","department_id":[
		{"id":2,"parentid":1,"order":10},{"id":3,"parentid":2,"order":40},{"id":5,"parentid":3,"order":100000000}]}`)
	got, err := c.DepartmentTree(ctx, fakeCorp, 2)
	if err != nil {
		t.Fatal(err)
	}
	if want := []wecom.Department{{ID: 2, ParentID: 1}, {ID: 3, ParentID: 2}, {ID: 5, ParentID: 3}}; !slices.Equal(got, want) {
		t.Fatalf("tree = %+v, want %+v", got, want)
	}
	if q := f.lastQuery(pathSimplelist); q.Get("id") != "2" || q.Get("access_token") != "fake-access-token" {
		t.Fatalf("query = %v", q)
	}

	// The root department has parent 0; a leaf is a tree of one.
	f.set(pathSimplelist, `{"errcode":0,"errmsg":"ok","department_id":[{"id":1,"parentid":0,"order":1},{"id":2,"parentid":1}]}`)
	if got, err := c.DepartmentTree(ctx, fakeCorp, 1); err != nil || len(got) != 2 || got[0] != (wecom.Department{ID: 1}) {
		t.Fatalf("root: %+v, %v", got, err)
	}
	f.set(pathSimplelist, `{"errcode":0,"errmsg":"ok","department_id":[{"id":9,"parentid":1,"order":1}]}`)
	if got, err := c.DepartmentTree(ctx, fakeCorp, 9); err != nil || !slices.Equal(got, []wecom.Department{{ID: 9, ParentID: 1}}) {
		t.Fatalf("leaf: %+v, %v", got, err)
	}
}

func TestTagMembers(t *testing.T) {
	f, c, _ := newDirectoryFake(t)
	ctx := context.Background()
	f.set(pathTagGet, `{"errcode":0,"errmsg":"ok","tagname":"乒乓球协会",
		"userlist":[{"userid":"alice","name":"Alice"},{"userid":"Zhang.San@example.com","name":"张三"}],"partylist":[2,3]}`)
	m, err := c.Tag(ctx, fakeCorp, 7)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m.UserIDs, []string{"alice", "Zhang.San@example.com"}) || !slices.Equal(m.Departments, []int64{2, 3}) {
		t.Fatalf("members = %+v", m)
	}
	if q := f.lastQuery(pathTagGet); q.Get("tagid") != "7" || q.Get("access_token") != "fake-access-token" {
		t.Fatalf("query = %v", q)
	}

	// An empty tag, however WeCom spells "nobody", is no error.
	for _, body := range []string{
		`{"errcode":0,"errmsg":"ok","tagname":"empty","userlist":[],"partylist":[]}`,
		`{"errcode":0,"errmsg":"ok","tagname":"empty"}`,
		`{"errcode":0,"errmsg":"ok","tagname":"","userlist":null,"partylist":null}`,
	} {
		f.set(pathTagGet, body)
		m, err := c.Tag(ctx, fakeCorp, 0) // 0 is a tag id WeCom's 创建标签 allows
		if err != nil || len(m.UserIDs) != 0 || len(m.Departments) != 0 {
			t.Errorf("%s: %+v, %v", body, m, err)
		}
	}
}

// TestDirectoryNotFound: a department or tag that does not exist or that
// the app may not see is KindNotFound, answered once and not retried, and
// 60011 stays "user not allowed" on user/get.
func TestDirectoryNotFound(t *testing.T) {
	for _, tc := range []struct {
		call    directoryCall
		errcode int
	}{
		{directoryCalls[0], 60003},
		{directoryCalls[0], 60123},
		{directoryCalls[0], 60011},
		{directoryCalls[1], 40068},
		{directoryCalls[1], 60011},
	} {
		f, c, rec := newDirectoryFake(t)
		f.set(tc.call.path, errcodeBody(tc.errcode))
		err := tc.call.do(c, context.Background(), fakeCorp)
		ee := asError(t, err)
		if ee.Kind != wecom.KindNotFound || wecom.KindOf(err) != wecom.KindNotFound || ee.Errcode != tc.errcode ||
			ee.Endpoint != tc.call.endpoint || ee.CorpID != fakeCorp.ID {
			t.Errorf("%s %d: %v (kind %v), want not_found", tc.call.endpoint, tc.errcode, err, ee.Kind)
		}
		if n := f.count(tc.call.path); n != 1 {
			t.Errorf("%s %d: asked %d times, want 1", tc.call.endpoint, tc.errcode, n)
		}
		calls, _ := rec.snapshot()
		if want := []string{"gettoken 0", tc.call.endpoint + " " + strconv.Itoa(tc.errcode)}; !slices.Equal(calls, want) {
			t.Errorf("%s %d: observed %v, want %v", tc.call.endpoint, tc.errcode, calls, want)
		}
		if !strings.Contains(err.Error(), "errcode "+strconv.Itoa(tc.errcode)) {
			t.Errorf("error text %q must name the errcode", err)
		}
	}

	f, c, _ := newDirectoryFake(t)
	f.set("/cgi-bin/user/get", errcodeBody(60011))
	if _, err := c.GetUser(context.Background(), fakeCorp, "alice"); wecom.KindOf(err) != wecom.KindUserNotAllowed {
		t.Fatalf("user/get 60011: %v, want user_not_allowed", err)
	}
}

func TestDirectoryErrcodeKinds(t *testing.T) {
	for _, call := range directoryCalls {
		for _, tc := range []struct {
			errcode int
			kind    wecom.Kind
			calls   int
		}{
			{40001, wecom.KindDefinitive, 1},
			{40013, wecom.KindDefinitive, 1},
			{48002, wecom.KindDefinitive, 1},
			{60020, wecom.KindDefinitive, 1},
			{12345, wecom.KindDefinitive, 1},
			{-1, wecom.KindTransient, 3},
			{45033, wecom.KindTransient, 3},
			{45009, wecom.KindTransient, 1},
			{40014, wecom.KindTransient, 2}, // rejected again after the refresh
			{42001, wecom.KindTransient, 2},
			{42009, wecom.KindTransient, 2},
		} {
			f, c, _ := newDirectoryFake(t)
			f.set(call.path, errcodeBody(tc.errcode))
			err := call.do(c, context.Background(), fakeCorp)
			if ee := asError(t, err); ee.Kind != tc.kind || ee.Errcode != tc.errcode || ee.Endpoint != call.endpoint {
				t.Errorf("%s %d: %v (kind %v), want %v", call.endpoint, tc.errcode, err, ee.Kind, tc.kind)
			}
			if n := f.count(call.path); n != tc.calls {
				t.Errorf("%s %d: asked %d times, want %d", call.endpoint, tc.errcode, n, tc.calls)
			}
		}
	}
}

// TestDirectoryTokenRejectedRefreshesOnce: a rejected token is dropped,
// fetched anew and the call repeated once, with the new token.
func TestDirectoryTokenRejectedRefreshesOnce(t *testing.T) {
	for _, call := range directoryCalls {
		for _, errcode := range []int{40014, 42001, 42009} {
			f, c, rec := newDirectoryFake(t)
			f.push(pathGettoken, fakeReply{body: tokenBody("token-one-0123456789")})
			f.set(pathGettoken, tokenBody("token-two-0123456789"))
			f.push(call.path, fakeReply{body: errcodeBody(errcode)})
			f.set(call.path, call.ok)
			if err := call.do(c, context.Background(), fakeCorp); err != nil {
				t.Fatalf("%s %d: %v", call.endpoint, errcode, err)
			}
			if got := f.seenTokens(call.path); !slices.Equal(got, []string{"token-one-0123456789", "token-two-0123456789"}) {
				t.Errorf("%s %d: tokens used %v, want the first then the new one", call.endpoint, errcode, got)
			}
			if n := f.count(pathGettoken); n != 2 {
				t.Errorf("%s %d: gettoken asked %d times, want 2", call.endpoint, errcode, n)
			}
			if _, refreshes := rec.snapshot(); len(refreshes) != 2 {
				t.Errorf("%s %d: refreshes %v, want 2", call.endpoint, errcode, refreshes)
			}
			// The new token is the cached one now.
			if err := call.do(c, context.Background(), fakeCorp); err != nil || f.count(pathGettoken) != 2 {
				t.Errorf("%s %d: after the refresh: %v, gettoken asked %d times", call.endpoint, errcode, err, f.count(pathGettoken))
			}
		}
	}
}

// TestDirectoryTransientRetried: 5xx, -1 and garbage are retried with
// backoff within Attempts, each attempt reported under the call's name.
func TestDirectoryTransientRetried(t *testing.T) {
	for _, call := range directoryCalls {
		f, c, rec := newDirectoryFake(t)
		f.push(call.path, fakeReply{status: 502, body: "Bad Gateway"}, fakeReply{body: errcodeBody(-1)}, fakeReply{body: "<html>"})
		f.set(call.path, call.ok)
		// Only two retries: the third failure is the last attempt.
		if err := call.do(c, context.Background(), fakeCorp); wecom.KindOf(err) != wecom.KindTransient {
			t.Fatalf("%s: %v, want transient", call.endpoint, err)
		}
		if err := call.do(c, context.Background(), fakeCorp); err != nil {
			t.Fatalf("%s: %v", call.endpoint, err)
		}
		calls, _ := rec.snapshot()
		ep := call.endpoint
		if want := []string{"gettoken 0", ep + " http_502", ep + " -1", ep + " bad_response", ep + " 0"}; !slices.Equal(calls, want) {
			t.Errorf("observed %v, want %v", calls, want)
		}

		f, c, rec = newDirectoryFake(t, func(o *wecom.Options) { o.Timeout = 40 * time.Millisecond })
		f.push(call.path, fakeReply{delay: time.Second, body: call.ok}, fakeReply{status: 503})
		f.set(call.path, call.ok)
		start := time.Now()
		if err := call.do(c, context.Background(), fakeCorp); err != nil {
			t.Fatalf("%s after a timeout and a 503: %v", call.endpoint, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: took %v", call.endpoint, d)
		}
		calls, _ = rec.snapshot()
		if want := []string{"gettoken 0", ep + " transport", ep + " http_503", ep + " 0"}; !slices.Equal(calls, want) {
			t.Errorf("observed %v, want %v", calls, want)
		}
	}
}

// list is a JSON array of n copies of elem(i).
func list(n int, elem func(i int) string) string {
	var b strings.Builder
	b.WriteByte('[')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(elem(i))
	}
	b.WriteByte(']')
	return b.String()
}

func departmentsBody(entries string) string {
	return `{"errcode":0,"errmsg":"ok","department_id":` + entries + `}`
}

func tagBody(users, parties string) string {
	return `{"errcode":0,"errmsg":"ok","tagname":"t","userlist":` + users + `,"partylist":` + parties + `}`
}

// TestDirectoryHostileAnswers: what WeCom cannot have answered is refused,
// definitively (once, as bad_response) when the JSON is well formed, as
// garbage (transient, retried) when it is not.
func TestDirectoryHostileAnswers(t *testing.T) {
	const max = 100_000
	dept := func(i int) string { return fmt.Sprintf(`{"id":%d,"parentid":2,"order":%d}`, i+2, i) }
	user := func(i int) string { return fmt.Sprintf(`{"userid":"user%d","name":"N"}`, i) }
	party := func(i int) string { return strconv.Itoa(i + 2) }
	type hostile struct {
		name, path, body string
		kind             wecom.Kind
	}
	cases := []hostile{
		{"own id missing", pathSimplelist, departmentsBody(`[{"id":3,"parentid":2,"order":1}]`), wecom.KindDefinitive},
		{"no department_id", pathSimplelist, `{"errcode":0,"errmsg":"ok"}`, wecom.KindDefinitive},
		{"department_id null", pathSimplelist, departmentsBody(`null`), wecom.KindDefinitive},
		{"department_id empty", pathSimplelist, departmentsBody(`[]`), wecom.KindDefinitive},
		{"entry without id", pathSimplelist, departmentsBody(`[{"id":2,"parentid":1},{"parentid":2}]`), wecom.KindDefinitive},
		{"negative id", pathSimplelist, departmentsBody(`[{"id":2,"parentid":1},{"id":-3,"parentid":2}]`), wecom.KindDefinitive},
		{"negative parentid", pathSimplelist, departmentsBody(`[{"id":2,"parentid":-1}]`), wecom.KindDefinitive},
		// Ten times the bound in empty entries fits the body limit several
		// times over; the decode stops at the bound.
		{"too many departments", pathSimplelist, departmentsBody(list(10*max, func(int) string { return "{}" })), wecom.KindDefinitive},
		{"non-JSON", pathSimplelist, `<html><body>502 Bad Gateway</body></html>`, wecom.KindTransient},
		{"department_id an object", pathSimplelist, departmentsBody(`{"id":2}`), wecom.KindTransient},
		{"id a string", pathSimplelist, departmentsBody(`[{"id":"2","parentid":1}]`), wecom.KindTransient},
		{"id a fraction", pathSimplelist, departmentsBody(`[{"id":2.5,"parentid":1}]`), wecom.KindTransient},

		{"no tagname", pathTagGet, `{"errcode":0,"errmsg":"ok","userlist":[],"partylist":[]}`, wecom.KindDefinitive},
		{"party 0", pathTagGet, tagBody(`[]`, `[2,0]`), wecom.KindDefinitive},
		{"negative party", pathTagGet, tagBody(`[]`, `[-2]`), wecom.KindDefinitive},
		{"too many users", pathTagGet, tagBody(list(max+1, user), `[]`), wecom.KindDefinitive},
		{"too many parties", pathTagGet, tagBody(`[]`, list(max+1, party)), wecom.KindDefinitive},
		{"tag non-JSON", pathTagGet, `{"errcode":0,`, wecom.KindTransient},
		{"userlist a string", pathTagGet, tagBody(`"alice|bob"`, `[]`), wecom.KindTransient},
		{"userlist of strings", pathTagGet, tagBody(`["alice"]`, `[]`), wecom.KindTransient},
		{"partylist of strings", pathTagGet, tagBody(`[]`, `["2"]`), wecom.KindTransient},
	}
	for _, id := range badUserIDs {
		u := map[string]any{"name": "Boss"}
		if id != nil {
			u["userid"] = *id
		}
		// Marshalled, so that quotes and control characters arrive as given.
		b, err := json.Marshal(map[string]any{"errcode": 0, "errmsg": "ok", "tagname": "t",
			"userlist": []any{map[string]any{"userid": "alice", "name": "A"}, u}, "partylist": []int{}})
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, hostile{"userid " + showID(id), pathTagGet, string(b), wecom.KindDefinitive})
	}

	f, c, rec := newDirectoryFake(t, func(o *wecom.Options) { o.Attempts = 2 })
	for _, tc := range cases {
		f.set(tc.path, tc.body)
		before := f.count(tc.path)
		var err error
		if tc.path == pathSimplelist {
			_, err = c.DepartmentTree(context.Background(), fakeCorp, 2)
		} else {
			_, err = c.Tag(context.Background(), fakeCorp, 7)
		}
		ee := asError(t, err)
		wantCalls := 1
		if tc.kind == wecom.KindTransient {
			wantCalls = 2
		}
		if ee.Kind != tc.kind || ee.Errcode != 0 || ee.CorpID != fakeCorp.ID {
			t.Errorf("%s: %v (kind %v), want %v", tc.name, err, ee.Kind, tc.kind)
		}
		if n := f.count(tc.path) - before; n != wantCalls {
			t.Errorf("%s: asked %d times, want %d", tc.name, n, wantCalls)
		}
		if calls, _ := rec.snapshot(); !strings.HasSuffix(calls[len(calls)-1], " bad_response") {
			t.Errorf("%s: observed %q, want bad_response", tc.name, calls[len(calls)-1])
		}
		if strings.Contains(err.Error(), "Boss") || strings.Contains(err.Error(), "review:") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: error %q repeats the answer", tc.name, err)
		}
	}

	// Past the body limit, which is 16 MiB for these calls rather than 1.
	f, c, rec = newDirectoryFake(t, func(o *wecom.Options) { o.Attempts = 1 })
	f.set(pathSimplelist, departmentsBody(`[{"id":2,"parentid":1}`+strings.Repeat(" ", 16<<20)+`]`))
	if _, err := c.DepartmentTree(context.Background(), fakeCorp, 2); wecom.KindOf(err) != wecom.KindTransient ||
		!strings.Contains(err.Error(), "larger than 16 MiB") {
		t.Errorf("oversized: %v, want transient", err)
	}
	if calls, _ := rec.snapshot(); calls[len(calls)-1] != "department/simplelist bad_response" {
		t.Errorf("oversized: observed %v", calls)
	}

	// Up to the bounds is fine (answers of several MiB, past the 1 MiB of
	// the other calls), and so is every userid WeCom may issue.
	f.set(pathSimplelist, departmentsBody(list(max, dept)))
	if got, err := c.DepartmentTree(context.Background(), fakeCorp, 2); err != nil || len(got) != max {
		t.Errorf("%d departments: %d, %v", max, len(got), err)
	}
	f.set(pathTagGet, tagBody(list(max, user), list(max, party)))
	if m, err := c.Tag(context.Background(), fakeCorp, 7); err != nil || len(m.UserIDs) != max || len(m.Departments) != max {
		t.Errorf("%d users and departments: %d, %d, %v", max, len(m.UserIDs), len(m.Departments), err)
	}
	for _, id := range goodUserIDs {
		f.set(pathTagGet, tagBody(`[{"userid":"`+id+`"}]`, `[]`))
		if m, err := c.Tag(context.Background(), fakeCorp, 7); err != nil || !slices.Equal(m.UserIDs, []string{id}) {
			t.Errorf("userid %q: %+v, %v", id, m, err)
		}
	}
}

// TestDirectoryInvalidArgs: what cannot be a department or tag id, or an
// incomplete corp, is refused without asking WeCom.
func TestDirectoryInvalidArgs(t *testing.T) {
	f, c, _ := newDirectoryFake(t)
	ctx := context.Background()
	for _, id := range []int64{0, -1, -1 << 63} {
		if _, err := c.DepartmentTree(ctx, fakeCorp, id); wecom.KindOf(err) != wecom.KindDefinitive {
			t.Errorf("DepartmentTree(%d): %v", id, err)
		}
	}
	if _, err := c.Tag(ctx, fakeCorp, -1); wecom.KindOf(err) != wecom.KindDefinitive {
		t.Errorf("Tag(-1): %v", err)
	}
	noSecret := wecom.Corp{ID: fakeCorp.ID}
	if _, err := c.DepartmentTree(ctx, noSecret, 2); wecom.KindOf(err) != wecom.KindDefinitive {
		t.Errorf("DepartmentTree without secret: %v", err)
	}
	if _, err := c.Tag(ctx, noSecret, 2); wecom.KindOf(err) != wecom.KindDefinitive {
		t.Errorf("Tag without secret: %v", err)
	}
	for _, p := range []string{pathGettoken, pathSimplelist, pathTagGet} {
		if n := f.count(p); n != 0 {
			t.Errorf("%s asked %d times", p, n)
		}
	}
}

// TestDirectoryCancelled: a caller that leaves ends the call at once,
// transient and not retried.
func TestDirectoryCancelled(t *testing.T) {
	for _, call := range directoryCalls {
		f, c, _ := newDirectoryFake(t, func(o *wecom.Options) { o.Timeout = 10 * time.Second })
		f.set(call.path, call.ok)
		f.push(call.path, fakeReply{delay: 5 * time.Second, status: http.StatusOK, body: call.ok})
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(30*time.Millisecond, cancel)
		start := time.Now()
		err := call.do(c, ctx, fakeCorp)
		if d := time.Since(start); d > time.Second || !errors.Is(err, context.Canceled) || wecom.KindOf(err) != wecom.KindTransient {
			t.Errorf("%s: %v after %v, want a prompt transient context.Canceled", call.endpoint, err, d)
		}
		if n := f.count(call.path); n != 1 {
			t.Errorf("%s: asked %d times, want 1", call.endpoint, n)
		}
	}
}
