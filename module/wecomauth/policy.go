package wecomauth

// Policy: who of the users WeCom admits may pass here (the corp's
// allow-lists), and where review sessions may go.

import (
	"net/http"
	"net/url"
	"path"
	"strings"
)

// admits applies the corp's allow-lists. departments is comma-separated.
func (c *corp) admits(userID, departments string) bool {
	if c.users != nil && !c.users[userID] {
		return false
	}
	if c.depts == nil {
		return true
	}
	for d := range strings.SplitSeq(departments, ",") {
		if c.depts[d] {
			return true
		}
	}
	return false
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
