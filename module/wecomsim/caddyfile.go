package wecomsim

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

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
//		miniprogram_appid <appid>
//		frequency_limit <endpoint|*> <calls> <window> [<block>]
//		latency <endpoint|*> <duration>
//		corp <name> {
//			corp_id <corpid>
//			secret  <secret>
//			user <userid> [<name>] {
//				name       <name>
//				department <id...>
//				status     1|2|4|5
//				hidden     [true|false]
//				mobile     <mobile>
//				email      <email>
//			}
//			department <id> [<name>] {
//				name   <name>
//				parent <id>
//				order  <n>
//			}
//			tag <tagid> [<name>] {
//				name        <name>
//				users       <userid...>
//				departments <id...>
//			}
//		}
//	}
//
// Blocks are optional. Department 1 is the root and exists undeclared; a department without
// parent is under the root, and a parent must be 1 or declared in the same corp (before or
// after). A department that users or tags name without declaring it exists under the root.
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
		case "miniprogram_appid":
			if err := directive.OneArg(d, &h.MiniProgramAppID); err != nil {
				return err
			}
		case "frequency_limit":
			args := d.RemainingArgs()
			if len(args) != 3 && len(args) != 4 {
				return d.Err("frequency_limit: want <endpoint|*> <calls> <window> [<block>], as in: frequency_limit user/get 200 10s 60s")
			}
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 {
				return d.Errf("frequency_limit: %q is not a positive number of calls", args[1])
			}
			l := LimitConfig{Endpoint: args[0], Calls: n}
			for i, dst := range []*caddy.Duration{&l.Window, &l.Block}[:len(args)-2] {
				v, err := caddy.ParseDuration(args[2+i])
				if err != nil || v <= 0 {
					return d.Errf("frequency_limit: %q is not a positive duration", args[2+i])
				}
				*dst = caddy.Duration(v)
			}
			if err := checkLimit(Limit{Endpoint: normalizeEndpoint(l.Endpoint), Calls: l.Calls, Window: time.Duration(l.Window), Block: time.Duration(l.Block)}); err != nil {
				return d.Errf("frequency_limit: %v", err)
			}
			h.FrequencyLimits = append(h.FrequencyLimits, l)
		case "latency":
			var endpoint, dur string
			if !d.AllArgs(&endpoint, &dur) {
				return d.Err("latency: want <endpoint|*> <duration>, as in: latency user/get 300ms")
			}
			v, err := caddy.ParseDuration(dur)
			if err != nil || v < 0 {
				return d.Errf("latency: %q is not a duration", dur)
			}
			if e := normalizeEndpoint(endpoint); e != "" && !slices.Contains(endpoints, e) {
				return d.Errf("latency: endpoint %q is not one of %s or \"*\"", endpoint, strings.Join(endpoints, ", "))
			}
			h.Latency = append(h.Latency, LatencyConfig{Endpoint: endpoint, Delay: caddy.Duration(v)})
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
	where := make(map[string]string) // "department 3", "tag 1" -> file:line, for errors
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if v := d.Val(); v == "department" || v == "tag" {
			if d.NextArg() {
				where[v+" "+d.Val()] = fmt.Sprintf("%s:%d", d.File(), d.Line())
				d.Prev()
			}
		}
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
		case "department":
			dep, err := parseDepartment(d)
			if err != nil {
				return c, err
			}
			for _, prev := range c.Departments {
				if prev.ID == dep.ID {
					return c, d.Errf("corp %s: department %d is declared twice", c.Name, dep.ID)
				}
			}
			c.Departments = append(c.Departments, dep)
		case "callback":
			// callback <url> { token <token>; aes_key <EncodingAESKey> }, as in wecom_auth
			cb := &CallbackConfig{}
			if !d.AllArgs(&cb.URL) {
				return c, d.Errf("corp %s: callback: want the gateway's callback URL, as in: callback http://127.0.0.1:8080/wecom/callback/%s { token …; aes_key … }", c.Name, c.Name)
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "token":
					if err := directive.OneArg(d, &cb.Token); err != nil {
						return c, err
					}
				case "aes_key":
					if err := directive.OneArg(d, &cb.AESKey); err != nil {
						return c, err
					}
				default:
					return c, d.Errf("corp %s: callback: unknown subdirective %q", c.Name, d.Val())
				}
			}
			if !strings.Contains(cb.Token+cb.AESKey, "{") { // placeholders are checked by Validate
				if err := checkCallback(&Callback{URL: cb.URL, Token: cb.Token, AESKey: cb.AESKey}); err != nil {
					return c, d.Errf("corp %s: %v", c.Name, err)
				}
			}
			c.Callback = cb
		case "tag":
			t, err := parseTag(d)
			if err != nil {
				return c, err
			}
			for _, prev := range c.Tags {
				if prev.ID == t.ID {
					return c, d.Errf("corp %s: tag %d is declared twice", c.Name, t.ID)
				}
			}
			c.Tags = append(c.Tags, t)
		default:
			return c, d.Errf("corp %s: unknown subdirective %q", c.Name, d.Val())
		}
	}
	// Parents and tag members may be declared later in the block, so the tree is checked once
	// the corp is complete; Validate checks it again for JSON configurations.
	if err := c.checkContacts(); err != nil {
		var ce *contactsError
		if errors.As(err, &ce) && where[fmt.Sprintf("%s %d", ce.kind, ce.id)] != "" {
			return c, fmt.Errorf("corp %s: %w, at %s", c.Name, err, where[fmt.Sprintf("%s %d", ce.kind, ce.id)])
		}
		return c, d.Errf("corp %s: %v", c.Name, err)
	}
	return c, nil
}

