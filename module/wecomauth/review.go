package wecomauth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/crypto/bcrypt"

	"github.com/wecomgate/wecomgate/module/internal/session"
)

// reviewUserPrefix marks review sessions' userids; a WeCom userid never
// holds a colon.
const reviewUserPrefix = "review:"

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
	// bcrypt hash, as `caddy hash-password` prints it, or a runtime
	// placeholder ({env.X}, {file.X}) that holds one.
	PasswordHash string `json:"password_hash"`
}

type review struct {
	accounts map[string]*reviewAccount
	// decoy is compared when the username is unknown so that unknown
	// users and wrong passwords cost the same bcrypt work: the costliest
	// configured hash, or an unknown name would answer faster than a
	// known one with a higher cost.
	decoy []byte
	allow caddyhttp.MatchPath
}

// reviewAccount is one provisioned review user. Its sessions are bound to
// the site's review block and to the account's hash: a review token opens
// only where the same account with the same password and the same allowed
// paths is configured, and a new password ends the account's sessions.
// Review sessions belong to no corp, so the binding also keeps a review
// token from ever opening as a corp session, and the other way round.
type reviewAccount struct {
	name    string
	hash    []byte
	binding session.Binding
}

func newReview(cfg *ReviewConfig, repl *caddy.Replacer) (*review, error) {
	if len(cfg.Users) == 0 {
		return nil, fmt.Errorf("at least one user is required")
	}
	if len(cfg.Allow) == 0 {
		return nil, fmt.Errorf("allow: at least one path pattern is required")
	}
	rv := &review{accounts: map[string]*reviewAccount{}, allow: caddyhttp.MatchPath(slices.Clone(cfg.Allow))}
	site := sha256.Sum256([]byte(strings.Join(cfg.Allow, "\x00")))
	decoyCost := -1
	costOf := map[int]string{}
	for _, u := range cfg.Users {
		if u.Username == "" {
			return nil, fmt.Errorf("user: a name is required")
		}
		if _, dup := rv.accounts[u.Username]; dup {
			return nil, fmt.Errorf("user %s: duplicate", u.Username)
		}
		hash := u.PasswordHash
		if repl != nil {
			hash = repl.ReplaceKnown(hash, "")
		} else if strings.Contains(hash, "{") {
			continue // a runtime placeholder: checked at provision
		}
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return nil, fmt.Errorf("user %s: password hash is not bcrypt (make one with: caddy hash-password): %v", u.Username, err)
		}
		private := "review\x00" + hex.EncodeToString(site[:]) + "\x00" + u.Username + "\x00" + hash
		rv.accounts[u.Username] = &reviewAccount{
			name: u.Username, hash: []byte(hash),
			binding: sessionBinding("review", private),
		}
		costOf[cost] = u.Username
		if cost > decoyCost {
			rv.decoy, decoyCost = []byte(hash), cost
		}
	}
	if len(costOf) > 1 {
		// An unknown name is compared with the decoy, whose cost is one of
		// them: with mixed costs it would answer in another time than
		// some known names, and tell them apart.
		return nil, fmt.Errorf("all users' hashes must have the same bcrypt cost (make them with the same caddy hash-password --cost), so that unknown usernames take as long as known ones")
	}
	if err := rv.allow.Provision(caddy.Context{}); err != nil {
		return nil, err
	}
	return rv, nil
}

// suffixPatterns returns the allow patterns that match by suffix (*.html):
// frameworks that route on a suffix-stripped path (ThinkPHP's
// url_html_suffix, older Spring) take /admin/deleteUser.html for an admin
// action, so such a pattern opens more than it says.
func (rv *review) suffixPatterns() []string {
	var out []string
	for _, p := range rv.allow {
		if strings.HasPrefix(p, "*") {
			out = append(out, p)
		}
	}
	return out
}

// verify checks a username and password, spending the same bcrypt work
// whether or not the user exists.
func (rv *review) verify(username, password string) bool {
	hash := rv.decoy
	a, known := rv.accounts[username]
	if known {
		hash = a.hash
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	return ok && known
}

func (rv *review) hasUser(name string) bool {
	_, ok := rv.accounts[name]
	return ok
}

// allows matches the cleaned request path (never its query) against the
// allow patterns, exactly as Caddy's path matcher does.
func (rv *review) allows(r *http.Request) bool {
	ok, err := rv.allow.MatchWithError(r)
	return ok && err == nil
}
