package wecomauth

import (
	"context"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/session"
	"github.com/wecomgate/wecomgate/module/wecom"
)

// maxCodeLen bounds what is sent to WeCom as a code; real codes are 32–64
// characters.
const maxCodeLen = 256

// loginWithCode turns a wx.qy.login code into the identity of an admitted
// user: the code is exchanged with the named (or first) corp's token, the
// user must belong to that corp, and WeCom must report them visible and
// active.
func (h *Handler) loginWithCode(ctx context.Context, code, corpName string) (*identity, *denial) {
	if code == "" {
		return nil, invalidRequest("code is required")
	}
	if len(code) > maxCodeLen {
		return nil, invalidRequest("code is too long")
	}
	corp := h.corpByName(corpName)
	if corp == nil {
		return nil, invalidRequest("unknown corp " + quoteShort(corpName))
	}
	sess, err := h.exchange(ctx, corp, code)
	if err != nil {
		return nil, fromWeCom(err)
	}
	if sess.CorpID != corp.id {
		// With another corp's token WeCom still names the user's own corp,
		// but with a userid that only works there: the client must get a
		// fresh code and name that corp.
		if other := h.corpByID[sess.CorpID]; other != nil {
			return nil, wrongCorp(other.name)
		}
		return nil, corpNotAllowed()
	}
	f, err := h.fetchUser(ctx, corp, sess.UserID)
	if err != nil {
		return nil, fromWeCom(err)
	}
	return h.admit(corp, sess.UserID, f)
}

// exchange calls jscode2session once per code. The answer is remembered
// for a code's lifetime so that a client retrying the same code (say after
// a lost response) gets the same user rather than WeCom's 40029.
func (h *Handler) exchange(ctx context.Context, corp *corp, code string) (wecom.Session, error) {
	key := corp.id + "\x00" + code
	if v, ok := h.shared.spent.Get(key); ok {
		return v.(wecom.Session), nil
	}
	v, err, _ := h.shared.codes.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), wecomCallBudget)
		defer cancel()
		s, err := h.shared.client.CodeToSession(ctx, corp.credentials(), code)
		if err != nil {
			return nil, err
		}
		s.SessionKey = "" // the gateway has no use for it: never keep a secret it doesn't need
		h.shared.spent.SetDefault(key, s)
		return s, nil
	})
	if err != nil {
		return wecom.Session{}, err
	}
	return v.(wecom.Session), nil
}

// issue seals a fresh session for id. Every sign-in gets a new token, so a
// token planted before sign-in is worth nothing after it.
func (h *Handler) issue(id *identity) (string, session.Claims, error) {
	now := h.now()
	c := session.Claims{
		UserID: id.UserID, CorpID: id.CorpID, Corp: id.Corp,
		Name: id.Name, Departments: id.Departments, Review: id.Review,
		IssuedAt: now, ExpiresAt: now.Add(time.Duration(h.SessionTTL)),
	}
	tok, sid, err := h.ring.Seal(&c)
	c.ID = sid
	return tok, c, err
}

// logLogin writes the one line each sign-in attempt gets.
func (h *Handler) logLogin(r *http.Request, method string, id *identity, d *denial) {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	fields := []zap.Field{zap.String("method", method), zap.String("client_ip", ip)}
	if d != nil {
		fields = append(fields, zap.String("result", d.code))
		if d.cause != nil {
			fields = append(fields, zap.String("cause", d.cause.Error()))
		}
		h.logger.Info("login refused", fields...)
		return
	}
	fields = append(fields, zap.String("result", "ok"), zap.String("userid", id.UserID))
	if !id.Review {
		fields = append(fields, zap.String("corp", id.Corp))
	}
	h.logger.Info("login", fields...)
}

func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + s + `"`
}
