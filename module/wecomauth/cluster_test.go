package wecomauth_test

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
)

// runCaddyEnv makes the test binary run as a Caddy with the named
// Caddyfile (see TestMain): a second instance in its own process.
const runCaddyEnv = "WECOMGATE_TEST_RUN_CADDY"

const (
	keyA = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	keyB = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="
)

// Rotation: a new first key seals, the old one still opens, and dropping
// the old key ends its sessions.
func TestSessionKeyRotation(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "session_key " + keyA})
	old := login(t, e, "acme", "zhangsan")

	e.reload("session_key " + keyB + " " + keyA)
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+old); r.status != 200 {
		t.Fatalf("token of the retired key refused during rotation: %d %s", r.status, r.raw)
	}
	fresh := login(t, e, "acme", "zhangsan")

	e.reload("session_key " + keyB)
	expectError(t, e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+old), 401, "unauthenticated")
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+fresh); r.status != 200 {
		t.Fatalf("token of the new key refused: %d %s", r.status, r.raw)
	}
}

// Without session_key a key is generated once and kept in storage, so it
// survives reloads and restarts.
func TestGeneratedKeyIsKeptInStorage(t *testing.T) {
	storage := t.TempDir()
	global := "storage file_system " + storage
	e := startGateway(t, gatewayOptions{global: global})
	tok := login(t, e, "acme", "zhangsan")
	stored, err := os.ReadFile(filepath.Join(storage, "wecomgate", "session_key"))
	if err != nil || len(bytes.TrimSpace(stored)) != 44 {
		t.Fatalf("no generated key in storage: %v %q", err, stored)
	}
	e.reload("recheck 5m")
	if r := e.do(http.MethodGet, "/api/x", "", "Authorization: Bearer "+tok); r.status != 200 {
		t.Fatalf("session lost by a reload: %d %s", r.status, r.raw)
	}
	after, _ := os.ReadFile(filepath.Join(storage, "wecomgate", "session_key"))
	if !bytes.Equal(stored, after) {
		t.Error("the stored key changed")
	}
}

// A reload through the admin API under concurrent traffic fails no request,
// keeps sessions, and fetches no new access token.
func TestReloadUnderLoad(t *testing.T) {
	// The admin endpoint is served from a testcaddy socket too (Caddy
	// listens for it through the network plugin, as for sites).
	admin := testcaddy.Listen(t, 1)[0]
	e := startGateway(t, gatewayOptions{extra: "recheck 10m", global: "admin " + admin.CaddyAddr()})
	tok := login(t, e, "acme", "zhangsan")
	before := e.counts()

	// At a reload the old config's server closes its idle keep-alive
	// connections (and, on a socket of Caddy's own rather than testcaddy's,
	// the kernel resets connections still queued on the old SO_REUSEPORT
	// socket). Such a request never reaches a handler and got no byte back,
	// so a client may resend it (the Go client does for idempotent requests
	// on reused connections). The test resends once, as such a client
	// would, and counts how often; what the gateway owes is that every
	// request that reaches it is answered, and right.
	var (
		wg            sync.WaitGroup
		stop          atomic.Bool
		ok, fail, res atomic.Int64
		firstErr      atomic.Value
	)
	get := func() (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodGet, e.gw+"/api/x", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return e.client.Do(req)
	}
	for range 4 {
		wg.Go(func() {
			for !stop.Load() {
				resp, err := get()
				if err != nil {
					res.Add(1)
					resp, err = get()
				}
				if err != nil || resp.StatusCode != 200 {
					fail.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprint(err, resp))
				} else {
					ok.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		})
	}
	// Each reload meets requests in flight: wait for some to be answered
	// before it and after the last.
	traffic := func() {
		t.Helper()
		target := ok.Load() + fail.Load() + 10
		testcaddy.WaitFor(t, 10*time.Second, "requests to run", func() bool { return ok.Load()+fail.Load() >= target })
	}
	for i := range 3 {
		traffic()
		cfg := e.config(fmt.Sprintf("recheck %dm", 11+i))
		resp, err := http.Post(admin.URL()+"/load", "text/caddyfile", strings.NewReader(cfg))
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("reload %d: %s", i, resp.Status)
		}
		resp.Body.Close()
	}
	traffic()
	stop.Store(true)
	wg.Wait()

	if fail.Load() != 0 {
		t.Fatalf("%d of %d requests failed across reloads; first: %v", fail.Load(), fail.Load()+ok.Load(), firstErr.Load())
	}
	if ok.Load() < 20 {
		t.Fatalf("only %d requests ran", ok.Load())
	}
	t.Logf("%d requests, %d resent after a connection closed by the listener swap", ok.Load(), res.Load())
	after := e.counts()
	for _, ep := range []string{"gettoken", "user/get"} {
		if after[ep] != before[ep] {
			t.Errorf("%s calls went from %d to %d across reloads", ep, before[ep], after[ep])
		}
	}
	if r := e.do(http.MethodGet, "/wecom/session", "", "Authorization: Bearer "+tok); r.status != 200 {
		t.Errorf("session lost by reloads: %d %s", r.status, r.raw)
	}
	e.backend.last(t)
}

