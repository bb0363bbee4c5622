package wecomauth

// WeCom's callbacks (SPEC §4a): GET/POST {endpoints}/callback/<corp name>.
// This file is the receiving end: the corp's callback settings, the
// message crypto (internal/wxcrypt), the refusals, and the answer WeCom
// wants. What an accepted event does is contacts.go.
//
// WeCom's documentation: 回调配置 /document/path/90930 (URL verification,
// "answer within 1 s", resends), 加解密方案说明 /document/path/90968 (the
// crypto), 通讯录回调通知 /document/path/90970 ff. (change_contact).

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/internal/wxcrypt"
)

// CallbackConfig is a corp's receive-message server settings, as WeCom's
// admin console shows them for the app's 接收消息 (and the contact-sync
// assistant's callback, which may use the same).
type CallbackConfig struct {
	// Token as set in WeCom's console. {env.X} / {file.X} keep it out of
	// Caddy's config.
	Token string `json:"token"`
	// EncodingAESKey: 43 characters, as WeCom's console shows it.
	AESKey string `json:"aes_key"`
}

const (
	// maxCallbackBody bounds an event body: WeCom's are a few KiB.
	maxCallbackBody = 64 << 10
	// callbackClockSkew is how far a callback's timestamp may be from
	// ours: a replayed message older than this is refused.
	callbackClockSkew = 5 * time.Minute
	// callbackActWait is how long the answer waits for the event's effect
	// before it goes anyway: WeCom wants an answer within a second and
	// resends otherwise, so a slow storage must not hold the answer; the
	// effect then completes after it (within callbackActBudget).
	callbackActWait   = 500 * time.Millisecond
	callbackActBudget = 10 * time.Second
)

// validate checks a callback block as written. Placeholders are checked
// at provision, once they are resolved.
func (cb *CallbackConfig) validate(corpName string) error {
	if cb == nil {
		return nil
	}
	if strings.TrimSpace(cb.Token) == "" {
		return fmt.Errorf("corp %s: callback: token is required", corpName)
	}
	if cb.AESKey == "" {
		return fmt.Errorf("corp %s: callback: aes_key is required", corpName)
	}
	if !strings.Contains(cb.AESKey, "{") {
		if _, err := wxcrypt.ParseKey(cb.AESKey); err != nil {
			return fmt.Errorf("corp %s: callback: aes_key: %v", corpName, err)
		}
	}
	return nil
}

// setCallback resolves a corp's callback settings at provision, warning
// for each one written in the configuration, as for the secret.
func (c *corp) setCallback(cb *CallbackConfig, repl *caddy.Replacer, logger *zap.Logger) error {
	if cb == nil {
		return nil
	}
	for what, v := range map[string]string{"token": cb.Token, "aes_key": cb.AESKey} {
		if !strings.Contains(v, "{") {
			logger.Warn("a callback "+what+" is written in the configuration, where Caddy's admin API, autosave.json and DEBUG log show it; use a runtime placeholder such as {env.ACME_CALLBACK_"+strings.ToUpper(what)+"}",
				zap.String("corp", c.name))
		}
	}
	cr, err := wxcrypt.New(repl.ReplaceKnown(cb.Token, ""), repl.ReplaceKnown(cb.AESKey, ""), c.id)
	if err != nil {
		return fmt.Errorf("corp %s: callback: %v (after replacing placeholders)", c.name, err)
	}
	c.callback = cr
	return nil
}

// callbackCounts are callbacks received per corp id, for the admin status;
// they outlive config reloads, as the metrics do.
var callbackCounts sync.Map // corp id → *callbackCount

type callbackCount struct{ received, refused atomic.Int64 }

func countCallback(corpID string, refused bool) {
	v, _ := callbackCounts.LoadOrStore(corpID, new(callbackCount))
	if refused {
		v.(*callbackCount).refused.Add(1)
	} else {
		v.(*callbackCount).received.Add(1)
	}
}

// Refusal reasons: the WARN line's and the metric's result.
const (
	refusedSignature = "bad_signature"
	refusedTimestamp = "bad_timestamp"
	refusedReceiver  = "wrong_receiver"
	refusedDecrypt   = "undecryptable"
	refusedSize      = "oversized"
	refusedDTD       = "dtd"
	refusedMalformed = "malformed"
)

// serveCallback answers WeCom's callbacks for the corp named in the path.
func (h *Handler) serveCallback(w http.ResponseWriter, r *http.Request, name string) error {
	c := h.corpByName(name)
	if name == "" || c == nil || c.callback == nil {
		return h.notFound(w, r)
	}
	switch r.Method {
	case http.MethodGet:
		return h.verifyCallbackURL(w, r, c)
	case http.MethodPost:
		return h.receiveCallback(w, r, c)
	}
	w.Header().Set("Allow", "GET, POST")
	return h.deny(w, r, &denial{status: http.StatusMethodNotAllowed, code: "method_not_allowed", message: "use GET or POST"})
}

// verifyCallbackURL is WeCom's URL verification: the decrypted echostr,
// exactly, as plain text (no quotes, no newline).
func (h *Handler) verifyCallbackURL(w http.ResponseWriter, r *http.Request, c *corp) error {
	q := r.URL.Query()
	// WeCom escapes echostr, but a '+' that reached us unescaped has been
	// read as a space; base64 has no spaces, so they can only be '+'.
	echo := strings.ReplaceAll(q.Get("echostr"), " ", "+")
	msg, reason := h.openCallback(c, q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), echo)
	if reason != "" {
		return h.refuseCallback(w, r, c, reason)
	}
	countCallback(c.id, false)
	metrics.callbacks.WithLabelValues("verify", "ok").Inc()
	h.logger.Info("WeCom callback URL verified", zap.String("corp", c.name))
	hdr := w.Header()
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(msg)
	return err
}

