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
	changed  time.Time // this instance's clock when value last changed
	warnedAt time.Time
}

func newPeers() *peers { return &peers{m: map[string]*peer{}} }

func (s *State) heartbeat(ctx context.Context, st certmagic.Storage, now time.Time) error {
	claimers := s.claimers()
	if !s.beaten && len(claimers) > 0 {
		// The first claims are made on a fresh view of the others, so
		// that a lone instance claims its whole share at once.
		if err := s.readPeers(ctx, st, now); err != nil {
			return err
		}
		peers := s.Peers()
		for _, c := range claimers {
			c.Read(now, peers, s.Quiet())
		}
	}
	own := encodeBeat(now, beat{Claims: s.claimsOf(now, claimers)})
	if err := st.Store(ctx, path.Join(instancesDir, s.id), own); err != nil {
		return err
	}
	s.beaten = true
	if err := s.readPeers(ctx, st, now); err != nil {
		return err
	}
	peers := s.Peers()
	for _, c := range claimers {
		c.Read(now, peers, s.Quiet())
	}
	return nil
}

// readPeers reads the others' heartbeats.
func (s *State) readPeers(ctx context.Context, st certmagic.Storage, now time.Time) error {
	keys, err := st.List(ctx, instancesDir, false)
	if err != nil && !notExist(err) { // none yet: the first instance's first look
		return err
	}
	seen := map[string]bool{}
	for _, k := range keys {
		id := path.Base(k)
		if id == s.id {
			continue
		}
		seen[id] = true
		b, err := st.Load(ctx, k)
		if err != nil {
			continue // gone meanwhile
		}
		v, bt, err := decodeBeat(b)
		if err != nil {
			continue
		}
		if forget := s.peers.saw(id, v, bt, now, s.Interval(), s.logger); forget {
			_ = st.Delete(ctx, k)
		}
	}
	s.peers.keepOnly(seen)
	return nil
}

// saw records a peer's value; it answers whether the record is so old that
// it should be deleted: forgetAfter, or as long as what it claims to have
// spent still counts at WeCom (after it could still spend, Quiet).
func (p *peers) saw(id string, value int64, b beat, now time.Time, interval time.Duration, logger *zap.Logger) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr, ok := p.m[id]
	if !ok {
		pr = &peer{value: value, beat: b, changed: now}
		p.m[id] = pr
		return false
	}
	if value != pr.value || b.Left != pr.beat.Left {
		pr.value, pr.beat, pr.changed = value, b, now
		// Written at most a poll ago by the writer's clock.
		offset := time.UnixMilli(value).Sub(now)
		if (offset > skewWarn || offset < -skewWarn-2*DefaultPoll) && now.Sub(pr.warnedAt) > 10*time.Minute {
			pr.warnedAt = now
			logger.Warn("another instance's clock is off from this one's: keep the instances' clocks in sync (NTP); logouts and rechecks rely on it",
				zap.String("instance", id), zap.Duration("offset", offset.Round(time.Second)))
		}
		return false
	}
	keep := max(forgetAfter, pr.beat.longestWindow()+(deadAfter+1)*interval)
	return now.Sub(pr.changed) > keep
}

func (p *peers) keepOnly(seen map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range p.m {
		if !seen[id] {
			delete(p.m, id)
		}
	}
}

// Instances is the number of live instances sharing the storage, this one
// included: those whose heartbeat changed within the last few polls.
func (s *State) Instances() int {
	now, limit := s.now(), deadAfter*s.Interval()
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	n := 1
	for _, pr := range s.peers.m {
		if !pr.beat.Left && now.Sub(pr.changed) <= limit {
			n++
		}
	}
	return n
}

// ID names this instance in heartbeats.
func (s *State) ID() string { return s.id }
