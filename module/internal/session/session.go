// Package session seals a signed-in user's identity into a short, opaque
// token and opens it again.
//
// A token is self-contained: the gateway keeps no session store, so any
// instance holding the same keys accepts it. Confidentiality and integrity
// come from AES-256-GCM (Go's standard library); this package only lays out
// the bytes.
//
// Layout, base64url without padding:
//
//	version(1) | key id(4) | binding hint(4) | nonce(12) | AES-GCM(claims) incl. tag(16)
//
// The binding's data, then version, key id and hint, are authenticated as
// additional data, so a token cannot be moved to another key, format or
// binding.
package session

import (
	"errors"
	"time"
)

// Claims is what a session token asserts about its holder.
type Claims struct {
	// ID identifies this token (its nonce) for revocation; unique per Seal.
	ID ID

	UserID string
	CorpID string // empty for review sessions
	Corp   string // configured corp name; empty for review sessions
	Name   string
	// Departments holds the WeCom department ids, comma-separated in
	// WeCom's order: the form the X-WeCom-Department header needs.
	Departments string
	Review      bool

	IssuedAt  time.Time
	ExpiresAt time.Time
	// CheckedAt is when WeCom confirmed the user, if before IssuedAt; zero
	// means at issue (see Checked). A replayed login code reuses an
	// earlier check, and its token must not pass for a newer one.
	CheckedAt time.Time
	// Unchecked marks a token that carries no usable user facts (they did
	// not fit): an instance that has none of its own asks WeCom first.
	Unchecked bool
	// SessionKey is WeCom's session_key of the login that issued the token
	// (SessionKeySize bytes), for decrypting wx.qy.getMobile's data; nil
	// when not carried. Sealed like the rest: no client can read it.
	SessionKey []byte
}

// Checked returns when WeCom confirmed the token's user.
func (c *Claims) Checked() time.Time {
	if c.CheckedAt.IsZero() || c.CheckedAt.After(c.IssuedAt) {
		return c.IssuedAt
	}
	return c.CheckedAt
}

// Binding ties a token to what it was issued for (for the gateway: one
// WeCom app, or review sign-in), so that one ring can serve several purposes
// and a token of one is worthless at another. Seal and Open must be given
// the same binding.
type Binding struct {
	// Hint travels in the token's clear header, so that the opener can pick
	// the binding before decrypting (see HintOf). It is public: derive it
	// from nothing secret. Different bindings may share a hint.
	Hint uint32
	// Data is authenticated but never sent: a token opens only with exactly
	// the Data it was sealed with.
	Data []byte
}

// ID names one issued token without revealing it.
type ID [nonceSize]byte

// Errors returned by Open. Callers answer all of them with 401; they differ
// only for logs and metrics.
var (
	ErrMalformed  = errors.New("session: malformed token")
	ErrUnknownKey = errors.New("session: token sealed with an unknown key")
	ErrForged     = errors.New("session: token failed authentication") // also: sealed with another binding
	ErrExpired    = errors.New("session: token expired")
)

// ErrTooLarge is returned by Seal when the claims do not fit a token.
var ErrTooLarge = errors.New("session: claims too large for a token")
