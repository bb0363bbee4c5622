// Package wecomauth is the wecom_auth Caddy handler: it signs WeCom mini
// program users in with the code from wx.qy.login, admits only users of the
// configured corps whom WeCom reports visible and active, and hands their
// requests on with trusted X-WeCom-* identity headers.
//
// A request flows one way, and the files follow it:
//
//	hygiene.go     client X-WeCom-* headers and trailers removed (every request)
//	endpoints.go   the gateway's own endpoints answer directly
//	credential.go  the request's one credential: token, cookie or inline code
//	tokens.go      the token opened (key ring, binding, cache) or issued
//	signin.go      a code exchanged for a user (inline login, /wecom/login)
//	usercheck.go   what WeCom says of the user, rechecked after `recheck`
//	policy.go      allow-lists, review paths
//	headers.go     identity headers and placeholders set, token removed
//
// then the next handler. Beside the flow: handler.go (the module),
// caddyfile.go, corp.go and review.go (configuration), cluster.go (state in
// Caddy's storage), shared.go (state that outlives a config), ratelimit.go,
// assertion.go, errors.go and metrics.go.
package wecomauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/internal/cluster"
	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults of the optional settings (SPEC §3).
const (
	DefaultSessionTTL = 24 * time.Hour
	DefaultRecheck    = 10 * time.Minute
	DefaultStaleGrace = time.Hour
	DefaultCookieName = "wecom_session"
	DefaultEndpoints  = "/wecom"
)

// Handler authenticates WeCom mini program users in front of a backend.
type Handler struct {
	// Base URL of the WeCom server API. Default: https://qyapi.weixin.qq.com.
	APIBase string `json:"api_base,omitempty"`
	// The corps whose users may sign in, in order: the first is used when a
	// login names none.
	Corps []CorpConfig `json:"corps,omitempty"`
	// Lifetime of a session token. Default: 24h.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`
	// How long a user/get answer is trusted before the user is checked
	// again. Default: 10m.
	Recheck caddy.Duration `json:"recheck,omitempty"`
	// While WeCom is unreachable, sessions whose user was checked within
	// this still pass. Default: 1h.
	StaleGrace caddy.Duration `json:"stale_grace,omitempty"`
	// Base64 32-byte keys; the first seals sessions, all open them. Empty:
	// a key is generated once and kept in Caddy's storage.
	SessionKeys []string `json:"session_keys,omitempty"`
	// Name of the session cookie. Default: wecom_session.
	CookieName string `json:"cookie_name,omitempty"`
	// Path prefix of the gateway's own endpoints. Default: /wecom.
	Endpoints string `json:"endpoints,omitempty"`
	// Account/password sign-in for the app-store review. Optional.
	Review *ReviewConfig `json:"review,omitempty"`
	// Failed sign-ins per client IP before 429. Default: 30 per minute.
	LoginRate *LoginRate `json:"login_rate,omitempty"`
	// WeCom calls allowed per corp and per API in any window, for all the
	// instances sharing the storage (each claims a share in its
	// heartbeat; a twentieth is kept for an instance that joins). One or
	// two limits. Default: 10000 per 1m and 150000 per 1h, WeCom's.
	Quota []QuotaLimit `json:"quota,omitempty"`
	// Adds a signed X-WeCom-Assertion JWT to every request passed on.
	Assertion *AssertionConfig `json:"assertion,omitempty"`
	// The mini program's appid: enables POST {endpoints}/decrypt, which
	// decrypts wx.qy.getMobile, getEmail and getEnterpriseUserInfo data with
	// the WeCom session_key of the session's login, for the data's
	// watermark appid must be this.
	Decrypt string `json:"decrypt,omitempty"`
	// The peers (CIDR ranges of the direct TCP peer) that may do
	// forward-auth: only they get an assertion from {endpoints}/auth and
	// may name the request judged (X-Forwarded-Method, X-Forwarded-Uri).
	// Default: loopback, a proxy on the same machine.
	ForwardAuthFrom []string `json:"forward_auth_from,omitempty"`

	forwardAuthFrom []netip.Prefix
	corps           []*corp
	corpByID        map[string]*corp
	ring            *boundRing
	principals      *principals
	shared          *shared
	sharedKey       string
	cluster         *cluster.Member
	review          *review
	limiter         *failureLimiter
	asserter        *asserter
	logger          *zap.Logger
	// clock is where time comes from (tests move it, and may swap it
	// while the cluster's poller reads it: hence atomic). See now.
	// (A pointer: the Handler is a Caddy module and copied by value.)
	clock *atomic.Pointer[func() time.Time]
	// callBudget bounds one user/get or code exchange, retries included;
	// recheckPause is how long a user's failed recheck is not retried.
	callBudget   time.Duration
	recheckPause time.Duration
	loginBudget  time.Duration // a sign-in's WeCom time in all
}

