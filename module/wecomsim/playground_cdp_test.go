//go:build unix

package wecomsim_test

// A small Chrome DevTools Protocol client for the playground's browser test. It talks to
// Chromium over --remote-debugging-pipe (commands on the browser's fd 3, answers on its fd 4,
// each message JSON ended by a NUL byte), which needs neither a WebSocket library nor a port.

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// findChromium returns the Chromium (or Chrome) binary to drive, or "".
func findChromium() string {
	if p := os.Getenv("WECOM_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

type cdpError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type cdpMessage struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *cdpError       `json:"error,omitempty"`
}

// browser is one headless Chromium with one page attached.
type browser struct {
	t        testing.TB
	cmd      *exec.Cmd
	toChrome io.WriteCloser
	stderr   *tailBuffer
	exited   chan struct{}

	mu      sync.Mutex
	nextID  int64
	pending map[int64]chan cdpMessage
	dead    error
	// problems are uncaught page exceptions and security (CSP) reports: the test fails on them.
	problems []string
	console  []string

	session string // the page's flattened session
}

// tailBuffer keeps the last bytes written, for diagnostics.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 8<<10 {
		b.buf = b.buf[len(b.buf)-8<<10:]
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// launchBrowser starts Chromium headless in its own process group with a throwaway profile and
// opens a page of the given size.
func launchBrowser(t testing.TB, path string, width, height int) *browser {
	t.Helper()
	profile, err := os.MkdirTemp("", "wecomgate-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--no-default-browser-check", "--disable-background-networking", "--disable-component-update",
		"--disable-sync", "--disable-extensions", "--disable-dev-shm-usage", "--mute-audio",
		"--password-store=basic", "--use-mock-keychain", "--disable-breakpad",
		fmt.Sprintf("--window-size=%d,%d", width, height),
		"--user-data-dir="+profile, "--remote-debugging-pipe", "about:blank")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // so that cleanup reaches its helpers
	chromeIn, toChrome, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromChrome, chromeOut, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{chromeIn, chromeOut} // fd 3: commands in, fd 4: answers out
	b := &browser{
		t: t, cmd: cmd, toChrome: toChrome, stderr: &tailBuffer{}, exited: make(chan struct{}),
		pending: make(map[int64]chan cdpMessage),
	}
	cmd.Stdout, cmd.Stderr = b.stderr, b.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	chromeIn.Close()
	chromeOut.Close()
	go func() {
		_ = cmd.Wait()
		close(b.exited)
	}()
	go b.readLoop(fromChrome)
	t.Cleanup(func() {
		b.close()
		fromChrome.Close()
		os.RemoveAll(profile)
	})

	var target struct{ TargetID string }
	b.browserCall("Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct{ SessionID string }
	b.browserCall("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	for _, domain := range []string{"Page.enable", "Runtime.enable", "Log.enable"} {
		b.pageCall(domain, nil, nil)
	}
	b.pageCall("Emulation.setDeviceMetricsOverride", map[string]any{
		"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false,
	}, nil)
	return b
}

// close asks Chromium to quit and makes sure its whole process group is gone.
func (b *browser) close() {
	b.mu.Lock()
	dead := b.dead
	b.mu.Unlock()
	if dead == nil {
		_ = b.send("", "Browser.close", nil)
	}
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
	}
	// The renderer and other helpers share the browser's process group; only they are in it.
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-b.exited:
	case <-time.After(5 * time.Second):
		b.t.Errorf("chromium (pid %d) did not exit", b.cmd.Process.Pid)
	}
	b.toChrome.Close()
}

