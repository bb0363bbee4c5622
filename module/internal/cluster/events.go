package cluster

// The event log. Every event is one record whose key says everything
// (kind, subject, cut-off, expiry), so an instance learns events by listing
// keys and never reads a value. Records sit in one folder per minute of
// the writer's clock:
//
//	wecomgate/events/<unix minute>/<kind>.<subject, base64url>.<at, unix ms>.<expires, unix s>
//
// A poll lists only the minutes around now (what is new), a starting
// instance lists every minute folder once, and a folder whose events have
// all expired is deleted as a whole. Nothing grows with the number of
// events ever written, and nothing is copied when one is added.

import (
	"context"
	"encoding/base64"
	"fmt"
	"hash/maphash"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"errors"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// Kind is what an event ends or makes stale.
type Kind byte

const (
	// SessionEnded: the session whose id is Subject is refused (a logout).
	SessionEnded Kind = 's'
	// UserEnded: every session of the user Subject issued at or before At
	// is refused (a deleted user, an admin's revoke).
	UserEnded Kind = 'u'
	// UserChanged: what WeCom said of the user Subject before At is not
	// to be trusted any more (update_user).
	UserChanged Kind = 'c'
	// DirectoryChanged: department trees and tag members of the corp
	// Subject learnt before At are not to be trusted any more.
	DirectoryChanged Kind = 'd'
)

// Event is one entry of the log.
type Event struct {
	Kind    Kind
	Subject string
	At      time.Time // the cut-off; for SessionEnded, when it was written
	// Expires is when nothing the event concerns can be alive any more
	// (for a session, its token's expiry): the record may go then.
	Expires time.Time
}

const eventsDir = Root + "/events"

// Margins for clocks that disagree between instances (SPEC §4 holds for
// instances whose clocks agree within windowBehind/windowAhead): a poll
// re-lists the minute folders this far around its own clock, and a record
// is deleted only deleteMargin after its expiry.
const (
	windowBehind = 5 * time.Minute
	windowAhead  = 2 * time.Minute
	deleteMargin = 5 * time.Minute
)

// keyIn is the event's record in the folder of a minute.
func (e Event) keyIn(minute string) string {
	return path.Join(eventsDir, minute, e.name())
}

func (e Event) name() string {
	return fmt.Sprintf("%c.%s.%d.%d", e.Kind, base64.RawURLEncoding.EncodeToString([]byte(e.Subject)),
		e.At.UnixMilli(), e.Expires.Unix())
}

func minuteName(t time.Time) string { return strconv.FormatInt(t.Unix()/60, 10) }

func parseEvent(name string) (Event, bool) {
	parts := strings.Split(name, ".")
	if len(parts) != 4 || len(parts[0]) != 1 {
		return Event{}, false
	}
	subject, err1 := base64.RawURLEncoding.DecodeString(parts[1])
	at, err2 := strconv.ParseInt(parts[2], 10, 64)
	exp, err3 := strconv.ParseInt(parts[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil {
		return Event{}, false
	}
	switch k := Kind(parts[0][0]); k {
	case SessionEnded, UserEnded, UserChanged, DirectoryChanged:
		return Event{Kind: k, Subject: string(subject), At: time.UnixMilli(at), Expires: time.Unix(exp, 0)}, true
	}
	return Event{}, false
}

// Publish records ev here at once and in storage for the others. A write
// that fails or takes longer than the caller's ctx is kept and retried at
// every poll until it is stored or the event has expired: an instance
// that took a logout never forgets it, whatever storage does meanwhile.
func (s *State) Publish(ctx context.Context, ev Event) {
	s.events.add(ev)
	st, _ := s.storage()
	minute := minuteName(s.now())
	key := ev.keyIn(minute)
	if st == nil {
		s.pending.putEvent(key, ev)
		return
	}
	if err := s.storeWithin(ctx, st, key, []byte("1")); err != nil {
		s.pending.putEvent(key, ev)
		s.logger.Warn("event not stored yet: kept, and retried at every poll", zap.String("kind", string(ev.Kind)), zap.Error(err))
		metrics.pending.Set(float64(s.pending.len()))
		return
	}
	s.buckets.saw(minute, ev.Expires, -1)
}

// storeWithin is st.Store bounded by ctx even for a storage that does not
// heed it (go-redis waits for its own read timeout unless told
// otherwise): the write goes on in the background, and a caller that gave
// up keeps it pending, so at worst it is written twice.
// At most storesInFlight such writes run at once: past that (a storage that
// hangs whatever the context says) events go straight to the retries.
func (s *State) storeWithin(ctx context.Context, st certmagic.Storage, key string, value []byte) error {
	select {
	case s.inFlight <- struct{}{}:
	default:
		return errors.New("storage writes still hanging; kept for the next poll")
	}
	done := make(chan error, 1)
	go func() {
		defer func() { <-s.inFlight }()
		// Bounded all the same: a storage that never answers must not
		// collect goroutines.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		done <- st.Store(ctx, key, value)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Latest is the newest cut-off of the events of kind about subject, and
// whether there is one.
func (s *State) Latest(kind Kind, subject string) (time.Time, bool) {
	return s.events.latest(kind, subject)
}

// load lists every minute folder: a starting instance, or one whose
// storage changed.
func (s *State) load(ctx context.Context, st certmagic.Storage, now time.Time) error {
	minutes, err := st.List(ctx, eventsDir, false)
	if err != nil && !notExist(err) {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, m := range minutes {
		g.Go(func() error { return s.readMinute(gctx, st, path.Base(m), now) })
	}
	return g.Wait()
}

// readRecent lists the minute folders around now, where new events land.
func (s *State) readRecent(ctx context.Context, st certmagic.Storage, now time.Time) error {
	first, last := now.Add(-windowBehind).Unix()/60, now.Add(windowAhead).Unix()/60
	for m := first; m <= last; m++ {
		if err := s.readMinute(ctx, st, strconv.FormatInt(m, 10), now); err != nil {
			return err
		}
	}
	return nil
}

func (s *State) readMinute(ctx context.Context, st certmagic.Storage, minute string, now time.Time) error {
	keys, err := st.List(ctx, path.Join(eventsDir, minute), false)
	if notExist(err) || (err == nil && len(keys) == 0) {
		return nil
	}
	if err != nil {
		return err
	}
	if s.buckets.count(minute) == len(keys) {
		return nil // records are only ever added, or the folder goes whole
	}
	var latest time.Time
	for _, k := range keys {
		ev, ok := parseEvent(path.Base(k))
		if !ok {
			continue
		}
		if ev.Expires.After(latest) {
			latest = ev.Expires
		}
		if ev.Expires.Add(deleteMargin).After(now) {
			s.events.add(ev)
		}
	}
	s.buckets.saw(minute, latest, len(keys))
	return nil
}

// upkeep, once a minute: folders whose events have all expired are
// deleted, folders nobody announced (a writer whose clock is far off) are
// read, and expired events leave the index.
func (s *State) upkeep(ctx context.Context, st certmagic.Storage, now time.Time) error {
	s.events.expire(now.Add(-deleteMargin))
	s.sweepFacts(st, now)
	minutes, err := st.List(ctx, eventsDir, false)
	if err != nil {
		if notExist(err) {
			return nil
		}
		return err
	}
	lo, hi := now.Add(-windowBehind).Unix()/60, now.Add(windowAhead).Unix()/60
	for _, m := range minutes {
		minute := path.Base(m)
		n, err := strconv.ParseInt(minute, 10, 64)
		if err != nil {
			continue
		}
		latest, known := s.buckets.latest(minute)
		switch {
		case !known:
			if n < lo || n > hi {
				s.logger.Warn("events written by an instance whose clock is far from this one's: keep the instances' clocks in sync (NTP)",
					zap.Duration("offset", time.Unix(n*60, 0).Sub(now).Round(time.Minute)))
			}
			if err := s.readMinute(ctx, st, minute, now); err != nil {
				return err
			}
		case latest.Add(deleteMargin).Before(now) && n < lo:
			if err := s.deleteMinute(ctx, st, minute, now); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteMinute removes a folder's records one by one (a storage may keep
// an index of a folder's entries, as the Redis one does, and orphan them
// if the folder alone were deleted), then the folder.
func (s *State) deleteMinute(ctx context.Context, st certmagic.Storage, minute string, now time.Time) error {
	dir := path.Join(eventsDir, minute)
	keys, err := st.List(ctx, dir, false)
	if err != nil && !notExist(err) {
		return err
	}
	for _, k := range keys {
		if ev, ok := parseEvent(path.Base(k)); ok && ev.Expires.Add(deleteMargin).After(now) {
			s.buckets.saw(minute, ev.Expires, -1)
			return nil // written late by a skewed instance: not yet
		}
		if err := st.Delete(ctx, k); err != nil && !notExist(err) {
			return err
		}
	}
	if err := st.Delete(ctx, dir); err != nil && !notExist(err) {
		return err
	}
	s.buckets.forget(minute)
	return nil
}

// republish writes every live event of the index into storage again: the
// storage lost them, or a reload named another storage.
func (s *State) republish(now time.Time) {
	minute := minuteName(now) // the current folder, read by every instance's next poll
	for _, ev := range s.events.all(now) {
		s.pending.putEvent(ev.keyIn(minute), ev)
	}
}

// index is the events in memory: sharded so that the request path, which
// looks up every session it sees, never queues behind a writer.
type index struct {
	seed   maphash.Seed
	shards [64]struct {
		sync.RWMutex
		m map[string]Event
	}
}

func newIndex() *index {
	x := &index{seed: maphash.MakeSeed()}
	for i := range x.shards {
		x.shards[i].m = map[string]Event{}
	}
	return x
}

func (x *index) shard(key string) *struct {
	sync.RWMutex
	m map[string]Event
} {
	return &x.shards[maphash.String(x.seed, key)%uint64(len(x.shards))]
}

func (x *index) add(ev Event) {
	key := string(ev.Kind) + ev.Subject
	sh := x.shard(key)
	sh.Lock()
	defer sh.Unlock()
	old, ok := sh.m[key]
	if ok {
		if old.At.After(ev.At) {
			ev.At = old.At
		}
		if old.Expires.After(ev.Expires) {
			ev.Expires = old.Expires
		}
	}
	sh.m[key] = ev
}

func (x *index) latest(kind Kind, subject string) (time.Time, bool) {
	key := string(kind) + subject
	sh := x.shard(key)
	sh.RLock()
	ev, ok := sh.m[key]
	sh.RUnlock()
	return ev.At, ok
}

func (x *index) expire(before time.Time) {
	for i := range x.shards {
		sh := &x.shards[i]
		sh.Lock()
		for k, ev := range sh.m {
			if ev.Expires.Before(before) {
				delete(sh.m, k)
			}
		}
		sh.Unlock()
	}
}

func (x *index) all(now time.Time) []Event {
	var out []Event
	for i := range x.shards {
		sh := &x.shards[i]
		sh.RLock()
		for _, ev := range sh.m {
			if ev.Expires.After(now) {
				out = append(out, ev)
			}
		}
		sh.RUnlock()
	}
	return out
}

func (x *index) len() int {
	n := 0
	for i := range x.shards {
		sh := &x.shards[i]
		sh.RLock()
		n += len(sh.m)
		sh.RUnlock()
	}
	return n
}

// bucketLog is what this instance knows of each minute folder: how many
// records it had when last listed, and the latest expiry among them.
type bucketLog struct {
	mu sync.Mutex
	m  map[string]bucket
}

type bucket struct {
	count  int
	latest time.Time
}

func newBucketLog() *bucketLog { return &bucketLog{m: map[string]bucket{}} }

// saw records a listing (count ≥ 0) or a record written or found
// (count < 0: the count is unknown, so the next listing parses again).
func (b *bucketLog) saw(minute string, latest time.Time, count int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	cur := b.m[minute]
	if latest.After(cur.latest) {
		cur.latest = latest
	}
	cur.count = count
	b.m[minute] = cur
}

func (b *bucketLog) count(minute string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if c, ok := b.m[minute]; ok {
		return c.count
	}
	return -1
}

func (b *bucketLog) latest(minute string) (time.Time, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c, ok := b.m[minute]
	return c.latest, ok
}

func (b *bucketLog) reset() {
	b.mu.Lock()
	b.m = map[string]bucket{}
	b.mu.Unlock()
}

func (b *bucketLog) forget(minute string) {
	b.mu.Lock()
	delete(b.m, minute)
	b.mu.Unlock()
}
