// Package testredis runs a real redis-server (Debian's) for a test: on a
// Unix socket in the test's temporary folder, reachable over TCP at a
// loopback port the test bound itself and forwards to the socket. Redis
// cannot be handed a socket or asked for a free port, and a port found free
// and given to it later may be taken in between; the forwarder also
// survives the server's restarts, as a Redis address does in production.
package testredis

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server of a test.
type Server struct {
	t    testing.TB
	dir  string
	sock string
	ln   net.Listener

	mu  sync.Mutex
	cmd *exec.Cmd
}

// Start starts redis-server with no persistence and stops it when the test
// ends. Without redis-server it skips the test, unless CI is set (.ci/run
// installs it): then a missing server fails the test.
func Start(t testing.TB) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed, and CI requires the Redis tests (apt-get install redis-server)")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server, as .ci/run does): the Redis tests are skipped")
	}
	// A short path: a Unix socket's name is limited to about 100 bytes.
	dir, err := os.MkdirTemp("", "redis-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, dir: dir, sock: filepath.Join(dir, "redis.sock"), ln: ln}
	go s.forward()
	t.Cleanup(func() {
		ln.Close()
		s.stop()
	})
	s.start()
	return s
}

// Addr is host:port, as Caddy's redis storage takes it.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Pause stops the server's process (SIGSTOP): connections stay open and
// every command hangs, as with a Redis that is stuck.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume continues a paused server.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

// Restart kills the server and starts a new one, which has no data: there
// is no persistence.
func (s *Server) Restart() {
	s.t.Helper()
	s.Kill()
	s.Revive()
}

// Kill stops the server: connections are refused until Revive.
func (s *Server) Kill() { s.stop() }

// Revive starts a killed server again, empty.
func (s *Server) Revive() {
	s.t.Helper()
	s.start()
}

// Do sends one command and returns its reply as text (integers and
// status replies as written, bulk strings as their content).
func (s *Server) Do(args ...string) string {
	s.t.Helper()
	c, err := net.DialTimeout("unix", s.sock, 5*time.Second)
	if err != nil {
		s.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, b.String()); err != nil {
		s.t.Fatal(err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		s.t.Fatal(err)
	}
	line = strings.TrimRight(line, "\r\n")
	switch line[0] {
	case '+', ':':
		return line[1:]
	case '-':
		s.t.Fatalf("redis %s: %s", args[0], line[1:])
	case '$':
		var n int
		fmt.Sscanf(line[1:], "%d", &n)
		if n < 0 {
			return ""
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			s.t.Fatal(err)
		}
		return string(buf[:n])
	}
	s.t.Fatalf("redis %s: unexpected reply %q", args[0], line)
	return ""
}

func (s *Server) start() {
	s.t.Helper()
	cmd := exec.Command("redis-server", "--port", "0", "--unixsocket", s.sock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", s.dir, "--daemonize", "no", "--loglevel", "warning")
	out, err := os.Create(filepath.Join(s.dir, "redis.log"))
	if err != nil {
		s.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.mu.Lock()
	s.cmd = cmd
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("unix", s.sock); err == nil {
			c.Close()
			if s.Do("PING") == "PONG" {
				return
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			s.t.Fatalf("redis-server did not start:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *Server) stop() {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGCONT) // a paused server cannot die
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	os.Remove(s.sock)
}

func (s *Server) signal(sig os.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// forward copies each TCP connection to a new connection on the socket.
func (s *Server) forward() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go func() {
			defer c.Close()
			u, err := net.Dial("unix", s.sock)
			if err != nil {
				return // down or restarting: the client sees a closed connection
			}
			defer u.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(u, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, u); done <- struct{}{} }()
			<-done
		}()
	}
}
