package wecomauth

import (
	"encoding/json"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wecomgate/wecomgate/module/internal/directive"
)

func init() {
	httpcaddyfile.RegisterDirective("wecom_auth", parseDirective)
	// Ordered with Caddy's own authentication (SPEC §2): a top-level
	// wecom_auth then runs before every handle, handle_path and route block
	// of its site, as basic_auth does, instead of after the blocks that
	// answer the request.
	httpcaddyfile.RegisterDirectiveOrder("wecom_auth", httpcaddyfile.After, "forward_auth")
}

// parseDirective adapts `wecom_auth [<matcher>] { … }`. With a matcher the
// handler only sees the requests it matches, yet client X-WeCom-* headers
// must go from every request of the site, and the session token must not
// reach what serves the paths left out: the directive then becomes a
// subroute that strips the headers unconditionally, runs wecom_auth where
// the matcher says, and takes the token out of whatever goes on. Two routes would not do: Caddy sorts a directive's
// unmatched routes after its matched ones.
func parseDirective(h httpcaddyfile.Helper) ([]httpcaddyfile.ConfigValue, error) {
	h.Next() // the directive name
	matcherSet, err := h.ExtractMatcherSet()
	if err != nil {
		return nil, err
	}
	var w Handler
	if err := w.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	if matcherSet == nil {
		return h.NewRoute(nil, &w), nil
	}
	cookie := w.CookieName
	if cookie == "" {
		cookie = DefaultCookieName
	}
	strip := &caddyhttp.Subroute{Routes: caddyhttp.RouteList{
		{HandlersRaw: []json.RawMessage{caddyconfig.JSONModuleObject(StripHeaders{}, "handler", "wecom_strip", nil)}},
		{
			MatcherSetsRaw: []caddy.ModuleMap{matcherSet},
			HandlersRaw:    []json.RawMessage{caddyconfig.JSONModuleObject(&w, "handler", "wecom_auth", nil)},
		},
		// What the matcher left out still must not carry the session
		// token on (wecom_auth has already removed it from what it saw).
		{HandlersRaw: []json.RawMessage{caddyconfig.JSONModuleObject(StripHeaders{CookieName: cookie}, "handler", "wecom_strip", nil)}},
	}}
	return h.NewRoute(nil, strip), nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens (SPEC §3):
//
//	wecom_auth [<matcher>] {
//		api_base    <url>
//		corp <name> {
//			corp_id           <corpid>
//			secret            <secret>
//			allow_users       <userid...>
//			allow_departments <id...>
//			allow_tags        <tagid...>
//			callback {
//				token   <token>
//				aes_key <EncodingAESKey>
//			}
//		}
//		session_ttl <duration>
//		recheck     <duration>
//		stale_grace <duration>
//		session_key <base64 32 bytes>...
//		cookie_name <name>
//		endpoints   <path prefix>
//		review {
//			user  <name> <bcrypt hash>
//			allow <path pattern...>
//		}
//		login_rate  <failures> <duration>
//		quota       <calls> <window> [<calls> <window>]
//		assertion   <audience> [{ ttl <duration> }]
//		forward_auth_from <cidr...>
//		decrypt     <mini program appid>
//	}
func (w *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch dir := d.Val(); dir {
		case "api_base":
			if err := directive.OneArg(d, &w.APIBase); err != nil {
				return err
			}
		case "corp":
			c, err := unmarshalCorp(d)
			if err != nil {
				return err
			}
			w.Corps = append(w.Corps, c)
		case "session_ttl":
			if err := directive.Duration(d, &w.SessionTTL); err != nil {
				return err
			}
		case "recheck":
			if err := directive.Duration(d, &w.Recheck); err != nil {
				return err
			}
		case "stale_grace":
			if err := directive.Duration(d, &w.StaleGrace); err != nil {
				return err
			}
		case "session_key":
			keys := d.RemainingArgs()
			if len(keys) == 0 {
				return d.ArgErr()
			}
			w.SessionKeys = append(w.SessionKeys, keys...)
		case "cookie_name":
			if err := directive.OneArg(d, &w.CookieName); err != nil {
				return err
			}
		case "endpoints":
			if err := directive.OneArg(d, &w.Endpoints); err != nil {
				return err
			}
		case "login_rate":
			var n, window string
			if !d.AllArgs(&n, &window) {
				return d.Err("login_rate: expected <failures> <duration>")
			}
			failures, err := strconv.Atoi(n)
			if err != nil || failures < 1 {
				return d.Errf("login_rate: %q is not a positive number of failures", n)
			}
			dur, err := caddy.ParseDuration(window)
			if err != nil || dur <= 0 {
				return d.Errf("login_rate: %q is not a positive duration", window)
			}
			w.LoginRate = &LoginRate{Failures: failures, Window: caddy.Duration(dur)}
		case "quota":
			q, err := unmarshalQuota(d)
			if err != nil {
				return err
			}
			w.Quota = q
		case "decrypt":
			if err := directive.OneArg(d, &w.Decrypt); err != nil {
				return err
			}
		case "forward_auth_from":
			peers := d.RemainingArgs()
			if len(peers) == 0 {
				return d.Err("forward_auth_from: expected at least one address or CIDR range")
			}
			w.ForwardAuthFrom = append(w.ForwardAuthFrom, peers...)
		case "assertion":
			a, err := unmarshalAssertion(d)
			if err != nil {
				return err
			}
			w.Assertion = a
		case "review":
			if w.Review != nil {
				return d.Err("review: only one review block is allowed")
			}
			r, err := unmarshalReview(d)
			if err != nil {
				return err
			}
			w.Review = r
		default:
			return d.Errf("unknown subdirective %q", dir)
		}
	}
	if err := w.validate(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

func unmarshalCorp(d *caddyfile.Dispenser) (CorpConfig, error) {
	var c CorpConfig
	if !d.AllArgs(&c.Name) {
		return c, d.Err("corp: expected a name: corp <name> { … }")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "corp_id":
			if err := directive.OneArg(d, &c.CorpID); err != nil {
				return c, err
			}
		case "secret":
			if err := directive.OneArg(d, &c.Secret); err != nil {
				return c, err
			}
		case "allow_users":
			users := d.RemainingArgs()
			if len(users) == 0 {
				return c, d.ArgErr()
			}
			c.AllowUsers = append(c.AllowUsers, users...)
		case "allow_departments":
			ids, err := directive.IDs(d)
			if err != nil {
				return c, err
			}
			c.AllowDepartments = append(c.AllowDepartments, ids...)
		case "allow_tags":
			ids, err := directive.IDs(d)
			if err != nil {
				return c, err
			}
			c.AllowTags = append(c.AllowTags, ids...)
		case "callback":
			cb, err := unmarshalCallback(d, c.Name)
			if err != nil {
				return c, err
			}
			c.Callback = cb
		default:
			return c, d.Errf("corp %s: unknown subdirective %q", c.Name, sub)
		}
	}
	if err := c.validate(); err != nil {
		return c, d.Err(err.Error())
	}
	return c, nil
}

// callback { token <token>; aes_key <EncodingAESKey> }
func unmarshalCallback(d *caddyfile.Dispenser, corpName string) (*CallbackConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	cb := &CallbackConfig{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "token":
			if err := directive.OneArg(d, &cb.Token); err != nil {
				return nil, err
			}
		case "aes_key":
			if err := directive.OneArg(d, &cb.AESKey); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("corp %s: callback: unknown subdirective %q", corpName, sub)
		}
	}
	if err := cb.validate(corpName); err != nil {
		return nil, d.Err(err.Error())
	}
	return cb, nil
}

