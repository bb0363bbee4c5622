package session

import (
	"encoding/binary"
	"errors"
	"time"
)

// Claims travel as a compact binary record rather than JSON: tokens ride in
// every request header, and a third of their size is saved this way.
//
//	flags(1) | issued unix(uvarint) | lifetime s(uvarint) | 5 × (len uvarint | bytes)

const flagReview = 1

var errShort = errors.New("short claims")

func appendClaims(b []byte, c *Claims) []byte {
	var flags byte
	if c.Review {
		flags |= flagReview
	}
	b = append(b, flags)
	iat := c.IssuedAt.Unix()
	b = binary.AppendUvarint(b, uint64(iat))
	b = binary.AppendUvarint(b, uint64(max(c.ExpiresAt.Unix()-iat, 0)))
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
	c.Review = b[0]&flagReview != 0
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
