package cluster

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"
)

// a logout taken while this instance's storage was down for more
// than windowBehind is flushed into the folder of the minute it was taken
// in. An instance that already knew that folder (it saw another record
// there) never lists it again: the logout never reaches it.
func TestLongOutageRetryReachesRunningInstances(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	sa := fileStore(dir)
	a, b := instance(t, sa, c), instance(t, fileStore(dir), c)

	logout(b, c, "other") // b writes into minute M: b knows M
	sa.down.Store(true)   // a's link to storage fails (partition, Redis down for a)
	logout(a, c, "s1")    // pending on a, keyed into minute M
	for range 7 {         // 7 minutes of outage for a; b keeps polling
		c.Add(time.Minute)
		sync1(b)
	}
	sa.down.Store(false)
	sync1(a) // the pending write is stored now, into folder M
	if a.pending.len() != 0 {
		t.Fatalf("pending: %d", a.pending.len())
	}
	for range 20 { // 20 more minutes of polls and upkeeps on b
		c.Add(DefaultPoll * 12)
		sync1(b)
	}
	if !ended(b, "s1") {
		t.Errorf("LOST: b never learnt the logout a stored after its outage (folder %s is known to b, outside the poll window)", minuteName(c.Now()))
	}
	// A fresh instance does see it (full load): the record is in storage.
	if cst := instance(t, fileStore(dir), c); !ended(cst, "s1") {
		t.Error("not even in storage")
	}
}

// after a wipe, only the first instance to notice the missing marker
// writes back what it holds. A logout another instance took in the last
// poll before the wipe is then lost for everybody but its taker.
func TestWipeNoticedElsewhereStillRefilledHere(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	a, b := instance(t, fileStore(dir), c), instance(t, fileStore(dir), c)
	logout(a, c, "s1") // stored; b has not polled yet
	if err := os.RemoveAll(filepath.Join(dir, "wecomgate")); err != nil {
		t.Fatal(err)
	}
	c.Add(DefaultPoll)
	sync1(b) // b notices first: marker written, b's (older) events republished
	sync1(b)
	sync1(a) // a finds a marker: no republish
	sync1(a)
	c.Add(DefaultPoll)
	sync1(b)
	if !ended(b, "s1") {
		t.Error("LOST on b: a's logout from just before the wipe")
	}
	if cst := instance(t, fileStore(dir), c); !ended(cst, "s1") {
		t.Error("LOST for a new instance too")
	}
}

var _ = context.Background

// deaf is a storage that ignores contexts while stuck (a hung NFS mount for
// file_system; any blocking syscall).
type deaf struct {
	*store
	release chan struct{}
}

func (d *deaf) Store(ctx context.Context, key string, v []byte) error {
	<-d.release
	return d.store.Store(ctx, key, v)
}

// Logouts on a storage that hangs whatever the context says leave a bounded
// number of writes running, not one per logout, and are all kept.
func TestHangingStorageDoesNotCollectGoroutines(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	d := &deaf{store: fileStore(dir), release: make(chan struct{})}
	s := newState(zap.NewNop(), c.Now)
	s.lend(d, nil)
	before := runtime.NumGoroutine()
	for i := range 200 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		s.Publish(ctx, Event{Kind: SessionEnded, Subject: strconv.Itoa(i), At: c.Now(), Expires: c.Now().Add(time.Hour)})
		cancel()
	}
	if n := runtime.NumGoroutine() - before; n > storesInFlight+2 {
		t.Errorf("%d goroutines left behind by 200 logouts on a stuck storage, want at most %d", n, storesInFlight)
	}
	if n := s.pending.len(); n != 200 {
		t.Errorf("pending writes: %d, want all 200 kept", n)
	}
	close(d.release)
	for range storesInFlight { // every released write has finished before TempDir is removed
		s.inFlight <- struct{}{}
	}
}
