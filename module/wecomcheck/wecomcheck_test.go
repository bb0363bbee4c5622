package wecomcheck_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
	"github.com/wecomgate/wecomgate/module/wecomsim"

	_ "github.com/wecomgate/wecomgate/module"
)

// runCaddyEnv makes the test binary run as `caddy` with the JSON list of
// arguments it holds: the command is tested as an operator runs it.
const runCaddyEnv = "WECOMCHECK_TEST_RUN_CADDY"

func TestMain(m *testing.M) {
	if args := os.Getenv(runCaddyEnv); args != "" {
		var list []string
		if err := json.Unmarshal([]byte(args), &list); err != nil {
			panic(err)
		}
		os.Args = append([]string{"caddy"}, list...)
		caddycmd.Main()
		return
	}
	os.Exit(testcaddy.Run(m))
}

const (
	acmeSecret    = "acme-secret-do-not-print-0123"
	partnerSecret = "partner-secret-do-not-print-0123"
)

// caddy runs `caddy wecom-check --config <caddyfile> --adapter caddyfile`
// and returns its output and exit code.
func caddy(t *testing.T, caddyfile string) (stdout, stderr string, code int) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(file, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	args, _ := json.Marshal([]string{"wecom-check", "--config", file, "--adapter", "caddyfile"})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), runCaddyEnv+"="+string(args),
		"ACME_SECRET="+acmeSecret, "PARTNER_SECRET="+partnerSecret)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	for _, s := range []string{acmeSecret, partnerSecret} {
		if strings.Contains(out.String()+errOut.String(), s) {
			t.Errorf("the output shows a secret:\n%s\n%s", out.String(), errOut.String())
		}
	}
	return out.String(), errOut.String(), code
}

// gatewayConfig is a Caddyfile whose wecom_auth (inside a handle block,
// so in a subroute) has the corps, at apiBase.
func gatewayConfig(apiBase string, corps ...string) string {
	return fmt.Sprintf(`{
	admin off
}
http://localhost:1 {
	handle /api/* {
		wecom_auth {
			api_base %s
%s
		}
		respond "ok"
	}
}
`, apiBase, strings.Join(corps, "\n"))
}

func corp(name, id, secret string) string {
	return fmt.Sprintf("\t\t\tcorp %s {\n\t\t\t\tcorp_id %s\n\t\t\t\tsecret %s\n\t\t\t}", name, id, secret)
}

func TestWeComCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the caddy command")
	}
	sim := wecomsim.New(wecomsim.Config{Corps: []wecomsim.Corp{
		{Name: "acme", CorpID: "wwacme", Secret: acmeSecret},
		{Name: "partner", CorpID: "wwpartner", Secret: partnerSecret},
	}})
	srv := httptest.NewServer(sim)
	defer srv.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String()
	l.Close() // nothing listens there now

	acme := corp("acme", "wwacme", "{env.ACME_SECRET}")
	cases := []struct {
		name   string
		config string
		fault  *wecomsim.Fault
		lines  []string
		code   int
	}{
		{"ok", gatewayConfig(srv.URL, acme, corp("partner", "wwpartner", "{env.PARTNER_SECRET}")), nil,
			[]string{"corp acme (wwacme) at " + srv.URL + ": ok", "corp partner (wwpartner) at " + srv.URL + ": ok"}, 0},
		{"wrong secret", gatewayConfig(srv.URL, acme, corp("partner", "wwpartner", "{env.ACME_SECRET}")), nil,
			[]string{"corp acme (wwacme) at " + srv.URL + ": ok", "corp partner (wwpartner) at " + srv.URL + ": wrong secret (40001)"}, 1},
		{"wrong corp id", gatewayConfig(srv.URL, corp("acme", "wwnosuch", "{env.ACME_SECRET}")), nil,
			[]string{"corp acme (wwnosuch) at " + srv.URL + ": wrong corp id (40013)"}, 1},
		{"untrusted IP", gatewayConfig(srv.URL, acme), &wecomsim.Fault{Endpoint: wecomsim.EndpointUserGet, Errcode: 60020},
			[]string{"corp acme (wwacme) at " + srv.URL + ": server IP not trusted (60020): WeCom saw 127.0.0.1; add it to the app's 企业可信IP"}, 1},
		{"unreachable", gatewayConfig(closed, acme), nil,
			[]string{"corp acme (wwacme) at " + closed + ": WeCom unreachable: "}, 1},
		{"unset variable", gatewayConfig(srv.URL, corp("acme", "wwacme", "{env.WECOMCHECK_UNSET}")), nil,
			[]string{"corp acme (wwacme) at " + srv.URL + ": secret is empty after replacing placeholders"}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sim.ClearFaults()
			if tc.fault != nil {
				sim.InjectFault(*tc.fault)
			}
			out, errOut, code := caddy(t, tc.config)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != tc.code || len(lines) != len(tc.lines) {
				t.Fatalf("exit %d, lines %q; want exit %d and %d lines\nstderr: %s", code, lines, tc.code, len(tc.lines), errOut)
			}
			for i, want := range tc.lines {
				if !strings.HasPrefix(lines[i], want) {
					t.Errorf("line %d: %q; want %q", i+1, lines[i], want)
				}
			}
		})
	}
}

// A config without wecom_auth is a usage error, not a pass.
func TestWeComCheckWithoutHandler(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the caddy command")
	}
	_, errOut, code := caddy(t, "http://localhost:1 {\n\trespond ok\n}\n")
	if code == 0 || !strings.Contains(errOut, "no wecom_auth handler") {
		t.Fatalf("exit %d: %s", code, errOut)
	}
}
