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

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
	"github.com/wecomgate/wecomgate/module/wecomauth"
	"github.com/wecomgate/wecomgate/module/wecomsim"

	_ "github.com/wecomgate/wecomgate/module"
)

func TestMain(m *testing.M) {
	// The cluster tests start this binary again as a second Caddy.
	if cfg := os.Getenv(runCaddyEnv); cfg != "" {
		os.Args = []string{"caddy", "run", "--config", cfg, "--adapter", "caddyfile"}
		caddycmd.Main()
		return
	}
	os.Exit(testcaddy.Run(m))
}

// gatewayOptions say how startGateway writes the Caddyfile. The zero value
// is the test world's gateway (wecom_auth then reverse_proxy to the
// recording backend) beside the simulator.
type gatewayOptions struct {
	// extra goes inside the wecom_auth block, after api_base and the corps.
	extra string
	// site is the gateway site's body: %s stands for the wecom_auth
	// directive, {backend} for the backend's address. "" is wecom_auth then
	// reverse_proxy. A site that writes "wecom_auth <matcher> %s" gets only
	// the directive's block for %s.
	site string
	// global are more global options; admin is off unless they name an
	// admin address (testcaddy's, as Addr.CaddyAddr writes it).
	global string
	// corps are the gateway's; nil is gatewayCorps().
	corps []wecomauth.CorpConfig
	// sites returns more site blocks before Caddy starts, given the env for
	// its addresses; it may add to e.global.
	sites func(e *env) string
	// sim is the base URL of a simulator the test runs itself; "" serves
	// the test world's simulator from the same Caddy.
	sim string
	// world, given the gateway's base URL, is what that simulator knows;
	// nil is testWorld() (callback_test.go adds callbacks to the gateway).
	world func(gw string) []wecomsim.Corp
}

// env is one running Caddy with the gateway in front of a recording
// backend, and the WeCom simulator beside it.
type env struct {
	t       *testing.T
	gw      string // base URL of the gateway
	gwAddr  testcaddy.Addr
	sim     string // base URL of the simulator
	ownSim  bool   // the simulator is a site of this Caddy
	backend *recorder
	client  *http.Client
	// clock is every wecom_auth handler's clock in the running config:
	// tests advance it instead of sleeping through recheck or stale_grace.
	clock  *movedClock
	site   string
	extra  string // the wecom_auth block's extra lines, as last loaded
	global string
	corps  []wecomauth.CorpConfig // a test may change them for a reload
	sites  string
	world  []wecomsim.Corp // the simulator's; nil is testWorld()
}