func parseDepartment(d *caddyfile.Dispenser) (DepartmentConfig, error) {
	var dep DepartmentConfig
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return dep, d.Errf("department: want an id and optionally a name, as in: department <id> [<name>] { parent <id> }")
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id < 1 {
		return dep, d.Errf("department: %q is not a department id (ids start at 1, the root)", args[0])
	}
	dep.ID = id
	if len(args) == 2 {
		dep.Name = args[1]
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "name":
			if err := directive.OneArg(d, &dep.Name); err != nil {
				return dep, err
			}
		case "parent":
			var v string
			if err := directive.OneArg(d, &v); err != nil {
				return dep, err
			}
			p, err := strconv.ParseInt(v, 10, 64)
			if err != nil || p < 1 {
				return dep, d.Errf("department %d: parent: %q is not a department id", id, v)
			}
			if id == RootDepartment {
				return dep, d.Errf("department 1 is the root: it has no parent")
			}
			dep.Parent = p
		case "order":
			var v string
			if err := directive.OneArg(d, &v); err != nil {
				return dep, err
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return dep, d.Errf("department %d: order: %q is not a number of 0 or more", id, v)
			}
			dep.Order = n
		default:
			return dep, d.Errf("department %d: unknown subdirective %q", id, d.Val())
		}
	}
	return dep, nil
}

func parseTag(d *caddyfile.Dispenser) (TagConfig, error) {
	var t TagConfig
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return t, d.Errf("tag: want a tagid and optionally a name, as in: tag <tagid> [<name>] { users <userid...> }")
	}
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil || id < 1 {
		return t, d.Errf("tag: %q is not a tag id (ids start at 1)", args[0])
	}
	t.ID = id
	if len(args) == 2 {
		t.Name = args[1]
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "name":
			if err := directive.OneArg(d, &t.Name); err != nil {
				return t, err
			}
		case "users":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return t, d.Errf("tag %d: users: want one or more userids", id)
			}
			t.Users = append(t.Users, args...)
		case "departments":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return t, d.Errf("tag %d: departments: want one or more department ids", id)
			}
			for _, a := range args {
				dep, err := strconv.ParseInt(a, 10, 64)
				if err != nil || dep < 1 {
					return t, d.Errf("tag %d: departments: %q is not a department id", id, a)
				}
				t.Departments = append(t.Departments, dep)
			}
		default:
			return t, d.Errf("tag %d: unknown subdirective %q", id, d.Val())
		}
	}
	return t, nil
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
		case "mobile":
			if err := directive.OneArg(d, &u.Mobile); err != nil {
				return u, err
			}
		case "email":
			if err := directive.OneArg(d, &u.Email); err != nil {
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
