package wecomauth

// The admin API (SPEC §6a), module admin.api.wecom on Caddy's admin
// endpoint, whose access rules apply (local only by default):
//
//	POST /wecom/revoke {"corp":"<name>","userid":"<id>"}  end the user's sessions everywhere
//	GET  /wecom/status                                    per corp: last gettoken, known users, callbacks
//
// Caddy provisions admin modules once, when the admin endpoint starts, not
// with each config: the running handlers are found in the registry.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/patrickmn/go-cache"
	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the module admin.api.wecom. It has no configuration.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.wecom",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin endpoint's /wecom/ routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/wecom/revoke", Handler: caddy.AdminHandlerFunc(a.revoke)},
		{Pattern: "/wecom/status", Handler: caddy.AdminHandlerFunc(a.status)},
	}
}

// adminRevokeBudget bounds a revoke: it writes to Caddy's storage.
const adminRevokeBudget = 10 * time.Second

func adminError(status int, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: err, Message: err.Error()}
}

// revoke ends every session of a user of a configured corp, on every
// instance sharing the storage (incident response: a compromised
// account). The user may sign in again if WeCom still admits them.
func (a *AdminAPI) revoke(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return adminError(http.StatusMethodNotAllowed, "use POST with {\"corp\":\"<name>\",\"userid\":\"<id>\"}")
	}
	var body struct {
		Corp   string `json:"corp"`
		UserID string `json:"userid"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		return adminError(http.StatusBadRequest, "the body must be a JSON object {\"corp\":\"<name>\",\"userid\":\"<id>\"}: %v", err)
	}
	switch {
	case body.Corp == "":
		return adminError(http.StatusBadRequest, "corp is required: the corp's name in wecom_auth")
	case body.UserID == "":
		return adminError(http.StatusBadRequest, "userid is required")
	case !wecom.ValidUserID(body.UserID):
		return adminError(http.StatusBadRequest, "userid %q is not a WeCom userid", body.UserID)
	}
	// One call per distinct corp id the name stands for (two sites may
	// name different corps alike); each is cluster-wide already.
	done := map[string]bool{}
	var errs []error
	for _, h := range liveHandlers() {
		c := h.corpByName(body.Corp)
		if c == nil || c.name != body.Corp || done[c.id] {
			continue
		}
		done[c.id] = true
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), adminRevokeBudget)
		err := h.endUserSessions(ctx, c.id, body.UserID)
		cancel()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.logger.Warn("admin API: every session of the user ended", zap.String("corp", c.name), zap.String("userid", body.UserID))
	}
	if len(done) == 0 {
		return adminError(http.StatusBadRequest, "unknown corp %q: no running wecom_auth has a corp of that name", body.Corp)
	}
	if err := errors.Join(errs...); err != nil {
		return adminError(http.StatusInternalServerError, "ending the sessions: %v", err)
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(map[string]any{"corp": body.Corp, "userid": body.UserID, "revoked": true})
}

// corpStatus is one corp in GET /wecom/status. Nothing in it is a secret.
type corpStatus struct {
	Name    string `json:"name"`
	CorpID  string `json:"corp_id"`
	APIBase string `json:"api_base"`
	// GetToken is the last gettoken this process sent for the corp; null
	// before the first.
	GetToken *tokenStatus `json:"gettoken"`
	// KnownUsers counts the users whose WeCom answer this process holds.
	KnownUsers int            `json:"known_users"`
	Callbacks  callbackStatus `json:"callbacks"`
	// QuotaInUse is, per WeCom API, the calls this process counted
	// against `quota` in its first window (SPEC §6b), and QuotaShare
	// what it may make there: its share, by the instances' claims.
	QuotaInUse map[string]int `json:"quota_in_use"`
	QuotaShare map[string]int `json:"quota_share"`
}

type tokenStatus struct {
	OK      bool      `json:"ok"`
	Errcode int       `json:"errcode,omitempty"`
	Error   string    `json:"error,omitempty"`
	At      time.Time `json:"at"`
}

type callbackStatus struct {
	Enabled  bool  `json:"enabled"`
	Received int64 `json:"received"`
	Refused  int64 `json:"refused"`
}

func (a *AdminAPI) status(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		return adminError(http.StatusMethodNotAllowed, "use GET")
	}
	out := struct {
		Corps []*corpStatus `json:"corps"`
	}{Corps: []*corpStatus{}}
	byKey := map[string]*corpStatus{}
	counted := map[string]bool{} // shared cache + app already counted
	for _, h := range liveHandlers() {
		for _, c := range h.corps {
			key := c.name + "\x00" + c.id + "\x00" + h.APIBase
			st := byKey[key]
			if st == nil {
				st = &corpStatus{Name: c.name, CorpID: c.id, APIBase: h.APIBase, QuotaInUse: map[string]int{}, QuotaShare: map[string]int{}}
				byKey[key] = st
				out.Corps = append(out.Corps, st)
				if v, ok := callbackCounts.Load(c.id); ok {
					n := v.(*callbackCount)
					st.Callbacks.Received, st.Callbacks.Refused = n.received.Load(), n.refused.Load()
				}
			}
			st.Callbacks.Enabled = st.Callbacks.Enabled || c.callback != nil
			if res, ok := h.shared.client.LastToken(c.id); ok && (st.GetToken == nil || res.At.After(st.GetToken.At)) {
				st.GetToken = &tokenStatus{OK: res.OK, Errcode: res.Errcode, At: res.At}
				if !res.OK {
					st.GetToken.Error = res.Reason
				}
			}
			for api, u := range h.quotaInUse()[c.name] { // handlers of one API base share the counts
				st.QuotaInUse[api] = max(st.QuotaInUse[api], u.Used)
				st.QuotaShare[api] = max(st.QuotaShare[api], u.Share)
			}
			if ck := h.sharedKey + "\x00" + c.app; !counted[ck] {
				counted[ck] = true
				st.KnownUsers += countPrefix(h.shared.users, c.app+"\x00")
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(out)
}

// countPrefix counts the unexpired entries of c whose key starts with p.
func countPrefix(c *cache.Cache, p string) int {
	n := 0
	for k := range c.Items() {
		if strings.HasPrefix(k, p) {
			n++
		}
	}
	return n
}

// Interface guard
var _ caddy.AdminRouter = (*AdminAPI)(nil)
