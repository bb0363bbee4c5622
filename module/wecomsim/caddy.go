package wecomsim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the Caddy module http.handlers.wecom_simulator: it answers the WeCom calls and the
// development interface and passes every other request to the next handler.
type Handler struct {
	TokenTTL caddy.Duration `json:"token_ttl,omitempty"`
	CodeTTL  caddy.Duration `json:"code_ttl,omitempty"`
	DevPath  string         `json:"dev_path,omitempty"`
	Corps    []CorpConfig   `json:"corps,omitempty"`
	// Playground, when set, serves a development page at <dev_path>/playground that drives this
	// simulator and the gateway found at this path on the same origin (say /gateway, proxied to
	// the gateway) or at this http(s) URL (which then has to allow the page's origin).
	Playground string `json:"playground,omitempty"`
	// DevAllowRemote lets the development interface and the playground answer any client at
	// any Host. By default they answer only loopback clients (Caddy's client IP, so the real
	// client behind a trusted proxy) at a Host of localhost or a loopback address.
	DevAllowRemote bool `json:"dev_allow_remote,omitempty"`
	// MiniProgramAppID is the mini program appid in the watermark of what the development
	// interface encrypts as wx.qy.getMobile would (POST <dev_path>/userdata); default
	// wx00000000000demo. It must equal the gateway's `decrypt <appid>`.
	MiniProgramAppID string `json:"miniprogram_appid,omitempty"`
	// FrequencyLimits emulate WeCom's frequency limits: each corp may make
	// calls calls of endpoint in any window; past that 45009, and so for
	// block (default 60s).
	FrequencyLimits []LimitConfig `json:"frequency_limits,omitempty"`
	// Latency delays every answer of endpoint ("*" or empty: all).
	Latency []LatencyConfig `json:"latency,omitempty"`

	sim        *Simulator
	poolKey    string
	playground *playgroundPage
}

// LimitConfig is one emulated frequency limit (see Limit).
type LimitConfig struct {
	Endpoint string         `json:"endpoint,omitempty"`
	Calls    int            `json:"calls"`
	Window   caddy.Duration `json:"window"`
	Block    caddy.Duration `json:"block,omitempty"`
}

// LatencyConfig is one emulated latency (see Latency).
type LatencyConfig struct {
	Endpoint string         `json:"endpoint,omitempty"`
	Delay    caddy.Duration `json:"delay"`
}

// CorpConfig is one corp of the simulator. Secret may be a runtime placeholder such as {env.X}.
type CorpConfig struct {
	Name        string             `json:"name,omitempty"`
	CorpID      string             `json:"corp_id,omitempty"`
	Secret      string             `json:"secret,omitempty"`
	Users       []UserConfig       `json:"users,omitempty"`
	Departments []DepartmentConfig `json:"departments,omitempty"`
	Tags        []TagConfig        `json:"tags,omitempty"`
	// Callback sends the corp's contact changes to a gateway (callback.go).
	Callback *CallbackConfig `json:"callback,omitempty"`
}

// CallbackConfig is where a corp's callbacks go: the gateway's callback URL and the Token and
// EncodingAESKey configured there. Token and key may be runtime placeholders such as {env.X}.
type CallbackConfig struct {
	URL    string `json:"url"`
	Token  string `json:"token"`
	AESKey string `json:"aes_key"`
}

// resolved is the callback with its placeholders replaced, as the Simulator takes it.
func (cb *CallbackConfig) resolved(repl *caddy.Replacer) *Callback {
	if cb == nil {
		return nil
	}
	return &Callback{URL: cb.URL, Token: repl.ReplaceAll(cb.Token, ""), AESKey: repl.ReplaceAll(cb.AESKey, "")}
}

// DepartmentConfig is one department of a corp. 1 is the root, which exists without being
// declared and has no parent; Parent 0 means the root.
type DepartmentConfig struct {
	ID     int64  `json:"id"`
	Parent int64  `json:"parent,omitempty"`
	Name   string `json:"name,omitempty"`
	Order  int    `json:"order,omitempty"`
}

// TagConfig is one tag of a corp: users of the corp and departments.
type TagConfig struct {
	ID          int64    `json:"id"`
	Name        string   `json:"name,omitempty"`
	Users       []string `json:"users,omitempty"`
	Departments []int64  `json:"departments,omitempty"`
}

