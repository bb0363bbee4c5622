package wecomauth_test

import (
	"encoding/json"
	"fmt"
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

// Code sign-ins in flight across all clients are bounded: with WeCom
// holding every jscode2session call, sign-ins past the bound from new
// clients are answered 429 with Retry-After 1 (here at once, without the
// wait for a slot), and that refusal is not counted against them.
func TestSignInsInFlightAreBounded(t *testing.T) {
	sim := wecomsim.New(wecomsim.Config{Corps: []wecomsim.Corp{
		{Name: "acme", CorpID: "wwacme", Secret: acmeSecret, Users: []wecomsim.User{{UserID: "zhangsan", Name: "张三"}}},
	}})
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/jscode2session") {
			<-hold
		}
		sim.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(release) // before srv.Close, which waits for the held calls

	h := &wecomauth.Handler{
		APIBase:     srv.URL,
		Corps:       []wecomauth.CorpConfig{{Name: "acme", CorpID: "wwacme", Secret: acmeSecret}},
		SessionKeys: []string{testSessionKey},
		LoginRate:   &wecomauth.LoginRate{Failures: 1, Window: caddy.Duration(time.Minute)},
	}
	if err := h.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	wecomauth.NoSlotWait(h) // (the wait for a slot is a second of real time)

	type answer struct {
		ip    string
		code  int
		retry string
		body  map[string]string
	}
	login := func(ip string) answer {
		r := prepareRequest(jsonPost("/wecom/login", `{"code":"bogus-`+ip+`"}`))
		caddyhttp.SetVar(r.Context(), caddyhttp.ClientIPVarKey, ip)
		rec := httptest.NewRecorder()
		if err := h.ServeHTTP(rec, r, &nextProbe{}); err != nil {
			t.Error(err)
		}
		a := answer{ip: ip, code: rec.Code, retry: rec.Header().Get("Retry-After")}
		_ = json.Unmarshal(rec.Body.Bytes(), &a.body)
		return a
	}

	const extra = 20
	answers := make(chan answer)
	for i := range wecomauth.MaxCodeSignIns + extra {
		go func() { answers <- login(fmt.Sprintf("10.0.%d.%d", i>>8, i&255)) }()
	}
	// The held sign-ins cannot answer, so the first answers are the
	// refused ones.
	next := func() answer {
		select {
		case a := <-answers:
			return a
		case <-time.After(time.Minute):
			t.Fatal("no answer within a minute")
			return answer{}
		}
	}
	busy := map[string]bool{}
	for range extra {
		a := next()
		if a.code != http.StatusTooManyRequests || a.body["error"] != "rate_limited" || a.retry != "1" ||
			!strings.Contains(a.body["message"], "busy") {
			t.Fatalf("past the bound: %d Retry-After %q %v; want 429 rate_limited, Retry-After 1, busy", a.code, a.retry, a.body)
		}
		busy[a.ip] = true
	}
	release()
	var held, refused string
	for range wecomauth.MaxCodeSignIns {
		a := next()
		if a.code != http.StatusUnauthorized {
			t.Fatalf("a held sign-in answered %d %v; want 401", a.code, a.body)
		}
		held = a.ip
	}
	for ip := range busy {
		refused = ip
	}
	// login_rate is 1: a client refused as busy has its failure still to
	// spend, one that reached WeCom has spent it.
	if a := login(refused); a.code != http.StatusUnauthorized {
		t.Errorf("a client refused as busy then answered %d %v; want 401 (busy must not count)", a.code, a.body)
	}
	if a := login(held); a.code != http.StatusTooManyRequests || a.body["error"] != "rate_limited" {
		t.Errorf("a client whose held sign-in failed then answered %d %v; want 429", a.code, a.body)
	}
}
