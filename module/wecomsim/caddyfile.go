package wecomsim

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wecomgate/wecomgate/module/internal/directive"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("wecom_simulator", parseCaddyfile)
	// Before reverse_proxy, so that a site can proxy everything the simulator does not answer.
	httpcaddyfile.RegisterDirectiveOrder("wecom_simulator", httpcaddyfile.Before, "reverse_proxy")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	wecom_simulator [<matcher>] {
//		token_ttl <duration>
//		code_ttl  <duration>
//		dev_path  <path>
//		playground <gateway path or URL>
//		dev_allow_remote [true|false]
//		corp <name> {
//			corp_id <corpid>
//			secret  <secret>
//			user <userid> [<name>] {
//				name       <name>
//				department <id...>
//				status     1|2|4|5
//				hidden     [true|false]
//			}
//		}
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.Errf("wecom_simulator: takes no arguments, only a block")
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "token_ttl":
			if err := directive.Duration(d, &h.TokenTTL); err != nil {
				return err
			}
		case "code_ttl":
			if err := directive.Duration(d, &h.CodeTTL); err != nil {
				return err
			}
		case "dev_path":
			if err := directive.OneArg(d, &h.DevPath); err != nil {
				return err
			}
		case "playground":
			if err := directive.OneArg(d, &h.Playground); err != nil {
				return err
			}
		case "dev_allow_remote":
			if err := parseFlag(d, "dev_allow_remote", &h.DevAllowRemote); err != nil {
				return err
			}
		case "corp":
			c, err := parseCorp(d)
			if err != nil {
				return err
			}
			h.Corps = append(h.Corps, c)
		default:
			return d.Errf("wecom_simulator: unknown subdirective %q", d.Val())
		}
	}
	return nil
}

func parseCorp(d *caddyfile.Dispenser) (CorpConfig, error) {
	var c CorpConfig
	if !d.AllArgs(&c.Name) {
		return c, d.Errf("corp: want exactly one name, as in: corp <name> { ... }")
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "corp_id":
			if err := directive.OneArg(d, &c.CorpID); err != nil {
				return c, err
			}
		case "secret":
			if err := directive.OneArg(d, &c.Secret); err != nil {
				return c, err
			}
		case "user":
			u, err := parseUser(d)
			if err != nil {
				return c, err
			}
			c.Users = append(c.Users, u)
		default:
			return c, d.Errf("corp %s: unknown subdirective %q", c.Name, d.Val())
		}
	}
	return c, nil
}

func parseUser(d *caddyfile.Dispenser) (UserConfig, error) {
	var u UserConfig
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return u, d.Errf("user: want a userid and optionally a name, as in: user <userid> [<name>]")
	}
	u.UserID = args[0]
	if len(args) == 2 {
		u.Name = args[1]
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "name":
			if err := directive.OneArg(d, &u.Name); err != nil {
				return u, err
			}
		case "department":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return u, d.Errf("user %s: department: want one or more department ids", u.UserID)
			}
			for _, a := range args {
				id, err := strconv.ParseInt(a, 10, 64)
				if err != nil || id < 1 {
					return u, d.Errf("user %s: department: %q is not a department id", u.UserID, a)
				}
				u.Department = append(u.Department, id)
			}
		case "status":
			var v string
			if err := directive.OneArg(d, &v); err != nil {
				return u, err
			}
			st, err := strconv.Atoi(v)
			if err != nil || st == 0 || !validStatus(st) {
				return u, d.Errf("user %s: status: %q is not one of 1 (active), 2 (disabled), 4 (not activated), 5 (left)", u.UserID, v)
			}
			u.Status = st
		case "hidden":
			if err := parseFlag(d, "user "+u.UserID+": hidden", &u.Hidden); err != nil {
				return u, err
			}
		default:
			return u, d.Errf("user %s: unknown subdirective %q", u.UserID, d.Val())
		}
	}
	return u, nil
}

// parseFlag reads a boolean subdirective: bare means true, or an explicit true or false. what
// names it in errors.
func parseFlag(d *caddyfile.Dispenser, what string, dst *bool) error {
	args := d.RemainingArgs()
	switch len(args) {
	case 0:
		*dst = true
	case 1:
		b, err := strconv.ParseBool(args[0])
		if err != nil {
			return d.Errf("%s: %q is not true or false", what, args[0])
		}
		*dst = b
	default:
		return d.Errf("%s: want no value, true or false", what)
	}
	return nil
}