// Instances sharing one storage accept each other's sessions with no key
// configured, and a logout on one is refused on the others within 10 s.
// Two of them start at the same moment, so they race to generate the key.
//
// The others learn of a logout when they next poll storage (cluster.
// DefaultPoll, 5 s): both logouts, one on this process and one on
// another, happen before the test waits, so it waits for one poll, not
// two. A reload then must not stop this instance sharing, either way.
func TestInstancesShareSessionsAndLogouts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Caddy processes")
	}
	storage := t.TempDir()
	global := "storage file_system " + storage
	e := startGateway(t, gatewayOptions{global: global})

	// The processes' sockets are bound here and inherited: each process
	// serves the port the test knows, and nothing else can take it.
	var (
		urls []string
		wg   sync.WaitGroup
	)
	for _, addr := range testcaddy.Listen(t, 2) {
		urls = append(urls, addr.URL())
		wg.Go(func() { e.startPeer(t, addr, global, "") })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	waitForShares(t, e, append([]string{e.gw}, urls...)...)
	a, b := e.gw, urls[0]
	others := e.at(b, e.sim)

	// A token from one process works on the others, and one from another
	// process here.
	tokA := login(t, e, "acme", "zhangsan")
	tokB := login(t, others, "acme", "zhangsan")
	for _, url := range urls {
		if s := statusAt(t, url, tokA); s != 200 {
			t.Fatalf("session from the first instance got %d at %s", s, url)
		}
	}
	if s := statusAt(t, a, tokB); s != 200 {
		t.Fatalf("session from another instance got %d here", s)
	}
	e.backend.last(t)

	// Logouts on this instance and on another: each is refused where it
	// happened at once, and on the others within the bound.
	if r := e.do(http.MethodPost, "/wecom/logout", "", "Authorization: Bearer "+tokA); r.status != http.StatusNoContent {
		t.Fatalf("logout: %d", r.status)
	}
	if s := statusAt(t, a, tokA); s != 401 {
		t.Fatalf("logged-out session got %d on the instance that logged it out", s)
	}
	if r := others.do(http.MethodPost, "/wecom/logout", "", "Authorization: Bearer "+tokB); r.status != http.StatusNoContent {
		t.Fatalf("logout on another instance: %d", r.status)
	}
	if s := statusAt(t, b, tokB); s != 401 {
		t.Fatalf("logged-out session got %d on the other instance that logged it out", s)
	}
	start := time.Now()
	testcaddy.WaitFor(t, 10*time.Second, "the logouts to reach the other instances", func() bool {
		return statusAt(t, urls[0], tokA) == 401 && statusAt(t, urls[1], tokA) == 401 &&
			statusAt(t, a, tokB) == 401 && statusAt(t, urls[1], tokB) == 401
	})
	t.Logf("the logouts reached the other instances after %v", time.Since(start).Round(100*time.Millisecond))

	e.reload("recheck 11m")
	tokA, tokB = login(t, e, "acme", "zhangsan"), login(t, others, "acme", "zhangsan")
	logoutAt(t, a, tokA)
	logoutAt(t, b, tokB)
	refusedEverywhere(t, "a logout after a reload to reach the others", tokA, urls...)
	refusedEverywhere(t, "a logout to reach the reloaded instance", tokB, a)
}

