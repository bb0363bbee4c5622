package wecomauth

// What this handler shares with the other instances on Caddy's storage
// (package cluster): ended sessions and users, users and directories that
// changed in WeCom, and the secrets the gateway generates for itself.

import (
	"context"
	"strings"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/cluster"
	"github.com/wecomgate/wecomgate/module/internal/session"
)

// publishWait bounds how long a logout or a revoke waits for storage; the
// event holds here at once, and a write that does not finish in time is
// retried at every poll.
const publishWait = 2 * time.Second

// skewTolerance is how far in the future a token's issue time may be (its
// issuer's clock ahead of this one's) before this instance stops taking
// the issuer's word for when the token was issued.
const skewTolerance = 30 * time.Second

// userSubject names a user in events: WeCom userids are case-insensitive.
func userSubject(corpID, userID string) string { return corpID + "\x00" + strings.ToLower(userID) }

// ended tells whether a session was ended: its own logout, or an end of
// every session of its user issued until then (SPEC §4, §4a, §6a).
func (h *Handler) ended(c *session.Claims) bool {
	if _, ok := h.cluster.Latest(cluster.SessionEnded, string(c.ID[:])); ok {
		return true
	}
	if c.Review {
		return false
	}
	at, ok := h.cluster.Latest(cluster.UserEnded, userSubject(c.CorpID, c.UserID))
	if !ok {
		return false
	}
	// A token from an instance whose clock runs ahead counts as issued
	// when this instance first saw it, if that is earlier.
	issued := c.IssuedAt
	if seen := h.seenIssued(c, h.now()); seen.Before(issued) {
		issued = seen
	}
	return !issued.After(at)
}

// endSession ends one session everywhere (logout).
func (h *Handler) endSession(ctx context.Context, c *session.Claims) {
	ctx, cancel := context.WithTimeout(ctx, publishWait)
	defer cancel()
	h.cluster.Publish(ctx, cluster.Event{Kind: cluster.SessionEnded, Subject: string(c.ID[:]),
		At: h.now(), Expires: c.ExpiresAt})
}

// endUserSessions ends every session of a user issued up to now, on every
// instance within a poll (a deleted user, an admin's revoke). The user may
// sign in again if WeCom still lets them.
func (h *Handler) endUserSessions(ctx context.Context, corpID, userID string) error {
	now := h.now()
	ctx, cancel := context.WithTimeout(ctx, publishWait)
	defer cancel()
	// Second resolution (tokens carry their issue time in seconds): a
	// token of this very second counts as issued before.
	at := now.Truncate(time.Second)
	h.cluster.Publish(ctx, cluster.Event{Kind: cluster.UserEnded, Subject: userSubject(corpID, userID),
		At: at, Expires: at.Add(longestSessionTTL(h) + skewTolerance + time.Second)})
	h.shared.users.Delete(h.userKeyByID(corpID, userID))
	return nil
}

// longestSessionTTL is the longest session_ttl of the handlers running:
// a user's end must outlive every token of theirs, whichever site issued it.
func longestSessionTTL(h *Handler) time.Duration {
	ttl := time.Duration(h.SessionTTL)
	for _, g := range liveHandlers() {
		ttl = max(ttl, time.Duration(g.SessionTTL))
	}
	return ttl
}

// recheckUser makes every instance ask WeCom about the user at their next
// request: what they knew was learnt before the change.
func (h *Handler) recheckUser(ctx context.Context, corpID, userID string) error {
	now := h.now()
	ctx, cancel := context.WithTimeout(ctx, publishWait)
	defer cancel()
	h.cluster.Publish(ctx, cluster.Event{Kind: cluster.UserChanged, Subject: userSubject(corpID, userID),
		At: now, Expires: now.Add(h.factLife())})
	return nil
}

// dropDirectory makes every instance ask WeCom again for the corp's
// department trees and tag members.
func (h *Handler) dropDirectory(ctx context.Context, corpID string) error {
	now := h.now()
	ctx, cancel := context.WithTimeout(ctx, publishWait)
	defer cancel()
	h.cluster.Publish(ctx, cluster.Event{Kind: cluster.DirectoryChanged, Subject: corpID,
		At: now, Expires: now.Add(h.factLife())})
	return nil
}

// factLife is how long a WeCom answer can matter: after recheck it is
// asked again, and within stale_grace it still serves while WeCom is down.
func (h *Handler) factLife() time.Duration {
	return time.Duration(h.Recheck) + time.Duration(h.StaleGrace)
}

// userChangedSince tells whether the user changed in WeCom after checked.
func (h *Handler) userChangedSince(corpID, userID string, checked time.Time) bool {
	at, ok := h.cluster.Latest(cluster.UserChanged, userSubject(corpID, userID))
	return ok && !checked.After(at)
}

// directoryChangedSince tells whether the corp's directory changed after
// fetched.
func (h *Handler) directoryChangedSince(corpID string, fetched time.Time) bool {
	at, ok := h.cluster.Latest(cluster.DirectoryChanged, corpID)
	return ok && !fetched.After(at)
}

// userKeyByID is the user-facts key of a user of the corp with corpID, as
// this handler's corp configures it ("" when none does).
func (h *Handler) userKeyByID(corpID, userID string) string {
	for _, c := range h.corps {
		if c.id == corpID {
			return userKey(c, userID)
		}
	}
	return ""
}

// seenIssued is when this instance first saw a token whose issue time is
// in its future (its issuer's clock runs ahead): the token's life and its
// user's recheck are counted from then, by this instance's clock.
func (h *Handler) seenIssued(c *session.Claims, now time.Time) time.Time {
	future := c.IssuedAt.After(now.Add(skewTolerance))
	if !future && !h.shared.sawFuture.Load() {
		return c.IssuedAt
	}
	key := string(c.ID[:])
	if v, ok := h.shared.futureTokens.Get(key); ok {
		return v.(time.Time) // first seen in the future: so it stays
	}
	if !future {
		return c.IssuedAt
	}
	h.shared.sawFuture.Store(true)
	// Kept until the token's own expiry has passed on this clock too (the
	// cache expires by the machine's clock), so that the cap holds to the
	// end. (The cluster's heartbeats warn about the clocks.)
	h.shared.futureTokens.Set(key, now, c.ExpiresAt.Sub(now)+time.Minute)
	return now
}
