package wecomauth

import (
	"fmt"
	"net/http"
	"slices"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/crypto/bcrypt"
)

// reviewUserPrefix marks review sessions' userids; a WeCom userid never
// holds a colon.
const reviewUserPrefix = "review:"

// reviewBinding seals review sessions. They belong to no corp, and a binding
// of their own keeps a review token from ever opening as a corp session or
// a corp token as a review session, whatever the claims inside say.
var reviewBinding = sessionBinding("review", "review")

// ReviewConfig enables account/password sign-in for the app-store review.
// Review sessions reach only the Allow paths.
type ReviewConfig struct {
	Users []ReviewUser `json:"users,omitempty"`
	// Path patterns as Caddy's path matcher reads them (/api/demo/*, *.json).
	Allow []string `json:"allow,omitempty"`
}

// ReviewUser is one review account.
type ReviewUser struct {
	Username string `json:"username"`
	// bcrypt hash, as `caddy hash-password` prints it.
	PasswordHash string `json:"password_hash"`
}

type review struct {
	hashes map[string][]byte
	// decoy is compared when the username is unknown so that unknown
	// users and wrong passwords cost the same bcrypt work.
	decoy []byte
	allow caddyhttp.MatchPath
}

func newReview(cfg *ReviewConfig) (*review, error) {
	if len(cfg.Users) == 0 {
		return nil, fmt.Errorf("at least one user is required")
	}
	if len(cfg.Allow) == 0 {
		return nil, fmt.Errorf("allow: at least one path pattern is required")
	}
	rv := &review{hashes: map[string][]byte{}, allow: caddyhttp.MatchPath(slices.Clone(cfg.Allow))}
	for _, u := range cfg.Users {
		if u.Username == "" {
			return nil, fmt.Errorf("user: a name is required")
		}
		if _, dup := rv.hashes[u.Username]; dup {
			return nil, fmt.Errorf("user %s: duplicate", u.Username)
		}
		h := []byte(u.PasswordHash)
		if _, err := bcrypt.Cost(h); err != nil {
			return nil, fmt.Errorf("user %s: password hash is not bcrypt (make one with: caddy hash-password): %v", u.Username, err)
		}
		rv.hashes[u.Username] = h
		if rv.decoy == nil {
			rv.decoy = h
		}
	}
	if err := rv.allow.Provision(caddy.Context{}); err != nil {
		return nil, err
	}
	return rv, nil
}

// verify checks a username and password, spending the same bcrypt work
// whether or not the user exists.
func (rv *review) verify(username, password string) bool {
	hash, known := rv.hashes[username]
	if !known {
		hash = rv.decoy
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	return ok && known
}

func (rv *review) hasUser(name string) bool {
	_, ok := rv.hashes[name]
	return ok
}

// allows matches the cleaned request path (never its query) against the
// allow patterns, exactly as Caddy's path matcher does.
func (rv *review) allows(r *http.Request) bool {
	ok, err := rv.allow.MatchWithError(r)
	return ok && err == nil
}
