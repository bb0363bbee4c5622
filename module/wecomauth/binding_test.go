package wecomauth_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
	"github.com/wecomgate/wecomgate/module/wecomauth"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

// A second mini program of corp acme: same corp id, its own app secret.
const acmeApp2Secret = "acme-app2-secret-0123456789"

// Two sites of one Caddy serve two apps of one corp (same corp name and
// corp id, different secrets) with the default generated session key, which
// they share. A token issued for one app is refused at the other's site
// exactly like a forged one, and keeps working where it was issued.
// Before sessions were bound to their app, site B admitted A's users with
// the facts A's login recorded until B's recheck.
func TestSessionsAreBoundToTheirApp(t *testing.T) {
	addrs := testcaddy.Listen(t, 2)
	siteB, simB := addrs[0].URL(), addrs[1].URL()
	app2 := []wecomsim.Corp{{Name: "acme", CorpID: "wwacme", Secret: acmeApp2Secret,
		Users: []wecomsim.User{worldUser("acme", "zhangsan")}}}
	e := startGateway(t, gatewayOptions{extra: reviewBlock, sites: func(e *env) string {
		// Its own simulator: one simulator knows one secret per corp id.
		return fmt.Sprintf(`%[1]s {
	wecom_auth {
		api_base %[2]s
%[3]s
		%[5]s
	}
	reverse_proxy %[4]s
}
%[2]s {
	%[6]s
}`, siteB, simB, corpBlocks([]wecomauth.CorpConfig{{Name: "acme", CorpID: "wwacme", Secret: acmeApp2Secret}}),
			e.backend.addr, reviewBlock, simulatorBlock(app2))
	}})
	siteA := e.gw
	get := func(gw, path, tok string) reply {
		return e.at(gw, e.sim).do(http.MethodGet, path, "", "Authorization: Bearer "+tok)
	}
	cookie := func(gw, tok string) reply {
		return e.at(gw, e.sim).do(http.MethodGet, "/api/x", "", "Cookie: wecom_session="+tok)
	}

	tokA := login(t, e, "acme", "zhangsan")
	tokB := login(t, e.at(siteB, simB), "acme", "zhangsan")

	for _, tc := range []struct {
		name, tok, home, away string
	}{
		{"app 1's token", tokA, siteA, siteB},
		{"app 2's token", tokB, siteB, siteA},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := get(tc.home, "/api/x", tc.tok); r.status != 200 {
				t.Fatalf("at the site that issued it: %d %s", r.status, r.raw)
			}
			if got := e.backend.last(t).Header.Get("X-WeCom-CorpId"); got != "wwacme" {
				t.Fatalf("X-WeCom-CorpId = %q", got)
			}
			expectError(t, get(tc.away, "/api/x", tc.tok), http.StatusUnauthorized, "unauthenticated")
			expectError(t, cookie(tc.away, tc.tok), http.StatusUnauthorized, "unauthenticated")
			expectError(t, get(tc.away, "/wecom/session", tc.tok), http.StatusUnauthorized, "unauthenticated")
			expectError(t, get(tc.away, "/wecom/auth", tc.tok), http.StatusUnauthorized, "unauthenticated")
			e.backend.none(t)
			// Refused there, it still works at home.
			if r := get(tc.home, "/wecom/session", tc.tok); r.status != 200 || r.str("userid") != "zhangsan" {
				t.Fatalf("at home after the refusal: %d %s", r.status, r.raw)
			}
		})
	}

	// Review sessions belong to no app: with the same key and the same
	// review account they open at both sites, but never as a corp session.
	rv := reviewLogin(t, e.at(siteB, simB))
	for _, gw := range []string{siteA, siteB} {
		if r := get(gw, "/wecom/session", rv); r.status != 200 || r.body["review"] != true {
			t.Fatalf("review session at %s: %d %s", gw, r.status, r.raw)
		}
	}
}

// The binding is to the app, not to one handler: the same corp config in
// another handler and across reloads accepts the session, whatever other
// corps come and go; a new secret for the corp ends it.
func TestSessionsSurviveTheSameAppElsewhere(t *testing.T) {
	siteC := testcaddy.Listen(t, 1)[0].URL()
	e := startGateway(t, gatewayOptions{sites: func(e *env) string {
		// Only acme, and the partner corp missing.
		return fmt.Sprintf(`%s {
	wecom_auth {
		api_base %s
%s
	}
	reverse_proxy %s
}`, siteC, e.sim, corpBlocks(gatewayCorps()[:1]), e.backend.addr)
	}})
	tok := login(t, e, "acme", "zhangsan")
	auth := "Authorization: Bearer " + tok
	if r := e.at(siteC, e.sim).do(http.MethodGet, "/api/x", "", auth); r.status != 200 {
		t.Fatalf("a handler with the same corp config refused the session: %d %s", r.status, r.raw)
	}
	e.backend.last(t)

	// A reload that drops partner, adds another corp before acme and
	// changes other settings.
	e.corps = []wecomauth.CorpConfig{{Name: "other", CorpID: "wwother", Secret: otherSecret}, gatewayCorps()[0]}
	e.reload("recheck 5m")
	if r := e.do(http.MethodGet, "/api/x", "", auth); r.status != 200 {
		t.Fatalf("refused after a reload that kept the corp's app: %d %s", r.status, r.raw)
	}
	e.backend.last(t)

	// A new secret is another app: the corp's sessions end (users sign in again).
	e.corps = []wecomauth.CorpConfig{{Name: "acme", CorpID: "wwacme", Secret: "rotated-" + acmeSecret}}
	e.reload("recheck 5m")
	expectError(t, e.do(http.MethodGet, "/api/x", "", auth), http.StatusUnauthorized, "unauthenticated")
	e.backend.none(t)

	// And the old secret back opens it again: nothing was revoked.
	e.corps = gatewayCorps()
	e.reload("")
	if r := e.do(http.MethodGet, "/api/x", "", auth); r.status != 200 {
		t.Fatalf("refused with the original config back: %d %s", r.status, r.raw)
	}
	e.backend.last(t)
}
