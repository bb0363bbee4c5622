package cluster

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// clock is a time the test moves.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_800_000_000, 0)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// store wraps a file_system storage to count what a poll reads and to fail
// the way a storage does: down (errors at once), hung (until the context
// ends), closed (a handle whose config was cleaned up).
type store struct {
	certmagic.Storage
	down, hung, closed atomic.Bool
	lists, listBytes   atomic.Int64
	loads, stores      atomic.Int64
}

func fileStore(dir string) *store {
	return &store{Storage: &certmagic.FileStorage{Path: dir}}
}

var errDown = errors.New("storage down")

func (s *store) fail(ctx context.Context) error {
	switch {
	case s.closed.Load():
		return errors.New("redis: client is closed")
	case s.hung.Load():
		for s.hung.Load() { // until the caller gives up or the storage recovers
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Millisecond):
			}
		}
	case s.down.Load():
		return errDown
	}
	return nil
}

func (s *store) Store(ctx context.Context, key string, value []byte) error {
	if err := s.fail(ctx); err != nil {
		return err
	}
	s.stores.Add(1)
	return s.Storage.Store(ctx, key, value)
}

func (s *store) Load(ctx context.Context, key string) ([]byte, error) {
	if err := s.fail(ctx); err != nil {
		return nil, err
	}
	s.loads.Add(1)
	return s.Storage.Load(ctx, key)
}

func (s *store) Delete(ctx context.Context, key string) error {
	if err := s.fail(ctx); err != nil {
		return err
	}
	return s.Storage.Delete(ctx, key)
}

func (s *store) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	if err := s.fail(ctx); err != nil {
		return nil, err
	}
	keys, err := s.Storage.List(ctx, dir, recursive)
	s.lists.Add(1)
	for _, k := range keys {
		s.listBytes.Add(int64(len(k)))
	}
	return keys, err
}

// instance is one State on st, polled by hand.
func instance(t *testing.T, st certmagic.Storage, c *clock) *State {
	t.Helper()
	s := newState(zap.NewNop(), c.Now)
	s.lend(st, nil)
	s.Sync(context.Background())
	t.Cleanup(func() { // the facts sweep writes beside the poll
		for s.sweeping.Load() {
			time.Sleep(time.Millisecond)
		}
	})
	return s
}

func sync1(s *State) { s.Sync(context.Background()) }

func ended(s *State, subject string) bool {
	_, ok := s.Latest(SessionEnded, subject)
	return ok
}

func logout(s *State, c *clock, subject string) {
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	s.Publish(ctx, Event{Kind: SessionEnded, Subject: subject, At: c.Now(), Expires: c.Now().Add(time.Hour)})
}

func TestEventsReachTheOtherInstances(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	a, b := instance(t, fileStore(dir), c), instance(t, fileStore(dir), c)

	logout(a, c, "session-1")
	if !ended(a, "session-1") {
		t.Fatal("not ended at once where it was published")
	}
	if ended(b, "session-1") {
		t.Fatal("ended on the other instance before it polled")
	}
	sync1(b)
	if !ended(b, "session-1") {
		t.Fatal("the other instance's poll did not learn the logout")
	}

	at := c.Now().Truncate(time.Second)
	b.Publish(context.Background(), Event{Kind: UserEnded, Subject: "ww1\x00zhangsan", At: at, Expires: at.Add(24 * time.Hour)})
	sync1(a)
	if got, ok := a.Latest(UserEnded, "ww1\x00zhangsan"); !ok || !got.Equal(at) {
		t.Fatalf("user's sessions ended at %v (%v), want %v", got, ok, at)
	}
}

// A starting instance reads every minute folder once; a poll reads only the
// minutes around now, so its cost does not grow with the events of the day.
func TestStartReadsAllAndPollReadsOnlyWhatIsNew(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	a := instance(t, fileStore(dir), c)
	const minutes, perMinute = 300, 20
	for m := range minutes {
		for i := range perMinute {
			a.Publish(context.Background(), Event{Kind: SessionEnded, Subject: strconv.Itoa(m*perMinute + i),
				At: c.Now(), Expires: c.Now().Add(24 * time.Hour)})
		}
		c.Add(time.Minute)
	}

	st := fileStore(dir)
	b := instance(t, st, c)
	for _, sub := range []string{"0", "2999", strconv.Itoa(minutes*perMinute - 1)} {
		if !ended(b, sub) {
			t.Fatalf("a starting instance missed event %s", sub)
		}
	}
	c.Add(time.Second) // not yet a minute: no upkeep in this poll
	st.lists.Store(0)
	st.listBytes.Store(0)
	sync1(b)
	// The recent minutes (windowBehind + windowAhead), and the heartbeats.
	if n, want := st.lists.Load(), int64((windowBehind+windowAhead)/time.Minute)+2; n > want {
		t.Errorf("a poll listed %d folders, want at most %d", n, want)
	}
	if b, max := st.listBytes.Load(), int64(8*perMinute*60); b > max {
		t.Errorf("a poll read %d bytes of keys with %d events stored, want at most %d (the recent minutes only)", b, minutes*perMinute, max)
	}
}