// UserConfig is one member of a corp's contacts.
type UserConfig struct {
	UserID     string  `json:"userid"`
	Name       string  `json:"name,omitempty"`
	Department []int64 `json:"department,omitempty"`
	Status     int     `json:"status,omitempty"`
	Hidden     bool    `json:"hidden,omitempty"`
	// Mobile and Email are revealed only as wx.qy.getMobile / wx.qy.getEmail would, encrypted.
	Mobile string `json:"mobile,omitempty"`
	Email  string `json:"email,omitempty"`
}

// simulators holds the running Simulators keyed by their configuration, so that a config reload
// with the same simulator configuration keeps its tokens, codes, faults and counts.
var simulators = caddy.NewUsagePool()

// pooled lets a Simulator live in a caddy.UsagePool, which wants a Destructor; nothing needs
// releasing.
type pooled struct{ *Simulator }

func (pooled) Destruct() error { return nil }

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wecom_simulator",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision finds the Simulator of this configuration or builds it.
func (h *Handler) Provision(ctx caddy.Context) error {
	// The playground page has no state: switching it on or off keeps the Simulator.
	// dev_allow_remote stays in the key, as the Simulator itself enforces it.
	withoutPage := *h
	withoutPage.Playground = ""
	key, err := json.Marshal(&withoutPage)
	if err != nil {
		return err
	}
	h.poolKey = string(key)
	val, _, err := simulators.LoadOrNew(h.poolKey, func() (caddy.Destructor, error) {
		return pooled{New(h.config())}, nil
	})
	if err != nil {
		return err
	}
	h.sim = val.(pooled).Simulator
	ctx.Logger().Warn("WeCom simulator enabled: for development only, never expose it",
		zap.String("dev_path", h.sim.devPath), zap.Int("corps", len(h.Corps)))
	if h.DevAllowRemote {
		ctx.Logger().Warn("WeCom simulator dev_allow_remote: the development interface answers any client at any Host; "+
			"anyone who reaches this server can sign in as any user",
			zap.String("dev_path", h.sim.devPath))
	}
	if h.Playground != "" {
		if h.playground, err = newPlaygroundPage(h.Playground, h.sim.devPath); err != nil {
			return err
		}
		ctx.Logger().Warn("WeCom simulator playground enabled: a development page that mints login codes, never expose it",
			zap.String("path", h.playground.path), zap.String("gateway", h.Playground))
	}
	return nil
}

// config turns the module's configuration into the Simulator's, resolving placeholders in
// secrets so that they can come from the environment.
func (h *Handler) config() Config {
	repl := caddy.NewReplacer()
	cfg := Config{
		TokenTTL: time.Duration(h.TokenTTL), CodeTTL: time.Duration(h.CodeTTL), DevPath: h.DevPath,
		DevAllowRemote: h.DevAllowRemote, MiniProgramAppID: h.MiniProgramAppID,
	}
	for _, l := range h.FrequencyLimits {
		cfg.Limits = append(cfg.Limits, Limit{Endpoint: l.Endpoint, Calls: l.Calls, Window: time.Duration(l.Window), Block: time.Duration(l.Block)})
	}
	for _, l := range h.Latency {
		cfg.Latency = append(cfg.Latency, Latency{Endpoint: l.Endpoint, Delay: time.Duration(l.Delay)})
	}
	for _, c := range h.Corps {
		corp := Corp{Name: c.Name, CorpID: c.CorpID, Secret: repl.ReplaceAll(c.Secret, "")}
		if corp.Name == "" {
			corp.Name = corp.CorpID
		}
		for _, u := range c.Users {
			corp.Users = append(corp.Users, User{
				UserID: u.UserID, Name: u.Name, Departments: u.Department, Status: u.Status, Hidden: u.Hidden,
				Mobile: u.Mobile, Email: u.Email,
			})
		}
		corp.Departments, corp.Tags = c.contacts()
		corp.Callback = c.Callback.resolved(repl)
		cfg.Corps = append(cfg.Corps, corp)
	}
	return cfg
}

// contacts returns the corp's departments and tags as the Simulator takes them.
func (c CorpConfig) contacts() ([]Department, []Tag) {
	var deps []Department
	for _, d := range c.Departments {
		deps = append(deps, Department{ID: d.ID, ParentID: d.Parent, Name: d.Name, Order: d.Order})
	}
	var tags []Tag
	for _, t := range c.Tags {
		tags = append(tags, Tag{ID: t.ID, Name: t.Name, UserIDs: t.Users, Departments: t.Departments})
	}
	return deps, tags
}

