package wecomauth_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/session"
	"github.com/wecomgate/wecomgate/module/wecomauth"
)

// A token issued on an instance whose clock runs ahead, and used here
// before a per-user end (an admin revoke of a compromised account), is
// ended too: it counts as issued when this instance first saw it. (A skew
// within skewTolerance, 30 s, is not covered: docs/decisions.md.)
func TestUserEndCatchesTokenFromAClockAhead(t *testing.T) {
	for _, ahead := range []time.Duration{3 * time.Minute} {
		t.Run(ahead.String(), func(t *testing.T) {
			e := startGateway(t, gatewayOptions{extra: "session_key " + keyA})
			h := runningHandlers(t)[0]
			login(t, e, "acme", "zhangsan")
			issued := e.clock.Now().Add(ahead).Truncate(time.Second) // issued now, by a clock ahead
			tok, err := wecomauth.SealSession(h, &session.Claims{UserID: "zhangsan", CorpID: "wwacme", Corp: "acme", Name: "张三",
				Departments: "1,2", IssuedAt: issued, ExpiresAt: issued.Add(24 * time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			if r := e.do(http.MethodGet, "/api/x", "", bearer(tok)); r.status != 200 {
				t.Fatalf("before: %d %s", r.status, r.raw)
			}
			e.clock.Advance(time.Second)
			if err := wecomauth.EndUserSessions(h, "wwacme", "zhangsan"); err != nil {
				t.Fatal(err)
			}
			if r := e.do(http.MethodGet, "/api/x", "", bearer(tok)); r.status != 401 {
				t.Errorf("a token in use before the end still passes after it: %d", r.status)
			}
		})
	}
}
