package cluster

// Secrets the gateway generates for itself (the session key, assertion
// keys), and the marker that tells a storage which lost its data (a Redis
// without persistence, restarted) from one that kept it. Running instances
// put back what they hold into an emptied storage, so that an instance
// starting afterwards joins the cluster instead of splitting it.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

const markerKey = Root + "/cluster/marker"

// Secret loads the secret stored under name, creating it with generate
// under a storage lock so that instances starting at once agree on one
// value; the State keeps it to put back if the storage loses it.
func (s *State) Secret(ctx context.Context, name string, generate func() []byte) ([]byte, error) {
	st, _ := s.storage()
	if st == nil {
		return nil, fmt.Errorf("no storage for %s", name)
	}
	b, err := loadOrCreate(ctx, st, name, generate, s.logger)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.kept[name] = b
	s.mu.Unlock()
	return b, nil
}

func loadOrCreate(ctx context.Context, st certmagic.Storage, name string, generate func() []byte, logger *zap.Logger) ([]byte, error) {
	if b, err := st.Load(ctx, name); err == nil || !notExist(err) {
		return b, err
	}
	lock := strings.ReplaceAll(name, "/", "_")
	if err := st.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("locking storage: %w", err)
	}
	defer func() { _ = st.Unlock(context.WithoutCancel(ctx), lock) }()

	if b, err := st.Load(ctx, name); err == nil || !notExist(err) {
		return b, err // another instance won the race
	}
	b := generate()
	if err := st.Store(ctx, name, b); err != nil {
		return nil, fmt.Errorf("storing generated %s: %w", name, err)
	}
	logger.Info("generated a secret and stored it", zap.String("name", name))
	return b, nil
}

// ensureMarker writes the marker if the storage has none. During polls
// (seen), a missing marker means the storage lost everything since this
// instance last looked: the instance writes back its secrets and events.
func (s *State) ensureMarker(ctx context.Context, st certmagic.Storage, seen bool) error {
	b, err := st.Load(ctx, markerKey)
	if err != nil && !notExist(err) {
		return err
	}
	s.mu.Lock()
	mine := s.marker
	s.mu.Unlock()
	if err == nil {
		s.mu.Lock()
		s.marker = string(b)
		s.mu.Unlock()
		if !seen || mine == "" || mine == string(b) {
			return nil
		}
		// Another instance noticed the wipe first and wrote a new
		// marker: this one still has to put back what it holds.
	} else {
		var id [8]byte
		_, _ = rand.Read(id[:])
		v := hex.EncodeToString(id[:])
		if err := st.Store(ctx, markerKey, []byte(v)); err != nil {
			return err
		}
		s.mu.Lock()
		s.marker = v
		s.mu.Unlock()
		if !seen {
			return nil
		}
	}
	now := s.now()
	s.logger.Warn("the storage lost wecomgate's data (a Redis without persistence restarted?); writing back this instance's secrets and events: enable persistence, or set session_key")
	s.mu.Lock()
	kept := make(map[string][]byte, len(s.kept))
	for k, v := range s.kept {
		kept[k] = v
	}
	s.mu.Unlock()
	for name, want := range kept {
		got, err := loadOrCreate(ctx, st, name, func() []byte { return want }, s.logger)
		if err != nil {
			s.pending.put(name, want, now.AddDate(100, 0, 0))
			continue
		}
		if !bytes.Equal(got, want) {
			s.logger.Error("an instance started while the storage was empty and generated another secret; restart this instance to share it", zap.String("name", name))
		}
	}
	s.buckets.reset() // every folder is new again
	s.republish(now)
	return nil
}
