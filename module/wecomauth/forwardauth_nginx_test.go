package wecomauth_test

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestForwardAuthNginxRecipe runs docs/forward-auth.md's nginx recipe in a
// real nginx in front of the gateway and the backend. It skips when no
// nginx is installed (.ci/run installs nginx-light).
func TestForwardAuthNginxRecipe(t *testing.T) {
	bin := fwdNginxBinary()
	if bin == "" {
		t.Skip("nginx is not installed (apt-get install nginx-light, as .ci/run does): the nginx forward-auth recipe is not tested")
	}
	e := startForwardAuthGateway(t, func(*env) string { return "" })
	fwdCheckTrustedProxies(t, e)
	recipe := fwdSubstitute(t, fwdRecipe(t, "nginx"),
		"127.0.0.1:8080", fwdAddr(e.gw),
		"127.0.0.1:9000", e.backend.addr)
	front := startNginx(t, bin, recipe)
	exerciseForwardAuth(t, e, front, true)

	// auth_request turns every gateway failure into 500; the recipe's
	// error_page answers the gateway's JSON for it. Here the gateway is a
	// port nobody listens on.
	t.Run("gateway down", func(t *testing.T) {
		dead := fmt.Sprintf("127.0.0.1:%d", unboundPort(t))
		down := startNginx(t, bin, fwdSubstitute(t, fwdRecipe(t, "nginx"),
			"127.0.0.1:8080", dead,
			"127.0.0.1:9000", e.backend.addr))
		r := fwdDo(e, down, http.MethodGet, "/api/orders", "", "Authorization: Bearer "+login(t, e, "acme", "zhangsan"))
		expectError(t, r, http.StatusServiceUnavailable, "wecom_unavailable")
		if ra := r.header.Get("Retry-After"); ra == "" {
			t.Errorf("503 without Retry-After")
		}
		e.backend.none(t)
	})
}

func fwdNginxBinary() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return ""
}

// fwdNginxMain wraps the recipe (http-level directives with a server that
// listens on "listen 80;") into a complete nginx.conf whose every file is
// in dir: one foreground process, no master, no workers.
const fwdNginxMain = `daemon off;
master_process off;
worker_processes 1;
pid "%[1]s/nginx.pid";
error_log "%[1]s/error.log" info;
events {
    worker_connections 128;
}
http {
    access_log "%[1]s/access.log";
    client_body_temp_path "%[1]s/client_body";
    proxy_temp_path "%[1]s/proxy";
    fastcgi_temp_path "%[1]s/fastcgi";
    uwsgi_temp_path "%[1]s/uwsgi";
    scgi_temp_path "%[1]s/scgi";

%[2]s
}
`

// startNginx runs nginx with the recipe until the test ends and returns its
// base URL. nginx must bind the port itself, so the port comes from a
// listener just closed (unboundPort); another process may take it in
// between, so an "Address already in use" start is retried with a new port,
// up to 3 times.
func startNginx(t *testing.T, bin, recipe string) string {
	t.Helper()
	dir := t.TempDir()
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		port := unboundPort(t)
		conf := fmt.Sprintf(fwdNginxMain, dir,
			fwdSubstitute(t, recipe, "listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port)))
		base, err := runNginx(t, bin, dir, conf, port)
		if err == nil {
			return base
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
		t.Logf("nginx start %d: %v; trying another port", attempt, err)
	}
	t.Fatalf("nginx did not start: %v", lastErr)
	return ""
}

var errAddrInUse = errors.New("address in use")

// runNginx starts one nginx process and waits (bounded) until it has bound
// its port: it writes its pid file after opening its listening sockets.
func runNginx(t *testing.T, bin, dir, conf string, port int) (string, error) {
	t.Helper()
	confPath := filepath.Join(dir, "nginx.conf")
	pidPath := filepath.Join(dir, "nginx.pid")
	outPath := filepath.Join(dir, "nginx.out")
	errLog := filepath.Join(dir, "error.log")
	for _, p := range []string{pidPath, errLog} {
		_ = os.Remove(p)
	}
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(bin, "-p", dir, "-c", confPath, "-e", errLog)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("starting %s: %w", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	logs := func() string {
		a, _ := os.ReadFile(outPath)
		b, _ := os.ReadFile(errLog)
		return string(a) + string(b)
	}

	pid := strconv.Itoa(cmd.Process.Pid)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case err := <-exited:
			l := logs()
			if strings.Contains(l, "Address already in use") {
				return "", fmt.Errorf("%w: %s", errAddrInUse, addr)
			}
			return "", fmt.Errorf("nginx exited (%v):\n%s", err, l)
		default:
		}
		if b, _ := os.ReadFile(pidPath); strings.TrimSpace(string(b)) == pid {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				break
			}
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return "", fmt.Errorf("nginx not listening on %s after 20s:\n%s", addr, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nginx logs:\n%s", logs())
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	return "http://" + addr, nil
}
