package wecomauth_test

// Benchmarks of the middleware itself: one protected request through
// (*wecomauth.Handler).ServeHTTP with a no-op next handler, no network.
// The handler is the one a real Caddy provisioned from a Caddyfile (via
// module/internal/testcaddy); the request is prepared as Caddy's server
// prepares it (caddyhttp.PrepareRequest, so a Replacer is in its context).
//
//	go test -run '^$' -bench . -benchmem ./module/wecomauth/
//	go test -run '^$' -bench 'Protected/bearer$' -benchtime 2s \
//	    -cpuprofile cpu.out -memprofile mem.out ./module/wecomauth/
//	go test -run '^$' -bench Memory10kSessions -benchtime 1000000x ./module/wecomauth/
//
// bench/README.md explains how to read them.

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wecomgate/wecomgate/module/internal/session"
	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
	"github.com/wecomgate/wecomgate/module/wecomauth"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

const benchSecret = "bench-secret-0123456789"

// benchCorpID has the length of a real corpid ("ww" and 16 hex digits):
// key lengths decide whether some string concatenations allocate.
const benchCorpID = "ww7f3a9c2e5b81d046"

// benchWorld is a running Caddy with the gateway and the simulator, and a
// direct handle on the provisioned wecom_auth handler.
type benchWorld struct {
	h   *wecomauth.Handler
	sim string // simulator base URL
}

// startBenchWorld loads a Caddyfile whose simulator knows users u00000 …
// (n of them) in corp acme, and finds the provisioned wecom_auth handler
// (runningHandlers).
// Logs are discarded: a login writes one INFO line, which is not what these
// benchmarks measure.
func startBenchWorld(b *testing.B, users int) *benchWorld {
	b.Helper()
	addrs := testcaddy.Listen(b, 2)
	key := session.NewKey()
	corp := wecomsim.Corp{Name: "acme", CorpID: benchCorpID, Secret: benchSecret}
	for i := range users {
		corp.Users = append(corp.Users, wecomsim.User{
			UserID: fmt.Sprintf("u%05d", i), Name: fmt.Sprint("用户", i), Departments: []int64{1, int64(2 + i%50)},
		})
	}
	cfg := fmt.Sprintf(`{
	%[1]s
	admin off
	log {
		output discard
	}
}
%[2]s {
	wecom_auth {
		api_base %[3]s
%[4]s
		session_key %[5]s
	}
	respond "unreachable in benchmarks" 200
}
%[3]s {
	%[6]s
}
`, testcaddy.DefaultBind, addrs[0].URL(), addrs[1].URL(),
		corpBlocks([]wecomauth.CorpConfig{{Name: "acme", CorpID: benchCorpID, Secret: benchSecret}}),
		base64.StdEncoding.EncodeToString(key), simulatorBlock([]wecomsim.Corp{corp}))
	testcaddy.Start(b, cfg)
	return &benchWorld{h: runningHandlers(b)[0], sim: addrs[1].URL()}
}

// code mints a login code at the simulator's development interface.
func (w *benchWorld) code(userID string) (string, error) {
	resp, err := http.Post(w.sim+"/sim/code", "application/json",
		strings.NewReader(`{"corp":"acme","userid":"`+userID+`"}`))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ Code string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Code == "" {
		return "", fmt.Errorf("minting a code for %s: %v (status %d)", userID, err, resp.StatusCode)
	}
	return out.Code, nil
}

// login signs a user in through the handler's own /wecom/login, exactly as
// a client would (code exchange and user/get against the simulator).
// It may run on any goroutine, so it returns its error.
func (w *benchWorld) login(userID string) (string, error) {
	code, err := w.code(userID)
	if err != nil {
		return "", err
	}
	body := `{"code":"` + code + `"}`
	r := prepare(jsonPost("/wecom/login", body))
	rec := httptest.NewRecorder()
	if err := w.h.ServeHTTP(rec, r, noNext); err != nil || rec.Code != http.StatusOK {
		return "", fmt.Errorf("login %s: %v %d %s", userID, err, rec.Code, rec.Body)
	}
	var out struct{ Token string }
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Token == "" {
		return "", fmt.Errorf("login %s: no token in %s", userID, rec.Body)
	}
	return out.Token, nil
}

// prepare gives r the context Caddy's server gives every request.
func prepare(r *http.Request) *http.Request {
	r.RemoteAddr = "127.0.0.1:40000"
	return caddyhttp.PrepareRequest(r, caddy.NewReplacer(), nil, nil)
}

var noNext = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })

// sink is a ResponseWriter that keeps nothing, so the benchmark counts the
// handler's allocations and not a recorder's.
type sink struct {
	h    http.Header
	code int
}

func (s *sink) Header() http.Header         { return s.h }
func (s *sink) Write(p []byte) (int, error) { return len(p), nil }
func (s *sink) WriteHeader(code int)        { s.code = code }