// A write that storage refuses or does not finish is kept and retried at
// every poll, and holds where it was taken meanwhile.
func TestFailedWritesAreRetried(t *testing.T) {
	for _, mode := range []string{"down", "hung"} {
		t.Run(mode, func(t *testing.T) {
			dir, c := t.TempDir(), newClock()
			st := fileStore(dir)
			a, b := instance(t, st, c), instance(t, fileStore(dir), c)
			flag := &st.down
			if mode == "hung" {
				flag = &st.hung
			}
			flag.Store(true)
			start := time.Now()
			logout(a, c, "s1")
			if d := time.Since(start); d > time.Second {
				t.Errorf("Publish waited %v on a %s storage, want about the caller's bound", d, mode)
			}
			if !ended(a, "s1") {
				t.Fatal("not ended where it was taken while storage fails")
			}
			if a.pending.len() != 1 {
				t.Fatalf("pending writes: %d, want 1", a.pending.len())
			}
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			a.Sync(ctx) // still failing: kept
			cancel()
			if a.pending.len() != 1 {
				t.Fatalf("pending writes after a failed poll: %d, want 1", a.pending.len())
			}
			flag.Store(false)
			c.Add(DefaultPoll)
			sync1(a)
			if a.pending.len() != 0 {
				t.Fatalf("pending writes after storage came back: %d", a.pending.len())
			}
			sync1(b)
			if !ended(b, "s1") {
				t.Fatal("the retried write did not reach the other instance")
			}
		})
	}
}

// A pending write whose event expired is given up: nothing it ended can be
// alive any more.
func TestPendingWriteOfAnExpiredEventIsDropped(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	st := fileStore(dir)
	a := instance(t, st, c)
	st.down.Store(true)
	logout(a, c, "s1")
	st.down.Store(false)
	c.Add(2 * time.Hour)
	sync1(a)
	if a.pending.len() != 0 {
		t.Fatalf("pending writes: %d, want the expired one dropped", a.pending.len())
	}
}

// Folders whose events all expired go, whole; nothing lingers.
func TestExpiredMinutesAreDeleted(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	a := instance(t, fileStore(dir), c)
	a.Publish(context.Background(), Event{Kind: SessionEnded, Subject: "old", At: c.Now(), Expires: c.Now().Add(10 * time.Minute)})
	folder := filepath.Join(dir, "wecomgate", "events", minuteName(c.Now()))
	c.Add(10*time.Minute + deleteMargin - time.Minute)
	sync1(a)
	if _, err := os.Stat(folder); err != nil {
		t.Fatalf("folder deleted before its events' expiry plus the margin: %v", err)
	}
	if !ended(a, "old") {
		t.Fatal("event forgotten before its expiry plus the margin")
	}
	c.Add(2 * time.Minute)
	sync1(a)
	if _, err := os.Stat(folder); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("expired folder still there: %v", err)
	}
	if ended(a, "old") {
		t.Fatal("expired event still in memory")
	}
}

// A reload lends the State a new storage handle before the old config's
// cleanup closes its own: the State must go on with the new one.
func TestReleasedHandleIsNotUsed(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	old := fileStore(dir)
	a := newState(zap.NewNop(), c.Now)
	first := a.lend(old, nil)
	sync1(a)
	a.lend(fileStore(dir), nil) // the new config
	a.unlend(first)             // the old config's cleanup…
	old.closed.Store(true)      // …which closes its client

	b := instance(t, fileStore(dir), c)
	logout(a, c, "s1")
	logout(b, c, "s2")
	sync1(a)
	sync1(b)
	if !ended(b, "s1") || !ended(a, "s2") {
		t.Fatalf("after a reload: a→b %v, b→a %v; want both", ended(b, "s1"), ended(a, "s2"))
	}
	if a.pending.len() != 0 {
		t.Fatal("writes went to the closed handle")
	}
}

// A reload that names another storage brings this instance's events into
// it, so that it keeps sharing them.
func TestChangedStorageGetsTheEvents(t *testing.T) {
	c := newClock()
	dir1, dir2 := t.TempDir(), t.TempDir()
	a := newState(zap.NewNop(), c.Now)
	first := a.lend(fileStore(dir1), nil)
	sync1(a)
	logout(a, c, "s1")
	a.lend(&certmagic.FileStorage{Path: dir2}, nil) // another storage name: a changed config
	a.unlend(first)
	sync1(a)
	sync1(a) // the republished events are written by this poll's flush, or the next
	b := instance(t, fileStore(dir2), c)
	if !ended(b, "s1") {
		t.Fatal("the new storage did not get the instance's events")
	}
}

