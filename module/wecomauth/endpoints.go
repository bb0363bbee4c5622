package wecomauth

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// maxLoginBody bounds a login request body: a code and a corp name, or a
// review username and password, fit in far less.
const maxLoginBody = 4 << 10

// loginBodyTimeout bounds how long reading a login body may take: a client
// dripping a byte at a time must not hold a sign-in (and its place among
// the sign-ins in flight) for minutes. A variable for the tests.
var loginBodyTimeout = 10 * time.Second

// serveEndpoint answers the gateway's own endpoints (SPEC §4).
func (h *Handler) serveEndpoint(w http.ResponseWriter, r *http.Request, ep string) error {
	switch ep {
	case "login":
		return h.onlyMethod(w, r, http.MethodPost, h.serveLogin)
	case "review/login":
		if h.review == nil {
			return h.notFound(w, r)
		}
		return h.onlyMethod(w, r, http.MethodPost, h.serveReviewLogin)
	case "logout":
		return h.onlyMethod(w, r, http.MethodPost, h.serveLogout)
	case "session":
		return h.onlyMethod(w, r, http.MethodGet, h.serveSession)
	case "auth":
		return h.serveAuth(w, r)
	case "jwks.json":
		return h.onlyMethod(w, r, http.MethodGet, h.serveJWKS)
	case "decrypt":
		if h.Decrypt == "" {
			return h.notFound(w, r)
		}
		return h.onlyMethod(w, r, http.MethodPost, h.serveDecrypt)
	default:
		if name, ok := strings.CutPrefix(ep, "callback/"); ok {
			return h.serveCallback(w, r, name) // callback.go
		}
		return h.notFound(w, r)
	}
}

func (h *Handler) serveLogin(w http.ResponseWriter, r *http.Request) error {
	id, d := h.signIn(r, "code", func() (*identity, string, *denial) {
		var body struct {
			Code string `json:"code"`
			Corp string `json:"corp"`
		}
		if d := decodeBody(w, r, &body); d != nil {
			return nil, "", d
		}
		id, d := h.loginWithCode(r, body.Code, body.Corp)
		return id, body.Corp, d
	})
	if d != nil {
		return h.deny(w, r, d)
	}
	return h.signedIn(w, r, id)
}

func (h *Handler) serveReviewLogin(w http.ResponseWriter, r *http.Request) error {
	id, d := h.signIn(r, "review", func() (*identity, string, *denial) {
		var body struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if d := decodeBody(w, r, &body); d != nil {
			return nil, "", d
		}
		if body.Username == "" || body.Password == "" {
			return nil, "", invalidRequest("username and password are required")
		}
		if !h.review.verify(body.Username, body.Password) {
			return nil, "", unauthenticated("wrong username or password")
		}
		return &identity{UserID: reviewUserPrefix + body.Username, Name: body.Username, Review: true}, "", nil
	})
	if d != nil {
		return h.deny(w, r, d)
	}
	return h.signedIn(w, r, id)
}