// callbackEnvelope is the POST body: the ciphertext and, unauthenticated,
// the receiver and agent, which are not trusted (the receiveid inside the
// ciphertext is).
type callbackEnvelope struct {
	Encrypt string `xml:"Encrypt"`
}

// receiveCallback takes an event: refuse what is not WeCom's, answer
// "success", act on contact changes.
func (h *Handler) receiveCallback(w http.ResponseWriter, r *http.Request, c *corp) error {
	// Real time for the socket's deadline, as for login bodies.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(loginBodyTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxCallbackBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return h.refuseCallback(w, r, c, refusedSize)
		}
		return h.refuseCallback(w, r, c, refusedMalformed)
	}
	var env callbackEnvelope
	if reason := decodeCallbackXML(body, &env); reason != "" {
		return h.refuseCallback(w, r, c, reason)
	}
	q := r.URL.Query()
	msg, reason := h.openCallback(c, q.Get("msg_signature"), q.Get("timestamp"), q.Get("nonce"), strings.TrimSpace(env.Encrypt))
	if reason != "" {
		return h.refuseCallback(w, r, c, reason)
	}
	var ev contactEvent
	if reason := decodeCallbackXML(msg, &ev); reason != "" {
		// Signed by WeCom, yet not XML we can read: nothing to act on,
		// and refusing would only make WeCom resend it.
		h.logger.Warn("WeCom callback decrypted but is not readable XML; ignored", zap.String("corp", c.name), zap.String("reason", reason))
		ev = contactEvent{}
	}
	countCallback(c.id, false)

	label := ev.label()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), callbackActBudget)
		defer cancel()
		done <- h.actOn(ctx, c, &ev)
	}()
	t := time.NewTimer(callbackActWait)
	defer t.Stop()
	select {
	case err := <-done:
		h.callbackActed(c, label, &ev, err)
	case <-t.C:
		go func() { h.callbackActed(c, label, &ev, <-done) }()
	}

	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, err = io.WriteString(w, "success")
	return err
}

// callbackActed logs and counts an event's outcome.
func (h *Handler) callbackActed(c *corp, label string, ev *contactEvent, err error) {
	fields := []zap.Field{zap.String("corp", c.name), zap.String("event", label)}
	if ev.UserID != "" {
		fields = append(fields, zap.String("userid", ev.UserID))
	}
	if ev.NewUserID != "" {
		fields = append(fields, zap.String("new_userid", ev.NewUserID))
	}
	if err != nil {
		metrics.callbacks.WithLabelValues(label, "failed").Inc()
		h.logger.Error("WeCom callback: the contact change could not be applied everywhere", append(fields, zapErr(err))...)
		return
	}
	metrics.callbacks.WithLabelValues(label, "ok").Inc()
	h.logger.Info("WeCom callback", fields...)
}

// openCallback checks signature, timestamp and receiver and decrypts; a
// non-empty reason is a refusal.
func (h *Handler) openCallback(c *corp, signature, timestamp, nonce, ciphertext string) ([]byte, string) {
	if signature == "" || ciphertext == "" {
		return nil, refusedSignature
	}
	if err := c.callback.Verify(signature, timestamp, nonce, ciphertext); err != nil {
		return nil, refusedSignature
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return nil, refusedTimestamp
	}
	if d := h.now().Sub(time.Unix(ts, 0)); d > callbackClockSkew || d < -callbackClockSkew {
		return nil, refusedTimestamp
	}
	msg, err := c.callback.Decrypt(ciphertext)
	switch {
	case errors.Is(err, wxcrypt.ErrReceiver):
		return nil, refusedReceiver
	case err != nil:
		return nil, refusedDecrypt
	}
	return msg, ""
}

// refuseCallback answers 403 with no detail (whoever sent it learns
// nothing of which check failed) and tells the operator at WARN. Nothing
// of the request beyond the reason is logged: not the signature, not the
// ciphertext, never the token, key or a plaintext.
func (h *Handler) refuseCallback(w http.ResponseWriter, r *http.Request, c *corp, reason string) error {
	countCallback(c.id, true)
	metrics.callbacks.WithLabelValues("unknown", reason).Inc()
	h.logger.Warn("WeCom callback refused", zap.String("corp", c.name), zap.String("reason", reason),
		zap.String("client_ip", clientIP(r)))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	return nil
}

// decodeCallbackXML decodes one XML document into v, refusing any DTD or
// entity declaration. encoding/xml expands no external entities and knows
// only the five predefined ones (an undeclared &x; is an error in strict
// mode), but a <!DOCTYPE> or <!ENTITY> has no business in WeCom's
// messages: the token walk refuses every directive before Unmarshal reads
// the document.
func decodeCallbackXML(data []byte, v any) string {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return refusedMalformed
		}
		if _, ok := tok.(xml.Directive); ok {
			return refusedDTD
		}
	}
	if err := xml.Unmarshal(data, v); err != nil {
		return refusedMalformed
	}
	return ""
}