// protectedReq is one reusable protected request: reset restores the
// client's headers (the handler strips and adds some) and its Replacer's
// provider list (the handler may add one with Replacer.Map) without
// allocating, so every iteration starts from the state Caddy's server hands
// the handler and only the handler's own allocations are counted.
type protectedReq struct {
	r     *http.Request
	name  string   // credential header
	vals  []string // its values
	out   []string // headers the handler adds, removed again by reset
	w     *sink
	provs *sliceHeader // the Replacer's provider list
	nprov int          // its length as prepared
}

// sliceHeader is the layout of a Go slice.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// replacerProviders reaches the Replacer's unexported provider list, so
// that a reused request can drop what a handler added. A benchmark helper
// only: it fails loudly if Caddy's Replacer changes shape.
func replacerProviders(r *http.Request) *sliceHeader {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		panic("benchmark request has no Replacer")
	}
	f := reflect.ValueOf(repl).Elem().FieldByName("providers")
	if !f.IsValid() || f.Kind() != reflect.Slice {
		panic("caddy.Replacer has no providers slice any more: update replacerProviders in bench_test.go")
	}
	return (*sliceHeader)(unsafe.Pointer(f.UnsafeAddr()))
}

func newProtectedReq(path, header, value string) *protectedReq {
	r := prepare(httptest.NewRequest(http.MethodGet, path, nil))
	r.Header.Set("Accept", "application/json")
	r.Header.Set("User-Agent", "wechat-miniprogram")
	p := &protectedReq{r: r, name: header, vals: []string{value}, w: &sink{h: http.Header{}},
		out: []string{"X-Wecom-Userid", "X-Wecom-Corpid", "X-Wecom-Corp", "X-Wecom-Name", "X-Wecom-Department"}}
	p.provs = replacerProviders(r)
	p.nprov = p.provs.len
	p.reset()
	return p
}

func (p *protectedReq) reset() {
	p.provs.len = p.nprov
	for _, k := range p.out {
		delete(p.r.Header, k)
		delete(p.w.h, k)
	}
	p.r.Header[p.name] = p.vals
	p.w.code = 0
}

// serve runs the middleware once and checks the request got through.
func (p *protectedReq) serve(b *testing.B, h *wecomauth.Handler, next caddyhttp.Handler) {
	p.reset()
	if err := h.ServeHTTP(p.w, p.r, next); err != nil {
		b.Fatal(err)
	}
	if p.w.code != 0 && p.w.code != http.StatusOK {
		b.Fatalf("protected request answered %d", p.w.code)
	}
}

// BenchmarkProtected is the per-request cost of wecom_auth on a request
// that passes: strip client X-WeCom-*, find the credential, open and verify
// the session (AES-256-GCM), revocation and cached user check, set the
// identity headers and placeholders, take the token out. "auth" is the
// forward-auth endpoint /wecom/auth answering 200 with the headers.
func BenchmarkProtected(b *testing.B) {
	w := startBenchWorld(b, 1)
	tok, err := w.login("u00000")
	if err != nil {
		b.Fatal(err)
	}

	var reached bool
	next := caddyhttp.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) error {
		reached = r.Header.Get("X-WeCom-UserId") == "u00000"
		return nil
	})
	cases := []struct {
		name   string
		req    *protectedReq
		viaEnd bool
	}{
		{"bearer", newProtectedReq("/api/orders?page=1", "Authorization", "Bearer "+tok), false},
		{"cookie", newProtectedReq("/api/orders?page=1", "Cookie", "theme=dark; wecom_session="+tok), false},
		{"auth", newProtectedReq("/wecom/auth", "Authorization", "Bearer "+tok), true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			reached = false
			c.req.serve(b, w.h, next)
			if c.viaEnd {
				if c.req.w.code != http.StatusOK || c.req.w.h.Get("X-WeCom-UserId") != "u00000" {
					b.Fatalf("/wecom/auth answered %d without identity", c.req.w.code)
				}
			} else if !reached {
				b.Fatal("the request did not reach next with the identity")
			}
			b.ReportAllocs()
			for b.Loop() {
				c.req.serve(b, w.h, noNext)
			}
		})
	}

	// Many goroutines, one request each: shows contention, if any, on
	// shared state (user cache lock, revocation list).
	b.Run("bearer-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			p := newProtectedReq("/api/orders?page=1", "Authorization", "Bearer "+tok)
			for pb.Next() {
				p.serve(b, w.h, noNext)
			}
		})
	})

	// A different token each time, more of them than the handler keeps
	// opened (1<<16): every request decrypts its token, as the first
	// request of each session and every request after a reload do.
	b.Run("bearer-uncached", func(b *testing.B) {
		const n = 1<<16 + 4096
		now := time.Now()
		auths := make([][]string, n)
		for i := range auths {
			tok, err := wecomauth.SealSession(w.h, &session.Claims{
				UserID: "u00000", CorpID: benchCorpID, Corp: "acme", Name: "用户0", Departments: "1,2",
				IssuedAt: now, ExpiresAt: now.Add(time.Hour),
			})
			if err != nil {
				b.Fatal(err)
			}
			auths[i] = []string{"Bearer " + tok}
		}
		p := newProtectedReq("/api/orders?page=1", "Authorization", auths[0][0])
		i := 0
		b.ReportAllocs()
		for b.Loop() {
			p.vals = auths[i%n]
			p.serve(b, w.h, noNext)
			i++
		}
	})

	// The runs above reuse one prepared request, so a cost paid once per
	// request context (say a Replacer map growing on its first Set) shows
	// only here: each iteration prepares a fresh request as Caddy's server
	// does. "fresh-none" is that preparation alone; the middleware's share
	// is fresh-bearer minus fresh-none.
	for _, mw := range []bool{false, true} {
		name := "fresh-none"
		if mw {
			name = "fresh-bearer"
		}
		b.Run(name, func(b *testing.B) {
			base := httptest.NewRequest(http.MethodGet, "/api/orders?page=1", nil)
			base.RemoteAddr = "127.0.0.1:40000"
			auth := []string{"Bearer " + tok}
			accept := []string{"application/json"}
			hdr := http.Header{}
			out := &sink{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(hdr)
				hdr["Authorization"], hdr["Accept"] = auth, accept
				base.Header = hdr
				r := caddyhttp.PrepareRequest(base, caddy.NewReplacer(), out, nil)
				var err error
				if mw {
					err = w.h.ServeHTTP(out, r, noNext)
				} else {
					err = noNext.ServeHTTP(out, r)
				}
				if err != nil || out.code > 200 {
					b.Fatalf("%v %d", err, out.code)
				}
			}
		})
	}
}

