package wecomauth_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"

	_ "github.com/wecomgate/wecomgate/module"
)

func TestMain(m *testing.M) {
	// The cluster tests start this binary again as a second Caddy.
	if cfg := os.Getenv(runCaddyEnv); cfg != "" {
		os.Args = []string{"caddy", "run", "--config", cfg, "--adapter", "caddyfile"}
		caddycmd.Main()
		return
	}
	cleanup := testcaddy.IsolateHome()
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// env is one running Caddy with the gateway in front of a recording
// backend, and the WeCom simulator beside it.
type env struct {
	t       *testing.T
	gw      string // base URL of the gateway
	sim     string // base URL of the simulator
	backend *recorder
	client  *http.Client
	config  func(extra string) string // the whole Caddyfile
	global  string                    // global options besides admin off
	sites   string                    // more site blocks
}

// Secrets and users of the test world. "other" is a corp the simulator
// knows but the gateway does not allow.
const (
	acmeSecret    = "acme-secret-0123456789"
	partnerSecret = "partner-secret-0123456789"
	otherSecret   = "other-secret-0123456789"
)

const simulatorBlock = `
	wecom_simulator {
		dev_path /sim
		corp acme {
			corp_id wwacme
			secret ` + acmeSecret + `
			user zhangsan 张三 {
				department 1 2
			}
			user lisi 李四 {
				department 2
				status 2
			}
			user wangwu 王五 {
				hidden
			}
			user zhouba 周八 {
				department 4
				status 4
			}
		}
		corp partner {
			corp_id wwpartner
			secret ` + partnerSecret + `
			user zhaoliu 赵六 {
				department 7
			}
			user qianqi 钱七 {
				department 8
			}
		}
		corp other {
			corp_id wwother
			secret ` + otherSecret + `
			user sunjiu 孙九
		}
	}`

// gatewayCorps are the gateway's corp blocks; a test may swap them.
var gatewayCorps = `
		corp acme {
			corp_id wwacme
			secret ` + acmeSecret + `
		}
		corp partner {
			corp_id wwpartner
			secret ` + partnerSecret + `
			allow_departments 7
		}`

// startEnv runs gateway, simulator and backend; extra goes inside the
// wecom_auth block.
func startEnv(t *testing.T, extra string) *env {
	t.Helper()
	return startEnvWith(t, extra, "")
}

// startEnvWith also takes the gateway's site body around wecom_auth: %s in
// siteTemplate is replaced by the wecom_auth directive, {backend} by the
// backend's address. "" means wecom_auth then reverse_proxy. A template
// that writes "wecom_auth <matcher> %s" gets only the block for %s.
func startEnvWith(t *testing.T, extra, siteTemplate string) *env {
	t.Helper()
	return startEnvGlobal(t, extra, siteTemplate, "")
}

// startEnvGlobal also takes global options (admin off unless they name an
// admin address).
func startEnvGlobal(t *testing.T, extra, siteTemplate, global string) *env {
	t.Helper()
	return startEnvSites(t, extra, siteTemplate, global, nil)
}

// startEnvSites also adds site blocks, made by sites from the env (for its
// addresses) before Caddy starts.
func startEnvSites(t *testing.T, extra, siteTemplate, global string, sites func(*env) string) *env {
	t.Helper()
	ports := testcaddy.Ports(t, 2)
	rec := newRecorder(t)
	if siteTemplate == "" {
		siteTemplate = "%s\n\treverse_proxy {backend}"
	}
	site := strings.ReplaceAll(siteTemplate, "{backend}", rec.addr)
	e := &env{
		t:       t,
		gw:      fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		sim:     fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		backend: rec,
		client:  &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		global:  global,
	}
	if sites != nil {
		e.sites = sites(e)
	}
	e.config = func(extra string) string {
		auth := fmt.Sprintf("wecom_auth {\n\t\tapi_base %s\n%s\n\t\t%s\n\t}", e.sim, gatewayCorps, extra)
		if strings.Contains(site, "wecom_auth ") {
			auth = strings.TrimPrefix(auth, "wecom_auth ")
		}
		global := e.global
		if !strings.Contains(global, "admin ") {
			global += "\n\tadmin off"
		}
		return fmt.Sprintf("{\n%s\n}\n%s {\n\t%s\n}\n%s {\n%s\n}\n%s\n",
			global, e.gw, strings.Replace(site, "%s", auth, 1), e.sim, simulatorBlock, e.sites)
	}
	testcaddy.Start(t, e.config(extra))
	return e
}

// reload replaces the running config with one whose wecom_auth block has
// extra in place of the original extra lines.
func (e *env) reload(extra string) {
	e.t.Helper()
	testcaddy.Load(e.t, e.config(extra))
}

// code mints a wx.qy.login code for a user of a simulator corp.
func (e *env) code(corp, userID string) string {
	e.t.Helper()
	var out struct{ Code string }
	e.simJSON(http.MethodPost, "/sim/code", map[string]string{"corp": corp, "userid": userID}, &out)
	if out.Code == "" {
		e.t.Fatalf("simulator minted no code for %s/%s", corp, userID)
	}
	return out.Code
}

// simJSON calls the simulator's development interface.
func (e *env) simJSON(method, path string, in, out any) {
	e.t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.sim+path, body)
	if method != http.MethodGet {
		req.Header.Set("Content-Type", "application/json") // the dev interface refuses writes without it
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("simulator %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			e.t.Fatal(err)
		}
	}
}

