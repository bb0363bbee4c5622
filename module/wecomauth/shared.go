package wecomauth

import (
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/patrickmn/go-cache"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

// sharedPool keeps the state that must outlive a config reload: Caddy
// provisions the new config before it cleans up the old one, so both hold
// the same entry and nothing is fetched or forgotten in between. WeCom's
// access tokens are part of it: they live in the pooled wecom.Client, which
// keeps no process-wide copy.
var sharedPool = caddy.NewUsagePool()

// replayWindow is how long a code's exchange is remembered so that a client
// retrying the same code (after a lost answer) gets the same user instead
// of WeCom's 40029. A retry comes within seconds; every minute more is a
// minute in which a code read from a log is worth a session to whoever can
// pass for the same client IP.
const replayWindow = time.Minute

// codeLifetime is WeCom's validity of a code: a burned code stays refused
// that long. maxBurned bounds the burned codes kept (a flood of made-up
// codes must not grow memory).
const (
	codeLifetime = 5 * time.Minute
	maxBurned    = 1 << 16
)

// shared is the long-lived state of every wecom_auth handler that talks to
// one WeCom API base. It caches WeCom's facts, never policy: each handler
// applies its own allow-lists to them.
type shared struct {
	// client holds the access tokens, so they last as long as this entry.
	client *wecom.Client
	users  *cache.Cache // userKey → *fact of *userFacts
	// directory holds department trees and tag members, dirKey → *fact.
	directory *cache.Cache
	// futureTokens: session id → when this instance first saw a token
	// issued in its future (seenIssued).
	futureTokens *cache.Cache
	sawFuture    atomic.Bool  // futureTokens was ever used: look there
	spent        *cache.Cache // app + client IP + code → spentCode
	burned       *cache.Cache // hash of a code → struct{}: refused unspent, see burnCode
	codes        singleflight.Group
	// The kinds of WeCom answers kept (facts.go): users in users,
	// department trees and tag members in directory.
	userKind, deptKind, tagKind *factKind
	// budgets counts WeCom calls against `quota` and holds 45009 pauses.
	budgets *budgets
	refreshers
}

func newShared(apiBase string, logger *zap.Logger) *shared {
	s := &shared{
		client:       wecom.New(wecom.Options{BaseURL: apiBase, Logger: logger.Named("wecom"), Observer: observer{}}),
		users:        cache.New(cache.NoExpiration, 10*time.Minute),
		directory:    cache.New(cache.NoExpiration, 10*time.Minute),
		futureTokens: cache.New(cache.NoExpiration, time.Minute),
		spent:        cache.New(codeLifetime, time.Minute),
		burned:       cache.New(codeLifetime, time.Minute),
		budgets:      newBudgets(apiBase),
	}
	s.userKind = &factKind{name: "users", endpoint: "user/get", local: s.users, encode: encodeUser, decode: decodeUser}
	s.deptKind = &factKind{name: "departments", endpoint: "department/simplelist", local: s.directory, encode: encodeTree, decode: decodeTree}
	s.tagKind = &factKind{name: "tags", endpoint: "tag/get", local: s.directory, encode: encodeTag, decode: decodeTag}
	return s
}

// Destruct implements caddy.Destructor.
func (s *shared) Destruct() error {
	s.users.Flush()
	s.directory.Flush()
	s.futureTokens.Flush()
	s.spent.Flush()
	s.burned.Flush()
	return nil
}

// userKey names a user as seen by one WeCom app.
func userKey(c *corp, userID string) string { return c.app + "\x00" + userID }
