package wecomauth_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// blockOf returns the Caddyfile block that starts at the first line equal
// to head (tabs trimmed), through its closing brace.
func blockOf(t *testing.T, src, head string) string {
	t.Helper()
	lines := strings.Split(src, "\n")
	for i, l := range lines {
		if strings.TrimSpace(l) != head {
			continue
		}
		depth := 0
		for j := i; j < len(lines); j++ {
			depth += strings.Count(lines[j], "{") - strings.Count(lines[j], "}")
			if depth == 0 {
				return strings.Join(lines[i:j+1], "\n")
			}
		}
	}
	t.Fatalf("no block %q", head)
	return ""
}

// Item 16: the log filters Caddyfile.example documents keep inline codes
// and assertions out of Caddy's access log, its error log (which records
// the request as it came in, before any handler ran) and reverse_proxy's
// DEBUG lines.
func TestExampleLogFiltersHideCodesAndAssertions(t *testing.T) {
	example, err := os.ReadFile("../../Caddyfile.example")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	defaultLog, accessLog := filepath.Join(dir, "default.log"), filepath.Join(dir, "access.log")
	global := strings.Replace(blockOf(t, string(example), "log default {"), "log default {",
		"log default {\n\t\toutput file "+defaultLog+"\n\t\tlevel DEBUG", 1)
	site := strings.Replace(blockOf(t, string(example), "log {"), "log {", "log {\n\t\toutput file "+accessLog, 1)

	e := startGateway(t, gatewayOptions{extra: "assertion api.example", global: global, site: `%s
	handle /down/* {
		reverse_proxy 127.0.0.1:1
	}
	reverse_proxy {backend}
	` + site})

	code := e.code("acme", "zhangsan")
	if r := e.do(http.MethodGet, "/down/x", "", "X-WeCom-Code: "+code); r.status != http.StatusBadGateway {
		t.Fatalf("inline login to a backend that is down: %d %s", r.status, r.raw)
	}
	tok := login(t, e, "acme", "zhangsan")
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != http.StatusOK {
		t.Fatalf("protected request: %d %s", r.status, r.raw)
	}
	assertion := e.backend.last(t).Header.Get("X-WeCom-Assertion")
	if assertion == "" {
		t.Fatal("no assertion reached the backend")
	}

	logs := map[string]string{}
	for _, f := range []string{defaultLog, accessLog} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		logs[filepath.Base(f)] = string(b)
	}
	// The filters must have had something to filter.
	if !strings.Contains(logs["default.log"], "/down/x") || !strings.Contains(logs["default.log"], "upstream roundtrip") {
		t.Fatalf("the error or DEBUG lines are missing from the default log:\n%s", tailLines(logs["default.log"], 20))
	}
	if !strings.Contains(logs["access.log"], "/down/x") {
		t.Fatalf("the access log lacks the request:\n%s", logs["access.log"])
	}
	for name, text := range logs {
		for what, secret := range map[string]string{"login code": code, "assertion": assertion, "session token": tok} {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds the %s: %s", name, what, lineAround(text, strings.Index(text, secret)))
			}
		}
	}
}
