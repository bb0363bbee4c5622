package wecomauth_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
)

// A second mini program of corp acme: same corp id, its own app secret.
const acmeApp2Secret = "acme-app2-secret-0123456789"

// at runs f with the env's requests going to another gateway and simulator.
func (e *env) at(gw, sim string, f func()) {
	e.t.Helper()
	savedGW, savedSim := e.gw, e.sim
	e.gw, e.sim = gw, sim
	defer func() { e.gw, e.sim = savedGW, savedSim }()
	f()
}

// Two sites of one Caddy serve two apps of one corp (same corp name and
// corp id, different secrets) with the default generated session key, which
// they share. A token issued for one app is refused at the other's site
// exactly like a forged one, and keeps working where it was issued.
// Before sessions were bound to their app, site B admitted A's users with
// the facts A's login recorded until B's recheck.
func TestSessionsAreBoundToTheirApp(t *testing.T) {
	ports := testcaddy.Ports(t, 2)
	siteB := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	simB := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	e := startEnvSites(t, reviewBlock, "", "", func(e *env) string {
		// Its own simulator: one simulator knows one secret per corp id.
		return fmt.Sprintf(`%[1]s {
	wecom_auth {
		api_base %[2]s
		corp acme {
			corp_id wwacme
			secret %[3]s
		}
		%[5]s
	}
	reverse_proxy %[4]s
}
%[2]s {
	wecom_simulator {
		dev_path /sim
		corp acme {
			corp_id wwacme
			secret %[3]s
			user zhangsan 张三 {
				department 1 2
			}
		}
	}
}`, siteB, simB, acmeApp2Secret, e.backend.addr, reviewBlock)
	})
	siteA, simA := e.gw, e.sim
	get := func(gw, path, tok string) reply {
		var r reply
		e.at(gw, simA, func() { r = e.do(http.MethodGet, path, "", "Authorization: Bearer "+tok) })
		return r
	}
	cookie := func(gw, tok string) reply {
		var r reply
		e.at(gw, simA, func() { r = e.do(http.MethodGet, "/api/x", "", "Cookie: wecom_session="+tok) })
		return r
	}

	tokA := e.login("acme", "zhangsan")
	var tokB string
	e.at(siteB, simB, func() { tokB = e.login("acme", "zhangsan") })

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
	var rv reply
	e.at(siteB, simB, func() {
		rv = e.do(http.MethodPost, "/wecom/review/login", `{"username":"reviewer","password":"review-demo"}`)
	})
	if rv.status != 200 {
		t.Fatalf("review login at site B: %d %s", rv.status, rv.raw)
	}
	for _, gw := range []string{siteA, siteB} {
		if r := get(gw, "/wecom/session", rv.str("token")); r.status != 200 || r.body["review"] != true {
			t.Fatalf("review session at %s: %d %s", gw, r.status, r.raw)
		}
	}
}

// The binding is to the app, not to one handler: the same corp config in
// another handler and across reloads accepts the session, whatever other
// corps come and go; a new secret for the corp ends it.
func TestSessionsSurviveTheSameAppElsewhere(t *testing.T) {
	siteC := fmt.Sprintf("http://127.0.0.1:%d", testcaddy.Ports(t, 1)[0])
	e := startEnvSites(t, "", "", "", func(e *env) string {
		// Only acme, and the partner corp missing.
		return fmt.Sprintf(`%s {
	wecom_auth {
		api_base %s
		corp acme {
			corp_id wwacme
			secret %s
		}
	}
	reverse_proxy %s
}`, siteC, e.sim, acmeSecret, e.backend.addr)
	})
	tok := e.login("acme", "zhangsan")
	auth := "Authorization: Bearer " + tok
	var r reply
	e.at(siteC, e.sim, func() { r = e.do(http.MethodGet, "/api/x", "", auth) })
	if r.status != 200 {
		t.Fatalf("a handler with the same corp config refused the session: %d %s", r.status, r.raw)
	}
	e.backend.last(t)

	saved := gatewayCorps
	t.Cleanup(func() { gatewayCorps = saved })

	// A reload that drops partner, adds another corp before acme and
	// changes other settings.
	gatewayCorps = `
		corp other {
			corp_id wwother
			secret ` + otherSecret + `
		}
		corp acme {
			corp_id wwacme
			secret ` + acmeSecret + `
		}`
	e.reload("recheck 5m")
	if r := e.do(http.MethodGet, "/api/x", "", auth); r.status != 200 {
		t.Fatalf("refused after a reload that kept the corp's app: %d %s", r.status, r.raw)
	}
	e.backend.last(t)

	// A new secret is another app: the corp's sessions end (users sign in again).
	gatewayCorps = `
		corp acme {
			corp_id wwacme
			secret rotated-` + acmeSecret + `
		}`
	e.reload("recheck 5m")
	expectError(t, e.do(http.MethodGet, "/api/x", "", auth), http.StatusUnauthorized, "unauthenticated")
	e.backend.none(t)

	// And the old secret back opens it again: nothing was revoked.
	gatewayCorps = saved
	e.reload("")
	if r := e.do(http.MethodGet, "/api/x", "", auth); r.status != 200 {
		t.Fatalf("refused with the original config back: %d %s", r.status, r.raw)
	}
	e.backend.last(t)
}