// counts returns the simulator's call counts.
func (e *env) counts() map[string]int {
	e.t.Helper()
	m := map[string]int{}
	e.simJSON(http.MethodGet, "/sim/counts", nil, &m)
	return m
}

// reply is a gateway answer.
type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r reply) str(key string) string { s, _ := r.body[key].(string); return s }

// do sends a request to the gateway; headers are "Name: value" lines.
func (e *env) do(method, path, body string, headers ...string) reply {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.gw+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json") // as wx.request sends it
	}
	for _, h := range headers {
		name, val, _ := strings.Cut(h, ":")
		if name = strings.TrimSpace(name); strings.EqualFold(name, "Content-Type") {
			req.Header.Del(name) // the test's own type replaces the default
		}
		req.Header.Add(name, strings.TrimSpace(val))
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// login signs a user in with a code and returns the token.
func (e *env) login(corp, userID string) string {
	e.t.Helper()
	r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q,"corp":%q}`, e.code(corp, userID), corp))
	if r.status != http.StatusOK || r.str("token") == "" {
		e.t.Fatalf("login %s/%s: %d %s", corp, userID, r.status, r.raw)
	}
	return r.str("token")
}

// expectError checks a SPEC §6 error answer.
func expectError(t *testing.T, r reply, status int, code string) {
	t.Helper()
	if r.status != status || r.str("error") != code {
		t.Fatalf("got %d %s; want %d with error %q", r.status, r.raw, status, code)
	}
	if r.str("message") == "" {
		t.Errorf("error %s has no message", code)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("error Content-Type = %q", ct)
	}
	if status == http.StatusUnauthorized && r.header.Get("WWW-Authenticate") != `Bearer realm="wecom"` {
		t.Errorf("401 without WWW-Authenticate: %q", r.header.Get("WWW-Authenticate"))
	}
}

// recorder is the legacy backend: it answers 200 and remembers what it got.
type recorder struct {
	addr string
	mu   sync.Mutex
	reqs []*http.Request
}

func newRecorder(t *testing.T) *recorder {
	rec := &recorder{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.reqs = append(rec.reqs, r.Clone(r.Context()))
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"backend":true}`)
	}))
	t.Cleanup(srv.Close)
	rec.addr = strings.TrimPrefix(srv.URL, "http://")
	return rec
}

// last returns the request the backend got last, failing if none since
// the previous call.
func (r *recorder) last(t *testing.T) *http.Request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("the backend was not reached")
	}
	req := r.reqs[len(r.reqs)-1]
	r.reqs = nil
	return req
}

// none checks the backend got nothing since the previous call.
func (r *recorder) none(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) != 0 {
		t.Fatalf("the backend was reached with %s", r.reqs[0].URL)
	}
}

func decodeJSON(t *testing.T, resp *http.Response, v any) {
	t.Helper()
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatal(err)
	}
}
