package wecomauth

// Policy: who of the users WeCom admits may pass here (the corp's
// allow-lists), and where review sessions may go.

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

// allowList is who may pass by a corp's allow_users, allow_departments
// and allow_tags, or by a wecom_require's users, departments, tags and
// corps (SPEC §3a): anyone any one of its lists admits, the way WeCom builds
// an app's visible range (users ∪ departments ∪ tags). With no list at all
// it admits everyone WeCom reports visible and active.
type allowList struct {
	users map[string]bool // lower-case: WeCom userids are case-insensitive
	depts []int64         // these and all their sub-departments
	tags  []int64         // members: the tag's users, and its departments with theirs
	corps map[string]bool // configured corp names (wecom_require only)
}

func newAllowList(users []string, depts, tags []int64, corps []string) *allowList {
	a := &allowList{depts: slices.Clone(depts), tags: slices.Clone(tags)}
	if len(users) > 0 {
		a.users = make(map[string]bool, len(users))
		for _, u := range users {
			a.users[strings.ToLower(u)] = true
		}
	}
	if len(corps) > 0 {
		a.corps = make(map[string]bool, len(corps))
		for _, c := range corps {
			a.corps[c] = true
		}
	}
	return a
}

// validateLists checks allow-list entries as written, for a corp's
// allow_* lines (prefix "allow_") and wecom_require's (prefix ""), so both
// say the same thing about the same mistake.
func validateLists(prefix string, users []string, depts, tags []int64) error {
	for _, u := range users {
		if !wecom.ValidUserID(u) {
			return fmt.Errorf("%susers: %q is not a WeCom userid", prefix, u)
		}
	}
	for _, d := range depts {
		if d < 1 {
			return fmt.Errorf("%sdepartments: %d is not a department id", prefix, d)
		}
	}
	for _, t := range tags {
		if t < 1 {
			return fmt.Errorf("%stags: %d is not a tag id", prefix, t)
		}
	}
	return nil
}

// open reports whether the list has no condition, and so admits everyone.
func (a *allowList) open() bool {
	return len(a.users) == 0 && len(a.depts) == 0 && len(a.tags) == 0 && len(a.corps) == 0
}

// admits applies a to a user of corp c in departments depts. Conditions
// that need no WeCom answer come first; a department tree or tag that
// WeCom cannot give (and that is older than stale_grace) is an error only
// if nothing else admits the user.
func (h *Handler) admits(ctx context.Context, a *allowList, c *corp, userID string, depts []int64) (bool, error) {
	lower := strings.ToLower(userID)
	if a.open() || a.users[lower] || a.corps[c.name] {
		return true, nil
	}
	var undecided error
	for _, d := range a.depts {
		ok, err := h.inSubtree(ctx, c, d, depts)
		if ok {
			return true, nil
		}
		undecided = cmp.Or(undecided, err)
	}
	for _, t := range a.tags {
		m, err := h.tagMembers(ctx, c, t)
		if err != nil {
			undecided = cmp.Or(undecided, err)
			continue
		}
		if m.users[lower] {
			return true, nil
		}
		for _, d := range m.depts {
			ok, err := h.inSubtree(ctx, c, d, depts)
			if ok {
				return true, nil
			}
			undecided = cmp.Or(undecided, err)
		}
	}
	return false, undecided
}

// inSubtree reports whether any of depts is root or below it.
func (h *Handler) inSubtree(ctx context.Context, c *corp, root int64, depts []int64) (bool, error) {
	if len(depts) == 0 {
		return false, nil
	}
	tree, err := h.subtree(ctx, c, root)
	if err != nil {
		return false, err
	}
	for _, d := range depts {
		if tree[d] {
			return true, nil
		}
	}
	return false, nil
}

// authorizePath confines review sessions to their allowed paths.
func (h *Handler) authorizePath(id *identity, r *http.Request) *denial {
	if !id.Review || (canonicalPath(r.URL) && h.review.allows(r)) {
		return nil
	}
	return reviewForbidden()
}

// canonicalPath reports whether a path reads the same to every server. The
// allow patterns judge the cleaned path but the backend gets the path as
// sent, so a review session may only send paths for which every server
// agrees on what they name. Refused:
//   - dot segments, doubled slashes, a path not starting with "/";
//   - any percent-escape, of "%" itself too (%252e decodes twice to "."
//     on servers that decode again): review paths are plain;
//   - characters some servers take as separators or stream names: "\" on
//     IIS, ";" on Java servers, ":" for NTFS's ::$DATA, NUL;
//   - anything but printable ASCII: overlong UTF-8 and look-alike dots
//     (U+2025, U+FF0E) that some servers fold to ".";
//   - segments ending in "." or " ", which Windows servers drop (".. ",
//     "...", "admin." all name something else there).
func canonicalPath(u *url.URL) bool {
	p := u.Path
	if u.RawPath != "" || p == "" || p[0] != '/' {
		return false
	}
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`%\;:`, c) >= 0 {
			return false
		}
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		if strings.HasSuffix(seg, ".") || strings.HasSuffix(seg, " ") {
			return false
		}
	}
	clean := path.Clean(p)
	if p != "/" && strings.HasSuffix(p, "/") {
		clean += "/"
	}
	return clean == p
}

// rejudge applies this handler's corps and allow-lists to an identity an
// earlier wecom_auth of the same request established (SPEC §3a, last
// paragraph): a corp it does not configure is refused, and so is a user
// its lists do not admit; a review session must be on one of its review
// paths.
func (h *Handler) rejudge(r *http.Request, est *established) *denial {
	id := est.id
	if id.Review {
		if h.review == nil || !h.review.hasUser(strings.TrimPrefix(id.UserID, reviewUserPrefix)) {
			return reviewForbidden()
		}
		return h.authorizePath(id, r)
	}
	c := h.corpByID[id.CorpID]
	if c == nil {
		return corpNotAllowed()
	}
	ok, err := h.admits(r.Context(), c.allow, c, id.UserID, id.deptIDs)
	switch {
	case err != nil && !ok:
		return fromWeCom(err)
	case !ok:
		return userNotAllowed()
	}
	return nil
}
