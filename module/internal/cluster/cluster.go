// Package cluster is what the instances that share Caddy's storage hold in
// common: an event log (a session or a user's sessions ended, a user or a
// corp's directory changed in WeCom), small facts with an expiry, the live
// instances, and the secrets the gateway generates for itself. Everything
// lives under Root in whatever storage the Caddy config names (file_system,
// Redis, …), through certmagic.Storage only.
//
// One State serves the whole process and outlives configs: it is pooled,
// and each config that joins lends it that config's own storage handle for
// as long as the config lives (Member.Release). A storage module may close
// its client when its config is cleaned up, so the State never keeps a
// handle of its own: it always uses the newest handle still lent to it.
package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// Root is the storage prefix of everything this package writes.
const Root = "wecomgate"

// DefaultPoll is how often an instance reads what the others wrote. A
// logout reaches every instance within about one poll.
const DefaultPoll = 5 * time.Second

var pool = caddy.NewUsagePool()

// fastPolls is how many polls a new State makes a second or so apart
// before it keeps to the interval (claims.go).
const fastPolls = 5

// storesInFlight bounds the event writes left running past their caller.
const storesInFlight = 8

const poolKey = "wecomgate/cluster"

// State is this process's share of the cluster.
type State struct {
	logger *zap.Logger
	clock  func() time.Time // when no config lent one (tests)
	id     string           // this instance, in heartbeats

	interval atomic.Int64 // time.Duration between polls

	mu      sync.Mutex
	lent    []*lent // storage handles of live configs, newest last
	synced  string  // name of the storage the index was loaded from
	loaded  bool    // the index holds everything synced had at load
	kept    map[string][]byte
	marker  string           // the storage's marker as last seen
	claimed map[Claimer]bool // claimers that wrote a claim
	lastRun time.Time        // of the once-a-minute upkeep

	events  *index
	buckets *bucketLog
	pending *pending
	peers   *peers

	inFlight chan struct{} // storeWithin's writes running
	syncMu   sync.Mutex    // one poll at a time
	left     atomic.Bool   // the last heartbeat is written (leave.go)
	soon     atomic.Bool   // a claimer is starved: poll again shortly
	starved  atomic.Int32  // polls in a row that left a claimer nothing
	sweeping atomic.Bool   // sweepFacts is running
	stop     chan struct{}
	done     chan struct{}
}

type lent struct {
	st      certmagic.Storage
	name    string
	now     func() time.Time // the config's clock, nil for the State's own
	claimer Claimer          // the config's shared quotas, if any (claims.go)
}

// now is the clock of the newest config lent, so that the State's time is
// that of the config it serves (and of the handler a test moves).
func (s *State) now() time.Time {
	s.mu.Lock()
	var now func() time.Time
	if n := len(s.lent); n > 0 {
		now = s.lent[n-1].now
	}
	s.mu.Unlock()
	if now == nil {
		now = s.clock
	}
	return now()
}

// Member is one config's hold on the State.
type Member struct {
	*State
	own  *lent
	once sync.Once
}