// checkContacts checks the corp's users' departments, its departments and its tags.
func (c CorpConfig) checkContacts() error {
	users := make(map[string]bool, len(c.Users))
	for _, u := range c.Users {
		if err := checkDepartmentIDs(u.Department); err != nil {
			return fmt.Errorf("user %s: department: %w", u.UserID, err)
		}
		users[u.UserID] = true
	}
	deps, tags := c.contacts()
	return checkContacts(deps, tags, func(id string) bool { return users[id] })
}

// Validate rejects configurations under which a lookup by corp name or corp_id would be
// ambiguous, and values WeCom never answers.
func (h *Handler) Validate() error {
	if h.TokenTTL < 0 || h.CodeTTL < 0 {
		return errors.New("wecom_simulator: token_ttl and code_ttl must not be negative")
	}
	if h.DevPath != "" && !strings.HasPrefix(h.DevPath, "/") {
		return fmt.Errorf("wecom_simulator: dev_path %q must start with /", h.DevPath)
	}
	if strings.HasPrefix(h.DevPath+"/", "/cgi-bin/") {
		return fmt.Errorf("wecom_simulator: dev_path %q must not be under /cgi-bin", h.DevPath)
	}
	if h.Playground != "" {
		if err := checkPlayground(h.Playground); err != nil {
			return err
		}
	}
	for _, l := range h.FrequencyLimits {
		if err := checkLimit(Limit{Endpoint: normalizeEndpoint(l.Endpoint), Calls: l.Calls, Window: time.Duration(l.Window), Block: time.Duration(l.Block)}); err != nil {
			return fmt.Errorf("wecom_simulator: frequency_limit: %w", err)
		}
	}
	for _, l := range h.Latency {
		if e := normalizeEndpoint(l.Endpoint); (e != "" && !slices.Contains(endpoints, e)) || l.Delay < 0 {
			return fmt.Errorf("wecom_simulator: latency: endpoint %q or delay %v not valid", l.Endpoint, time.Duration(l.Delay))
		}
	}
	if len(h.Corps) == 0 {
		return errors.New("wecom_simulator: at least one corp is required")
	}
	seen := make(map[string]string) // corp name or corp_id -> what it named
	for i, c := range h.Corps {
		label := c.Name
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
		}
		if c.CorpID == "" {
			return fmt.Errorf("wecom_simulator: corp %s: corp_id is required", label)
		}
		if c.Secret == "" {
			return fmt.Errorf("wecom_simulator: corp %s: secret is required", label)
		}
		keys := []string{c.CorpID}
		if c.Name != "" && c.Name != c.CorpID {
			keys = append(keys, c.Name)
		}
		for _, k := range keys {
			if prev, dup := seen[k]; dup {
				return fmt.Errorf("wecom_simulator: corp %s: %q is already the name or corp_id of corp %s", label, k, prev)
			}
			seen[k] = label
		}
		users := make(map[string]bool)
		for _, u := range c.Users {
			if u.UserID == "" {
				return fmt.Errorf("wecom_simulator: corp %s: user without userid", label)
			}
			if users[u.UserID] {
				return fmt.Errorf("wecom_simulator: corp %s: user %s is configured twice", label, u.UserID)
			}
			users[u.UserID] = true
			if !validStatus(u.Status) {
				return fmt.Errorf("wecom_simulator: corp %s: user %s: status %d is not one of 1, 2, 4, 5", label, u.UserID, u.Status)
			}
		}
		if err := c.checkContacts(); err != nil {
			return fmt.Errorf("wecom_simulator: corp %s: %w", label, err)
		}
		if err := checkCallback(c.Callback.resolved(caddy.NewReplacer())); err != nil {
			return fmt.Errorf("wecom_simulator: corp %s: %w", label, err)
		}
	}
	return nil
}

// Cleanup releases this configuration's hold on its Simulator.
func (h *Handler) Cleanup() error {
	if h.poolKey == "" {
		return nil
	}
	_, err := simulators.Delete(h.poolKey)
	return err
}

// ServeHTTP answers the WeCom calls and the development interface and passes the rest on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if h.playground.serves(r.URL.Path) {
		// The page is part of the development interface and guarded the same way.
		if h.sim.admitDev(w, r) {
			h.playground.ServeHTTP(w, r)
		}
		return nil
	}
	if !h.sim.handles(r.URL.Path) {
		return next.ServeHTTP(w, r)
	}
	h.sim.ServeHTTP(w, r)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
