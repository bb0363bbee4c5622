package wecomauth_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	// Caddy's Redis storage, as production clusters use it (SPEC §9).
	_ "github.com/pberkel/caddy-storage-redis"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
	"github.com/wecomgate/wecomgate/module/internal/testredis"
)

// instance is a gateway in a Caddy process of its own, on a socket this
// test bound, that the test may stop and start again.
type instance struct {
	addr testcaddy.Addr
	cfg  string
	stop func()
}

func (in *instance) url() string { return in.addr.URL() }

func (in *instance) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	testcaddy.Inherit(t, cmd, in.addr)
	in.stop = startProcess(t, cmd, in.cfg, in.url())
}

func (in *instance) restart(t *testing.T) {
	t.Helper()
	in.stop()
	in.start(t)
	if t.Failed() {
		t.FailNow()
	}
}

// startInstances starts n more gateways sharing e's storage (global) and
// simulator, all at the same moment.
func startInstances(t *testing.T, e *env, global string, n int) []*instance {
	t.Helper()
	var (
		out []*instance
		wg  sync.WaitGroup
	)
	for _, addr := range testcaddy.Listen(t, n) {
		in := &instance{addr: addr, cfg: e.peerConfig(addr, global, "")}
		out = append(out, in)
		wg.Go(func() { in.start(t) })
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	urls := []string{e.gw}
	for _, in := range out {
		urls = append(urls, in.url())
	}
	waitForShares(t, e, urls...)
	return out
}

// refusedEverywhere waits until tok is refused at every url and reports
// how long that took.
func refusedEverywhere(t *testing.T, what, tok string, urls ...string) time.Duration {
	t.Helper()
	start := time.Now()
	testcaddy.WaitFor(t, 10*time.Second, what, func() bool {
		for _, u := range urls {
			if statusAt(t, u, tok) != http.StatusUnauthorized {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

func mustPass(t *testing.T, what, tok string, urls ...string) {
	t.Helper()
	for _, u := range urls {
		if s := statusAt(t, u, tok); s != http.StatusOK {
			t.Fatalf("%s: %d at %s, want 200", what, s, u)
		}
	}
}

func logoutAt(t *testing.T, base, tok string) time.Duration {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/wecom/logout", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout at %s: %d", base, resp.StatusCode)
	}
	return time.Since(start)
}

// Three instances on a real Redis (Debian's redis-server, started here):
// one key at a simultaneous start, logouts both ways, a restart, a reload,
// a Redis that hangs for 10 s while a logout is taken, and a Redis that
// loses its data (SPEC §4, §6a; issue 14).
func TestClusterOnRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Redis and Caddy processes")
	}
	rs := testredis.Start(t)
	global := fmt.Sprintf("storage redis {\n\t\taddress %s\n\t\tkey_prefix wg\n\t}", rs.Addr())
	e := startGateway(t, gatewayOptions{global: global})
	ins := startInstances(t, e, global, 2)
	a, b, c := e.gw, ins[0].url(), ins[1].url()
	all := []string{a, b, c}

	// One key: the instances that started together agree.
	tokA, tokB := login(t, e, "acme", "zhangsan"), login(t, e.at(b, e.sim), "acme", "zhangsan")
	mustPass(t, "sessions of the first and a second instance", tokA, all...)
	mustPass(t, "a session of a second instance", tokB, all...)

	// Logouts, both ways.
	logoutAt(t, a, tokA)
	logoutAt(t, c, tokB)
	t.Logf("logouts reached every instance after %v", refusedEverywhere(t, "logouts to propagate", tokA, all...))
	refusedEverywhere(t, "a logout on another instance to reach this one", tokB, all...)

	// A restarted instance reads the logouts back.
	live := login(t, e, "acme", "zhangsan")
	ins[1].restart(t)
	refusedEverywhere(t, "logged-out sessions after a restart", tokA, c)
	mustPass(t, "a live session after a restart", live, c)

	// A reload keeps the instance sharing, both ways: it used to keep a
	// Redis client that the old config's cleanup had closed.
	e.reload("recheck 11m")
	tokA2, tokB2 := login(t, e, "acme", "zhangsan"), login(t, e.at(b, e.sim), "acme", "zhangsan")
	logoutAt(t, a, tokA2)
	logoutAt(t, b, tokB2)
	refusedEverywhere(t, "a logout after a reload to reach the others", tokA2, all...)
	refusedEverywhere(t, "a logout to reach the reloaded instance", tokB2, all...)

	// Redis hangs for 10 s; a logout meanwhile answers at once, holds
	// where it was taken, and reaches the others once Redis is back.
	hung := login(t, e, "acme", "zhangsan")
	rs.Pause()
	paused := time.Now()
	if d := logoutAt(t, a, hung); d > 3*time.Second {
		t.Errorf("logout took %v while Redis hung, want about the 2 s bound", d)
	}
	if s := statusAt(t, a, hung); s != http.StatusUnauthorized {
		t.Fatalf("logged-out session got %d on its instance while Redis hangs", s)
	}
	time.Sleep(10*time.Second - time.Since(paused)) // the outage itself, not a wait for expiry
	rs.Resume()
	t.Logf("a logout taken while Redis hung reached every instance %v after it came back",
		refusedEverywhere(t, "a logout taken during the outage", hung, all...))
	ins[1].restart(t)
	refusedEverywhere(t, "a logout taken during the outage, after a restart", hung, c)

	// Redis loses everything: the running instances put back the key and
	// the logouts, so an instance starting afterwards joins, not splits.
	survivor := login(t, e, "acme", "zhangsan")
	rs.Do("FLUSHALL")
	testcaddy.WaitFor(t, 15*time.Second, "the instances to put the session key back", func() bool {
		return rs.Do("EXISTS", "wg/wecomgate/session_key") == "1"
	})
	testcaddy.WaitFor(t, 15*time.Second, "the instances to put the logouts back", func() bool {
		return rs.Do("EXISTS", "wg/wecomgate/events") == "1"
	})
	time.Sleep(time.Second) // the rest of the poll's writes
	ins[1].restart(t)
	mustPass(t, "a session after Redis lost its data, on an instance started afterwards", survivor, c)
	refusedEverywhere(t, "a logout made before Redis lost its data", hung, c)

	// Redis restarts, empty, and a logout comes while it is down.
	down := login(t, e, "acme", "zhangsan")
	rs.Kill()
	logoutAt(t, a, down)
	rs.Revive()
	refusedEverywhere(t, "a logout taken while Redis was down", down, all...)
	testcaddy.WaitFor(t, 15*time.Second, "the instances to put the session key back", func() bool {
		return rs.Do("EXISTS", "wg/wecomgate/session_key") == "1"
	})
	time.Sleep(time.Second) // the rest of the poll's writes
	ins[1].restart(t)
	refusedEverywhere(t, "logouts from before a Redis restart, on an instance started after it", down, c)
	refusedEverywhere(t, "logouts from before a Redis restart, on an instance started after it", hung, c)
	mustPass(t, "a session after a Redis restart", survivor, all...)
}