// waitForShares waits until every instance at urls can sign a user in:
// instances that start together make room for each other in the WeCom
// budget within seconds (budget.go), and one may have none meanwhile.
func waitForShares(t *testing.T, e *env, urls ...string) {
	t.Helper()
	for _, url := range urls {
		testcaddy.WaitFor(t, 15*time.Second, "a share of the WeCom budget at "+url, func() bool {
			r := e.at(url, e.sim).do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
			return r.status == http.StatusOK
		})
	}
}

// peerConfig is the Caddyfile of another instance of e's gateway at addr:
// the same corps, simulator and backend, with global options global and
// extra directives in wecom_auth.
func (e *env) peerConfig(addr testcaddy.Addr, global, extra string) string {
	return fmt.Sprintf("{\n\tadmin off\n\t%s\n\t%s\n}\n%s {\n\twecom_auth {\n\t\tapi_base %s\n%s\n\t\t%s\n\t}\n\treverse_proxy %s\n}\n",
		testcaddy.DefaultBind, global, addr.URL(), e.sim, corpBlocks(e.corps), extra, e.backend.addr)
}

// startPeer runs another instance of e's gateway at addr, in a process of
// its own, until the test ends.
func (e *env) startPeer(t *testing.T, addr testcaddy.Addr, global, extra string) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	testcaddy.Inherit(t, cmd, addr)
	startProcess(t, cmd, e.peerConfig(addr, global, extra), addr.URL())
}

// startProcess runs cmd (this test binary, with the sockets it serves
// inherited) as a Caddy with cfg until the test ends or stop is called,
// and waits until it answers at url.
func startProcess(t *testing.T, cmd *exec.Cmd, cfg, url string) (stop func()) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Error(err)
		return func() {}
	}
	var out syncBuffer
	cmd.Env = append(cmd.Env, runCaddyEnv+"="+file)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Error(err)
		return func() {}
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			<-exited
			if t.Failed() {
				t.Logf("output of the Caddy at %s:\n%s", url, lastLines(out.String(), 30))
			}
		})
	}
	t.Cleanup(stop)
	// The socket is bound already, so a request waits in its backlog
	// until the process serves it; the short timeout only lets the loop
	// notice a process that died.
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Errorf("the Caddy at %s exited", url)
			return stop
		default:
		}
		if resp, err := client.Get(url + "/wecom/session"); err == nil {
			resp.Body.Close()
			return stop
		}
	}
	t.Errorf("the Caddy at %s did not start", url)
	return stop
}

// syncBuffer is a bytes.Buffer that a process's output and the test may
// use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// statusAt is the status of GET /api/x at base with the token.
func statusAt(t *testing.T, base, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/api/x", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// A file_system storage that refuses writes (here a file where the events
// folder should be: every write fails, as on a full or read-only disk)
// loses no logout: it answers at once, holds on its instance, and reaches
// the others once the storage takes writes again.
func TestLogoutSurvivesAStorageThatRefusesWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Caddy process")
	}
	storage := t.TempDir()
	global := "storage file_system " + storage
	e := startGateway(t, gatewayOptions{global: global})
	other := startInstances(t, e, global, 1)[0]
	tok := login(t, e, "acme", "zhangsan")
	mustPass(t, "a session", tok, e.gw, other.url())

	events := filepath.Join(storage, "wecomgate", "events")
	if err := os.RemoveAll(events); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(events, []byte("in the way"), 0o600); err != nil {
		t.Fatal(err)
	}
	if d := logoutAt(t, e.gw, tok); d > 3*time.Second {
		t.Errorf("logout took %v on a storage that refuses writes", d)
	}
	if s := statusAt(t, e.gw, tok); s != http.StatusUnauthorized {
		t.Fatalf("logged-out session got %d on its instance", s)
	}
	if s := statusAt(t, other.url(), tok); s != http.StatusOK {
		t.Fatalf("the other instance refused (%d) a logout that storage never took: the test does not test", s)
	}

	if err := os.Remove(events); err != nil {
		t.Fatal(err)
	}
	refusedEverywhere(t, "the retried logout to reach the other instance", tok, other.url())
	other.restart(t)
	refusedEverywhere(t, "the retried logout after a restart", tok, other.url())
}
