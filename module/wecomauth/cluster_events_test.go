package wecomauth_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/session"
	"github.com/wecomgate/wecomgate/module/wecomauth"
)

func bearer(tok string) string { return "Authorization: Bearer " + tok }

// Ending a user's sessions refuses every session of theirs issued until
// then, leaves other users alone, and lets them sign in again at once.
func TestEndUserSessions(t *testing.T) {
	e := startGateway(t, gatewayOptions{})
	h := runningHandlers(t)[0]
	first, second := login(t, e, "acme", "zhangsan"), login(t, e, "acme", "zhangsan")
	other := login(t, e, "partner", "zhaoliu")

	if err := wecomauth.EndUserSessions(h, "wwacme", "zhangsan"); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{first, second} {
		expectError(t, e.do(http.MethodGet, "/api/x", "", bearer(tok)), http.StatusUnauthorized, "unauthenticated")
	}
	if r := e.do(http.MethodGet, "/api/x", "", bearer(other)); r.status != 200 {
		t.Fatalf("another user's session: %d %s", r.status, r.raw)
	}
	again := login(t, e, "acme", "zhangsan") // within the same second
	if r := e.do(http.MethodGet, "/api/x", "", bearer(again)); r.status != 200 {
		t.Fatalf("signing in again after the end: %d %s", r.status, r.raw)
	}
}

// A user changed in WeCom is asked about again at the next request, once.
func TestRecheckUserAsksWeComAgain(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "recheck 10m"})
	h := runningHandlers(t)[0]
	tok := login(t, e, "acme", "zhangsan")
	before := e.counts()["user/get"]
	e.do(http.MethodGet, "/api/x", "", bearer(tok))
	if n := e.counts()["user/get"]; n != before {
		t.Fatalf("user/get %d → %d within recheck", before, n)
	}
	if err := wecomauth.RecheckUser(h, "wwacme", "zhangsan"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Millisecond)
	e.simJSON(http.MethodPut, "/sim/users", map[string]any{"corp": "acme", "userid": "zhangsan", "status": 2}, nil)
	expectError(t, e.do(http.MethodGet, "/api/x", "", bearer(tok)), http.StatusForbidden, "user_inactive")
	expectError(t, e.do(http.MethodGet, "/api/x", "", bearer(tok)), http.StatusForbidden, "user_inactive")
	if n := e.counts()["user/get"]; n != before+1 {
		t.Fatalf("user/get %d → %d, want one call after the change", before, n)
	}
}

// A changed directory is fetched again at the next request that needs it.
func TestDropDirectoryFetchesAgain(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "recheck 10m"})
	h := runningHandlers(t)[0]
	tok := login(t, e, "partner", "zhaoliu") // partner admits department 7 and below
	before := e.counts()["department/simplelist"]
	if r := e.do(http.MethodGet, "/api/x", "", bearer(tok)); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if err := wecomauth.DropDirectory(h, "wwpartner"); err != nil {
		t.Fatal(err)
	}
	// The user's own facts are fresh: only the directory is asked again,
	// when a recheck needs it.
	if err := wecomauth.RecheckUser(h, "wwpartner", "zhaoliu"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Millisecond)
	if r := e.do(http.MethodGet, "/api/x", "", bearer(tok)); r.status != 200 {
		t.Fatalf("%d %s", r.status, r.raw)
	}
	if n := e.counts()["department/simplelist"]; n != before+1 {
		t.Fatalf("department/simplelist %d → %d, want one more after the change", before, n)
	}
}

// A token issued by an instance whose clock runs 3 minutes ahead lives
// session_ttl from when this instance first saw it, and its user is
// rechecked recheck after that, not after the issuer's idea of time.
func TestTokenFromAnInstanceAheadIsJudgedByThisClock(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "session_ttl 4m\n\t\trecheck 1m\n\t\tsession_key " + keyA})
	h := runningHandlers(t)[0]
	login(t, e, "acme", "zhangsan") // the user's facts, as a login leaves them
	issued := e.clock.Now().Add(3 * time.Minute)
	tok, err := wecomauth.SealSession(h, &session.Claims{UserID: "zhangsan", CorpID: "wwacme", Corp: "acme", Name: "张三",
		Departments: "1,2", IssuedAt: issued, ExpiresAt: issued.Add(4 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if r := e.do(http.MethodGet, "/api/x", "", bearer(tok)); r.status != 200 {
		t.Fatalf("token from the future: %d %s", r.status, r.raw)
	}
	before := e.counts()["user/get"]
	e.clock.Advance(61 * time.Second)
	e.do(http.MethodGet, "/api/x", "", bearer(tok))
	if n := e.counts()["user/get"]; n != before+1 {
		t.Fatalf("user/get %d → %d a recheck after first sight, want one call (the issuer's future check time must not count)", before, n)
	}
	e.clock.Advance(3 * time.Minute)
	expectError(t, e.do(http.MethodGet, "/api/x", "", bearer(tok)), http.StatusUnauthorized, "unauthenticated")
}
