package wecomauth

import "github.com/wecomgate/wecomgate/module/session"

// SealSession seals c as h's login would, bound to the app of the corp it
// names: benchmarks make more sessions than logins could.
func SealSession(h *Handler, c *session.Claims) (string, error) {
	tok, _, err := h.ring.Seal(c)
	return tok, err
}
