package wecomsim

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func TestPlaygroundCaddyfile(t *testing.T) {
	var h Handler
	in := "wecom_simulator {\n playground /gateway\n corp a {\n corp_id wwa\n secret s\n }\n}"
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err != nil {
		t.Fatal(err)
	}
	if h.Playground != "/gateway" {
		t.Fatalf("playground %q, want /gateway", h.Playground)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(&h)
	if !strings.Contains(string(b), `"playground":"/gateway"`) {
		t.Errorf("JSON %s lacks the playground field", b)
	}

	for _, bad := range []string{"wecom_simulator {\n playground\n}", "wecom_simulator {\n playground /a /b\n}"} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(bad)); err == nil || !strings.Contains(err.Error(), "playground") {
			t.Errorf("%q: error %v, want one naming playground", bad, err)
		}
	}
}

func TestPlaygroundValidate(t *testing.T) {
	for gateway, ok := range map[string]bool{
		"/gateway":                      true,
		"/":                             true,
		"http://127.0.0.1:8080":         true,
		"https://gw.example.com/prefix": true,
		"gateway":                       false,
		"//evil.example":                false,
		"ftp://127.0.0.1":               false,
		"http://":                       false,
		"http://u:p@127.0.0.1:8080":     false,
		"javascript:alert(1)":           false,
	} {
		h := exampleHandler()
		h.Playground = gateway
		err := h.Validate()
		if ok != (err == nil) {
			t.Errorf("playground %q: error %v, want ok=%v", gateway, err, ok)
		}
		if err != nil && !strings.Contains(err.Error(), "playground") {
			t.Errorf("playground %q: error %v does not name the subdirective", gateway, err)
		}
	}
}

func TestPlaygroundServed(t *testing.T) {
	h := exampleHandler()
	h.Playground = `/gw"><script>alert(1)</script>/`
	provision(t, &h)
	defer h.Cleanup()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	serve := func(method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, localRequest(method, path, nil), next); err != nil {
			t.Fatal(err)
		}
		return w
	}

	w := serve("GET", "/sim/playground")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /sim/playground: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	body := w.Body.String()
	if strings.Contains(body, "<script>alert(1)") {
		t.Error("the gateway option reaches the page unescaped")
	}
	if !strings.Contains(body, `data-dev="/sim"`) || !strings.Contains(body, `data-gateway="/gw&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"`) {
		t.Errorf("the page does not carry the configuration:\n%s", body[:min(len(body), 4000)])
	}
	for _, hdr := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Cache-Control"} {
		if w.Header().Get(hdr) == "" {
			t.Errorf("the page is served without %s", hdr)
		}
	}
	if w := serve("HEAD", "/sim/playground/"); w.Code != http.StatusOK {
		t.Errorf("HEAD /sim/playground/: %d", w.Code)
	}
	if w := serve("POST", "/sim/playground"); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /sim/playground: %d Allow %q", w.Code, w.Header().Get("Allow"))
	}
	if w := serve("GET", "/sim/state"); w.Code != http.StatusOK {
		t.Errorf("GET /sim/state beside the playground: %d", w.Code)
	}
	if w := serve("GET", "/playground"); w.Code != http.StatusTeapot {
		t.Errorf("GET /playground (outside dev_path): %d, want it passed on", w.Code)
	}
}

// TestPlaygroundRoot checks the page at / of the simulator's site: a link to the playground,
// GET and HEAD only, guarded as the development interface is, and none without the playground
// or with the gateway itself at /.
func TestPlaygroundRoot(t *testing.T) {
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		w.WriteHeader(http.StatusTeapot)
		return nil
	})
	serve := func(h *Handler, r *http.Request) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Fatal(err)
		}
		return w
	}
	h := exampleHandler()
	h.Playground = "/gateway"
	provision(t, &h)
	defer h.Cleanup()

	w := serve(&h, localRequest("GET", "/", nil))
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
	if body := w.Body.String(); !strings.Contains(body, `href="/sim/playground"`) {
		t.Errorf("GET / does not link to the playground:\n%s", body)
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") {
		t.Errorf("GET /: Content-Security-Policy %q", csp)
	}
	if w := serve(&h, localRequest("HEAD", "/", nil)); w.Code != http.StatusOK {
		t.Errorf("HEAD /: %d", w.Code)
	}
	if w := serve(&h, localRequest("POST", "/", nil)); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %d, want 405", w.Code)
	}
	if w := serve(&h, localRequest("GET", "/other", nil)); w.Code != http.StatusTeapot {
		t.Errorf("GET /other: %d, want it passed on", w.Code)
	}
	remote := localRequest("GET", "/", nil)
	remote.RemoteAddr = "203.0.113.7:40000"
	if w := serve(&h, remote); w.Code != http.StatusForbidden {
		t.Errorf("GET / from another machine: %d, want 403", w.Code)
	}

	for _, gateway := range []string{"", "/"} {
		h := exampleHandler()
		h.Playground = gateway
		provision(t, &h)
		if w := serve(&h, localRequest("GET", "/", nil)); w.Code != http.StatusTeapot {
			t.Errorf("playground %q: GET / answers %d, want it passed on", gateway, w.Code)
		}
		h.Cleanup()
	}
}

func TestPlaygroundOffByDefault(t *testing.T) {
	h := exampleHandler()
	provision(t, &h)
	defer h.Cleanup()
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	if err := h.ServeHTTP(w, localRequest("GET", "/sim/playground", nil), next); err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusNotFound || strings.Contains(w.Body.String(), "<html") {
		t.Errorf("without the option GET /sim/playground answers %d %q, want the dev interface's 404", w.Code, w.Body.String())
	}
}

// TestPlaygroundKeepsSimulator checks that switching the page on (a config reload) keeps the
// simulator's state: the page has none.
func TestPlaygroundKeepsSimulator(t *testing.T) {
	without, with := exampleHandler(), exampleHandler()
	with.Playground = "/gateway"
	provision(t, &without)
	defer without.Cleanup()
	provision(t, &with)
	defer with.Cleanup()
	if with.sim != without.sim {
		t.Error("enabling the playground built a new Simulator")
	}
}
