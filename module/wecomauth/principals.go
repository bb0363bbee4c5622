package wecomauth

import (
	"net/url"
	"sync"
	"time"

	"github.com/wecomgate/wecomgate/module/session"
)

// maxCachedTokens bounds the opened-token cache; past it the cache starts
// over, which costs one decryption per live session.
const maxCachedTokens = 1 << 16

// principal is an opened session token. Tokens are presented again and
// again, so each is decrypted once and its derived values kept.
type principal struct {
	claims  session.Claims
	userKey string // key of the user's facts
	// asIssued is what the token itself says of the user: the login that
	// issued it checked them.
	asIssued *userFacts
}

func newPrincipal(c session.Claims) *principal {
	return &principal{
		claims:  c,
		userKey: userKey(c.CorpID, c.UserID),
		asIssued: &userFacts{
			checkedAt: c.IssuedAt, status: 1,
			name: c.Name, nameEsc: url.PathEscape(c.Name), depts: c.Departments,
		},
	}
}

// principals caches opened tokens of one key ring. A reload builds a new
// ring and with it a new cache, so a token is never trusted on a key that
// was dropped.
type principals struct {
	mu sync.RWMutex
	m  map[string]*principal
}

func newPrincipals() *principals {
	return &principals{m: make(map[string]*principal)}
}

// open returns the principal of a token that opens with ring and has not
// expired at now.
func (p *principals) open(ring *session.Ring, token string, now time.Time) (*principal, error) {
	p.mu.RLock()
	pr := p.m[token]
	p.mu.RUnlock()
	if pr != nil {
		if !now.Before(pr.claims.ExpiresAt) {
			p.mu.Lock()
			delete(p.m, token)
			p.mu.Unlock()
			return nil, session.ErrExpired
		}
		return pr, nil
	}
	c, err := ring.Open(token, now)
	if err != nil {
		return nil, err
	}
	pr = newPrincipal(c)
	p.mu.Lock()
	if len(p.m) >= maxCachedTokens {
		p.m = make(map[string]*principal)
	}
	p.m[token] = pr
	p.mu.Unlock()
	return pr, nil
}
