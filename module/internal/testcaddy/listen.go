// Listeners that tests hand to Caddy instead of ports they hope are free.

package testcaddy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Network is the network type testcaddy registers with Caddy: an address
// written "testcaddy/127.0.0.1:<port>" (a site's bind, the admin endpoint)
// is served on the socket [Listen] bound for that port.
const Network = "testcaddy"

// DefaultBind is the global option that makes every site without a bind
// of its own listen through Network, so that site addresses stay as a test
// or a documented recipe writes them (http://127.0.0.1:<port>).
const DefaultBind = "default_bind " + Network + "/127.0.0.1"

// inheritEnv maps ports to inherited descriptors ("port=fd,…") in a
// process started with [Inherit].
const inheritEnv = "WECOMGATE_TESTCADDY_LISTENERS"

func init() {
	caddy.RegisterNetwork(Network, listen)
}

// Addr is one socket bound on 127.0.0.1 for the running test.
type Addr struct{ port int }

// Port is the socket's port.
func (a Addr) Port() int { return a.port }

// String is host:port, as clients dial it and reverse_proxy names it.
func (a Addr) String() string { return "127.0.0.1:" + strconv.Itoa(a.port) }

// URL is the base URL, also the site address of a Caddyfile.
func (a Addr) URL() string { return "http://" + a.String() }

// CaddyAddr is the address as Caddy's listen settings take it: the admin
// option, a server's listen, the global `servers` option's key.
func (a Addr) CaddyAddr() string { return Network + "/" + a.String() }

// Listen binds n sockets on 127.0.0.1:0 for Caddy to serve (through
// [Network]) and closes them when the test ends. Binding port 0 and
// keeping the socket is what makes the port the test's: a port found free
// and bound later may be taken in between by anything else on the machine.
func Listen(t testing.TB, n int) []Addr {
	t.Helper()
	addrs := make([]Addr, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		s := register(port, ln)
		t.Cleanup(func() { s.close(port) })
		addrs = append(addrs, Addr{port})
	}
	return addrs
}

// Inherit makes addrs the sockets of the process cmd starts (this test
// binary run again as a Caddy): they become its inherited files, and
// testcaddy in that process serves its Caddy from them by port. This
// process must not serve them meanwhile.
func Inherit(t testing.TB, cmd *exec.Cmd, addrs ...Addr) {
	t.Helper()
	var pairs []string
	for _, a := range addrs {
		mu.Lock()
		s := sockets[a.port]
		mu.Unlock()
		if s == nil {
			t.Fatalf("testcaddy: %s was not bound by Listen", a)
		}
		f, err := s.ln.(*net.TCPListener).File()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() }) // a copy: the child has its own once started
		pairs = append(pairs, fmt.Sprintf("%d=%d", a.port, 3+len(cmd.ExtraFiles)))
		cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, inheritEnv+"="+strings.Join(pairs, ","))
}

var (
	mu      sync.Mutex
	sockets = map[int]*socket{}
)

// socket is one bound TCP socket that outlives the configs served on it.
// Caddy starts a new config before it stops the old one, and stopping
// closes the old config's listeners: so every config gets a listener of
// its own whose Close ends only its own Accept, and one loop accepts for
// all of them.
type socket struct {
	ln      net.Listener
	start   sync.Once
	conns   chan net.Conn
	closing chan struct{}
}

func register(port int, ln net.Listener) *socket {
	s := &socket{ln: ln, conns: make(chan net.Conn), closing: make(chan struct{})}
	mu.Lock()
	sockets[port] = s
	mu.Unlock()
	return s
}

func (s *socket) close(port int) {
	mu.Lock()
	if sockets[port] == s {
		delete(sockets, port)
	}
	mu.Unlock()
	close(s.closing)
	s.ln.Close()
}

func (s *socket) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select { // a transient failure such as too many open files
			case <-s.closing:
				return
			case <-time.After(10 * time.Millisecond):
				continue
			}
		}
		s.handOver(c)
	}
}

// handOver gives c to whichever of the socket's listeners accepts next.
func (s *socket) handOver(c net.Conn) {
	select {
	case s.conns <- c:
	case <-s.closing:
		c.Close()
	}
}

// listen is the ListenerFunc of Network.
func listen(_ context.Context, network, host, portRange string, portOffset uint, _ net.ListenConfig) (any, error) {
	first, _, _ := strings.Cut(portRange, "-")
	port, err := strconv.Atoi(first)
	if err != nil {
		return nil, fmt.Errorf("%s: port %q: %v", network, portRange, err)
	}
	port += int(portOffset)
	if host != "127.0.0.1" {
		return nil, fmt.Errorf("%s: listens on 127.0.0.1 only, not %q", network, host)
	}
	s, err := socketFor(port)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", network, err)
	}
	s.start.Do(func() { go s.accept() })
	return &listener{s: s, closed: make(chan struct{})}, nil
}

func socketFor(port int) (*socket, error) {
	mu.Lock()
	s := sockets[port]
	mu.Unlock()
	if s != nil {
		return s, nil
	}
	fd, ok := inherited()[port]
	if !ok {
		return nil, fmt.Errorf("no socket for port %d: get it from testcaddy.Listen (or Inherit, in another process)", port)
	}
	ln, err := net.FileListener(os.NewFile(fd, fmt.Sprintf("testcaddy-%d", port)))
	if err != nil {
		return nil, fmt.Errorf("inherited socket for port %d: %v", port, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if s := sockets[port]; s != nil { // another config asked meanwhile
		ln.Close()
		return s, nil
	}
	s = &socket{ln: ln, conns: make(chan net.Conn), closing: make(chan struct{})}
	sockets[port] = s
	return s, nil
}

// inherited reads the sockets Inherit passed to this process.
var inherited = sync.OnceValue(func() map[int]uintptr {
	m := map[int]uintptr{}
	for _, pair := range strings.Split(os.Getenv(inheritEnv), ",") {
		p, f, ok := strings.Cut(pair, "=")
		port, err1 := strconv.Atoi(p)
		fd, err2 := strconv.Atoi(f)
		if ok && err1 == nil && err2 == nil {
			m[port] = uintptr(fd)
		}
	}
	return m
})

// listener is one config's view of a socket.
type listener struct {
	s      *socket
	once   sync.Once
	closed chan struct{}
}

// Accept returns the socket's next connection until Close. Once the
// socket itself is closed (the test ended) it waits for Close only: an
// admin endpoint is stopped by the next config, not by the end of a test,
// and must not see an error meanwhile.
func (l *listener) Accept() (net.Conn, error) {
	select {
	case <-l.closed:
		return nil, l.errClosed()
	default:
	}
	select {
	case c := <-l.s.conns:
		select {
		case <-l.closed: // closed as it came: the config still accepting gets it
			go l.s.handOver(c)
			return nil, l.errClosed()
		default:
			return c, nil
		}
	case <-l.closed:
		return nil, l.errClosed()
	}
}

func (l *listener) errClosed() error {
	return &net.OpError{Op: "accept", Net: "tcp", Addr: l.Addr(), Err: net.ErrClosed}
}

// Close ends this listener's Accept; the socket stays open for the next
// config and closes when the test ends.
func (l *listener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *listener) Addr() net.Addr { return l.s.ln.Addr() }
