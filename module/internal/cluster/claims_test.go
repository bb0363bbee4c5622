package cluster

import (
	"os"
	"path"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// claimer records what the heartbeats ask of it and tell it.
type claimer struct {
	mu     sync.Mutex
	claims map[string]Claim
	calls  []string // "claims" and "read", in order
	peers  []Peer
	grant  int // what Granted answers at most
}

func (c *claimer) Claims(time.Time) map[string]Claim {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "claims")
	out := map[string]Claim{}
	for k, v := range c.claims {
		out[k] = v
	}
	return out
}

func (c *claimer) Read(_ time.Time, peers []Peer, _ time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls = append(c.calls, "read")
	c.peers = peers
}

func (c *claimer) Granted(time.Time) map[string]Claim {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]Claim{}
	for k, v := range c.claims {
		v.Share = min(v.Share, c.grant)
		out[k] = v
	}
	return out
}

func (c *claimer) Leave(time.Time) map[string]Claim {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]Claim{}
	for k, v := range c.claims {
		v.Share = v.Used
		out[k] = v
	}
	return out
}

func (c *claimer) last() []Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peers
}

func claimingInstance(t *testing.T, st *store, c *clock, cl *claimer) (*State, *lent) {
	t.Helper()
	s := newState(zap.NewNop(), c.Now)
	l := s.lend(st, nil)
	l.claimer = cl
	t.Cleanup(func() { // the facts sweep writes beside the poll
		for s.sweeping.Load() {
			time.Sleep(time.Millisecond)
		}
	})
	return s, l
}

// Claims travel in the heartbeats: written before the others are read,
// read by the others with the writer's liveness; the first heartbeat
// reads before it writes; an instance that leaves says so, with what it
// spent as its share; its record stays as long as its window counts.
func TestClaimsTravelInHeartbeats(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	ca := &claimer{claims: map[string]Claim{"k@1h": {Used: 3, Share: 40, Window: time.Hour}}, grant: 100}
	cb := &claimer{claims: map[string]Claim{"k@1h": {Used: 0, Share: 5, Window: time.Hour}}, grant: 100}
	a, la := claimingInstance(t, fileStore(dir), c, ca)
	b, _ := claimingInstance(t, fileStore(dir), c, cb)
	sync1(a)
	sync1(b)
	if got := ca.calls; len(got) != 3 || got[0] != "read" || got[1] != "claims" || got[2] != "read" {
		t.Fatalf("first heartbeat's calls %v, want read, claims, read", got)
	}
	peers := cb.last()
	if len(peers) != 1 || !peers[0].Live || peers[0].Left || peers[0].Claims["k@1h"] != (Claim{Used: 3, Share: 40, Window: time.Hour}) {
		t.Fatalf("b read %+v, want a live with its claim", peers)
	}
	sync1(a)
	if got := ca.calls[3:]; len(got) != 2 || got[0] != "claims" || got[1] != "read" {
		t.Fatalf("later heartbeat's calls %v, want claims, read", got)
	}
	if peers := ca.last(); len(peers) != 1 || peers[0].Claims["k@1h"].Share != 5 {
		t.Fatalf("a read %+v, want b's claim", peers)
	}
	// A claim given up on reading is written again at once.
	cb.mu.Lock()
	cb.grant = 2
	cb.mu.Unlock()
	sync1(b)
	sync1(a) // a's own record stands; it reads b's
	if peers := ca.last(); len(peers) != 1 || peers[0].Claims["k@1h"].Share != 2 {
		t.Fatalf("a read %+v, want b's claim lowered to what b was granted", peers)
	}

	a.leave(la)
	sync1(b)
	peers = cb.last()
	if len(peers) != 1 || peers[0].Live || !peers[0].Left || peers[0].Claims["k@1h"] != (Claim{Used: 3, Share: 3, Window: time.Hour}) {
		t.Fatalf("b read %+v after a left, want a gone, its share what it spent", peers)
	}
	if n := b.Instances(); n != 1 {
		t.Fatalf("instances after one left: %d, want 1", n)
	}
	// Past forgetAfter but within the claimed hour, the record stays.
	c.Add(forgetAfter + time.Minute)
	sync1(b)
	if len(cb.last()) != 1 {
		t.Fatal("the record of an instance that left was dropped while its claimed window still counts")
	}
	c.Add(time.Hour)
	sync1(b)
	sync1(b)
	if peers := cb.last(); len(peers) != 0 {
		t.Fatalf("record kept %+v an hour after its window, want it forgotten", peers)
	}
	if _, err := fileStore(dir).Load(t.Context(), path.Join(instancesDir, a.id)); !notExist(err) {
		t.Fatalf("the forgotten record is still in storage: %v", err)
	}
}

