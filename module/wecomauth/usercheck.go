package wecomauth

// The user check: what WeCom last said about a session's user, when to ask
// again (recheck), what to do while WeCom cannot answer (stale_grace and a
// pause after a failed attempt), and the one user/get shared by every
// request that waits for it.

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

// defaultCallBudget bounds a user/get made on behalf of waiting requests;
// the client's own per-attempt timeouts and retries fit inside it.
const defaultCallBudget = 15 * time.Second

// defaultRecheckPause keeps a user's requests from each waiting on WeCom
// while it is down: after a failed recheck the last answer serves (within
// stale_grace) until this has passed since the attempt ended.
const defaultRecheckPause = 10 * time.Second

// badSession is the one answer for every token that does not pass: forged,
// expired, ended, of a corp or review account no longer configured. Telling
// them apart would tell a holder of a stolen token whether it is authentic.
func badSession() *denial {
	return unauthenticated("the session is invalid, has expired or has ended; sign in again")
}

// userFacts is what WeCom last said about a user, shared by every handler
// of the same API base.
type userFacts struct {
	checkedAt  time.Time // when WeCom answered
	retryAt    time.Time // after a failed recheck: don't ask again before this
	notAllowed bool      // 60011 / 60111: outside the app's visible range, or gone
	status     int
	name       string
	nameEsc    string  // name as X-WeCom-Name carries it
	depts      string  // comma-separated ids, as X-WeCom-Department carries them
	deptIDs    []int64 // the same, for the allow-lists
}

// check opens a session token and decides whether its holder may pass now.
func (h *Handler) check(ctx context.Context, token string) (*identity, *denial) {
	now := h.now()
	p, err := h.principals.open(h.ring, token, now)
	if err != nil {
		return nil, badSession()
	}
	c := &p.claims
	if h.ended(c) {
		return nil, badSession()
	}
	if seen := h.seenIssued(c, now); !seen.Equal(c.IssuedAt) && !now.Before(seen.Add(c.ExpiresAt.Sub(c.IssuedAt))) {
		return nil, badSession() // its life, counted by this instance's clock, is over
	}
	if c.Review {
		name, _ := strings.CutPrefix(c.UserID, reviewUserPrefix)
		if h.review == nil || !h.review.hasUser(name) {
			return nil, badSession()
		}
		return &identity{sid: c.ID, UserID: c.UserID, Name: name, Review: true, expiresAt: c.ExpiresAt}, nil
	}
	// The token's binding proved its corp id and app; a renamed corp's
	// sessions end all the same, as its name is in their headers.
	corp := p.corp
	if corp == nil || corp.name != c.Corp {
		return nil, badSession()
	}
	id, d := h.checkUser(ctx, corp, p, now)
	if id != nil {
		id.sid, id.expiresAt, id.sessionKey = c.ID, c.ExpiresAt, c.SessionKey
	}
	return id, d
}

