package wecomauth

// The corp's directory as the allow-lists need it: the departments below an
// allowed one (department/simplelist) and who a tag holds (tag/get). Like
// user facts these are WeCom's answers, about the app that asks: cached per
// app for `recheck`, asked once per department or tag however many users
// wait, shared by the instances through storage, and served for
// `stale_grace` while WeCom cannot answer (SPEC §3a, §6b; facts.go).

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

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
	v, err := h.directoryFact(ctx, c, h.shared.deptKind, dirKey(c, "department", root), func(ctx context.Context) (any, error) {
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
	v, err := h.directoryFact(ctx, c, h.shared.tagKind, dirKey(c, "tag", id), func(ctx context.Context) (any, error) {
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

// directoryFact is the lookup of one directory answer (facts.go).
func (h *Handler) directoryFact(ctx context.Context, c *corp, kind *factKind, key string, ask func(context.Context) (any, error)) (any, error) {
	f, err := h.lookup(ctx, &factQuery{
		kind: kind, corp: c, key: key, prio: priorityOf(ctx), ask: ask,
		changed: func(at time.Time) bool { return h.directoryChangedSince(c.id, at) },
	})
	if err != nil {
		return nil, err
	}
	return f.value, nil
}

// tagJSON is a tag's members in storage.
type tagJSON struct {
	Users []string `json:"u,omitempty"`
	Depts []int64  `json:"d,omitempty"`
}

func encodeTree(v any) ([]byte, error) {
	tree := v.(map[int64]bool)
	ids := make([]int64, 0, len(tree))
	for id := range tree {
		ids = append(ids, id)
	}
	return json.Marshal(ids)
}

func decodeTree(b []byte) (any, error) {
	var ids []int64
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, err
	}
	tree := make(map[int64]bool, len(ids))
	for _, id := range ids {
		tree[id] = true
	}
	return tree, nil
}

func encodeTag(v any) ([]byte, error) {
	s := v.(*tagSet)
	out := tagJSON{Depts: s.depts}
	for u := range s.users {
		out.Users = append(out.Users, u)
	}
	return json.Marshal(out)
}

func decodeTag(b []byte) (any, error) {
	var in tagJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, err
	}
	s := &tagSet{users: make(map[string]bool, len(in.Users)), depts: in.Depts}
	for _, u := range in.Users {
		s.users[u] = true
	}
	return s, nil
}
