package wecomsim_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
)

// guardCaddyfile is a simulator site on 127.0.0.1:0 that answers any Host, behind which
// 127.0.0.1 is a trusted proxy (so X-Forwarded-For names the client), logging to a file.
const guardCaddyfile = `{
	admin off
	persist_config off
	log {
		output file %[1]s
		format json
	}
	servers {
		trusted_proxies static 127.0.0.1/32
	}
}

http://:0 {
	bind 127.0.0.1
	wecom_simulator {
		%[2]s
		playground /gateway
		corp acme {
			corp_id wwacme
			secret acme-secret
			user lisi 李四
		}
	}
}
`

// listenAddr is where the running Caddy's only server listens.
func listenAddr(t *testing.T) string {
	t.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("http")
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range app.(*caddyhttp.App).Servers {
		for _, l := range srv.Listeners() {
			return l.Addr().String()
		}
	}
	t.Fatal("Caddy listens nowhere")
	return ""
}

// TestDevGuardInCaddy runs the checks in a real Caddy: the client address is Caddy's client IP
// (the X-Forwarded-For of a trusted proxy), the Host is the request's, and dev_allow_remote
// opens both and warns.
func TestDevGuardInCaddy(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	testcaddy.Start(t, fmt.Sprintf(guardCaddyfile, logFile, ""))
	addr := listenAddr(t)

	send := func(method, path, host, forwardedFor, contentType, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		if forwardedFor != "" {
			req.Header.Set("X-Forwarded-For", forwardedFor)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const mint = `{"userid":"lisi"}`
	for _, tc := range []struct {
		what, method, path, host, forwardedFor, contentType, body string
		want                                                      int
	}{
		{"state", "GET", "/sim/state", addr, "", "", "", 200},
		{"state at localhost", "GET", "/sim/state", "localhost", "", "", "", 200},
		{"state for a remote client", "GET", "/sim/state", addr, "203.0.113.7", "", "", 403},
		{"state at a rebound Host", "GET", "/sim/state", "evil.example:8081", "", "", "", 403},
		{"playground", "GET", "/sim/playground", addr, "", "", "", 200},
		{"playground for a remote client", "GET", "/sim/playground", addr, "203.0.113.7", "", "", 403},
		{"playground at a rebound Host", "GET", "/sim/playground", "evil.example:8081", "", "", "", 403},
		{"mint", "POST", "/sim/code", addr, "", "application/json", mint, 200},
		{"mint by a form", "POST", "/sim/code", addr, "", "application/x-www-form-urlencoded", "userid=lisi", 415},
		{"mint with no body", "POST", "/sim/code?userid=lisi", addr, "", "", "", 415},
		{"mint for a remote client", "POST", "/sim/code", addr, "203.0.113.7", "application/json", mint, 403},
		{"gettoken for a remote client at any Host", "GET", "/cgi-bin/gettoken?corpid=wwacme&corpsecret=acme-secret", "qyapi.example", "203.0.113.7", "", "", 200},
	} {
		if st, body := send(tc.method, tc.path, tc.host, tc.forwardedFor, tc.contentType, tc.body); st != tc.want {
			t.Errorf("%s: HTTP %d %.300s, want %d", tc.what, st, body, tc.want)
		}
	}
	if b, _ := os.ReadFile(logFile); strings.Contains(string(b), "dev_allow_remote:") {
		t.Errorf("without the option the log warns about it:\n%s", b)
	}

	testcaddy.Load(t, fmt.Sprintf(guardCaddyfile, logFile, "dev_allow_remote"))
	http.DefaultClient.CloseIdleConnections() // the old config closed them: no POST may race that
	addr = listenAddr(t)
	for _, tc := range []struct{ what, method, path, contentType, body string }{
		{"state", "GET", "/sim/state", "", ""},
		{"playground", "GET", "/sim/playground", "", ""},
		{"mint", "POST", "/sim/code", "application/json", mint},
	} {
		if st, body := send(tc.method, tc.path, "evil.example:8081", "203.0.113.7", tc.contentType, tc.body); st != 200 {
			t.Errorf("%s for a remote client at another Host with dev_allow_remote: HTTP %d %.300s", tc.what, st, body)
		}
	}
	if st, _ := send("POST", "/sim/code", "evil.example", "203.0.113.7", "text/plain", mint); st != 415 {
		t.Errorf("a text/plain mint with dev_allow_remote: HTTP %d, want 415", st)
	}
	b, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	var warned bool
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"level":"warn"`) && strings.Contains(line, "dev_allow_remote:") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no WARN about dev_allow_remote at provision:\n%s", b)
	}
}
