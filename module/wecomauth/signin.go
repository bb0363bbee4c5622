package wecomauth

// Sign-in: turning a wx.qy.login code into an admitted user (one
// jscode2session per code, spent and burned codes), behind the failure
// limiter, with the log line and metric every attempt gets.

import (
	"context"
	"crypto/sha256"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

// signIn runs one sign-in attempt behind the failure limiter, and gives it
// its log line and metric. attempt returns the corp name the client asked
// for, if any. The attempt's unit of the client's budget is reserved
// before it runs, so concurrent attempts cannot outrun the count, and it
// is settled even if the attempt panics: a leaked unit would hold a slot
// of the in-flight bound for good.
func (h *Handler) signIn(r *http.Request, method string, attempt func() (*identity, string, *denial)) (*identity, *denial) {
	res, d := h.reserveSignIn(r, method)
	if d != nil {
		h.logLogin(r, method, "", nil, d)
		return nil, d
	}
	// A panic keeps the unit as a failure: an input that crashes the
	// attempt is worth no more guesses than a wrong one.
	failed := true
	defer func() { h.limiter.settle(res, failed, h.now()) }()
	id, corpName, d := attempt()
	failed = d != nil && countsAsFailure(d)
	h.logLogin(r, method, corpName, id, d)
	return id, d
}

// logLogin writes the one line and the metric each sign-in attempt gets.
func (h *Handler) logLogin(r *http.Request, method, corpName string, id *identity, d *denial) {
	corp := ""
	switch {
	case id != nil:
		corp = id.Corp
	case method != "review":
		// Only configured names become labels: a client can send any name.
		if c := h.corpByName(corpName); c != nil {
			corp = c.name
		}
	}
	fields := []zap.Field{zap.String("method", method), zap.String("client_ip", clientIP(r))}
	if corp != "" {
		fields = append(fields, zap.String("corp", corp))
	}
	if d != nil {
		metrics.logins.WithLabelValues(d.code, corp).Inc()
		fields = append(fields, zap.String("result", d.code))
		if d.cause != nil {
			fields = append(fields, zap.String("cause", d.cause.Error()))
		}
		h.logger.Info("login refused", fields...)
		return
	}
	metrics.logins.WithLabelValues("ok", corp).Inc()
	fields = append(fields, zap.String("result", "ok"), zap.String("userid", id.UserID))
	h.logger.Info("login", fields...)
}

// loginWithCode turns a wx.qy.login code into the identity of an admitted
// user: the code is exchanged with the named (or first) corp's token, the
// user must belong to that corp, and WeCom must report them visible and
// active.
func (h *Handler) loginWithCode(r *http.Request, code, corpName string) (*identity, *denial) {
	// Its WeCom calls come first in the budget, and take loginBudget in
	// all: past it the client is better off with 503 and a fresh code.
	ctx, cancel := context.WithTimeout(withPriority(r.Context(), prioLogin), h.loginBudget)
	defer cancel()
	if code == "" {
		return nil, invalidRequest("code is required")
	}
	if len(code) > wecom.MaxCodeLen {
		return nil, invalidRequest("code is too long")
	}
	corp := h.corpByName(corpName)
	if corp == nil {
		return nil, invalidRequest("unknown corp " + quoteShort(corpName))
	}
	sess, replayed, err := h.exchange(ctx, corp, code, clientIP(r))
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
	// A fresh code always asks WeCom about the user (an administrator may
	// just have re-enabled them); a code presented again from the same
	// address reuses a recent answer, so repeating one code cannot spend
	// the corp's WeCom quota.
	q := h.userQuery(corp, sess.UserID, nil, prioLogin)
	var f *fact
	if replayed {
		f = q.cached()
	}
	if f == nil || f.checkedAt.IsZero() || h.now().Sub(f.checkedAt) >= time.Duration(h.Recheck) {
		q.fresh = true
		var err error
		if f, err = h.refresh(ctx, q, nil); err != nil {
			return nil, fromWeCom(err)
		}
	}
	id, d := h.admit(ctx, corp, sess.UserID, f)
	if id != nil && h.Decrypt != "" {
		// Kept only where /wecom/decrypt is on, sealed into the token.
		id.sessionKey = decodeSessionKey(sess.SessionKey)
	}
	return id, d
}

// spentCode is a code's exchange, remembered for a retry.
type spentCode struct {
	session wecom.Session
	at      time.Time
}

// exchange calls jscode2session once per code. The answer is remembered
// for replayWindow so that a client retrying the same code (say after a
// lost response) gets the same user rather than WeCom's 40029 — but only
// for the address that spent it: a code copied from a log elsewhere is
// worth nothing.
func (h *Handler) exchange(ctx context.Context, corp *corp, code, ip string) (s wecom.Session, replayed bool, err error) {
	key := corp.app + "\x00" + ip + "\x00" + code
	if v, ok := h.shared.spent.Get(key); ok {
		if sc := v.(spentCode); h.now().Sub(sc.at) < replayWindow {
			return sc.session, true, nil
		}
		return wecom.Session{}, false, errCodeUsed // spent, and too long ago for a retry
	}
	if _, ok := h.shared.burned.Get(burnKey(code)); ok {
		return wecom.Session{}, false, errCodeUsed
	}
	v, err, _ := h.shared.codes.Do(key, func() (any, error) {
		ctx, cancel := detached(ctx, h.callBudget)
		defer cancel()
		var s wecom.Session
		err := h.spend(ctx, corp, "jscode2session", prioLogin, func(ctx context.Context) error {
			var err error
			s, err = h.shared.client.CodeToSession(ctx, corp.credentials(), code)
			return err
		})
		if err != nil {
			return nil, err
		}
		// The session_key stays in memory with the exchange (a retry of the
		// code gets the same one) and goes, sealed, into the token where
		// /wecom/decrypt is on; it is never logged (wecom.Session's
		// String, Format and MarshalLogObject leave it out).
		h.shared.spent.Set(key, spentCode{session: s, at: h.now()}, codeLifetime)
		return s, nil
	})
	if err != nil {
		return wecom.Session{}, false, err
	}
	return v.(wecom.Session), false, nil
}

// errCodeUsed refuses, without asking WeCom, a code that is used up here:
// burned (see burnCode) or spent longer ago than a retry comes. WeCom
// itself would answer 40029.
var errCodeUsed = &wecom.Error{Endpoint: "jscode2session", Errcode: 40029, Errmsg: "code already used or refused by this gateway", Kind: wecom.KindInvalidCode}

// burnCode makes an inline code whose sign-in was refused worthless here
// for a code's lifetime. Caddy's access and error logs show request
// headers, and a logged code that WeCom never spent (a 429, an unknown
// corp, WeCom down) would otherwise sign its user in for whoever reads the
// log. A code that was spent is dead at WeCom anyway. The burned codes are
// bounded in number and kept as hashes.
func (h *Handler) burnCode(code string) {
	if code == "" || len(code) > wecom.MaxCodeLen || h.shared.burned.ItemCount() >= maxBurned {
		return
	}
	h.shared.burned.SetDefault(burnKey(code), struct{}{})
}

func burnKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return string(sum[:16])
}

func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + s + `"`
}
