package wecomauth

// The credential step: the one credential a request presents (a Bearer
// token first, then the session cookie, else an inline login's code), how
// it becomes an identity, and how the gateway's token is taken out before
// the request goes on.

import (
	"net/http"
	"strings"
)

// authenticate finds the request's credential and turns it into an
// identity. For an inline login it also returns the new token.
func (h *Handler) authenticate(r *http.Request, inline inlineLogin) (*identity, string, *denial) {
	tok, present, d := h.credential(r)
	if d != nil {
		return nil, "", d
	}
	if present {
		id, d := h.check(r.Context(), tok)
		return id, "", d
	}
	if inline.code == "" {
		return nil, "", unauthenticated("sign in first: send a session token or a code")
	}
	id, d := h.signIn(r, "inline", func() (*identity, string, *denial) {
		id, d := h.loginWithCode(r, inline.code, inline.corp)
		return id, inline.corp, d
	})
	if d != nil {
		h.burnCode(inline.code)
		return nil, "", d
	}
	tok, c, err := h.issue(id)
	if err != nil {
		return nil, "", internalError(err)
	}
	id.sid = c.ID
	return id, tok, nil
}

// credential returns the session token a request presents. A Bearer
// token comes first; the cookie is read only without one, so a mini program
// (which keeps no cookies) and a browser each have one way in.
func (h *Handler) credential(r *http.Request) (token string, present bool, d *denial) {
	if auth := r.Header["Authorization"]; len(auth) > 0 {
		if len(auth) > 1 {
			return "", false, unauthenticated("more than one Authorization header")
		}
		if tok, ok := bearer(r.Header); ok {
			return tok, true, nil
		}
		// Another scheme (e.g. Basic for the backend) is not ours to judge.
	}
	return sessionCookie(r.Header["Cookie"], h.CookieName)
}

// sessionCookie finds the session cookie in Cookie header lines without
// parsing every cookie into an http.Cookie.
func sessionCookie(lines []string, name string) (token string, present bool, d *denial) {
	for _, line := range lines {
		for line != "" {
			var pair string
			pair, line, _ = strings.Cut(line, ";")
			k, v, ok := cookiePair(pair)
			if !ok || k != name {
				continue
			}
			if present {
				return "", false, unauthenticated("more than one session cookie")
			}
			token, present = strings.Trim(v, `"`), true
		}
	}
	return token, present, nil
}

// cookiePair splits one name=value pair of a Cookie header, trimming blanks
// around the name as Go's and most backends' cookie parsers do, so that
// `wecom_session =x` is recognised here exactly as a backend would read it.
func cookiePair(pair string) (name, value string, ok bool) {
	name, value, ok = strings.Cut(pair, "=")
	return strings.TrimSpace(name), strings.TrimSpace(value), ok
}

// bearer returns the token of a single "Authorization: Bearer" header.
func bearer(h http.Header) (string, bool) {
	vals := h["Authorization"]
	if len(vals) != 1 {
		return "", false
	}
	scheme, tok, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// removeToken takes the gateway's session out of Authorization and Cookie
// so the backend never sees it; the backend's own cookies stay.
func (h *Handler) removeToken(r *http.Request) {
	removeToken(r, h.CookieName, func(string) bool { return true })
}

// removeToken takes a Bearer token that ours accepts out of Authorization
// and the cookie named cookieName out of Cookie.
func removeToken(r *http.Request, cookieName string, ours func(token string) bool) {
	if tok, ok := bearer(r.Header); ok && ours(tok) {
		delete(r.Header, "Authorization") // the key bearer read: no need to canonicalise again
	}
	cookies := r.Header.Values("Cookie")
	if len(cookies) == 0 {
		return
	}
	var kept []string
	found := false
	for _, line := range cookies {
		for part := range strings.SplitSeq(line, ";") {
			if name, _, _ := cookiePair(part); name == cookieName {
				found = true
				continue
			}
			if p := strings.TrimSpace(part); p != "" {
				kept = append(kept, p)
			}
		}
	}
	if !found {
		return
	}
	if len(kept) == 0 {
		r.Header.Del("Cookie")
		return
	}
	r.Header.Set("Cookie", strings.Join(kept, "; "))
}

func validCookieName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, c) {
			return false
		}
	}
	return true
}