// checkUser admits a session's user on what WeCom said within `recheck`,
// asks WeCom again when that is older, and while WeCom cannot answer keeps
// admitting users checked within `stale_grace`.
func (h *Handler) checkUser(ctx context.Context, corp *corp, p *principal, now time.Time) (*identity, *denial) {
	recheck, grace := time.Duration(h.Recheck), time.Duration(h.StaleGrace)
	userID := p.claims.UserID

	f := h.cachedFacts(p.userKey)
	if f == nil || f.checkedAt.Before(p.asIssued.checkedAt) {
		// The login that issued the token checked the user, later than
		// anything this instance knows.
		f = p.asIssued
		if seen := h.seenIssued(&p.claims, now); f.checkedAt.After(seen) {
			// Its issuer's clock runs ahead: the check counts from when
			// this instance first saw the token.
			early := *f
			early.checkedAt = seen
			f = &early
		}
	}
	if now.Sub(f.checkedAt) < recheck && !h.userChangedSince(corp.id, userID, f.checkedAt) {
		return h.admit(ctx, corp, userID, f)
	}

	if now.Before(f.retryAt) {
		return h.graceOrFail(ctx, corp, userID, f, now, unavailable(nil))
	}
	fresh, err := h.fetchUser(ctx, corp, userID)
	if err == nil {
		id, d := h.admit(ctx, corp, userID, fresh)
		outcome := "ok"
		if d != nil {
			outcome = "denied"
		}
		metrics.rechecks.WithLabelValues(outcome).Inc()
		return id, d
	}
	metrics.rechecks.WithLabelValues("unavailable").Inc()
	if cur := h.cachedFacts(p.userKey); cur != nil && cur.checkedAt.After(f.checkedAt) {
		// Another request got a newer answer meanwhile: that one stands.
		return h.admit(ctx, corp, userID, cur)
	}
	failed := *f
	// From when the attempt ended, not when the request came: a WeCom that
	// hangs for the whole call budget must not be asked again at once.
	failed.retryAt = h.now().Add(h.recheckPause)
	h.shared.users.Set(p.userKey, &failed, recheck+grace)
	return h.graceOrFail(ctx, corp, userID, f, now, fromWeCom(err))
}

func (h *Handler) graceOrFail(ctx context.Context, corp *corp, userID string, f *userFacts, now time.Time, fail *denial) (*identity, *denial) {
	if now.Sub(f.checkedAt) < time.Duration(h.StaleGrace) {
		return h.admit(ctx, corp, userID, f)
	}
	return nil, fail
}

func (h *Handler) cachedFacts(key string) *userFacts {
	if v, ok := h.shared.users.Get(key); ok {
		return v.(*userFacts)
	}
	return nil
}

// fetchUser asks WeCom about a user, once however many requests wait for
// the answer, and remembers it. "Not allowed" answers are facts too.
func (h *Handler) fetchUser(ctx context.Context, corp *corp, userID string) (*userFacts, error) {
	key := userKey(corp, userID)
	v, err, _ := h.shared.checks.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.callBudget)
		defer cancel()
		u, err := h.shared.client.GetUser(ctx, corp.credentials(), userID)
		now := h.now()
		var f *userFacts
		switch {
		case err == nil:
			f = &userFacts{checkedAt: now, status: u.Status, name: u.Name, nameEsc: url.PathEscape(u.Name),
				depts: joinInts(u.Department), deptIDs: u.Department}
		case wecom.KindOf(err) == wecom.KindUserNotAllowed:
			f = &userFacts{checkedAt: now, notAllowed: true}
		default:
			return nil, err
		}
		h.shared.users.Set(key, f, time.Duration(h.Recheck)+time.Duration(h.StaleGrace))
		return f, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*userFacts), nil
}

// admit applies the corp's policy to what is known of a user. WeCom
// decides first (SPEC §3a): outside the visible range or not active never
// passes, whatever the lists say, and costs no department or tag call.
func (h *Handler) admit(ctx context.Context, corp *corp, userID string, f *userFacts) (*identity, *denial) {
	switch {
	case f.notAllowed:
		return nil, userNotAllowed()
	case f.status != 1:
		return nil, userInactive()
	}
	ok, err := h.admits(ctx, corp.allow, corp, userID, f.deptIDs)
	switch {
	case err != nil && !ok:
		return nil, fromWeCom(err)
	case !ok:
		return nil, userNotAllowed()
	}
	return &identity{UserID: userID, CorpID: corp.id, Corp: corp.name, Name: f.name, nameEsc: f.nameEsc,
		Departments: f.depts, deptIDs: f.deptIDs, checkedAt: f.checkedAt}, nil
}

// splitInts reads comma-separated ids, as tokens carry departments.
func splitInts(s string) []int64 {
	var ids []int64
	for part := range strings.SplitSeq(s, ",") {
		if n, err := strconv.ParseInt(part, 10, 64); err == nil {
			ids = append(ids, n)
		}
	}
	return ids
}

func joinInts(ids []int64) string {
	var b []byte
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(b)
}
