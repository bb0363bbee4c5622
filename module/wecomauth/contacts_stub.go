// TEMPORARY: replaced by cluster.go's implementation at merge.
//
// endUserSessions, recheckUser and dropDirectory are the cluster-wide
// operations of the cluster-state work (per-user revocation shared through
// storage, user facts and directory caches dropped on every instance).
// Until they land, these do what one instance can do alone, so that the
// callbacks and the admin API work on a single instance and their tests
// run. Delete this file when cluster.go provides the three methods.

package wecomauth

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/patrickmn/go-cache"

	"github.com/wecomgate/wecomgate/module/internal/session"
)

// endUserSessions ends the user's sessions that the handlers of this
// process have opened (their principals caches) through the revocation
// list, which other instances read within its poll interval. A session
// this process has never seen presented is NOT ended: the real
// implementation revokes by user, not by session.
func (h *Handler) endUserSessions(ctx context.Context, corpID, userID string) error {
	type victim struct {
		rv  *revocations
		id  session.ID
		exp time.Time
	}
	var found []victim
	for _, g := range liveHandlers() {
		g.principals.mu.RLock()
		for _, m := range []map[string]*principal{g.principals.cur, g.principals.prev} {
			for _, p := range m {
				c := &p.claims
				if !c.Review && c.CorpID == corpID && strings.EqualFold(c.UserID, userID) {
					found = append(found, victim{g.revoked, c.ID, c.ExpiresAt})
				}
			}
		}
		g.principals.mu.RUnlock()
	}
	var errs []error
	for _, v := range found {
		if v.rv.has(v.id) {
			continue
		}
		errs = append(errs, v.rv.revoke(ctx, v.id, v.exp))
	}
	h.logger.Warn("ending a user's sessions: this build ends only the sessions this instance has seen (per-user revocation across instances is not merged yet)",
		zap.String("corp_id", corpID), zap.String("userid", userID), zap.Int("sessions", len(found)))
	return errors.Join(errs...)
}

// recheckUser asks WeCom about the user now, for every app of the corp
// this process serves, so that the answer outranks what the user's tokens
// say (a token carries its login's check). Other instances are not told.
func (h *Handler) recheckUser(ctx context.Context, corpID, userID string) error {
	seen := map[string]bool{}
	var errs []error
	for _, g := range liveHandlers() {
		for _, c := range g.corps {
			key := g.sharedKey + "\x00" + c.app
			if c.id != corpID || seen[key] {
				continue
			}
			seen[key] = true
			g.shared.users.Delete(userKey(c, userID))
			if _, err := g.fetchUser(ctx, c, userID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// dropDirectory drops this process's cached department trees and tag
// members of the corp (every app of it). Other instances are not told.
func (h *Handler) dropDirectory(_ context.Context, corpID string) error {
	seen := map[*cache.Cache]bool{}
	for _, g := range liveHandlers() {
		dir := g.shared.directory
		if seen[dir] {
			continue
		}
		seen[dir] = true
		for key := range dir.Items() {
			if strings.HasPrefix(key, corpID+"/") {
				dir.Delete(key)
			}
		}
	}
	return nil
}