func (b *browser) readLoop(r io.Reader) {
	br := bufio.NewReaderSize(r, 1<<20)
	var err error
	for {
		var raw []byte
		raw, err = br.ReadBytes(0)
		if err != nil {
			break
		}
		var m cdpMessage
		if json.Unmarshal(bytes.TrimSuffix(raw, []byte{0}), &m) != nil {
			continue
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.pending[m.ID]
			delete(b.pending, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		b.event(m)
	}
	b.mu.Lock()
	b.dead = fmt.Errorf("chromium closed the DevTools pipe (%v)", err)
	for id, ch := range b.pending {
		close(ch)
		delete(b.pending, id)
	}
	b.mu.Unlock()
}

func (b *browser) event(m cdpMessage) {
	switch m.Method {
	case "Runtime.exceptionThrown":
		var p struct {
			ExceptionDetails struct {
				Text      string
				Exception struct{ Description string }
			}
		}
		_ = json.Unmarshal(m.Params, &p)
		b.note(true, "uncaught exception: "+p.ExceptionDetails.Text+" "+p.ExceptionDetails.Exception.Description)
	case "Log.entryAdded":
		var p struct {
			Entry struct{ Source, Level, Text, URL string }
		}
		_ = json.Unmarshal(m.Params, &p)
		e := p.Entry
		b.note(e.Source == "security", fmt.Sprintf("log %s/%s: %s %s", e.Source, e.Level, e.Text, e.URL))
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string
			Args []struct {
				Value       any
				Description string
			}
		}
		_ = json.Unmarshal(m.Params, &p)
		parts := []string{"console." + p.Type + ":"}
		for _, a := range p.Args {
			if a.Value != nil {
				parts = append(parts, fmt.Sprint(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		b.note(false, strings.Join(parts, " "))
	}
}

func (b *browser) note(problem bool, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.console = append(b.console, s)
	if problem {
		b.problems = append(b.problems, s)
	}
}

// Problems returns the uncaught exceptions and security reports seen so far.
func (b *browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// Console returns the page's console and log lines seen so far.
func (b *browser) Console() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

func (b *browser) send(session, method string, params any) error {
	_, err := b.roundTrip(session, method, params, 5*time.Second)
	return err
}

func (b *browser) roundTrip(session, method string, params any, timeout time.Duration) (json.RawMessage, error) {
	b.mu.Lock()
	if b.dead != nil {
		b.mu.Unlock()
		return nil, b.dead
	}
	b.nextID++
	id := b.nextID
	ch := make(chan cdpMessage, 1)
	b.pending[id] = ch
	b.mu.Unlock()

	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	raw, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	if _, err := b.toChrome.Write(append(raw, 0)); err != nil {
		return nil, fmt.Errorf("%s: writing to chromium: %v", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			b.mu.Lock()
			defer b.mu.Unlock()
			return nil, fmt.Errorf("%s: %v", method, b.dead)
		}
		if m.Error != nil {
			return nil, fmt.Errorf("%s: %s (%d)", method, m.Error.Message, m.Error.Code)
		}
		return m.Result, nil
	case <-time.After(timeout):
		b.mu.Lock()
		delete(b.pending, id)
		b.mu.Unlock()
		return nil, fmt.Errorf("%s: no answer from chromium within %v", method, timeout)
	}
}

func (b *browser) call(session, method string, params, out any) {
	b.t.Helper()
	res, err := b.roundTrip(session, method, params, 30*time.Second)
	if err != nil {
		b.t.Fatalf("%v\nchromium's output:\n%s", err, b.stderr)
	}
	if out != nil {
		if err := json.Unmarshal(res, out); err != nil {
			b.t.Fatalf("%s: decoding %s: %v", method, res, err)
		}
	}
}

func (b *browser) browserCall(method string, params, out any) {
	b.t.Helper()
	b.call("", method, params, out)
}
func (b *browser) pageCall(method string, params, out any) {
	b.t.Helper()
	b.call(b.session, method, params, out)
}

// Navigate loads url in the page.
func (b *browser) Navigate(url string) {
	b.t.Helper()
	var res struct{ ErrorText string }
	b.pageCall("Page.navigate", map[string]any{"url": url}, &res)
	if res.ErrorText != "" {
		b.t.Fatalf("navigating to %s: %s", url, res.ErrorText)
	}
}

var errNotYet = errors.New("not yet")

// Eval runs a JavaScript expression in the page (awaiting a promise) and decodes its value
// into out.
func (b *browser) Eval(expr string, out any) error {
	res, err := b.roundTrip(b.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "returnByValue": true, "awaitPromise": true,
	}, 30*time.Second)
	if err != nil {
		return err
	}
	var r struct {
		Result struct {
			Type  string
			Value json.RawMessage
		}
		ExceptionDetails *struct {
			Text      string
			Exception struct{ Description string }
		}
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return err
	}
	if r.ExceptionDetails != nil {
		return fmt.Errorf("%s %s", r.ExceptionDetails.Text, r.ExceptionDetails.Exception.Description)
	}
	if out == nil || r.Result.Type == "undefined" {
		return nil
	}
	return json.Unmarshal(r.Result.Value, out)
}

// MustEval is Eval failing the test on error.
func (b *browser) MustEval(expr string, out any) {
	b.t.Helper()
	if err := b.Eval(expr, out); err != nil {
		b.t.Fatalf("evaluating %s: %v", expr, err)
	}
}

// WaitFor polls a JavaScript expression until it is truthy.
func (b *browser) WaitFor(what, expr string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		var ok bool
		if err := b.Eval("!!("+expr+")", &ok); err != nil {
			last = err
		} else if ok {
			return
		} else {
			last = errNotYet
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out after %v waiting for %s (%v)\npage console:\n%s", timeout, what, last, strings.Join(b.Console(), "\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Screenshot writes a PNG of the page's viewport to path.
func (b *browser) Screenshot(path string) {
	b.t.Helper()
	var res struct{ Data string }
	b.pageCall("Page.captureScreenshot", map[string]any{"format": "png"}, &res)
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
