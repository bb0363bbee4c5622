package wecomauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/session"
)

// generatedKeyName is where an instance keeps the session key it generated
// when none is configured. Every instance that shares the storage reads the
// same one, so a cluster accepts each other's sessions with no setup.
const (
	generatedKeyName = "wecomgate/session_key"
	generatedKeyLock = "wecomgate_session_key"
)

// loadRing builds the key ring from configured keys or, without any, from
// the key kept in Caddy's storage.
func loadRing(ctx caddy.Context, configured []string) (*session.Ring, error) {
	if len(configured) > 0 {
		keys := make([][]byte, 0, len(configured))
		for i, s := range configured {
			k, err := decodeKey(s)
			if err != nil {
				return nil, fmt.Errorf("key %d: %w", i+1, err)
			}
			keys = append(keys, k)
		}
		return session.NewRing(keys...)
	}
	k, err := storedKey(ctx)
	if err != nil {
		return nil, err
	}
	return session.NewRing(k)
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil {
			if len(k) != session.KeySize {
				return nil, fmt.Errorf("decodes to %d bytes; want %d (generate one with: openssl rand -base64 32)", len(k), session.KeySize)
			}
			return k, nil
		}
	}
	return nil, errors.New("not base64 (generate one with: openssl rand -base64 32)")
}

// storedKey loads the generated key, creating it under a storage lock so
// that two instances starting at once agree on one key.
func storedKey(ctx caddy.Context) ([]byte, error) {
	st := ctx.Storage()
	if k, err := loadStoredKey(ctx, st); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	if err := st.Lock(ctx, generatedKeyLock); err != nil {
		return nil, fmt.Errorf("locking storage: %w", err)
	}
	defer func() { _ = st.Unlock(ctx, generatedKeyLock) }()

	if k, err := loadStoredKey(ctx, st); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err // another instance won the race
	}
	k := session.NewKey()
	if err := st.Store(ctx, generatedKeyName, []byte(base64.StdEncoding.EncodeToString(k))); err != nil {
		return nil, fmt.Errorf("storing generated key: %w", err)
	}
	ctx.Logger().Info("generated a session key and stored it", zap.String("name", generatedKeyName))
	return k, nil
}

func loadStoredKey(ctx context.Context, st certmagic.Storage) ([]byte, error) {
	b, err := st.Load(ctx, generatedKeyName)
	if err != nil {
		return nil, err
	}
	k, err := decodeKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("stored key %s: %w", generatedKeyName, err)
	}
	return k, nil
}
