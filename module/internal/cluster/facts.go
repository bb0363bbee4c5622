package cluster

// Facts: small values with an expiry that instances share (what WeCom said
// of a user, a pause after a quota error). A fact is a cache: reading one
// that is missing, expired or unreadable is a miss, never an error to the
// request. A write that fails is retried at every poll until it succeeds or
// the fact has expired.

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

const factsDir = Root + "/facts"

// Fact returns the value stored under key and its expiry, or fs.ErrNotExist
// when there is none that is still valid.
func (s *State) Fact(ctx context.Context, key string) ([]byte, time.Time, error) {
	st, _ := s.storage()
	if st == nil {
		return nil, time.Time{}, fs.ErrNotExist
	}
	b, err := st.Load(ctx, path.Join(factsDir, key))
	if err != nil {
		return nil, time.Time{}, err
	}
	head, value, ok := bytes.Cut(b, []byte("\n"))
	ms, err := strconv.ParseInt(string(head), 10, 64)
	if !ok || err != nil {
		return nil, time.Time{}, fs.ErrNotExist
	}
	exp := time.UnixMilli(ms)
	if !exp.After(s.now()) {
		return nil, time.Time{}, fs.ErrNotExist
	}
	return value, exp, nil
}

// PutFact stores value under key until expires. It returns the storage's
// error for the caller to log, but the write is kept and retried either way.
func (s *State) PutFact(ctx context.Context, key string, value []byte, expires time.Time) error {
	name := path.Join(factsDir, key)
	b := append(strconv.AppendInt(nil, expires.UnixMilli(), 10), '\n')
	b = append(b, value...)
	st, _ := s.storage()
	if st == nil {
		s.pending.put(name, b, expires)
		return nil
	}
	if err := st.Store(ctx, name, b); err != nil {
		s.pending.put(name, b, expires)
		return err
	}
	s.pending.cancel(name)
	return nil
}

// sweepEvery is how often one instance of the cluster deletes expired
// facts (a fact is rewritten while it matters; the others would pile up:
// users who left, pauses long over).
const sweepEvery = time.Hour

const sweepFact = "cluster/facts-swept"

// sweepFacts deletes expired facts, on one instance an hour (the one that
// finds no recent sweep noted; two at once do no harm). It runs beside
// the poll: it reads every fact, which a poll must not wait for.
func (s *State) sweepFacts(st certmagic.Storage, now time.Time) {
	if !s.sweeping.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer s.sweeping.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		if _, _, err := s.Fact(ctx, sweepFact); err == nil {
			return
		}
		if err := s.PutFact(ctx, sweepFact, nil, now.Add(sweepEvery)); err != nil {
			return
		}
		keys, err := st.List(ctx, factsDir, true)
		if err != nil {
			return
		}
		deleted := 0
		for _, k := range keys {
			rel := strings.TrimPrefix(k, factsDir+"/")
			if _, _, err := s.Fact(ctx, rel); errors.Is(err, fs.ErrNotExist) {
				if st.Delete(ctx, k) == nil {
					deleted++
				}
			}
		}
		if deleted > 0 {
			s.logger.Debug("deleted expired facts", zap.Int("count", deleted))
		}
	}()
}

// DropFact deletes the fact under key (retried like a write).
func (s *State) DropFact(ctx context.Context, key string) error {
	name := path.Join(factsDir, key)
	st, _ := s.storage()
	if st == nil {
		s.pending.del(name, s.now().Add(time.Hour))
		return nil
	}
	if err := st.Delete(ctx, name); err != nil && !notExist(err) {
		s.pending.del(name, s.now().Add(time.Hour))
		return err
	}
	s.pending.cancel(name)
	return nil
}