// A heartbeat of an earlier release (the time alone) still reads.
func TestHeartbeatWithoutClaims(t *testing.T) {
	for _, v := range []string{"1800000000000", "1800000000000\n{}"} {
		ms, b, err := decodeBeat([]byte(v))
		if err != nil || ms != 1_800_000_000_000 || b.Left || len(b.Claims) != 0 {
			t.Errorf("%q: %d %+v %v", v, ms, b, err)
		}
	}
	if got := string(encodeBeat(time.UnixMilli(5), beat{})); got != "5" {
		t.Errorf("a heartbeat without claims is %q, want the time alone", got)
	}
	if _, _, err := decodeBeat([]byte("5\n{not json")); err == nil {
		t.Error("a broken record read without error")
	}
}

// A storage that loses its records (FLUSHALL, a Redis restarted without
// persistence) does not make the others forget what a peer claimed: it is
// kept, gone, with its claims, until they no longer count, and is live
// again once it writes its heartbeat again.
func TestVanishedPeerKeepsItsClaims(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	ca := &claimer{claims: map[string]Claim{"k@1m": {Used: 7, Share: 40, Window: time.Minute}}, grant: 100}
	cb := &claimer{claims: map[string]Claim{"k@1m": {Share: 5, Window: time.Minute}}, grant: 100}
	a, _ := claimingInstance(t, fileStore(dir), c, ca)
	b, _ := claimingInstance(t, fileStore(dir), c, cb)
	sync1(a)
	sync1(b)
	if err := os.RemoveAll(filepath.Join(dir, instancesDir)); err != nil {
		t.Fatal(err)
	}
	c.Add(time.Second)
	sync1(b)
	peers := cb.last()
	if len(peers) != 1 || peers[0].Live || peers[0].Claims["k@1m"].Used != 7 {
		t.Fatalf("after the records vanished b reads %+v, want a kept, not live, with its claims", peers)
	}
	c.Add(time.Second)
	sync1(a)
	sync1(b)
	if peers := cb.last(); len(peers) != 1 || !peers[0].Live {
		t.Fatalf("after a wrote again b reads %+v, want a live", peers)
	}
}

// Leaving waits for a poll under way, and no heartbeat is written after
// the last one: a poll that took the storage before the leave must not
// write over the record that says the instance left.
func TestLeaveIsTheLastHeartbeat(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	ca := &claimer{claims: map[string]Claim{"k@1m": {Used: 7, Share: 40, Window: time.Minute}}, grant: 100}
	a, la := claimingInstance(t, fileStore(dir), c, ca)
	sync1(a)
	a.leave(la)
	c.Add(time.Second)
	sync1(a) // a poll after the leave
	b, _ := claimingInstance(t, fileStore(dir), c, &claimer{grant: 100})
	sync1(b)
	var found bool
	for _, p := range b.Peers() {
		found = found || (p.Left && p.Claims["k@1m"] == Claim{Used: 7, Share: 7, Window: time.Minute})
	}
	if !found {
		t.Fatalf("b reads %+v, want a left with what it spent", b.Peers())
	}
}
