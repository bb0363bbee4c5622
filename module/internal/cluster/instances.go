package cluster

// Heartbeats: each instance rewrites its record every poll with its own
// clock's time, and with its claims on shared quotas (claims.go). Another
// instance counts it live while the value keeps changing, judged by its own
// clock only (the values are compared with each other, never with the
// reader's time), and learns from the values how far the writer's clock is
// from its own.

import (
	"context"
	"path"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

const instancesDir = Root + "/instances"

// An instance unchanged for deadAfter polls is not counted; its record is
// deleted after forgetAfter.
const (
	deadAfter   = 3
	forgetAfter = 10 * time.Minute
	// skewWarn is how far another instance's clock may be from this one's
	// before it is worth a warning (SPEC §4 margins are minutes).
	skewWarn = 30 * time.Second
)

type peers struct {
	mu sync.Mutex
	m  map[string]*peer
}

type peer struct {
	value    int64     // the writer's clock, unix ms, as last read
	beat     beat      // what came with it
	vanished bool      // its record is no longer listed
	changed  time.Time // this instance's clock when value last changed
	warnedAt time.Time
}

func newPeers() *peers { return &peers{m: map[string]*peer{}} }

// The claimers are asked at the time of each step, not the poll's start:
// calls made while storage answered slowly must be in the claims written.
func (s *State) heartbeat(ctx context.Context, st certmagic.Storage, now time.Time) error {
	if s.left.Load() {
		return nil // its last record says it left (leave.go)
	}
	claimers := s.claimers()
	if fresh := s.unclaimed(claimers); len(fresh) > 0 {
		// A claimer's first claims are made on a fresh view of the
		// others, so that a lone instance claims its whole share at once.
		if err := s.readPeers(ctx, st); err != nil {
			return err
		}
		peers := s.Peers()
		for _, c := range fresh {
			c.Read(s.now(), peers, s.Hold())
		}
	}
	claims := s.claimsOf(s.now(), claimers)
	key := path.Join(instancesDir, s.id)
	if err := s.storeBeat(ctx, st, key, now, claims); err != nil {
		return err
	}
	s.markClaimed(claimers)
	if err := s.readPeers(ctx, st); err != nil {
		return err
	}
	peers := s.Peers()
	granted := map[string]Claim{}
	for _, c := range claimers {
		c.Read(s.now(), peers, s.Hold())
		for k, v := range c.Granted(s.now()) {
			granted[k] = v
		}
	}
	s.noteStarved(granted)
	if Lowered(claims, granted) {
		return s.storeBeat(ctx, st, key, now, granted)
	}
	return nil
}

// storeBeat writes this instance's record, unless it has left meanwhile
// (leave does not wait for a poll that hangs).
func (s *State) storeBeat(ctx context.Context, st certmagic.Storage, key string, now time.Time, claims map[string]Claim) error {
	if s.left.Load() {
		return nil
	}
	return st.Store(ctx, key, encodeBeat(now, beat{Claims: claims}))
}

// starvedPolls bounds the fast polls of a starved claimer: a quota too
// small to give every instance a call (20 a minute among 25) leaves some
// at nothing for good, and they must not poll every second for ever.
const starvedPolls = 10

// noteStarved has the poll look again shortly while a claimer got
// nothing: the others are making room at their next heartbeats.
func (s *State) noteStarved(granted map[string]Claim) {
	starved := false
	for _, c := range granted {
		starved = starved || c.Share == 0
	}
	if !starved {
		s.starved.Store(0)
		s.soon.Store(false)
		return
	}
	s.soon.Store(s.starved.Add(1) <= starvedPolls)
}

// readPeers reads the others' heartbeats. Each is seen at this instance's
// time after it was loaded: never before it was written.
func (s *State) readPeers(ctx context.Context, st certmagic.Storage) error {
	keys, err := st.List(ctx, instancesDir, false)
	if err != nil && !notExist(err) { // none yet: the first instance's first look
		return err
	}
	listed := map[string]bool{}
	for _, k := range keys {
		id := path.Base(k)
		if id == s.id {
			continue
		}
		listed[id] = true
		b, err := st.Load(ctx, k)
		if err != nil {
			continue // gone meanwhile
		}
		v, bt, err := decodeBeat(b)
		if err != nil {
			continue
		}
		if forget := s.peers.saw(id, v, bt, s.now(), s.keepFor, s.logger); forget {
			_ = st.Delete(ctx, k)
		}
	}
	s.peers.vanish(listed, s.now(), s.keepFor)
	return nil
}

// saw records a peer's value; it answers whether the record is so old that
// it should be deleted (keepFor).
func (p *peers) saw(id string, value int64, b beat, now time.Time, keepFor func(beat) time.Duration, logger *zap.Logger) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.m[id]
	if !ok {
		pr = &peer{value: value, beat: b, changed: now}
		p.m[id] = pr
		return false
	}
	moved := value != pr.value || b.Left != pr.beat.Left || pr.vanished
	pr.beat, pr.vanished = b, false // a record rewritten in the same heartbeat lowers its claims
	if moved {
		pr.value, pr.changed = value, now
		// Written at most a poll ago by the writer's clock.
		offset := time.UnixMilli(value).Sub(now)
		if (offset > skewWarn || offset < -skewWarn-2*DefaultPoll) && now.Sub(pr.warnedAt) > 10*time.Minute {
			pr.warnedAt = now
			logger.Warn("another instance's clock is off from this one's: keep the instances' clocks in sync (NTP); logouts and rechecks rely on it",
				zap.String("instance", id), zap.Duration("offset", offset.Round(time.Second)))
		}
		return false
	}
	return now.Sub(pr.changed) > keepFor(pr.beat)
}

// vanish keeps the peers whose records are no longer listed (a storage
// that lost its data, a record another instance deleted) as gone, with
// their last claims, for as long as those count: what they spent still
// counts at WeCom.
func (p *peers) vanish(listed map[string]bool, now time.Time, keepFor func(beat) time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, pr := range p.m {
		if listed[id] {
			continue
		}
		pr.vanished = true
		if now.Sub(pr.changed) > keepFor(pr.beat) {
			delete(p.m, id)
		}
	}
}

// keepFor is how long a record that stopped moving is kept: forgetAfter,
// or as long as what it claims to have spent may still count at WeCom
// (its window, after the writer may have gone on spending: Hold).
func (s *State) keepFor(b beat) time.Duration {
	return max(forgetAfter, b.longestWindow()+s.Hold()+s.Interval())
}

// live tells whether the peer's heartbeat moved within limit of now.
func (pr *peer) live(now time.Time, limit time.Duration) bool {
	return !pr.beat.Left && !pr.vanished && now.Sub(pr.changed) <= limit
}

// Instances is the number of live instances sharing the storage, this one
// included: those whose heartbeat changed within the last few polls.
func (s *State) Instances() int {
	now, limit := s.now(), deadAfter*s.Interval()
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	n := 1
	for _, pr := range s.peers.m {
		if pr.live(now, limit) {
			n++
		}
	}
	return n
}

// ID names this instance in heartbeats.
func (s *State) ID() string { return s.id }
