package wecomauth

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/internal/directive"
)

func init() {
	caddy.RegisterModule(Require{})
	httpcaddyfile.RegisterHandlerDirective("wecom_require", parseRequire)
	// Right after wecom_auth (which comes right after forward_auth): Caddy
	// takes only standard directives as anchors, and request_header is the
	// one that follows forward_auth.
	httpcaddyfile.RegisterDirectiveOrder("wecom_require", httpcaddyfile.Before, "request_header")
}

// Require is per-route authorization after wecom_auth (SPEC §3a): it admits
// the identity an earlier wecom_auth established if any of its conditions
// does, with the same rules as the allow-lists (departments with their
// sub-departments, tags with their departments, userids in any letter
// case, configured corp names). It reads that identity from the request's
// state, never from headers a client could send.
//
//	@admin path /api/admin/*
//	wecom_require @admin { departments 9 }
type Require struct {
	Users       []string `json:"users,omitempty"`
	Departments []int64  `json:"departments,omitempty"`
	Tags        []int64  `json:"tags,omitempty"`
	// Configured corp names (wecom_auth's corp <name>).
	Corps []string `json:"corps,omitempty"`

	allow  *allowList
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Require) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wecom_require",
		New: func() caddy.Module { return new(Require) },
	}
}

// Provision builds the allow-list.
func (q *Require) Provision(ctx caddy.Context) error {
	q.logger = ctx.Logger()
	q.allow = newAllowList(q.Users, q.Departments, q.Tags, q.Corps)
	return nil
}

// Validate refuses a wecom_require that would admit everyone.
func (q *Require) Validate() error { return q.validate() }

func (q *Require) validate() error {
	if len(q.Users) == 0 && len(q.Departments) == 0 && len(q.Tags) == 0 && len(q.Corps) == 0 {
		return fmt.Errorf("at least one of users, departments, tags or corps is required")
	}
	return validateLists("", q.Users, q.Departments, q.Tags)
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (q *Require) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	st := stateOf(r)
	if st == nil || st.auth == nil {
		// No wecom_auth ran for this request: nothing to judge. An error
		// answer of the gateway's shape, as a protected path would give.
		return writeDenial(w, q.logger, r, unauthenticated("sign in first: send a session token or a code"))
	}
	est := st.auth
	if est.id.Review || est.corp == nil {
		return writeDenial(w, q.logger, r, userNotAllowed())
	}
	ok, err := est.h.admits(r.Context(), q.allow, est.corp, est.id.UserID, est.id.deptIDs)
	switch {
	case err != nil && !ok:
		return writeDenial(w, q.logger, r, fromWeCom(err))
	case !ok:
		return writeDenial(w, q.logger, r, userNotAllowed())
	}
	return next.ServeHTTP(w, r)
}

func parseRequire(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	var q Require
	err := q.UnmarshalCaddyfile(h.Dispenser)
	return &q, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	wecom_require [<matcher>] {
//		users       <userid...>
//		departments <id...>
//		tags        <tagid...>
//		corps       <corp name...>
//	}
func (q *Require) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch sub := d.Val(); sub {
		case "users", "corps":
			vals := d.RemainingArgs()
			if len(vals) == 0 {
				return d.Errf("%s: expected at least one value", sub)
			}
			if sub == "users" {
				q.Users = append(q.Users, vals...)
			} else {
				q.Corps = append(q.Corps, vals...)
			}
		case "departments", "tags":
			ids, err := directive.IDs(d)
			if err != nil {
				return err
			}
			if sub == "departments" {
				q.Departments = append(q.Departments, ids...)
			} else {
				q.Tags = append(q.Tags, ids...)
			}
		default:
			return d.Errf("unknown subdirective %q", sub)
		}
	}
	if err := q.validate(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

// Interface guards
var (
	_ caddy.Module                = (*Require)(nil)
	_ caddy.Provisioner           = (*Require)(nil)
	_ caddy.Validator             = (*Require)(nil)
	_ caddyhttp.MiddlewareHandler = (*Require)(nil)
	_ caddyfile.Unmarshaler       = (*Require)(nil)
)
