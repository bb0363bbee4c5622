package wecomauth

// Session tokens: the key ring (configured or generated and kept in
// storage), the binding of every token to the app or review account that
// issued it, the cache of opened tokens, and issuing new ones.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/internal/cluster"
	"github.com/wecomgate/wecomgate/module/internal/session"
)

// generatedKeyName is where an instance keeps the session key it generated
// when none is configured. Every instance that shares the storage reads the
// same one, so a cluster accepts each other's sessions with no setup.
const generatedKeyName = "wecomgate/session_key"

// loadRing builds the key ring from configured keys or, without any, from
// the key kept in Caddy's storage.
func loadRing(ctx context.Context, cl *cluster.Member, configured []string) (*session.Ring, error) {
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
	k, err := storedKey(ctx, cl)
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
func storedKey(ctx context.Context, cl *cluster.Member) ([]byte, error) {
	b, err := cl.Secret(ctx, generatedKeyName, func() []byte {
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

// maxCachedTokens bounds the opened-token cache (both generations).
const maxCachedTokens = 1 << 16

// principal is an opened session token. Tokens are presented again and
// again, so each is decrypted once and its derived values kept.
type principal struct {
	claims  session.Claims
	corp    *corp  // the corp whose app the token is bound to; nil for review sessions
	userKey string // key of the user's facts
	// asIssued is what the token itself says of the user: the login that
	// issued it checked them.
	asIssued *fact
}

func newPrincipal(c session.Claims, corp *corp) *principal {
	key := ""
	if corp != nil {
		key = userKey(corp, c.UserID)
	}
	asIssued := &fact{checkedAt: c.Checked(), value: &userFacts{
		status: 1, name: c.Name, nameEsc: url.PathEscape(c.Name), depts: c.Departments, deptIDs: splitInts(c.Departments),
	}}
	if c.Unchecked {
		// Nothing to rely on: checked long ago, as far as this token says.
		asIssued = &fact{value: &userFacts{}}
	}
	return &principal{claims: c, corp: corp, userKey: key, asIssued: asIssued}
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
// expired at now. A cached token was opened, and its binding checked, by
// this handler's ring, so a hit checks only the expiry.
func (p *principals) open(ring *boundRing, token string, now time.Time) (*principal, error) {
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
	c, corp, err := ring.open(token, now)
	if err != nil {
		return nil, err
	}
	pr = newPrincipal(c, corp)
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

// issue seals a fresh session for id. Every sign-in gets a new token, so a
// token planted before sign-in is worth nothing after it.
func (h *Handler) issue(id *identity) (string, session.Claims, error) {
	now := h.now()
	if !id.Review {
		if at, ok := h.cluster.Latest(cluster.UserEnded, userSubject(id.CorpID, id.UserID)); ok && !now.Truncate(time.Second).After(at) &&
			at.Before(now.Add(skewTolerance)) {
			// The user's sessions were ended this very second: a token
			// issued after that must not count as one of them (issue
			// times are in seconds). Not for an end far in this clock's
			// future (its writer's clock ahead): the user waits for it.
			now = at.Add(time.Second)
		}
	}
	c := session.Claims{
		UserID: id.UserID, CorpID: id.CorpID, Corp: id.Corp,
		Name: id.Name, Departments: id.Departments, Review: id.Review,
		IssuedAt: now, ExpiresAt: now.Add(time.Duration(h.SessionTTL)),
	}
	if !id.checkedAt.IsZero() && id.checkedAt.Before(now) {
		c.CheckedAt = id.checkedAt
	}
	c.SessionKey = id.sessionKey
	tok, sid, err := h.ring.Seal(&c)
	if errors.Is(err, session.ErrTooLarge) {
		// A name or department list too long to carry: the token goes
		// without them, and an instance that has not seen the user asks
		// WeCom at its first request. This one has them cached.
		h.logger.Warn("user facts too large for a session token; issued without them",
			zap.String("corp", id.Corp), zap.Int("name_bytes", len(id.Name)), zap.Int("department_bytes", len(id.Departments)))
		c.Name, c.Departments, c.Unchecked = "", "", true
		tok, sid, err = h.ring.Seal(&c)
	}
	c.ID = sid
	return tok, c, err
}

// sessionBinding makes a token binding whose hint is derived from public
// alone: the hint travels in every token in the clear, and one derived from
// the secret's hash would let anyone holding a token test guesses of a weak
// secret offline. What must not be revealed goes in private, which only
// GCM under the session key checks.
func sessionBinding(public, private string) session.Binding {
	sum := sha256.Sum256([]byte("wecomgate session binding\x00" + public))
	return session.Binding{Hint: binary.BigEndian.Uint32(sum[:4]), Data: []byte(private)}
}

// boundRing seals and opens one handler's session tokens, each bound
// (session.Binding) to what issued it: a corp session to the corp's WeCom
// app (corp id and a hash of the secret), a review session to its review
// account (see reviewAccount). Sites that share the generated key but use
// two apps of one corp thus refuse each other's tokens, as a forged token
// is refused; a new secret ends the corp's sessions; instances, reloads and
// handlers with the same corp accept them, whatever other corps they
// configure.
//
// The binding is chosen before decrypting, from the token's clear hint (a
// hash of the corp id, or of "review"): a token costs one decryption however
// many corps there are, rather than one per corp. Only a 32-bit hint
// collision between two configured corp ids (or one and review), or several
// review accounts, costs more. The check happens once per token:
// principals caches the result.
type boundRing struct {
	ring   *session.Ring
	byID   map[string]*corp // the handler's corps by corp id (shared, read-only)
	review *review          // nil without a review block
	byHint map[uint32][]bindingFor
}

// bindingFor is one binding a token may have been sealed with: of a corp's
// app, or (corp nil) of a review account.
type bindingFor struct {
	binding session.Binding
	corp    *corp
	account *reviewAccount
}

func newBoundRing(ring *session.Ring, byID map[string]*corp, rv *review) *boundRing {
	r := &boundRing{ring: ring, byID: byID, review: rv, byHint: map[uint32][]bindingFor{}}
	for _, c := range byID {
		r.byHint[c.binding.Hint] = append(r.byHint[c.binding.Hint], bindingFor{binding: c.binding, corp: c})
	}
	if rv != nil {
		for _, a := range rv.accounts {
			r.byHint[a.binding.Hint] = append(r.byHint[a.binding.Hint], bindingFor{binding: a.binding, account: a})
		}
	}
	return r
}

// Seal seals c bound to its review account or to the app of the corp it
// names.
func (r *boundRing) Seal(c *session.Claims) (string, session.ID, error) {
	if c.Review {
		name, _ := strings.CutPrefix(c.UserID, reviewUserPrefix)
		if r.review == nil || r.review.accounts[name] == nil {
			return "", session.ID{}, fmt.Errorf("sealing a review session for %q: no such review account", name)
		}
		return r.ring.Seal(c, r.review.accounts[name].binding)
	}
	corp := r.byID[c.CorpID]
	if corp == nil {
		return "", session.ID{}, fmt.Errorf("sealing a session for corp id %q: no such corp configured", c.CorpID)
	}
	return r.ring.Seal(c, corp.binding)
}

// Open opens a token sealed for one of this handler's corps or review
// accounts.
func (r *boundRing) Open(token string, now time.Time) (session.Claims, error) {
	c, _, err := r.open(token, now)
	return c, err
}

// open is Open that also returns the corp the token is bound to (nil for
// review sessions).
func (r *boundRing) open(token string, now time.Time) (session.Claims, *corp, error) {
	hint, err := session.HintOf(token)
	if err != nil {
		return session.Claims{}, nil, err
	}
	// Nothing here has this hint: to this handler the token is as good as
	// forged (say, of a corp that is no longer configured).
	err = session.ErrForged
	for _, b := range r.byHint[hint] {
		var c session.Claims
		c, err = r.ring.Open(token, now, b.binding)
		if errors.Is(err, session.ErrForged) {
			continue // perhaps another binding of the same hint
		}
		if err == nil && !b.sealedAs(&c) {
			// Authentic but not what Seal makes for this binding: only
			// another program holding the key could have made it.
			return session.Claims{}, nil, session.ErrMalformed
		}
		return c, b.corp, err
	}
	return session.Claims{}, nil, err
}

// sealedAs reports whether c is what Seal makes with this binding.
func (b bindingFor) sealedAs(c *session.Claims) bool {
	if b.corp != nil {
		return !c.Review && c.CorpID == b.corp.id
	}
	return c.Review && c.UserID == reviewUserPrefix+b.account.name
}