// startGateway runs gateway, simulator and backend as o says, until the
// test ends.
func startGateway(t *testing.T, o gatewayOptions) *env {
	t.Helper()
	addrs := testcaddy.Listen(t, 2)
	e := &env{
		t:       t,
		gw:      addrs[0].URL(),
		gwAddr:  addrs[0],
		sim:     o.sim,
		backend: newRecorder(t),
		client: &http.Client{
			Transport:     http.DefaultTransport.(*http.Transport).Clone(), // the test's own keep-alive pool
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		clock:  newMovedClock(),
		site:   o.site,
		global: o.global,
		corps:  o.corps,
	}
	if e.sim == "" {
		e.sim, e.ownSim = addrs[1].URL(), true
	}
	if !strings.Contains(e.global, "storage ") {
		// A storage of the test's own: what one test leaves in the
		// cluster's state (an ended user, a fact) must not meet the next.
		e.global += "\n\tstorage file_system " + t.TempDir()
	}
	if e.site == "" {
		e.site = "%s\n\treverse_proxy {backend}"
	}
	if e.corps == nil {
		e.corps = gatewayCorps()
	}
	if o.sites != nil {
		e.sites = o.sites(e)
	}
	if o.world != nil {
		e.world = o.world(e.gw)
	}
	e.extra = o.extra
	t.Cleanup(e.client.CloseIdleConnections)
	testcaddy.Start(t, e.config(e.extra))
	e.setClocks()
	return e
}

// config is the whole Caddyfile, with extra inside the wecom_auth block.
func (e *env) config(extra string) string {
	auth := fmt.Sprintf("wecom_auth {\n\t\tapi_base %s\n%s\n\t\t%s\n\t}", e.sim, corpBlocks(e.corps), extra)
	site := strings.ReplaceAll(e.site, "{backend}", e.backend.addr)
	if strings.Contains(site, "wecom_auth ") {
		auth = strings.TrimPrefix(auth, "wecom_auth ")
	}
	global := "\t" + testcaddy.DefaultBind + "\n" + e.global
	if !strings.Contains(e.global, "admin ") {
		global += "\n\tadmin off"
	}
	var sim string
	if e.ownSim {
		world := e.world
		if world == nil {
			world = testWorld()
		}
		sim = fmt.Sprintf("%s {\n\t%s\n}\n", e.sim, simulatorBlock(world))
	}
	return fmt.Sprintf("{\n%s\n}\n%s {\n\t%s\n}\n%s%s\n", global, e.gw, strings.Replace(site, "%s", auth, 1), sim, e.sites)
}

// reload replaces the running config with one whose wecom_auth block has
// extra in place of the original extra lines.
func (e *env) reload(extra string) {
	e.t.Helper()
	e.extra = extra
	testcaddy.Load(e.t, e.config(extra))
	// The old config's servers close their idle connections as it stops; a
	// POST that picked one up just before would fail with EOF (Go retries
	// only idempotent requests), so the test starts on fresh connections.
	e.client.CloseIdleConnections()
	e.setClocks()
}

// setClocks gives the handlers of the running config the env's clock.
func (e *env) setClocks() {
	for _, h := range runningHandlers(e.t) {
		wecomauth.SetClock(h, e.clock.Now)
	}
}

// runningHandlers are the provisioned wecom_auth handlers of the running
// config: its HTTP servers' routes, into subroutes (Caddyfile sites are
// subroutes).
func runningHandlers(tb testing.TB) []*wecomauth.Handler {
	tb.Helper()
	app, err := caddy.ActiveContext().AppIfConfigured("http")
	if err != nil {
		tb.Fatal(err)
	}
	var found []*wecomauth.Handler
	var walk func(caddyhttp.RouteList)
	walk = func(routes caddyhttp.RouteList) {
		for _, rt := range routes {
			for _, mh := range rt.Handlers {
				switch v := mh.(type) {
				case *wecomauth.Handler:
					found = append(found, v)
				case *caddyhttp.Subroute:
					walk(v.Routes)
				}
			}
		}
	}
	for _, srv := range app.(*caddyhttp.App).Servers {
		walk(srv.Routes)
	}
	if len(found) == 0 {
		tb.Fatal("no wecom_auth handler in the running config")
	}
	return found
}

// at is the env with its requests going to another gateway and simulator.
func (e *env) at(gw, sim string) *env {
	other := *e
	other.gw, other.sim = gw, sim
	return &other
}

// code mints a wx.qy.login code for a user of a simulator corp.
func (e *env) code(corp, userID string) string {
	e.t.Helper()
	return e.mint(e.t, corp, userID)
}

func (e *env) mint(t testing.TB, corp, userID string) string {
	t.Helper()
	var out struct{ Code string }
	e.simCall(t, http.MethodPost, "/sim/code", map[string]string{"corp": corp, "userid": userID}, &out)
	if out.Code == "" {
		t.Fatalf("simulator minted no code for %s/%s", corp, userID)
	}
	return out.Code
}

// simJSON calls the simulator's development interface.
func (e *env) simJSON(method, path string, in, out any) {
	e.t.Helper()
	e.simCall(e.t, method, path, in, out)
}

func (e *env) simCall(t testing.TB, method, path string, in, out any) {
	t.Helper()
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
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("simulator %s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
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

// setUser changes a simulator user's fields (those of PUT /sim/users).
func (e *env) setUser(corp, userID string, fields map[string]any) {
	e.t.Helper()
	body := map[string]any{"corp": corp, "userid": userID}
	for k, v := range fields {
		body[k] = v
	}
	e.simJSON(http.MethodPut, "/sim/users", body, nil)
}

// do sends a request to the gateway; headers are "Name: value" lines.
func (e *env) do(method, path, body string, headers ...string) reply {
	e.t.Helper()
	return e.send(e.t, method, path, body, headers...)
}

func (e *env) send(t testing.TB, method, path, body string, headers ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.gw+path, rd)
	if err != nil {
		t.Fatal(err)
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
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return newReply(resp.StatusCode, resp.Header, raw)
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

// took returns the requests the backend got since the previous call.
func (r *recorder) took() []*http.Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	reqs := r.reqs
	r.reqs = nil
	return reqs
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
