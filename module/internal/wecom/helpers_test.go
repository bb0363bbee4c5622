package wecom_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

// env is a simulator with two corps and a Client talking to it.
type env struct {
	sim   *wecomsim.Simulator
	srv   *httptest.Server
	c     *wecom.Client
	corp  wecom.Corp // "main": users alice (active), hidden (outside the visible range)
	other wecom.Corp // "other": user bob
	rec   *recorder
	logs  *observer.ObservedLogs
}

func newEnv(t testing.TB, tweak ...func(*wecom.Options)) *env {
	t.Helper()
	e := &env{
		corp:  wecom.Corp{ID: "wwmain", Secret: "S3cr3t-main-do-not-print"},
		other: wecom.Corp{ID: "wwother", Secret: "S3cr3t-other-do-not-print"},
		rec:   &recorder{},
	}
	e.sim = wecomsim.New(wecomsim.Config{Corps: []wecomsim.Corp{
		{Name: "main", CorpID: e.corp.ID, Secret: e.corp.Secret, Users: []wecomsim.User{
			{UserID: "alice", Name: "Alice", Departments: []int64{2, 3}},
			{UserID: "hidden", Name: "Hidden", Hidden: true},
		}},
		{Name: "other", CorpID: e.other.ID, Secret: e.other.Secret, Users: []wecomsim.User{
			{UserID: "bob", Name: "Bob"},
		}},
	}})
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	core, logs := observer.New(zap.DebugLevel)
	e.logs = logs
	opts := wecom.Options{
		BaseURL:  e.srv.URL + "/", // the trailing slash must be tolerated
		Timeout:  2 * time.Second,
		Attempts: 3,
		Backoff:  time.Millisecond,
		Observer: e.rec,
		Logger:   zap.New(core),
	}
	for _, f := range tweak {
		f(&opts)
	}
	e.c = wecom.New(opts)
	return e
}

func (e *env) count(endpoint string) int { return e.sim.Counts()[endpoint] }

func (e *env) mint(t testing.TB, corp, user string) string {
	t.Helper()
	code, err := e.sim.MintCode(corp, user)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// recorder is an Observer keeping what it saw.
type recorder struct {
	mu        sync.Mutex
	calls     []string // "endpoint result"
	refreshes []string
}

func (r *recorder) Call(endpoint, result string, d time.Duration) {
	if d < 0 {
		panic("negative duration")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, endpoint+" "+result)
}

func (r *recorder) TokenRefresh(corpID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refreshes = append(r.refreshes, corpID)
}

func (r *recorder) snapshot() (calls, refreshes []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls), slices.Clone(r.refreshes)
}

// asError fails the test unless err is a *wecom.Error.
func asError(t testing.TB, err error) *wecom.Error {
	t.Helper()
	e, ok := err.(*wecom.Error)
	if !ok {
		t.Fatalf("error %v (%T) is not a *wecom.Error", err, err)
	}
	return e
}

// fakeWeCom answers each path with a body the test sets: it says what the
// simulator, faithful to WeCom, never would, as a hostile or broken API
// base may. Replies pushed for a path are answered first, one per request,
// in order; then the set body again.
type fakeWeCom struct {
	srv     *httptest.Server
	mu      sync.Mutex
	bodies  map[string]string // path → JSON answer
	queued  map[string][]fakeReply
	hits    map[string]int
	tokens  map[string][]string // path → access_token of each request
	queries map[string][]url.Values
}

// fakeReply is one scripted answer: status 0 means 200; a delay holds the
// answer back (until the client gives up) to play a slow WeCom. In body,
// "{token}" and "{query}" stand for the request's access_token and raw
// query, to play an API base that echoes them.
type fakeReply struct {
	status int
	body   string
	delay  time.Duration
}

func newFakeWeCom(t testing.TB) *fakeWeCom {
	t.Helper()
	f := &fakeWeCom{bodies: map[string]string{}, queued: map[string][]fakeReply{}, hits: map[string]int{},
		tokens: map[string][]string{}, queries: map[string][]url.Values{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		reply, ok := fakeReply{body: f.bodies[r.URL.Path]}, false
		if q := f.queued[r.URL.Path]; len(q) > 0 {
			reply, ok, f.queued[r.URL.Path] = q[0], true, q[1:]
		} else {
			_, ok = f.bodies[r.URL.Path]
		}
		f.hits[r.URL.Path]++
		f.tokens[r.URL.Path] = append(f.tokens[r.URL.Path], r.URL.Query().Get("access_token"))
		f.queries[r.URL.Path] = append(f.queries[r.URL.Path], r.URL.Query())
		f.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if reply.delay > 0 {
			select {
			case <-r.Context().Done():
				return
			case <-time.After(reply.delay):
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if reply.status != 0 {
			w.WriteHeader(reply.status)
		}
		_, _ = io.WriteString(w, strings.NewReplacer(
			"{token}", r.URL.Query().Get("access_token"), "{query}", r.URL.RawQuery).Replace(reply.body))
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// push queues replies for path, answered before its set body.
func (f *fakeWeCom) push(path string, replies ...fakeReply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queued[path] = append(f.queued[path], replies...)
}

// seenTokens is the access_token of each request for path so far.
func (f *fakeWeCom) seenTokens(path string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tokens[path])
}

// lastQuery is the query of the latest request for path.
func (f *fakeWeCom) lastQuery(path string) url.Values {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := f.queries[path]
	if len(q) == 0 {
		return nil
	}
	return q[len(q)-1]
}

func (f *fakeWeCom) set(path, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bodies[path] = body
}

// setJSON answers path with v marshalled, so that test values with quotes,
// control or non-ASCII characters arrive exactly as given.
func (f *fakeWeCom) setJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	f.set(path, string(b))
}

func (f *fakeWeCom) count(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[path]
}

// fakeCorp is the corp asked of a fakeWeCom, which answers for any.
var fakeCorp = wecom.Corp{ID: "wwfake", Secret: "fake-secret"}
