package wecomauth

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/session"
)

// generatedKeyName is where an instance keeps the session key it generated
// when none is configured. Every instance that shares the storage reads the
// same one, so a cluster accepts each other's sessions with no setup.
const generatedKeyName = "wecomgate/session_key"

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

// storedKey loads the generated session key, creating it if need be.
func storedKey(ctx caddy.Context) ([]byte, error) {
	b, err := storedSecret(ctx, generatedKeyName, func() []byte {
		return []byte(base64.StdEncoding.EncodeToString(session.NewKey()))
	})
	if err != nil {
		return nil, err
	}
	k, err := decodeKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("stored key %s: %w", generatedKeyName, err)
	}
	return k, nil
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
