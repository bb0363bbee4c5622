package wecomauth

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/wecomgate/wecomgate/module/internal/session"
	"github.com/wecomgate/wecomgate/module/internal/wecom"
	"github.com/wecomgate/wecomgate/module/internal/wxcrypt"
)

// corp is a provisioned CorpConfig: secret resolved, allow-lists as sets.
type corp struct {
	name   string
	id     string
	secret string
	// app names the WeCom app (corp id and a hash of its secret): what
	// WeCom says of a user depends on the app asking, and two sites may use
	// two apps of one corp, so cached answers are keyed by it, and the
	// corp's sessions are bound to it.
	app string
	// binding seals the corp's sessions to app (see boundRing): a token of
	// another app must not carry what that app's login found into this one.
	binding session.Binding
	allow   *allowList
	// callback opens WeCom's callbacks for this corp; nil without a
	// callback block (callback.go).
	callback *wxcrypt.Crypter
}

func newCorp(cfg CorpConfig, repl *caddy.Replacer) *corp {
	c := &corp{
		name:   cfg.Name,
		id:     strings.TrimSpace(cfg.CorpID),
		secret: repl.ReplaceKnown(cfg.Secret, ""),
	}
	sum := sha256.Sum256([]byte(c.secret))
	c.app = c.id + "/" + hex.EncodeToString(sum[:8])
	c.binding = sessionBinding("corp\x00"+c.id, "corp\x00"+c.app)
	c.allow = newAllowList(cfg.AllowUsers, cfg.AllowDepartments, cfg.AllowTags, nil)
	return c
}

// validate checks one corp block as written.
func (c *CorpConfig) validate() error {
	switch {
	case c.Name == "":
		return fmt.Errorf("corp: a name is required")
	case strings.TrimSpace(c.CorpID) == "":
		return fmt.Errorf("corp %s: corp_id is required", c.Name)
	case c.Secret == "":
		return fmt.Errorf("corp %s: secret is required", c.Name)
	}
	if err := validateLists("allow_", c.AllowUsers, c.AllowDepartments, c.AllowTags); err != nil {
		return fmt.Errorf("corp %s: %w", c.Name, err)
	}
	return c.Callback.validate(c.Name)
}

func (c *corp) credentials() wecom.Corp { return wecom.Corp{ID: c.id, Secret: c.secret} }

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
