package session

import (
	"encoding/binary"
	"errors"
	"time"
)

// Claims travel as a compact binary record rather than JSON: tokens ride in
// every request header, and a third of their size is saved this way.
//
//	flags(1) | issued unix(uvarint) | lifetime s(uvarint) | [check age s(uvarint)] | [session key(16)] | 5 × (len uvarint | bytes)
//
// The check age is there only with flagCheckedEarlier and the session key
// only with flagSessionKey, so tokens sealed before they existed open
// unchanged.

const (
	flagReview         = 1
	flagCheckedEarlier = 2 // the user was checked before the token was issued
	flagUnchecked      = 4 // the token carries no user facts to rely on
	flagSessionKey     = 8 // the token carries WeCom's session_key
)

// SessionKeySize is the size of WeCom's session_key (AES-128).
const SessionKeySize = 16

var errShort = errors.New("short claims")

func appendClaims(b []byte, c *Claims) []byte {
	var flags byte
	iat := c.IssuedAt.Unix()
	age := int64(0)
	if !c.CheckedAt.IsZero() {
		age = max(iat-c.CheckedAt.Unix(), 0)
	}
	if c.Review {
		flags |= flagReview
	}
	if age > 0 {
		flags |= flagCheckedEarlier
	}
	if c.Unchecked {
		flags |= flagUnchecked
	}
	if len(c.SessionKey) == SessionKeySize {
		flags |= flagSessionKey
	}
	b = append(b, flags)
	b = binary.AppendUvarint(b, uint64(iat))
	b = binary.AppendUvarint(b, uint64(max(c.ExpiresAt.Unix()-iat, 0)))
	if age > 0 {
		b = binary.AppendUvarint(b, uint64(age))
	}
	if flags&flagSessionKey != 0 {
		b = append(b, c.SessionKey...)
	}
	for _, s := range [...]string{c.UserID, c.CorpID, c.Corp, c.Name, c.Departments} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeClaims(b []byte, c *Claims) error {
	if len(b) < 1 {
		return errShort
	}
	flags := b[0]
	c.Review = flags&flagReview != 0
	c.Unchecked = flags&flagUnchecked != 0
	b = b[1:]
	iat, n := binary.Uvarint(b)
	if n <= 0 {
		return errShort
	}
	b = b[n:]
	life, n := binary.Uvarint(b)
	if n <= 0 {
		return errShort
	}
	b = b[n:]
	c.IssuedAt = time.Unix(int64(iat), 0)
	c.ExpiresAt = time.Unix(int64(iat+life), 0)
	if flags&flagCheckedEarlier != 0 {
		age, n := binary.Uvarint(b)
		if n <= 0 || age > iat {
			return errShort
		}
		b = b[n:]
		c.CheckedAt = time.Unix(int64(iat-age), 0)
	}
	if flags&flagSessionKey != 0 {
		if len(b) < SessionKeySize {
			return errShort
		}
		c.SessionKey = append([]byte(nil), b[:SessionKeySize]...)
		b = b[SessionKeySize:]
	}

	// One allocation for all strings: they are slices of a single copy.
	all := string(b)
	fields := [...]*string{&c.UserID, &c.CorpID, &c.Corp, &c.Name, &c.Departments}
	off := 0
	for _, f := range fields {
		l, n := binary.Uvarint(b[off:])
		if n <= 0 || l > uint64(len(b)-off-n) {
			return errShort
		}
		off += n
		*f = all[off : off+int(l)]
		off += int(l)
	}
	if off != len(b) {
		return errors.New("trailing bytes")
	}
	return nil
}
