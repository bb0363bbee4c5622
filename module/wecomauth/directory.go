package wecomauth

// The corp's directory as the allow-lists need it: the departments below an
// allowed one (department/simplelist) and who a tag holds (tag/get). Like
// user facts these are WeCom's answers, about the app that asks: cached per
// app for `recheck`, asked once per department or tag however many users
// wait, and served for `stale_grace` while WeCom cannot answer (SPEC §3a).

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

// dirFact is one cached directory answer: a department subtree
// (map[int64]bool) or a tag's members (*tagSet).
type dirFact struct {
	checkedAt time.Time
	retryAt   time.Time // after a failed refresh: not asked again before this
	value     any
}

// tagSet is what a tag admits: its users (lower-case) and departments.
type tagSet struct {
	users map[string]bool
	depts []int64
}

func dirKey(c *corp, kind string, id int64) string {
	return c.app + "\x00" + kind + "\x00" + strconv.FormatInt(id, 10)
}

// subtree returns department root and every department below it, as the
// app sees them; an unknown or invisible department is an empty tree.
func (h *Handler) subtree(ctx context.Context, c *corp, root int64) (map[int64]bool, error) {
	v, err := h.directoryFact(ctx, c, dirKey(c, "department", root), func(ctx context.Context) (any, error) {
		deps, err := h.shared.client.DepartmentTree(ctx, c.credentials(), root)
		if wecom.KindOf(err) == wecom.KindNotFound {
			return map[int64]bool{}, nil
		}
		if err != nil {
			return nil, err
		}
		tree := make(map[int64]bool, len(deps))
		for _, d := range deps {
			tree[d.ID] = true
		}
		return tree, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(map[int64]bool), nil
}

// tagMembers returns who tag id holds; an unknown tag holds nobody.
func (h *Handler) tagMembers(ctx context.Context, c *corp, id int64) (*tagSet, error) {
	v, err := h.directoryFact(ctx, c, dirKey(c, "tag", id), func(ctx context.Context) (any, error) {
		m, err := h.shared.client.Tag(ctx, c.credentials(), id)
		if wecom.KindOf(err) == wecom.KindNotFound {
			return &tagSet{}, nil
		}
		if err != nil {
			return nil, err
		}
		s := &tagSet{users: make(map[string]bool, len(m.UserIDs)), depts: m.Departments}
		for _, u := range m.UserIDs {
			s.users[strings.ToLower(u)] = true
		}
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tagSet), nil
}

// directoryFact returns the cached answer under key while it is younger
// than recheck, else asks WeCom (once for all who wait) and keeps the new
// answer. While WeCom fails, an answer younger than stale_grace serves, and
// WeCom is not asked again for a pause after each failed attempt.
func (h *Handler) directoryFact(ctx context.Context, c *corp, key string, fetch func(context.Context) (any, error)) (any, error) {
	recheck, grace := time.Duration(h.Recheck), time.Duration(h.StaleGrace)
	now := h.now()
	var last *dirFact
	if v, ok := h.shared.directory.Get(key); ok {
		last = v.(*dirFact)
		if now.Sub(last.checkedAt) < recheck && !h.directoryChangedSince(c.id, last.checkedAt) {
			return last.value, nil
		}
		if now.Before(last.retryAt) {
			return h.staleOr(last, now, unavailableErr)
		}
	}
	v, err, _ := h.shared.dirCalls.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.callBudget)
		defer cancel()
		val, err := fetch(ctx)
		if err != nil {
			return nil, err
		}
		f := &dirFact{checkedAt: h.now(), value: val}
		h.shared.directory.Set(key, f, recheck+grace)
		return f, nil
	})
	if err == nil {
		return v.(*dirFact).value, nil
	}
	// Pause before asking again, even with no answer to serve (a
	// department first listed while WeCom is down): every request would
	// otherwise wait the whole call budget. A newer answer stored by
	// another request meanwhile is kept.
	failed := &dirFact{}
	if last != nil {
		*failed = *last
	}
	if cur, ok := h.shared.directory.Get(key); ok && cur.(*dirFact).checkedAt.After(failed.checkedAt) {
		return cur.(*dirFact).value, nil
	}
	failed.retryAt = h.now().Add(h.recheckPause)
	h.shared.directory.Set(key, failed, recheck+grace)
	if last == nil {
		return nil, err
	}
	return h.staleOr(last, now, err)
}

// unavailableErr stands for "WeCom failed a moment ago": the pause after a
// failed refresh, with no answer young enough to serve.
var unavailableErr = &wecom.Error{Endpoint: "directory", Kind: wecom.KindTransient, Errmsg: "recently failed; not asked again yet"}

func (h *Handler) staleOr(f *dirFact, now time.Time, err error) (any, error) {
	if now.Sub(f.checkedAt) < time.Duration(h.StaleGrace) {
		return f.value, nil
	}
	return nil, err
}
