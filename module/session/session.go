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
//	version(1) | key id(4) | nonce(12) | AES-GCM(claims) incl. tag(16)
//
// The version and key id are authenticated as additional data, so a token
// cannot be moved to another key or format.
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
}

// ID names one issued token without revealing it.
type ID [nonceSize]byte

// Errors returned by Open. Callers answer all of them with 401; they differ
// only for logs and metrics.
var (
	ErrMalformed  = errors.New("session: malformed token")
	ErrUnknownKey = errors.New("session: token sealed with an unknown key")
	ErrForged     = errors.New("session: token failed authentication")
	ErrExpired    = errors.New("session: token expired")
)
