package wecom_test

import (
	"context"
	"strings"
	"testing"

	"go.uber.org/zap/zapcore"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

// The last gettoken outcome is remembered per corp: ok, or the errcode.
func TestLastToken(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, ok := e.c.LastToken(e.corp.ID); ok {
		t.Fatal("a result before any gettoken")
	}
	if _, err := e.c.Token(ctx, e.corp); err != nil {
		t.Fatal(err)
	}
	if r, ok := e.c.LastToken(e.corp.ID); !ok || !r.OK || r.At.IsZero() {
		t.Fatalf("after a token: %+v %v", r, ok)
	}
	bad := wecom.Corp{ID: e.other.ID, Secret: "wrong-secret-do-not-print"}
	if _, err := e.c.Token(ctx, bad); err == nil {
		t.Fatal("a wrong secret got a token")
	}
	r, _ := e.c.LastToken(e.other.ID)
	if r.OK || r.Errcode != 40001 || strings.Contains(r.Reason, "wrong-secret") {
		t.Fatalf("after a wrong secret: %+v", r)
	}
}

// A 60020 is logged at WARN with the IP WeCom saw and the fix, once a
// minute per corp however many calls fail.
func TestUntrustedIPWarns(t *testing.T) {
	e := newEnv(t)
	e.sim.InjectFault(wecomsim.Fault{Endpoint: wecomsim.EndpointUserGet, Errcode: 60020})
	for range 3 {
		if _, err := e.c.GetUser(context.Background(), e.corp, "alice"); err == nil {
			t.Fatal("user/get passed a 60020")
		}
	}
	warns := e.logs.FilterLevelExact(zapcore.WarnLevel).FilterMessageSnippet("60020").All()
	if len(warns) != 1 {
		t.Fatalf("%d WARN lines for 60020, want 1", len(warns))
	}
	w := warns[0]
	if ip := w.ContextMap()["ip"]; ip != "127.0.0.1" || !strings.Contains(w.Message, "企业可信IP") {
		t.Fatalf("WARN line: %s %v", w.Message, w.ContextMap())
	}
	if got := wecom.UntrustedIP("not allow to access from your ip, hint: [1], from ip: 203.0.113.7, more info at x"); got != "203.0.113.7" {
		t.Errorf("UntrustedIP: %q", got)
	}
}