// signedIn answers a successful sign-in with a fresh token, as JSON for the
// mini program and as a cookie for browsers.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request, id *identity) error {
	tok, c, err := h.issue(id)
	if err != nil {
		return h.deny(w, r, internalError(err))
	}
	ttl := int(c.ExpiresAt.Sub(h.now()).Seconds())
	http.SetCookie(w, &http.Cookie{
		Name: h.CookieName, Value: tok, Path: "/", MaxAge: ttl,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
	return writeJSON(w, http.StatusOK, signInAnswer{
		Token: tok, TokenType: "Bearer", ExpiresIn: ttl,
		UserID: id.UserID, CorpID: id.CorpID, Corp: id.Corp, Name: id.Name, Review: id.Review,
	})
}

// signInAnswer is the body of a successful login (SPEC §4). Review
// sessions have no corp, and only they say "review".
type signInAnswer struct {
	Token     string `json:"token"`
	TokenType string `json:"token_type"`
	ExpiresIn int    `json:"expires_in"`
	UserID    string `json:"userid"`
	CorpID    string `json:"corpid,omitempty"`
	Corp      string `json:"corp,omitempty"`
	Name      string `json:"name"`
	Review    bool   `json:"review,omitempty"`
}

// serveLogout ends the presented session everywhere. It answers 204 even
// without a valid session: the caller is signed out either way.
func (h *Handler) serveLogout(w http.ResponseWriter, r *http.Request) error {
	if tok, present, _ := h.credential(r); present {
		if c, err := h.ring.Open(tok, h.now()); err == nil {
			// Ended here at once; the record reaches storage even if the
			// client hangs up now, or later if storage fails now.
			h.endSession(context.WithoutCancel(r.Context()), &c)
		}
	}
	http.SetCookie(w, &http.Cookie{
		Name: h.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteLaxMode,
	})
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (h *Handler) serveSession(w http.ResponseWriter, r *http.Request) error {
	tok, present, d := h.credential(r)
	if d == nil && !present {
		d = unauthenticated("no session")
	}
	if d != nil {
		return h.deny(w, r, d)
	}
	id, d := h.check(r.Context(), tok)
	if d != nil {
		return h.deny(w, r, d)
	}
	depts := append([]int64{}, id.deptIDs...)
	return writeJSON(w, http.StatusOK, sessionAnswer{
		UserID: id.UserID, CorpID: id.CorpID, Corp: id.Corp, Name: id.Name,
		Department: depts, Review: id.Review,
		ExpiresIn: int(id.expiresAt.Sub(h.now()).Seconds()),
	})
}

// sessionAnswer is the body of GET /wecom/session (SPEC §4).
type sessionAnswer struct {
	UserID     string  `json:"userid"`
	CorpID     string  `json:"corpid,omitempty"`
	Corp       string  `json:"corp,omitempty"`
	Name       string  `json:"name"`
	Department []int64 `json:"department"`
	Review     bool    `json:"review"`
	ExpiresIn  int     `json:"expires_in"`
}

// serveAuth is forward-auth for another proxy (Caddy's forward_auth, nginx
// auth_request): 200 with the identity headers, or the denial. The request
// being judged is the proxy's original one, which only a forward-auth peer
// (forward_auth_from) can name (X-Forwarded-Method, X-Forwarded-Uri); a
// review session is confined on its path.
func (h *Handler) serveAuth(w http.ResponseWriter, r *http.Request) error {
	id, token, d := h.authenticate(r, inlineLogin{})
	if d != nil {
		return h.deny(w, r, d)
	}
	trusted := h.forwardAuthPeer(r)
	orig, named := forwardedRequest(r, trusted)
	if !named && id.Review {
		// No path to judge: a review session passes only on a path it may
		// reach, and "/" may be one of them.
		return h.deny(w, r, reviewForbidden())
	}
	if d := h.authorizePath(id, orig); d != nil {
		return h.deny(w, r, d)
	}
	hdr := w.Header()
	identityHeaders(hdr, id)
	if h.asserter != nil && trusted {
		// Only the forward-auth proxy gets an assertion: handed to an end
		// client, it would be a bearer credential for the backend.
		jwt, err := h.asserter.sign(orig.Method, orig.URL.EscapedPath(), orig.URL.RawQuery, id, h.now())
		if err != nil {
			return h.deny(w, r, internalError(err))
		}
		hdr.Set(headerAssertion, jwt)
	}
	if token != "" {
		hdr.Set(headerSession, token)
	}
	w.WriteHeader(http.StatusOK)
	// Credentials leave the header map once written: Caddy's access log
	// records response headers.
	hdr.Del(headerSession)
	hdr.Del(headerAssertion)
	return nil
}

// forwardedRequest is the request a forward-auth caller asks about: the
// method and URI a forward-auth peer names in X-Forwarded-Method and
// X-Forwarded-Uri, else "GET /". named is false when no URI was named or
// it does not parse.
func forwardedRequest(r *http.Request, trusted bool) (orig *http.Request, named bool) {
	// A shallow copy: only method and URL differ, and the path matcher
	// reads nothing else (r.Clone would copy every header per request).
	o := *r
	orig = &o
	orig.Method, orig.URL = http.MethodGet, &url.URL{Path: "/"}
	if !trusted {
		return orig, false
	}
	if m := r.Header.Get("X-Forwarded-Method"); m != "" {
		orig.Method = m
	}
	u, err := url.ParseRequestURI(r.Header.Get("X-Forwarded-Uri"))
	if err != nil {
		return orig, false
	}
	orig.URL = u
	return orig, true
}

// forwardAuthPeer reports whether the request's direct peer (its TCP
// address, not Caddy's client IP) is one of forward_auth_from. Not
// trusted_proxies: behind a cloud load balancer every client arrives
// through a trusted proxy, and must not be able to mint assertions.
func (h *Handler) forwardAuthPeer(r *http.Request) bool {
	addr, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := addr.Addr().Unmap()
	for _, p := range h.forwardAuthFrom {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (h *Handler) onlyMethod(w http.ResponseWriter, r *http.Request, method string, serve func(http.ResponseWriter, *http.Request) error) error {
	if r.Method != method {
		w.Header().Set("Allow", method)
		return h.deny(w, r, &denial{status: http.StatusMethodNotAllowed, code: "method_not_allowed", message: "use " + method})
	}
	return serve(w, r)
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) error {
	return h.deny(w, r, &denial{status: http.StatusNotFound, code: "not_found", message: "no such endpoint"})
}

// decodeBody reads a small JSON object; anything else is invalid_request.
// It must come as application/json: a browser sends that type only from
// a script the site's CORS policy allows, never from a cross-site form, so
// no other site can sign a visitor in to an account of its choosing.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) *denial {
	return decodeBodyLimit(w, r, v, maxLoginBody)
}

// decodeBodyLimit is decodeBody for a body of at most limit bytes.
func decodeBodyLimit(w http.ResponseWriter, r *http.Request, v any, limit int64) *denial {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return invalidRequest("send the body as JSON with Content-Type: application/json")
	}
	// Real time, not the handler's clock: the deadline is the socket's. It
	// stays set: net/http drains an unread body after the handler returns,
	// and must not drain a dripping one for ever; it sets the next
	// request's deadline itself.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(loginBodyTimeout))
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		var timeout net.Error
		switch {
		case errors.As(err, &tooBig):
			return invalidRequest("the body is too large")
		case errors.As(err, &timeout) && timeout.Timeout():
			return invalidRequest("the body did not arrive in time")
		}
		return invalidRequest("the body must be a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return invalidRequest("the body must be a single JSON object")
	}
	return nil
}

func (h *Handler) serveJWKS(w http.ResponseWriter, r *http.Request) error {
	if h.asserter == nil {
		return h.notFound(w, r)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(h.asserter.jwks)
	return err
}
