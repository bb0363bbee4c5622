package wecom

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Kind sorts a failure by what the caller should do about it.
type Kind int

const (
	// KindTransient: WeCom is unreachable, busy, rate limiting or answered
	// garbage. Try again later (the gateway answers 503 with Retry-After).
	KindTransient Kind = iota + 1
	// KindTokenInvalid: WeCom rejected the access token (40014, 42001,
	// 42009). The client handles it by refreshing and retrying once; it is
	// never returned by Client methods (see doc.go).
	KindTokenInvalid
	// KindInvalidCode: the login code is expired, spent, foreign or missing
	// (40029, 40163, 41008). The mini program must call wx.qy.login again.
	KindInvalidCode
	// KindUserNotAllowed: the user is outside the app's visible range or
	// does not exist (60011, 60111).
	KindUserNotAllowed
	// KindDefinitive: retrying will not help, usually configuration (40001
	// wrong secret, 40013 wrong corpid, 48002, 60020 untrusted IP) or an
	// errcode this package does not know.
	KindDefinitive
	// KindNotFound: the department or tag asked of DepartmentTree or Tag
	// does not exist or lies outside the app's visible range
	// (department/simplelist 60003, 60123, 60011; tag/get 40068, 60011).
	// WeCom answered: the caller treats it as an empty set, not as WeCom
	// being down. Error.Errcode tells a missing one from an invisible one
	// (60011), which an operator may want to hear of: an allowed
	// department or tag the app cannot see admits nobody.
	KindNotFound
)

func (k Kind) String() string {
	switch k {
	case KindTransient:
		return "transient"
	case KindTokenInvalid:
		return "token_invalid"
	case KindInvalidCode:
		return "invalid_code"
	case KindUserNotAllowed:
		return "user_not_allowed"
	case KindDefinitive:
		return "definitive"
	case KindNotFound:
		return "not_found"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// WeCom errcodes this package acts on.
const (
	errcodeBusy          = -1
	errcodeBadToken      = 40014
	errcodeTokenExpired  = 42001
	errcodeSuiteExpired  = 42009
	errcodeRateLimited   = 45009
	errcodeTooConcurrent = 45033
	errcodeBadTagID      = 40068 // 不合法的标签ID: none given, or no such tag
	errcodeNoDepartment  = 60003 // 部门ID不存在
	errcodeNoPrivilege   = 60011 // the member, department or tag is outside the app's visible range
	errcodeBadPartyID    = 60123 // 无效的部门id: not in the contacts
)

// kindOfErrcode classifies a non-zero errcode answered by endpoint (global
// errcodes: /document/path/90313). Unknown codes are definitive: retrying
// an answer we do not understand risks hammering WeCom.
func kindOfErrcode(endpoint string, code int) Kind {
	switch endpoint {
	case endpointDepartments, endpointTag:
		// 60011 here is a department or tag the app may not see, not a
		// user: like one that does not exist, it has no members to admit.
		switch code {
		case errcodeNoPrivilege, errcodeNoDepartment, errcodeBadPartyID, errcodeBadTagID:
			return KindNotFound
		}
	}
	switch code {
	case errcodeBusy, errcodeRateLimited, errcodeTooConcurrent:
		return KindTransient
	case errcodeBadToken, errcodeTokenExpired, errcodeSuiteExpired:
		return KindTokenInvalid
	case 40029, 40163, 41008:
		return KindInvalidCode
	case errcodeNoPrivilege, 60111:
		return KindUserNotAllowed
	}
	return KindDefinitive
}

// Error is every failure returned by a Client. It names the endpoint, the
// corp and the errcode; it never holds the secret, an access token, a login
// code or a session key, so it is safe to log and to wrap.
type Error struct {
	Endpoint   string // "gettoken", "jscode2session", "user/get", "department/simplelist" or "tag/get"
	CorpID     string
	Errcode    int    // WeCom's errcode; 0 when the failure is not an errcode answer
	Errmsg     string // WeCom's errmsg, shortened and scrubbed
	HTTPStatus int    // set when WeCom answered a status other than 200
	Kind       Kind
	Err        error // cause, already sanitized (no URL with query)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("wecom ")
	b.WriteString(e.Endpoint)
	if e.CorpID != "" {
		b.WriteString(" (corp ")
		b.WriteString(e.CorpID)
		b.WriteString(")")
	}
	if e.Errcode != 0 {
		b.WriteString(": errcode ")
		b.WriteString(strconv.Itoa(e.Errcode))
		if e.Errmsg != "" {
			b.WriteString(": ")
			b.WriteString(e.Errmsg)
		}
	}
	if e.HTTPStatus != 0 {
		b.WriteString(": HTTP ")
		b.WriteString(strconv.Itoa(e.HTTPStatus))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// KindOf returns the Kind of err, or 0 if err is not (and wraps no) *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// retryable reports whether the same request may be sent again at once
// (after backoff). 45009 is transient for the caller but WeCom blocks for a
// full minute, so an immediate retry only deepens the block.
func retryable(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == KindTransient && e.Errcode != errcodeRateLimited
}

const minScrubLen = 6

// transportError replaces *url.Error, whose message carries the full URL
// with corpsecret, access_token or js_code in the query.
type transportError struct {
	target string // host and path, no query
	err    error  // url.Error.Err, or a scrubbed copy of its text
}

func (e *transportError) Error() string { return "GET " + e.target + ": " + e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// sanitizeTransport turns an error from http.Client.Do or from reading the
// body into one that is safe to print. secrets are the query values sent,
// scrubbed from the inner message in case a dialer or proxy echoed them.
func sanitizeTransport(err error, target string, secrets []string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	te := &transportError{target: target, err: err}
	if msg := err.Error(); scrub(msg, secrets) != msg || strings.Contains(msg, "?") {
		// The message names something it should not: keep only its text,
		// scrubbed, and drop the typed cause that still holds it.
		te.err = errors.New(scrub(stripQuery(msg), secrets))
	}
	return te
}

// scrub replaces every occurrence of a sensitive value in s. Values too
// short to be a real secret, token or code are left alone: replacing them
// would garble the text and protect nothing.
func scrub(s string, secrets []string) string {
	for _, v := range secrets {
		if len(v) >= minScrubLen && strings.Contains(s, v) {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// stripQuery cuts every "?query" out of s, up to the next space or quote.
func stripQuery(s string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '?')
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		s = s[i+1:]
		j := strings.IndexAny(s, " \"'")
		if j < 0 {
			s = ""
		} else {
			s = s[j:]
		}
	}
}

// cleanErrmsg bounds WeCom's errmsg and removes control characters so that
// a proxy or a hostile answer cannot forge log lines or fill them.
func cleanErrmsg(s string, secrets []string) string {
	const max = 200
	s = scrub(s, secrets)
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "…"
	}
	return s
}

// ctxError is the error of a caller whose context ended first.
func ctxError(ctx context.Context, endpoint, corpID string) *Error {
	return &Error{Endpoint: endpoint, CorpID: corpID, Kind: KindTransient, Err: ctx.Err()}
}

// invalidArg is a caller mistake caught before any request is sent.
func invalidArg(endpoint, corpID string, kind Kind, format string, args ...any) *Error {
	return &Error{Endpoint: endpoint, CorpID: corpID, Kind: kind, Err: fmt.Errorf(format, args...)}
}
