package wecomauth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	zapobserver "go.uber.org/zap/zaptest/observer"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

// signInWorld is a handler whose WARN lines a test can read, and a way to
// sign in to it as Caddy's server would hand the request on.
type signInWorld struct {
	h    *Handler
	logs *zapobserver.ObservedLogs
}

func newSignInWorld() *signInWorld {
	initMetrics()
	core, logs := zapobserver.New(zap.WarnLevel)
	h := &Handler{logger: zap.New(core), limiter: newFailureLimiter(nil), corps: []*corp{{name: "acme"}}}
	SetClock(h, func() time.Time { return t0 })
	return &signInWorld{h: h, logs: logs}
}

// signIn sends a failing sign-in from peer 127.0.0.1; trusted is whether
// Caddy found that peer in trusted_proxies. Headers are "Name: value".
func (w *signInWorld) signIn(trusted bool, headers ...string) {
	w.attempt("code", trusted, func() (*identity, string, *denial) { return nil, "", invalidRequest("bogus") }, headers...)
}

func (w *signInWorld) attempt(method string, trusted bool, attempt func() (*identity, string, *denial), headers ...string) (*identity, *denial) {
	r := httptest.NewRequest(http.MethodPost, "/wecom/login", nil)
	r.RemoteAddr = "127.0.0.1:40000"
	for _, h := range headers {
		name, val, _ := strings.Cut(h, ":")
		r.Header.Add(name, strings.TrimSpace(val))
	}
	r = caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
	caddyhttp.SetVar(r.Context(), caddyhttp.TrustedProxyVarKey, trusted)
	caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, "127.0.0.1")
	return w.h.signIn(r, method, attempt)
}

// A sign-in that came through a proxy the server does not trust gets one
// WARN per handler naming the fix; direct clients and trusted proxies get
// none.
func TestUntrustedProxyWarnsOnce(t *testing.T) {
	w := newSignInWorld()
	w.signIn(false)
	w.signIn(true, "X-Forwarded-For: 198.51.100.1")
	w.signIn(true, "Forwarded: for=198.51.100.1")
	if n := w.logs.Len(); n != 0 {
		t.Fatalf("%d warnings without an untrusted proxy: %v", n, w.logs.All())
	}
	for range 5 {
		w.signIn(false, "X-Forwarded-For: 198.51.100.1")
		w.signIn(false, "Forwarded: for=198.51.100.2")
	}
	all := w.logs.All()
	if len(all) != 1 {
		t.Fatalf("%d warnings; want one per handler: %v", len(all), all)
	}
	msg := all[0].Message
	for _, want := range []string{"trusted_proxies", "shares one failed-login count", "servers { trusted_proxies static <cidr> }"} {
		if !strings.Contains(msg, want) {
			t.Errorf("warning %q does not say %q", msg, want)
		}
	}
	if f := all[0].ContextMap(); f["proxy"] != "127.0.0.1" || f["header"] != "X-Forwarded-For" {
		t.Errorf("warning fields %v; want proxy 127.0.0.1, header X-Forwarded-For", f)
	}

	// Forwarded alone is enough, and each handler warns once of its own.
	w = newSignInWorld()
	w.signIn(false, "Forwarded: for=198.51.100.2")
	if n := w.logs.Len(); n != 1 {
		t.Fatalf("%d warnings for a request with Forwarded; want 1", n)
	}
}

// signIn runs the attempt only after reserving: of 500 concurrent sign-ins
// with bogus codes, at most login_rate (5) reach the attempt, which is
// where WeCom is called; the others wait and are refused once those fail.
func TestSignInReservesBeforeAttempt(t *testing.T) {
	w := newSignInWorld()
	w.h.limiter = newFailureLimiter(&LoginRate{Failures: 5})
	var ran atomic.Int32
	hold := make(chan struct{})
	var wg sync.WaitGroup
	var refused atomic.Int32
	for range 500 {
		wg.Go(func() {
			_, d := w.attempt("code", false, func() (*identity, string, *denial) {
				if ran.Add(1) == 5 {
					close(hold) // five are running at once
				}
				<-hold
				return nil, "", fromWeCom(&wecom.Error{Endpoint: "jscode2session", Errcode: 40029, Kind: wecom.KindInvalidCode})
			})
			if d.code == "rate_limited" && d.retryAfter == 60 {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if n := ran.Load(); n != 5 || refused.Load() != 495 {
		t.Fatalf("%d of 500 concurrent sign-ins reached the attempt, %d refused; want 5 and 495", n, refused.Load())
	}
}

// A sign-in waiting behind its client's attempts in flight gives up after
// clientWait: 429, Retry-After 1, and nothing counted against the client.
func TestSignInGivesUpWaiting(t *testing.T) {
	w := newSignInWorld()
	w.h.limiter = newFailureLimiter(&LoginRate{Failures: 1})
	w.h.limiter.clientWait = time.Millisecond
	hold, running := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.attempt("code", false, func() (*identity, string, *denial) {
			close(running)
			<-hold
			return &identity{}, "", nil
		})
	}()
	<-running
	_, d := w.attempt("code", false, func() (*identity, string, *denial) {
		t.Error("a sign-in ran past the client's budget")
		return nil, "", nil
	})
	if d == nil || d.code != "rate_limited" || d.retryAfter != 1 || !strings.Contains(d.message, "busy") {
		t.Fatalf("waiting past clientWait: %v (retry %d); want rate_limited busy, retry 1", d, d.retryAfter)
	}
	close(hold)
	<-done
	if n := len(w.h.limiter.clients); n != 0 {
		t.Fatalf("limiter tracks %d clients after a success and a give-up", n)
	}
}

// An attempt that panics still settles its reservation (as a failure), so
// no unit of the client's budget and no slot in flight is leaked.
func TestSignInSettlesAfterPanic(t *testing.T) {
	w := newSignInWorld()
	w.h.limiter = newFailureLimiter(&LoginRate{Failures: 2})
	for range 2 {
		func() {
			defer func() { _ = recover() }()
			w.attempt("code", false, func() (*identity, string, *denial) { panic("boom") })
		}()
	}
	l := w.h.limiter
	if n := len(l.slots[codeSignIn]); n != 0 {
		t.Fatalf("%d slots still taken after their attempts panicked", n)
	}
	if _, d := w.attempt("code", false, func() (*identity, string, *denial) { return &identity{}, "", nil }); d == nil || d.code != "rate_limited" {
		t.Fatalf("after two panicking attempts with login_rate 2: %v; want rate_limited", d)
	}
}
