package wecomauth

import (
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/wecomgate/wecomgate/module/wecom"
)

// corp is a provisioned CorpConfig: secret resolved, allow-lists as sets.
type corp struct {
	name   string
	id     string
	secret string
	users  map[string]bool // nil: everyone
	depts  map[string]bool // department ids as text, as sessions carry them; nil: every department
}

func newCorp(cfg CorpConfig, repl *caddy.Replacer) (*corp, error) {
	c := &corp{
		name:   cfg.Name,
		id:     strings.TrimSpace(cfg.CorpID),
		secret: repl.ReplaceKnown(cfg.Secret, ""),
	}
	if len(cfg.AllowUsers) > 0 {
		c.users = make(map[string]bool, len(cfg.AllowUsers))
		for _, u := range cfg.AllowUsers {
			c.users[u] = true
		}
	}
	if len(cfg.AllowDepartments) > 0 {
		c.depts = make(map[string]bool, len(cfg.AllowDepartments))
		for _, d := range cfg.AllowDepartments {
			c.depts[strconv.FormatInt(d, 10)] = true
		}
	}
	return c, nil
}

func (c *corp) credentials() wecom.Corp { return wecom.Corp{ID: c.id, Secret: c.secret} }

// admits applies the corp's allow-lists. departments is comma-separated.
func (c *corp) admits(userID, departments string) bool {
	if c.users != nil && !c.users[userID] {
		return false
	}
	if c.depts == nil {
		return true
	}
	for d := range strings.SplitSeq(departments, ",") {
		if c.depts[d] {
			return true
		}
	}
	return false
}

// corpByName finds a configured corp; "" means the first.
func (h *Handler) corpByName(name string) *corp {
	if name == "" {
		return h.corps[0]
	}
	for _, c := range h.corps {
		if c.name == name {
			return c
		}
	}
	return nil
}