// A storage that lost everything (a Redis without persistence restarted)
// gets back the secrets and events of the instances still running.
func TestWipedStorageIsRefilled(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	a := instance(t, fileStore(dir), c)
	key, err := a.Secret(context.Background(), "wecomgate/session_key", func() []byte { return []byte("k1") })
	if err != nil {
		t.Fatal(err)
	}
	logout(a, c, "s1")
	if err := os.RemoveAll(filepath.Join(dir, "wecomgate")); err != nil {
		t.Fatal(err)
	}
	c.Add(DefaultPoll)
	sync1(a)
	sync1(a)

	b := instance(t, fileStore(dir), c)
	got, err := b.Secret(context.Background(), "wecomgate/session_key", func() []byte { return []byte("k2") })
	if err != nil || string(got) != string(key) {
		t.Fatalf("an instance starting after the wipe got key %q (%v), want the running one's %q", got, err, key)
	}
	if !ended(b, "s1") {
		t.Fatal("an instance starting after the wipe accepts a session ended before it")
	}
}

// Instances count each other while their heartbeats move, by their own
// clocks, and warn about a clock that is far off.
func TestHeartbeatsCountLiveInstancesAndWarnAboutSkew(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	core, logs := observer.New(zap.WarnLevel)
	a := newState(zap.New(core), c.Now)
	a.lend(fileStore(dir), nil)
	ahead := &clock{t: c.Now().Add(3 * time.Minute)}
	b := instance(t, fileStore(dir), ahead)
	sync1(a)
	if n := a.Instances(); n != 2 {
		t.Fatalf("instances: %d, want 2", n)
	}
	for range 2 {
		c.Add(DefaultPoll)
		ahead.Add(DefaultPoll)
		sync1(b)
		sync1(a)
	}
	if logs.FilterMessageSnippet("clock is off").Len() == 0 {
		t.Error("no warning about an instance 3 minutes ahead")
	}
	for range deadAfter + 1 { // b stops
		c.Add(DefaultPoll)
		sync1(a)
	}
	if n := a.Instances(); n != 1 {
		t.Fatalf("instances after one stopped: %d, want 1", n)
	}
}

func TestFacts(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	st := fileStore(dir)
	a, b := instance(t, st, c), instance(t, fileStore(dir), c)
	ctx := context.Background()
	if err := a.PutFact(ctx, "users/ww1/x", []byte("v1"), c.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if v, exp, err := b.Fact(ctx, "users/ww1/x"); err != nil || string(v) != "v1" || !exp.Equal(c.Now().Add(time.Minute)) {
		t.Fatalf("fact: %q %v %v", v, exp, err)
	}
	c.Add(time.Minute)
	if _, _, err := b.Fact(ctx, "users/ww1/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("expired fact: %v, want fs.ErrNotExist", err)
	}

	st.down.Store(true)
	if err := a.PutFact(ctx, "users/ww1/y", []byte("v2"), c.Now().Add(time.Hour)); err == nil {
		t.Fatal("a failed write reported no error")
	}
	st.down.Store(false)
	sync1(a)
	if v, _, err := b.Fact(ctx, "users/ww1/y"); err != nil || string(v) != "v2" {
		t.Fatalf("a failed fact write was not retried: %q %v", v, err)
	}
	if err := b.DropFact(ctx, "users/ww1/y"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Fact(ctx, "users/ww1/y"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("dropped fact: %v", err)
	}
}

func TestEventNamesRoundTrip(t *testing.T) {
	ev := Event{Kind: UserEnded, Subject: "ww1\x00张三.x/y", At: time.UnixMilli(1_800_000_000_123), Expires: time.Unix(1_800_086_400, 0)}
	got, ok := parseEvent(ev.name())
	if !ok || got != ev {
		t.Fatalf("round trip: %+v %v, want %+v", got, ok, ev)
	}
	for _, bad := range []string{"", "x.a.1.2", "s.a.1", "s.!!.1.2", "s.YQ.x.2", "ss.YQ.1.2"} {
		if _, ok := parseEvent(bad); ok {
			t.Errorf("parsed %q", bad)
		}
	}
}

// Expired facts are deleted from storage by the hourly sweep; live ones stay.
func TestExpiredFactsAreSwept(t *testing.T) {
	dir, c := t.TempDir(), newClock()
	a := instance(t, fileStore(dir), c)
	waitSweep := func() {
		deadline := time.Now().Add(5 * time.Second)
		for a.sweeping.Load() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond) // the sweep runs beside the poll
		}
	}
	waitSweep() // the first poll's, over an empty storage
	ctx := context.Background()
	_ = a.PutFact(ctx, "users/ww1/old", []byte("x"), c.Now().Add(time.Minute))
	_ = a.PutFact(ctx, "users/ww1/live", []byte("y"), c.Now().Add(3*time.Hour))
	c.Add(30 * time.Minute)
	sync1(a)
	waitSweep()
	if _, err := os.Stat(filepath.Join(dir, "wecomgate", "facts", "users", "ww1", "old")); err != nil {
		t.Fatalf("swept again within the hour: %v", err)
	}
	c.Add(31 * time.Minute)
	sync1(a)
	waitSweep()
	if _, err := os.Stat(filepath.Join(dir, "wecomgate", "facts", "users", "ww1", "old")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("expired fact still stored: %v", err)
	}
	if v, _, err := a.Fact(ctx, "users/ww1/live"); err != nil || string(v) != "y" {
		t.Errorf("live fact: %q %v", v, err)
	}
}
