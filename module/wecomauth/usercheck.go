package wecomauth

// The user check: what WeCom last said about a session's user, when to ask
// again (recheck), what to do while WeCom cannot answer (stale_grace and a
// pause after a failed attempt), and the one user/get shared by every
// request that waits for it.

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

// defaultCallBudget bounds a user/get made on behalf of waiting requests;
// the client's own per-attempt timeouts and retries fit inside it.
const defaultCallBudget = 15 * time.Second

// defaultLoginBudget bounds a sign-in's WeCom time in all (token, code
// exchange, user/get, directory): a slow WeCom must not hold a login for
// half a minute; the client gets 503 and tries again with a fresh code.
const defaultLoginBudget = 8 * time.Second

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

// userFacts is what WeCom said about a user (the value of a user's fact,
// facts.go), shared by every handler of the same API base and, through
// storage, by the instances.
type userFacts struct {
	notAllowed bool // 60011 / 60111: outside the app's visible range, or gone
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

// checkUser admits a session's user on what WeCom said within `recheck`
// (here, by another instance, or at the token's login), asks WeCom again
// when that is older, and while WeCom cannot answer keeps admitting users
// checked within `stale_grace` (facts.go).
func (h *Handler) checkUser(ctx context.Context, corp *corp, p *principal, now time.Time) (*identity, *denial) {
	floor := p.asIssued
	if seen := h.seenIssued(&p.claims, now); floor.checkedAt.After(seen) {
		// Its issuer's clock runs ahead: the check counts from when this
		// instance first saw the token.
		early := *floor
		early.checkedAt = seen
		floor = &early
	}
	f, err := h.lookup(ctx, h.userQuery(corp, p.claims.UserID, floor, prioRecheck))
	if err != nil {
		return nil, fromWeCom(err)
	}
	return h.admit(withPriority(ctx, prioRecheck), corp, p.claims.UserID, f)
}

// userQuery is the lookup of what WeCom says of a user.
func (h *Handler) userQuery(corp *corp, userID string, floor *fact, p priority) *factQuery {
	return &factQuery{
		kind: h.shared.userKind, corp: corp, key: userKey(corp, userID), floor: floor, prio: p,
		changed: func(at time.Time) bool { return h.userChangedSince(corp.id, userID, at) },
		ask:     func(ctx context.Context) (any, error) { return h.askUser(ctx, corp, userID, p) },
	}
}

// askUser is one user/get. "Not allowed" answers are facts too. Those
// not made for a sign-in are rechecks, counted by outcome.
func (h *Handler) askUser(ctx context.Context, corp *corp, userID string, p priority) (any, error) {
	u, err := h.shared.client.GetUser(ctx, corp.credentials(), userID)
	var f *userFacts
	outcome := "ok"
	switch {
	case err == nil:
		f = &userFacts{status: u.Status, name: u.Name, nameEsc: url.PathEscape(u.Name),
			depts: joinInts(u.Department), deptIDs: u.Department}
		if u.Status != 1 {
			outcome = "denied"
		}
	case wecom.KindOf(err) == wecom.KindUserNotAllowed:
		f, outcome, err = &userFacts{notAllowed: true}, "denied", nil
	default:
		outcome = "unavailable"
	}
	if p != prioLogin {
		metrics.rechecks.WithLabelValues(outcome).Inc()
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// userFactsJSON is a user's fact in storage.
type userFactsJSON struct {
	NotAllowed bool    `json:"n,omitempty"`
	Status     int     `json:"s,omitempty"`
	Name       string  `json:"m,omitempty"`
	Depts      []int64 `json:"d,omitempty"`
}

func encodeUser(v any) ([]byte, error) {
	u := v.(*userFacts)
	return json.Marshal(userFactsJSON{NotAllowed: u.notAllowed, Status: u.status, Name: u.name, Depts: u.deptIDs})
}

func decodeUser(b []byte) (any, error) {
	var u userFactsJSON
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, err
	}
	return &userFacts{notAllowed: u.NotAllowed, status: u.Status, name: u.Name, nameEsc: url.PathEscape(u.Name),
		depts: joinInts(u.Depts), deptIDs: u.Depts}, nil
}

// admit applies the corp's policy to what is known of a user. WeCom
// decides first (SPEC §3a): outside the visible range or not active never
// passes, whatever the lists say, and costs no department or tag call.
func (h *Handler) admit(ctx context.Context, corp *corp, userID string, uf *fact) (*identity, *denial) {
	f := uf.value.(*userFacts)
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
		Departments: f.depts, deptIDs: f.deptIDs, checkedAt: uf.checkedAt}, nil
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

type priorityKey struct{}

// withPriority marks ctx with the budget priority of the WeCom calls made
// for it (the department and tag lookups of an admission).
func withPriority(ctx context.Context, p priority) context.Context {
	return context.WithValue(ctx, priorityKey{}, p)
}

func priorityOf(ctx context.Context) priority {
	if p, ok := ctx.Value(priorityKey{}).(priority); ok {
		return p
	}
	return prioRecheck
}
