package wecomauth

// State shared through Caddy's storage by every instance: secrets the
// gateway generates for itself, and the revocation list that makes a logout
// hold everywhere.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/internal/session"
)

// Logout must end a session on every instance that shares Caddy's storage,
// though sessions themselves are stateless. Each logout writes a small
// record under revokedPrefix holding the token's expiry; every instance
// reads new records every poll interval (5 s) and deletes the ones whose token
// would have expired anyway, so the list stays as short as the live
// sessions that were logged out.
const (
	revokedPrefix         = "wecomgate/revoked"
	defaultRevocationPoll = 5 * time.Second
)

var revocationPool = caddy.NewUsagePool()

type revocations struct {
	storage certmagic.Storage
	logger  *zap.Logger

	// now is the clock of the handler that started the list; interval is
	// how often storage is read (a test may shorten it: SetRevocationPoll).
	now      func() time.Time
	interval atomic.Int64 // time.Duration

	// ids is replaced, never changed in place, so the request path reads
	// it without a lock.
	ids  atomic.Pointer[map[session.ID]int64] // → expiry, unix seconds
	mu   sync.Mutex                           // serialises writers of ids
	stop chan struct{}
	done chan struct{}
}

// attachRevocations returns the revocation list of ctx's storage, starting
// its poller if this is the first handler to use it.
func attachRevocations(ctx caddy.Context, now func() time.Time) (*revocations, string, error) {
	st := ctx.Storage()
	key := "revocations|" + storageName(st)
	val, _, err := revocationPool.LoadOrNew(key, func() (caddy.Destructor, error) {
		rv := &revocations{storage: st, logger: ctx.Logger().Named("revocations"), now: now,
			stop: make(chan struct{}), done: make(chan struct{})}
		rv.interval.Store(int64(defaultRevocationPoll))
		empty := map[session.ID]int64{}
		rv.ids.Store(&empty)
		rv.sync(context.Background())
		go rv.poll()
		return rv, nil
	})
	if err != nil {
		return nil, "", err
	}
	return val.(*revocations), key, nil
}

// storageName identifies a storage configuration; storages that cannot say
// who they are get a list of their own.
func storageName(st certmagic.Storage) string {
	if s, ok := st.(fmt.Stringer); ok {
		return fmt.Sprintf("%T:%s", st, s.String())
	}
	return fmt.Sprintf("%T:%p", st, st)
}

func (rv *revocations) has(id session.ID) bool {
	m := *rv.ids.Load()
	if len(m) == 0 {
		return false
	}
	_, ok := m[id]
	return ok
}

// revoke ends a session here at once and, through storage, everywhere else
// within the poll interval.
func (rv *revocations) revoke(ctx context.Context, id session.ID, expires time.Time) error {
	rv.add(map[session.ID]int64{id: expires.Unix()}, rv.now())
	err := rv.storage.Store(ctx, path.Join(revokedPrefix, hex.EncodeToString(id[:])),
		[]byte(strconv.FormatInt(expires.Unix(), 10)))
	if err != nil {
		return fmt.Errorf("storing revocation: %w", err)
	}
	return nil
}

// add merges new entries and drops expired ones in one copy.
func (rv *revocations) add(entries map[session.ID]int64, now time.Time) {
	rv.mu.Lock()
	defer rv.mu.Unlock()
	old := *rv.ids.Load()
	next := make(map[session.ID]int64, len(old)+len(entries))
	for id, exp := range old {
		if exp > now.Unix() {
			next[id] = exp
		}
	}
	for id, exp := range entries {
		next[id] = exp
	}
	rv.ids.Store(&next)
}

func (rv *revocations) poll() {
	defer close(rv.done)
	for {
		interval := time.Duration(rv.interval.Load())
		select {
		case <-rv.stop:
			return
		case <-time.After(interval):
			ctx, cancel := context.WithTimeout(context.Background(), interval)
			rv.sync(ctx)
			cancel()
		}
	}
}

// sync reads records this instance has not seen and deletes stale ones.
func (rv *revocations) sync(ctx context.Context) {
	keys, err := rv.storage.List(ctx, revokedPrefix, false)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			rv.logger.Warn("listing revocations", zap.Error(err))
		}
		rv.add(nil, rv.now())
		return
	}
	now := rv.now()
	known := *rv.ids.Load()
	fresh := map[session.ID]int64{}
	for _, key := range keys {
		var id session.ID
		raw, err := hex.DecodeString(path.Base(key))
		if err != nil || len(raw) != len(id) {
			continue
		}
		copy(id[:], raw)
		if _, ok := known[id]; ok {
			continue
		}
		val, err := rv.storage.Load(ctx, key)
		if err != nil {
			continue // deleted meanwhile by another instance
		}
		exp, err := strconv.ParseInt(string(val), 10, 64)
		if err != nil || exp <= now.Unix() {
			_ = rv.storage.Delete(ctx, key)
			continue
		}
		fresh[id] = exp
	}
	rv.add(fresh, now)
}

// Destruct implements caddy.Destructor.
func (rv *revocations) Destruct() error {
	close(rv.stop)
	<-rv.done
	return nil
}

// storedSecret loads a secret the gateway generates for itself, creating
// it under a storage lock so that two instances starting at once agree on
// one value. Every instance sharing the storage then uses the same.
func storedSecret(ctx caddy.Context, name string, generate func() []byte) ([]byte, error) {
	st := ctx.Storage()
	if b, err := st.Load(ctx, name); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	lock := strings.ReplaceAll(name, "/", "_")
	if err := st.Lock(ctx, lock); err != nil {
		return nil, fmt.Errorf("locking storage: %w", err)
	}
	defer func() { _ = st.Unlock(ctx, lock) }()

	if b, err := st.Load(ctx, name); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return b, err // another instance won the race
	}
	b := generate()
	if err := st.Store(ctx, name, b); err != nil {
		return nil, fmt.Errorf("storing generated %s: %w", name, err)
	}
	ctx.Logger().Info("generated a secret and stored it", zap.String("name", name))
	return b, nil
}