// BenchmarkMemory10kSessions signs in 10,000 distinct users through the
// handler, then sends requests round-robin over their sessions, and reports
// memory: Go heap (after a GC) and the process's RSS, before the logins,
// after them and after the requests, plus bytes allocated per request.
// It is a measurement, not a pass/fail test. Run it with exactly a million
// requests:
//
//	go test -run '^$' -bench Memory10kSessions -benchtime 1000000x ./module/wecomauth/
func BenchmarkMemory10kSessions(b *testing.B) {
	const sessions = 10_000
	before := memNow()
	w := startBenchWorld(b, sessions)
	started := memNow()

	toks := make([]string, sessions)
	errs := make([]error, sessions)
	var wg sync.WaitGroup
	var mu sync.Mutex
	i := 0
	for range 8 { // a few logins at once, as clients would
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				n := i
				i++
				mu.Unlock()
				if n >= sessions {
					return
				}
				toks[n], errs[n] = w.login(fmt.Sprintf("u%05d", n))
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	// One reusable request; each iteration hands it the next session's
	// prepared Authorization value, so the harness allocates nothing per
	// request and holds only the 10k header values (~2 MB, counted in
	// "after 10k logins").
	auths := make([][]string, sessions)
	for n, tok := range toks {
		auths[n] = []string{"Bearer " + tok}
	}
	toks = nil
	p := newProtectedReq("/api/orders?page=1", "Authorization", auths[0][0])
	loggedIn := memNow()

	n := 0
	b.ReportAllocs()
	for b.Loop() {
		p.vals = auths[n%sessions]
		p.serve(b, w.h, noNext)
		n++
	}
	b.StopTimer()
	after := memNow()
	runtime.KeepAlive(auths)

	mb := func(v uint64) float64 { return float64(v) / (1 << 20) }
	b.ReportMetric(float64(n), "requests")
	b.ReportMetric(mb(loggedIn.heap), "heap-MB-after-logins")
	b.ReportMetric(mb(after.heap), "heap-MB-after-requests")
	b.ReportMetric(mb(loggedIn.rss), "RSS-MB-after-logins")
	b.ReportMetric(mb(after.rss), "RSS-MB-after-requests")
	b.Logf("%d sessions, %d requests", sessions, n)
	b.Logf("%-26s %10s %10s %10s", "", "heap MB", "RSS MB", "objects")
	for _, row := range []struct {
		name string
		m    memStat
	}{{"before Caddy", before}, {"Caddy + sim loaded", started}, {"after 10k logins", loggedIn}, {"after the requests", after}} {
		b.Logf("%-26s %10.1f %10.1f %10d", row.name, mb(row.m.heap), mb(row.m.rss), row.m.objects)
	}
	b.Logf("heap growth from the requests: %+.2f MB; per session after logins: %.0f bytes (heap, gateway + simulator)",
		mb(after.heap)-mb(loggedIn.heap), float64(int64(loggedIn.heap)-int64(started.heap))/sessions)
	b.Logf("allocated per request: %.0f bytes", float64(after.total-loggedIn.total)/float64(max(n, 1)))
}

type memStat struct {
	heap, total, objects, rss uint64
}

// memNow collects garbage and reads the live heap and the RSS.
func memNow() memStat {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memStat{heap: ms.HeapAlloc, total: ms.TotalAlloc, objects: ms.HeapObjects, rss: rssBytes()}
}

// rssBytes reads VmRSS from /proc (Linux); 0 elsewhere.
func rssBytes() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range bytes.SplitSeq(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(string(rest)), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