// Join returns the process's State with ctx's storage and clock lent to it
// until Release (the newest config's are used); claimer, if not nil, shares
// its quotas through the heartbeats from the first one on.
func Join(ctx caddy.Context, now func() time.Time, claimer Claimer) (*Member, error) {
	val, _, err := pool.LoadOrNew(poolKey, func() (caddy.Destructor, error) {
		s := newState(ctx.Logger().Named("cluster"), time.Now) // the configs lend theirs
		go s.poll()
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	s := val.(*State)
	own := s.lend(ctx.Storage(), now)
	if claimer != nil {
		s.mu.Lock()
		own.claimer = claimer
		s.mu.Unlock()
	}
	s.left.Store(false) // a config after the last one left (tests): beat again
	// The index must hold the cluster's events before this config serves
	// a request; if storage cannot answer now, the poll keeps trying.
	// A poll already running (storage hanging) must not hold up a reload:
	// the State it serves is loaded already.
	if s.syncMu.TryLock() {
		s.syncMu.Unlock()
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s.Sync(sctx)
		cancel()
	}
	return &Member{State: s, own: own}, nil
}

// Release ends the config's loan of its storage (its Cleanup).
func (m *Member) Release() error {
	var err error
	m.once.Do(func() {
		m.mu.Lock()
		last := len(m.lent) == 1 && m.lent[0] == m.own
		m.mu.Unlock()
		m.unlend(m.own)
		if last {
			m.leave(m.own) // leave.go
		}
		_, err = pool.Delete(poolKey)
	})
	return err
}

func (s *State) lend(st certmagic.Storage, now func() time.Time) *lent {
	l := &lent{st: st, name: storageName(st), now: now}
	s.mu.Lock()
	s.lent = append(s.lent, l)
	s.mu.Unlock()
	return l
}

func (s *State) unlend(l *lent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, x := range s.lent {
		if x == l {
			s.lent = append(s.lent[:i], s.lent[i+1:]...)
			return
		}
	}
}

func newState(logger *zap.Logger, now func() time.Time) *State {
	var id [8]byte
	_, _ = rand.Read(id[:])
	s := &State{
		logger:   logger,
		clock:    now,
		id:       hex.EncodeToString(id[:]),
		kept:     map[string][]byte{},
		claimed:  map[Claimer]bool{},
		events:   newIndex(),
		buckets:  newBucketLog(),
		pending:  newPending(),
		peers:    newPeers(),
		stop:     make(chan struct{}),
		inFlight: make(chan struct{}, storesInFlight),
		done:     make(chan struct{}),
	}
	s.interval.Store(int64(DefaultPoll))
	return s
}

// SetInterval changes how often storage is read (tests shorten it).
func (s *State) SetInterval(d time.Duration) { s.interval.Store(int64(d)) }

// Interval is the time between polls.
func (s *State) Interval() time.Duration { return time.Duration(s.interval.Load()) }

// storage is the newest handle lent, and its name.
func (s *State) storage() (certmagic.Storage, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lent) == 0 {
		return nil, ""
	}
	l := s.lent[len(s.lent)-1]
	return l.st, l.name
}

func (s *State) poll() {
	defer close(s.done)
	for polls := 0; ; polls++ {
		interval := s.Interval()
		if polls < fastPolls || s.soon.Load() {
			// Just started, or a claimer got nothing: instances that
			// started at about the same time make room for each other
			// within seconds, not polls. Jittered, so that two starved
			// newcomers do not keep colliding.
			interval = min(interval, time.Second+mrand.N(500*time.Millisecond))
		}
		select {
		case <-s.stop:
			return
		case <-time.After(interval):
			ctx, cancel := context.WithTimeout(context.Background(), s.Interval())
			s.Sync(ctx)
			cancel()
		}
	}
}

// Sync does one poll now: it reads what other instances wrote, retries
// writes that failed, and keeps the storage's share of the cluster whole.
// The poller calls it every interval; tests call it to skip the wait.
func (s *State) Sync(ctx context.Context) {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	st, name := s.storage()
	if st == nil {
		return
	}
	start := time.Now()
	err := s.sync(ctx, st, name)
	metrics.pollDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		metrics.pollErrors.Inc()
		s.logger.Warn("reading the cluster's shared state", zap.Error(err))
	}
	metrics.pending.Set(float64(s.pending.len()))
	metrics.events.Set(float64(s.events.len()))
	metrics.instances.Set(float64(s.Instances()))
}

func (s *State) sync(ctx context.Context, st certmagic.Storage, name string) error {
	now := s.now()
	s.mu.Lock()
	changed, loaded := s.synced != name, s.loaded && s.synced == name
	s.mu.Unlock()

	var errs []error
	if !loaded {
		if changed {
			s.buckets.reset() // counts of another storage's folders
		}
		if err := s.load(ctx, st, now); err != nil {
			// Retries and the heartbeat go on; the load is tried again
			// at the next poll.
			return errors.Join(fmt.Errorf("loading events: %w", err), s.pending.flush(ctx, st, now), s.heartbeat(ctx, st, now))
		}
		s.mu.Lock()
		held := s.synced != ""
		s.synced, s.loaded = name, true
		s.mu.Unlock()
		if changed && held {
			// A reload named another storage: bring along what this
			// instance knows, so that both keep sharing (SPEC §4).
			s.logger.Info("the storage changed; writing this instance's events into it")
			s.republish(now)
		}
		errs = append(errs, s.ensureMarker(ctx, st, false))
	} else {
		errs = append(errs, s.readRecent(ctx, st, now), s.ensureMarker(ctx, st, true))
	}
	errs = append(errs, s.pending.flush(ctx, st, now), s.heartbeat(ctx, st, now))
	if now.Sub(s.lastRun) >= time.Minute || now.Before(s.lastRun) {
		s.lastRun = now
		errs = append(errs, s.upkeep(ctx, st, now))
	}
	return errors.Join(errs...)
}

// Destruct implements caddy.Destructor: the last config is gone.
func (s *State) Destruct() error {
	close(s.stop)
	<-s.done
	return nil
}

// storageName identifies a storage configuration; storages that cannot say
// who they are count as a new one each.
func storageName(st certmagic.Storage) string {
	if s, ok := st.(fmt.Stringer); ok {
		return fmt.Sprintf("%T:%s", st, s.String())
	}
	return fmt.Sprintf("%T:%p", st, st)
}

func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
