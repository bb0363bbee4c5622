package wecomauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

// denial is an answer the gateway gives instead of passing a request on
// (SPEC §6). Its message is for people and never holds a secret.
type denial struct {
	status     int
	code       string
	message    string
	corp       string // wrong_corp: the corp the code belongs to
	retryAfter int    // seconds; 0 for none
	cause      error  // for the log only
}

func invalidRequest(msg string) *denial {
	return &denial{status: http.StatusBadRequest, code: "invalid_request", message: msg}
}

func unauthenticated(msg string) *denial {
	return &denial{status: http.StatusUnauthorized, code: "unauthenticated", message: msg}
}

func corpNotAllowed() *denial {
	return &denial{status: http.StatusForbidden, code: "corp_not_allowed", message: "this corp is not allowed here"}
}

func wrongCorp(name string) *denial {
	return &denial{status: http.StatusConflict, code: "wrong_corp", corp: name,
		message: "the code belongs to corp " + name + "; sign in again with a fresh code naming it"}
}

func userNotAllowed() *denial {
	return &denial{status: http.StatusForbidden, code: "user_not_allowed", message: "this user is not allowed here"}
}

func userInactive() *denial {
	return &denial{status: http.StatusForbidden, code: "user_inactive", message: "this user is not active in WeCom"}
}

func reviewForbidden() *denial {
	return &denial{status: http.StatusForbidden, code: "review_forbidden", message: "review accounts may not reach this path"}
}

// internalError answers what no client input can cause (sealing a token
// failed) as a §6 JSON error rather than Caddy's empty 500.
func internalError(cause error) *denial {
	return &denial{status: http.StatusInternalServerError, code: "internal", message: "the gateway could not complete the request; try again", cause: cause}
}

func unavailable(cause error) *denial {
	retry := 5
	var we *wecom.Error
	var wait interface{ RetryAfter() time.Duration }
	switch {
	case errors.As(cause, &wait):
		// The budget or a 45009 pause says when (budget.go).
		retry = max(1, int((wait.RetryAfter()+time.Second-1)/time.Second))
	case errors.As(cause, &we) && we.Errcode == 45009:
		retry = 60 // WeCom's frequency block lasts a minute
	}
	return &denial{status: http.StatusServiceUnavailable, code: "wecom_unavailable",
		message: "WeCom cannot be reached right now; try again shortly", retryAfter: retry, cause: cause}
}

// fromWeCom maps a WeCom client error to the answer for the caller.
func fromWeCom(err error) *denial {
	switch wecom.KindOf(err) {
	case wecom.KindInvalidCode:
		return &denial{status: http.StatusUnauthorized, code: "invalid_code",
			message: "WeCom rejected the code; call wx.qy.login for a fresh one", cause: err}
	case wecom.KindUserNotAllowed:
		d := userNotAllowed()
		d.cause = err
		return d
	case wecom.KindDefinitive:
		return &denial{status: http.StatusBadGateway, code: "wecom_error",
			message: "WeCom refused the gateway's request; the operator must check the configuration", cause: err}
	default: // transient, token trouble that outlived its retry, context ends
		return unavailable(err)
	}
}

// deny writes d as JSON and logs it. Returning nil keeps Caddy from writing
// an error page over our answer.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, d *denial) error {
	return writeDenial(w, h.logger, r, d)
}

// writeDenial is deny for any of the gateway's handlers.
func writeDenial(w http.ResponseWriter, logger *zap.Logger, r *http.Request, d *denial) error {
	hdr := w.Header()
	switch d.status {
	case http.StatusUnauthorized:
		hdr.Set("WWW-Authenticate", `Bearer realm="wecom"`)
	}
	if d.retryAfter > 0 {
		hdr.Set("Retry-After", strconv.Itoa(d.retryAfter))
	}
	body := struct {
		Error   string `json:"error"`
		Message string `json:"message"`
		Corp    string `json:"corp,omitempty"`
	}{d.code, d.message, d.corp}
	fields := []zap.Field{zap.String("error", d.code), zap.Int("status", d.status), zap.String("path", r.URL.Path)}
	if d.corp != "" {
		fields = append(fields, zap.String("corp", d.corp))
	}
	if d.cause != nil {
		fields = append(fields, zap.String("cause", d.cause.Error()))
	}
	logger.Info("denied", fields...)
	return writeJSON(w, d.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// zapErr logs an error's text.
func zapErr(err error) zap.Field { return zap.String("error", err.Error()) }
