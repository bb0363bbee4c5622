package wecomauth_test

// The direct-handler fixture: a wecom_auth handler provisioned as Caddy
// provisions it, with the test world's corps and review account, whose
// ServeHTTP a test calls with a recorder (as Caddy's caddyauth tests do),
// in front of an in-process simulator of the test world. No Caddy runs, so
// a request costs microseconds, and the test holds the handler's clock.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wecomgate/wecomgate/module/wecomauth"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

// testSessionKey is a fixed session key, for handlers whose tokens a test
// seals or opens elsewhere.
const testSessionKey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// movedClock is the real clock moved forward by what the test advances it:
// time still passes while a request waits on WeCom, and the test jumps
// over recheck intervals and grace periods without sleeping.
type movedClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func newMovedClock() *movedClock { return &movedClock{} }

func (c *movedClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *movedClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// caddyContext is a Caddy context with storage and a logging setup that
// discards everything, as Provision needs (a bare caddy.Context has no
// storage). Its storage is the test's isolated data folder (TestMain).
func caddyContext(tb testing.TB) caddy.Context {
	tb.Helper()
	var cfg caddy.Config
	raw := fmt.Sprintf(`{"storage":{"module":"file_system","root":%q},"logging":{"logs":{"default":{"writer":{"output":"discard"}}}}}`, tb.TempDir())
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		tb.Fatal(err)
	}
	pctx, err := caddy.ProvisionContext(&cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(pctx)
	tb.Cleanup(cancel)
	return ctx
}

// unitGW is a provisioned wecom_auth handler in front of an in-process
// simulator of the test world.
type unitGW struct {
	h      *wecomauth.Handler
	sim    *wecomsim.Simulator
	simURL string
	clock  *movedClock
}

// newUnitGW provisions the test world's gateway (as gatewayCorps and
// reviewConfig say, with testSessionKey); configure, if given, changes the
// handler's settings before Provision.
func newUnitGW(tb testing.TB, configure ...func(*wecomauth.Handler)) *unitGW {
	tb.Helper()
	sim := wecomsim.New(wecomsim.Config{Corps: testWorld()})
	srv := httptest.NewServer(sim)
	tb.Cleanup(srv.Close)

	h := &wecomauth.Handler{
		APIBase:     srv.URL,
		Corps:       gatewayCorps(),
		SessionKeys: []string{testSessionKey},
		Review:      reviewConfig(),
	}
	for _, f := range configure {
		f(h)
	}
	clock := newMovedClock()
	wecomauth.SetClock(h, clock.Now)
	if err := h.Provision(caddyContext(tb)); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = h.Cleanup() })
	if err := h.Validate(); err != nil {
		tb.Fatal(err)
	}
	return &unitGW{h: h, sim: sim, simURL: srv.URL, clock: clock}
}

// prepareRequest gives r the context Caddy's server gives every request.
func prepareRequest(r *http.Request) *http.Request {
	r.RemoteAddr = "192.0.2.7:40000"
	return caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
}

// nextProbe is the next handler: it records whether it ran and what it saw.
type nextProbe struct {
	called bool
	header http.Header
	path   string
}

func (p *nextProbe) ServeHTTP(w http.ResponseWriter, r *http.Request) error {
	p.called = true
	p.header = r.Header.Clone()
	p.path = r.URL.Path
	w.WriteHeader(http.StatusOK)
	return nil
}

// serve runs one request through the handler.
func (g *unitGW) serve(t testing.TB, r *http.Request) (*httptest.ResponseRecorder, *nextProbe) {
	t.Helper()
	rec := httptest.NewRecorder()
	next := &nextProbe{}
	if err := g.h.ServeHTTP(rec, prepareRequest(r), next); err != nil {
		t.Fatalf("ServeHTTP %s %s returned an error instead of answering: %v", r.Method, r.URL, err)
	}
	return rec, next
}

// send is serve for the sign-in helpers (gateway).
func (g *unitGW) send(t testing.TB, method, path, body string, headers ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r := httptest.NewRequest(method, path, rd)
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		name, val, _ := strings.Cut(h, ":")
		if name = strings.TrimSpace(name); strings.EqualFold(name, "Content-Type") {
			r.Header.Del(name)
		}
		r.Header.Add(name, strings.TrimSpace(val))
	}
	rec, _ := g.serve(t, r)
	return recorded(rec)
}

// get is a GET with the token as Bearer.
func (g *unitGW) get(t testing.TB, path, token string) (*httptest.ResponseRecorder, *nextProbe) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, path, nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return g.serve(t, r)
}

// jsonPost is a POST with a JSON body, as the mini program sends it.
func jsonPost(path, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return r
}

// mint is wx.qy.login for a simulator user.
func (g *unitGW) mint(t testing.TB, corp, user string) string {
	t.Helper()
	code, err := g.sim.MintCode(corp, user)
	if err != nil {
		t.Fatal(err)
	}
	return code
}
