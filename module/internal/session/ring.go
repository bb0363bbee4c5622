package session

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"time"
)

const (
	// KeySize is the length of a session key: AES-256.
	KeySize = 32

	// version 2 added the binding hint; version 1 tokens no longer open.
	version    = 2
	kidSize    = 4
	hintSize   = 4
	nonceSize  = 12
	adSize     = 1 + kidSize + hintSize // the header before the nonce
	headerSize = adSize + nonceSize
	tagSize    = 16

	// maxTokenLen bounds the work an attacker can cause with a huge header.
	maxTokenLen = 2048
)

var b64 = base64.RawURLEncoding

// Ring holds the keys that open tokens; the first one also seals them.
// Keeping retired keys in the ring lets an operator rotate without logging
// anyone out. A Ring is safe for concurrent use.
type Ring struct {
	keys []ringKey
}

type ringKey struct {
	id   uint32
	aead cipher.AEAD
}

// NewRing builds a ring from raw 32-byte keys, the sealing key first.
func NewRing(keys ...[]byte) (*Ring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("session: at least one key is required")
	}
	r := &Ring{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("session: key %d is %d bytes, want %d", i+1, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("session: key %d: %w", i+1, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("session: key %d: %w", i+1, err)
		}
		id := KeyID(k)
		for _, prev := range r.keys {
			if prev.id == id {
				return nil, fmt.Errorf("session: key %d repeats an earlier key", i+1)
			}
		}
		r.keys = append(r.keys, ringKey{id: id, aead: aead})
	}
	return r, nil
}

// NewKey returns a fresh random key.
func NewKey() []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		panic("session: no randomness: " + err.Error()) // crypto/rand never fails on supported platforms
	}
	return k
}

// KeyID derives the public identifier of a key. It is a hash prefix, so it
// tells nothing about the key but lets Open pick the right one at once.
func KeyID(key []byte) uint32 {
	sum := sha256.Sum256(append([]byte("wecomgate session key id\x00"), key...))
	return binary.BigEndian.Uint32(sum[:kidSize])
}

// Seal encrypts c under the ring's first key, bound to b: only Open with
// the same binding opens the token. c.ID is ignored and the token's own ID
// is returned.
func (r *Ring) Seal(c *Claims, b Binding) (string, ID, error) {
	k := r.keys[0]
	plain := appendClaims(make([]byte, 0, 96), c)

	// The additional data is b.Data followed by the header, so the token is
	// laid out right after b.Data in one buffer and the additional data is
	// a prefix of it: no second allocation to join them. The header's fixed
	// length at the end keeps the concatenation unambiguous.
	d := len(b.Data)
	buf := make([]byte, d+headerSize, d+headerSize+len(plain)+tagSize)
	copy(buf, b.Data)
	hdr := buf[d:]
	hdr[0] = version
	binary.BigEndian.PutUint32(hdr[1:], k.id)
	binary.BigEndian.PutUint32(hdr[1+kidSize:], b.Hint)
	nonce := hdr[adSize:headerSize]
	var id ID
	if _, err := rand.Read(nonce); err != nil {
		return "", id, fmt.Errorf("session: nonce: %w", err)
	}
	copy(id[:], nonce)
	buf = k.aead.Seal(buf, nonce, plain, buf[:d+adSize])
	tok := buf[d:]
	if b64.EncodedLen(len(tok)) > maxTokenLen {
		return "", id, fmt.Errorf("%w (%d bytes of claims)", ErrTooLarge, len(plain))
	}
	return b64.EncodeToString(tok), id, nil
}

// HintOf reads the binding hint of a token without opening it, so that the
// caller can choose the binding to open it with. The hint is not yet
// authenticated: Open checks it.
func HintOf(token string) (uint32, error) {
	// The header before the nonce encodes to whole characters (adSize is a
	// multiple of 3, which the array length below enforces), so they decode
	// alone.
	const n = adSize / 3 * 4
	var _ [0]struct{} = [adSize % 3]struct{}{}
	if len(token) < n {
		return 0, ErrMalformed
	}
	var hdr [adSize]byte
	if m, err := b64.Decode(hdr[:], []byte(token[:n])); err != nil || m != adSize || hdr[0] != version {
		return 0, ErrMalformed
	}
	return binary.BigEndian.Uint32(hdr[1+kidSize:]), nil
}

// Open authenticates and decodes token, refusing it if it expired before now
// or was sealed with another binding than b (ErrForged, as if tampered with:
// a token of another binding is no credential here).
func (r *Ring) Open(token string, now time.Time, b Binding) (Claims, error) {
	var c Claims
	if len(token) > maxTokenLen || len(token) < b64.EncodedLen(headerSize+tagSize) {
		return c, ErrMalformed
	}
	// Decoded after a copy of b.Data, for the additional data (see Seal).
	d := len(b.Data)
	buf := make([]byte, d+b64.DecodedLen(len(token)))
	copy(buf, b.Data)
	n, err := b64.Decode(buf[d:], []byte(token))
	raw := buf[d : d+n]
	// Decode skips CR and LF, so the decoded length is checked too.
	if err != nil || len(raw) < headerSize+tagSize || raw[0] != version {
		return c, ErrMalformed
	}
	kid := binary.BigEndian.Uint32(raw[1:])
	var aead cipher.AEAD
	for i := range r.keys {
		if r.keys[i].id == kid {
			aead = r.keys[i].aead
			break
		}
	}
	if aead == nil {
		return c, ErrUnknownKey
	}
	if binary.BigEndian.Uint32(raw[1+kidSize:]) != b.Hint {
		return c, ErrForged // GCM would refuse it too; this saves the work
	}
	nonce := raw[adSize:headerSize]
	plain, err := aead.Open(raw[headerSize:headerSize], nonce, raw[headerSize:], buf[:d+adSize])
	if err != nil {
		return c, ErrForged
	}
	if err := decodeClaims(plain, &c); err != nil {
		// Authentic but unreadable: only a key shared with another program
		// or a future version could produce it.
		return c, ErrMalformed
	}
	copy(c.ID[:], nonce)
	if !now.Before(c.ExpiresAt) {
		return c, ErrExpired
	}
	return c, nil
}
