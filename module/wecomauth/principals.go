package wecomauth

import (
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/wecomgate/wecomgate/module/session"
)

// maxCachedTokens bounds the opened-token cache (both generations).
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

func newPrincipal(c session.Claims, corp *corp) *principal {
	key := ""
	if corp != nil {
		key = userKey(corp, c.UserID)
	}
	return &principal{
		claims:  c,
		userKey: key,
		asIssued: &userFacts{
			checkedAt: c.IssuedAt, status: 1,
			name: c.Name, nameEsc: url.PathEscape(c.Name), depts: c.Departments,
		},
	}
}

// principals caches opened tokens of one key ring. A reload builds a new
// ring and with it a new cache, so a token is never trusted on a key that
// was dropped. It keeps two generations: when the current map is full it
// becomes the previous one, and a hit there moves back, so live sessions
// stay cached however many there are while stale ones age out.
type principals struct {
	mu        sync.RWMutex
	cur, prev map[string]*principal
}

func newPrincipals() *principals {
	return &principals{cur: make(map[string]*principal)}
}

// open returns the principal of a token that opens with ring and has not
// expired at now; corpOf finds the configured corp a token names (nil for
// review sessions and corps no longer configured).
func (p *principals) open(ring *session.Ring, corpOf func(corpID string) *corp, token string, now time.Time) (*principal, error) {
	p.mu.RLock()
	pr, current := p.cur[token]
	if pr == nil {
		pr = p.prev[token]
	}
	p.mu.RUnlock()
	if pr != nil {
		if !now.Before(pr.claims.ExpiresAt) {
			return nil, session.ErrExpired
		}
		if !current {
			p.store(token, pr)
		}
		return pr, nil
	}
	c, err := ring.Open(token, now)
	if err != nil {
		return nil, err
	}
	pr = newPrincipal(c, corpOf(c.CorpID))
	p.store(token, pr)
	return pr, nil
}

func (p *principals) store(token string, pr *principal) {
	// The token is a slice of the request's header line (for a cookie,
	// perhaps a long one): keep a copy of just the token.
	token = strings.Clone(token)
	p.mu.Lock()
	if len(p.cur) >= maxCachedTokens/2 {
		p.prev, p.cur = p.cur, make(map[string]*principal, len(p.cur))
	}
	p.cur[token] = pr
	p.mu.Unlock()
}