// CorpConfig is one corp whose users may sign in.
type CorpConfig struct {
	// Name the gateway and the mini program use for this corp.
	Name string `json:"name"`
	// WeCom corp id (corpid).
	CorpID string `json:"corp_id"`
	// Secret of the app the mini program is associated with in this corp.
	// Placeholders such as {env.ACME_SECRET} are replaced at provision.
	Secret string `json:"secret"`
	// These userids (in any letter case) may sign in. A user passes if any
	// of allow_users, allow_departments and allow_tags admits them; with
	// none of the three, every user WeCom reports visible and active.
	AllowUsers []string `json:"allow_users,omitempty"`
	// Members of these departments or of any of their sub-departments may
	// sign in.
	AllowDepartments []int64 `json:"allow_departments,omitempty"`
	// Members of these tags (标签) may sign in: the users a tag lists and
	// the members of its departments and their sub-departments.
	AllowTags []int64 `json:"allow_tags,omitempty"`
	// WeCom's callbacks for this corp (SPEC §4a): enables
	// {endpoints}/callback/<name>.
	Callback *CallbackConfig `json:"callback,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wecom_auth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets defaults and attaches the long-lived state (WeCom client
// with its token cache, user checks, spent codes) that survives reloads.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.clock == nil {
		h.setClock(time.Now)
	}
	if h.callBudget <= 0 {
		h.callBudget = defaultCallBudget
	}
	if h.recheckPause <= 0 {
		h.recheckPause = defaultRecheckPause
	}
	if h.loginBudget <= 0 {
		h.loginBudget = defaultLoginBudget
	}
	if h.APIBase == "" {
		h.APIBase = wecom.DefaultBaseURL
	}
	h.APIBase = strings.TrimRight(h.APIBase, "/")
	if h.SessionTTL <= 0 {
		h.SessionTTL = caddy.Duration(DefaultSessionTTL)
	}
	if h.Recheck <= 0 {
		h.Recheck = caddy.Duration(DefaultRecheck)
	}
	if h.StaleGrace < 0 {
		h.StaleGrace = 0
	} else if h.StaleGrace == 0 {
		h.StaleGrace = caddy.Duration(DefaultStaleGrace)
	}
	if h.CookieName == "" {
		h.CookieName = DefaultCookieName
	}
	if h.Endpoints == "" {
		h.Endpoints = DefaultEndpoints
	}
	h.Endpoints = "/" + strings.Trim(h.Endpoints, "/")

	repl := caddy.NewReplacer()
	h.corpByID = make(map[string]*corp, len(h.Corps))
	h.corps = h.corps[:0]
	for i := range h.Corps {
		c := newCorp(h.Corps[i], repl)
		if err := c.setCallback(h.Corps[i].Callback, repl, h.logger); err != nil {
			return err
		}
		h.corps = append(h.corps, c)
		h.corpByID[c.id] = c
		if !strings.Contains(h.Corps[i].Secret, "{") {
			// {$X} is substituted when the Caddyfile is adapted, so it lands
			// here as a literal too: either way the secret is part of the
			// JSON config, which Caddy logs at DEBUG and its admin API shows.
			h.logger.Warn("the secret is written in the configuration; use a runtime placeholder such as {env.ACME_SECRET} to keep it out of Caddy's config and logs",
				zap.String("corp", c.name))
		}
	}

	h.forwardAuthFrom = defaultForwardAuthFrom
	if len(h.ForwardAuthFrom) > 0 {
		h.forwardAuthFrom = nil
		for _, s := range h.ForwardAuthFrom {
			p, err := parsePrefix(s)
			if err != nil {
				return fmt.Errorf("forward_auth_from: %w", err)
			}
			h.forwardAuthFrom = append(h.forwardAuthFrom, p)
		}
	}

	if u, err := url.Parse(h.APIBase); err == nil && u.Scheme == "http" {
		h.logger.Warn("api_base is plain http: this is the WeCom simulator or a test setup, not WeCom; in production leave api_base unset (https://qyapi.weixin.qq.com)",
			zap.String("api_base", h.APIBase))
	}

	if h.Review != nil {
		rv, err := newReview(h.Review, repl)
		if err != nil {
			return fmt.Errorf("review: %w", err)
		}
		h.review = rv
		if sp := rv.suffixPatterns(); len(sp) > 0 {
			h.logger.Warn("review allow patterns match by suffix: a backend that routes on the path without its suffix (ThinkPHP, older Spring) may serve admin actions to review sessions through them; prefer path prefixes such as /api/public/*",
				zap.Strings("patterns", sp))
		}
	}

	h.sharedKey = "wecom_auth|" + h.APIBase
	val, _, err := sharedPool.LoadOrNew(h.sharedKey, func() (caddy.Destructor, error) {
		return newShared(h.APIBase, ctx.Logger()), nil
	})
	if err != nil {
		return err
	}
	h.shared = val.(*shared)
	h.declareBudgets() // before the cluster's first heartbeat claims them

	// The cluster next: the generated keys below are kept in it.
	if h.cluster, err = cluster.Join(ctx, func() time.Time { return h.now() }, h.shared.budgets); err != nil {
		return fmt.Errorf("cluster state: %w", err)
	}

	keys := make([]string, len(h.SessionKeys))
	for i, k := range h.SessionKeys {
		keys[i] = repl.ReplaceKnown(k, "")
		if !strings.Contains(k, "{") {
			h.logger.Warn("a session_key is written in the configuration, where Caddy's admin API, autosave.json and DEBUG log show it, and anyone who has it can forge any identity; use a runtime placeholder such as {env.WECOM_SESSION_KEY} or {file./etc/caddy/session.key}",
				zap.Int("key", i+1))
		}
	}
	ring, err := loadRing(ctx, h.cluster, keys)
	if err != nil {
		return fmt.Errorf("session_key: %w", err)
	}
	h.ring = newBoundRing(ring, h.corpByID, h.review)
	h.principals = newPrincipals()

	h.limiter = newFailureLimiter(h.LoginRate)
	if h.Assertion != nil {
		if h.asserter, err = newAsserter(ctx, h.cluster, h.Assertion); err != nil {
			return fmt.Errorf("assertion: %w", err)
		}
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	h.shared.client.ForgetFailures() // a reload retries a fixed configuration at once (SPEC §6a)

	registerHandler(h) // for the admin API and contact changes (registry.go)
	return nil
}

// Validate checks the configuration; its messages name the directive at
// fault (Caddy prefixes the module's name).
func (h *Handler) Validate() error {
	if err := h.validate(); err != nil {
		return err
	}
	for _, c := range h.corps {
		if c.secret == "" {
			return fmt.Errorf("corp %s: secret is empty after replacing placeholders (is the environment variable set?)", c.name)
		}
	}
	return nil
}

// validate checks the configuration as written, before defaults and
// placeholders: the Caddyfile adapter and Validate both call it, so their
// messages are the same.
func (h *Handler) validate() error {
	if len(h.Corps) == 0 {
		return fmt.Errorf("at least one corp is required")
	}
	names := map[string]bool{}
	ids := map[string]bool{}
	for i := range h.Corps {
		c := &h.Corps[i]
		if err := c.validate(); err != nil {
			return err
		}
		id := strings.TrimSpace(c.CorpID)
		switch {
		case names[c.Name]:
			return fmt.Errorf("corp %s: duplicate corp name", c.Name)
		case ids[id]:
			return fmt.Errorf("corp %s: duplicate corp_id %s", c.Name, id)
		}
		names[c.Name], ids[id] = true, true
	}
	if h.APIBase != "" {
		if err := validAPIBase(strings.TrimRight(h.APIBase, "/")); err != nil {
			return err
		}
	}
	for i, k := range h.SessionKeys {
		if strings.Contains(k, "{") {
			continue // a runtime placeholder, checked at provision
		}
		if _, err := decodeKey(k); err != nil {
			return fmt.Errorf("session_key %d: %w", i+1, err)
		}
	}
	for _, s := range h.ForwardAuthFrom {
		if _, err := parsePrefix(s); err != nil {
			return fmt.Errorf("forward_auth_from: %w", err)
		}
	}
	if strings.ContainsAny(h.Endpoints, "*?# ") {
		return fmt.Errorf("endpoints must be a plain path prefix")
	}
	if h.CookieName != "" && !validCookieName(h.CookieName) {
		return fmt.Errorf("cookie_name %q is not a valid cookie name", h.CookieName)
	}
	if h.Review != nil {
		if _, err := newReview(h.Review, nil); err != nil {
			return fmt.Errorf("review: %w", err)
		}
	}
	if h.Assertion != nil {
		if err := h.Assertion.validate(); err != nil {
			return err
		}
	}
	return validateQuota(h.Quota)
}

// defaultForwardAuthFrom is loopback: the forward-auth proxy on the
// gateway's own machine, as both recipes in docs/forward-auth.md run it.
var defaultForwardAuthFrom = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// parsePrefix reads a CIDR range or a single address.
func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR range", s)
	}
	return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
}

// validAPIBase accepts https URLs, and plain http only to a loopback host
// (the simulator): the corpsecret travels in gettoken's query string.
func validAPIBase(base string) error {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("api_base %q is not an https URL", base)
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return fmt.Errorf("api_base %q: plain http is allowed only to a loopback address (the simulator); WeCom's corpsecret travels in the query", base)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// now is the handler's time: one clock for every decision it makes.
func (h *Handler) now() time.Time { return (*h.clock.Load())() }

func (h *Handler) setClock(now func() time.Time) {
	if h.clock == nil {
		h.clock = new(atomic.Pointer[func() time.Time])
	}
	h.clock.Store(&now)
}

// Cleanup releases this config's hold on the shared state; the state lives
// on while a newer config (provisioned before this cleanup) still holds it.
func (h *Handler) Cleanup() error {
	unregisterHandler(h)
	var errs []error
	if h.sharedKey != "" {
		_, err := sharedPool.Delete(h.sharedKey)
		errs = append(errs, err)
	}
	if h.cluster != nil {
		errs = append(errs, h.cluster.Release())
	}
	return errors.Join(errs...)
}

// ServeHTTP strips every client-sent X-WeCom-* header, answers the
// gateway's own endpoints, and lets other requests through only with a
// valid session.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r, st := hygiene(r)

	if ep, ok := h.endpoint(r.URL.Path); ok {
		return h.serveEndpoint(w, r, ep)
	}
	if st.auth != nil {
		// An earlier wecom_auth admitted the request: judge its identity
		// by this handler's corps and lists, without a token to look for.
		if d := h.rejudge(r, st.auth); d != nil {
			return h.deny(w, r, d)
		}
		// From here on this handler's corp is the one that admitted the
		// request: a wecom_require after it asks about its app.
		if id := st.auth.id; !id.Review {
			st.auth = &established{id: id, corp: h.corpByID[id.CorpID], h: h}
		}
		return next.ServeHTTP(w, r)
	}

	id, token, d := h.authenticate(r, st.inline)
	if d != nil {
		return h.deny(w, r, d)
	}
	if d := h.authorizePath(id, r); d != nil {
		return h.deny(w, r, d)
	}
	if token != "" {
		// An inline login's new token goes back to the client; it is taken
		// out of the header map once the response is written so that Caddy's
		// access log, which records response headers, never shows it.
		w.Header().Set(headerSession, token)
		defer w.Header().Del(headerSession)
	}
	if err := h.forward(r, id); err != nil {
		return h.deny(w, r, internalError(err))
	}
	st.auth = &established{id: id, corp: h.corpByID[id.CorpID], h: h}
	return next.ServeHTTP(w, r)
}

// endpoint reports which gateway endpoint a path names, if any.
func (h *Handler) endpoint(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, h.Endpoints)
	if !ok || (rest != "" && rest[0] != '/') {
		return "", false
	}
	return strings.TrimPrefix(rest, "/"), true
}

// Interface guards
var (
	_ caddy.Module                = (*Handler)(nil)
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
