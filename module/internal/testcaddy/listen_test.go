package testcaddy_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
)

func TestMain(m *testing.M) {
	os.Exit(testcaddy.Run(m))
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func config(site, admin testcaddy.Addr, body string) string {
	return fmt.Sprintf("{\n\t%s\n\tadmin %s\n}\n%s {\n\trespond %q\n}\n",
		testcaddy.DefaultBind, admin.CaddyAddr(), site.URL(), body)
}

// A reload stops the old config's listeners: the next config must get the
// same port, and the admin endpoint too.
func TestSocketsOutliveReloads(t *testing.T) {
	addrs := testcaddy.Listen(t, 2)
	site, admin := addrs[0], addrs[1]
	testcaddy.Start(t, config(site, admin, "first"))
	if got := get(t, site.URL()); got != "first" {
		t.Fatalf("first config answered %q", got)
	}
	for i := range 3 {
		want := fmt.Sprint("reload ", i)
		testcaddy.Load(t, config(site, admin, want))
		if got := get(t, site.URL()); got != want {
			t.Fatalf("after reload %d: %q", i, got)
		}
	}
	// Through the admin endpoint, which Caddy replaces at every load.
	resp, err := http.Post(admin.URL()+"/load", "text/caddyfile", strings.NewReader(config(site, admin, "by admin")))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /load: %s", resp.Status)
	}
	if got := get(t, site.URL()); got != "by admin" {
		t.Fatalf("after a load through the admin endpoint: %q", got)
	}
	if got := get(t, admin.URL()+"/config/apps/http/servers/srv0/listen/0"); !strings.Contains(got, site.CaddyAddr()) {
		t.Errorf("the server listens at %s, want %s", got, site.CaddyAddr())
	}
}

// A port testcaddy did not bind is refused, not bound behind the test's
// back.
func TestUnknownPortIsRefused(t *testing.T) {
	cfg := testcaddy.Adapt(t, fmt.Sprintf("{\n\t%s\n\tadmin off\n}\nhttp://127.0.0.1:1 {\n\trespond ok\n}\n", testcaddy.DefaultBind))
	err := caddy.Load(cfg, true)
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("Caddy served a port testcaddy did not bind")
	}
	if !strings.Contains(err.Error(), "testcaddy.Listen") {
		t.Errorf("error %q does not say where sockets come from", err)
	}
}
