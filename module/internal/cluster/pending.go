package cluster

// Writes that storage refused or did not finish in time. They are kept,
// the latest per key, and retried at every poll until they succeed or what
// they carry has expired: a failed write to storage is never dropped.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
)

type pending struct {
	mu sync.Mutex
	m  map[string]write
}

type write struct {
	value  []byte // nil: a delete
	until  time.Time
	delete bool
	// event, for an event's record: written into the folder of the
	// minute of the retry, which every poll reads, not the folder of the
	// minute it was taken in (outside the polls' window after a long
	// outage).
	event *Event
}

func newPending() *pending { return &pending{m: map[string]write{}} }

func (p *pending) put(key string, value []byte, until time.Time) {
	p.mu.Lock()
	p.m[key] = write{value: value, until: until}
	p.mu.Unlock()
}

func (p *pending) putEvent(key string, ev Event) {
	p.mu.Lock()
	p.m[key] = write{value: []byte("1"), until: ev.Expires, event: &ev}
	p.mu.Unlock()
}

func (p *pending) del(key string, until time.Time) {
	p.mu.Lock()
	p.m[key] = write{until: until, delete: true}
	p.mu.Unlock()
}

// cancel forgets a pending write that a later one made moot.
func (p *pending) cancel(key string) {
	p.mu.Lock()
	delete(p.m, key)
	p.mu.Unlock()
}

func (p *pending) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m)
}

// flush retries every pending write, stopping at the first failure (the
// storage is still down: the rest wait for the next poll).
func (p *pending) flush(ctx context.Context, st certmagic.Storage, now time.Time) error {
	p.mu.Lock()
	todo := make(map[string]write, len(p.m))
	for k, w := range p.m {
		if w.until.Before(now) {
			delete(p.m, k)
			continue
		}
		todo[k] = w
	}
	p.mu.Unlock()
	for k, w := range todo {
		var err error
		if w.delete {
			if err = st.Delete(ctx, k); notExist(err) {
				err = nil
			}
		} else if w.event != nil {
			err = st.Store(ctx, w.event.keyIn(minuteName(now)), w.value)
		} else {
			err = st.Store(ctx, k, w.value)
		}
		if err != nil {
			return fmt.Errorf("retrying %d pending writes: %w", len(todo), err)
		}
		p.mu.Lock()
		if cur, ok := p.m[k]; ok && cur.delete == w.delete && string(cur.value) == string(w.value) {
			delete(p.m, k)
		}
		p.mu.Unlock()
		if ctx.Err() != nil {
			return errors.New("poll time spent; the remaining writes wait for the next poll")
		}
	}
	return nil
}
