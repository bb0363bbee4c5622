// Package testcaddy runs a real Caddy inside a test binary: a Caddyfile is
// adapted and loaded exactly as `caddy run` would, with Caddy's storage and
// config directories in temporary folders, serving sockets the test bound
// beforehand ([Listen]) rather than ports it hopes are still free.
//
// Caddy holds one running config per process, so tests that use this
// package must not run in parallel with each other.
package testcaddy

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/certmagic"

	// The Caddyfile adapter and the standard modules tests combine with.
	_ "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// Run runs a package's tests with Caddy's folders in a temporary home
// (IsolateHome) and returns the exit code, for TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(testcaddy.Run(m)) }
func Run(m *testing.M) int {
	cleanup := IsolateHome()
	defer cleanup()
	return m.Run()
}

// IsolateHome points Caddy's config and data folders at temporary ones so
// that tests never read or write a real home. Call it from TestMain.
func IsolateHome() (cleanup func()) {
	dir, err := os.MkdirTemp("", "wecomgate-test-")
	if err != nil {
		panic(err)
	}
	os.Setenv("XDG_CONFIG_HOME", dir+"/config")
	os.Setenv("XDG_DATA_HOME", dir+"/data")
	// Caddy fixed its default storage path when it was loaded, before
	// these variables changed.
	caddy.DefaultStorage = &certmagic.FileStorage{Path: caddy.AppDataDir()}
	caddy.ConfigAutosavePath = filepath.Join(caddy.AppConfigDir(), "autosave.json")
	return func() { os.RemoveAll(dir) }
}

// Adapt turns a Caddyfile into Caddy's JSON config.
func Adapt(t testing.TB, caddyfile string) []byte {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, warnings, err := adapter.Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v", err)
	}
	for _, w := range warnings {
		if !strings.Contains(w.Message, "not formatted") {
			t.Logf("Caddyfile warning: %s", w.String())
		}
	}
	return cfg
}

// Start loads the Caddyfile and stops Caddy when the test ends.
func Start(t testing.TB, caddyfile string) {
	t.Helper()
	Load(t, caddyfile)
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping Caddy: %v", err)
		}
	})
}

// Load replaces the running config, as a reload through the admin API does.
func Load(t testing.TB, caddyfile string) {
	t.Helper()
	cfg := Adapt(t, caddyfile)
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading config: %v\n%s", err, indent(cfg))
	}
}

// LoadError returns the error Caddy gives for the Caddyfile, adapting or
// provisioning, or nil if it loads (it is then stopped again).
func LoadError(caddyfile string) error {
	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, _, err := adapter.Adapt([]byte(caddyfile), nil)
	if err != nil {
		return err
	}
	var c caddy.Config
	if err := json.Unmarshal(cfg, &c); err != nil {
		return err
	}
	return caddy.Validate(&c)
}

// LoadJSONError is LoadError for a JSON config.
func LoadJSONError(cfg []byte) error {
	var c caddy.Config
	if err := json.Unmarshal(cfg, &c); err != nil {
		return err
	}
	return caddy.Validate(&c)
}

// WaitFor polls cond until it holds or the timeout passes.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func indent(b []byte) string {
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	out, _ := json.MarshalIndent(v, "", "  ")
	return fmt.Sprint(string(out))
}