func unmarshalReview(d *caddyfile.Dispenser) (*ReviewConfig, error) {
	var r ReviewConfig
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "user":
			var u ReviewUser
			if !d.AllArgs(&u.Username, &u.PasswordHash) {
				return nil, d.Err("review: expected user <name> <bcrypt hash>")
			}
			r.Users = append(r.Users, u)
		case "allow":
			paths := d.RemainingArgs()
			if len(paths) == 0 {
				return nil, d.ArgErr()
			}
			r.Allow = append(r.Allow, paths...)
		default:
			return nil, d.Errf("review: unknown subdirective %q", sub)
		}
	}
	if _, err := newReview(&r, nil); err != nil { // as validate does
		return nil, d.Errf("review: %v", err)
	}
	return &r, nil
}

// assertion <audience> [{ ttl <duration> }]
func unmarshalAssertion(d *caddyfile.Dispenser) (*AssertionConfig, error) {
	a := &AssertionConfig{}
	args := d.RemainingArgs()
	if len(args) != 1 {
		return nil, d.Err("assertion: expected one audience: the name your backend checks as the JWT's aud, e.g. its host name")
	}
	a.Audience = args[0]
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch sub := d.Val(); sub {
		case "ttl":
			if err := directive.Duration(d, &a.TTL); err != nil {
				return nil, err
			}
		default:
			return nil, d.Errf("assertion: unknown subdirective %q", sub)
		}
	}
	return a, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)

// unmarshalQuota reads `quota <calls> <window> [<calls> <window>]`.
func unmarshalQuota(d *caddyfile.Dispenser) ([]QuotaLimit, error) {
	args := d.RemainingArgs()
	if len(args) != 2 && len(args) != 4 {
		return nil, d.Err("quota: expected <calls> <window> [<calls> <window>], as in: quota 10000 1m 150000 1h")
	}
	var q []QuotaLimit
	for i := 0; i < len(args); i += 2 {
		n, err := strconv.Atoi(args[i])
		if err != nil || n < 1 {
			return nil, d.Errf("quota: %q is not a positive number of calls", args[i])
		}
		dur, err := caddy.ParseDuration(args[i+1])
		if err != nil || dur <= 0 {
			return nil, d.Errf("quota: %q is not a positive duration", args[i+1])
		}
		q = append(q, QuotaLimit{Calls: n, Window: caddy.Duration(dur)})
	}
	return q, nil
}
