package wecom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

const (
	endpointToken   = "gettoken"
	endpointSession = "jscode2session"
	endpointUser    = "user/get"
)

// MaxCodeLen bounds a wx.qy.login code: longer input is refused before it
// becomes a URL or a cache key. Real codes are 32-64 characters.
const MaxCodeLen = 256

// Corp is one corp's credentials for the app the mini program is
// associated with. It prints, logs and marshals without its Secret.
type Corp struct {
	ID     string
	Secret string `json:"-"`
}

func (c Corp) String() string { return "wecom.Corp{ID:" + strconv.Quote(c.ID) + "}" }

// Format makes every fmt verb (%v, %+v, %#v, %s, %d, …) print String: the
// default struct formatting would show the Secret.
func (c Corp) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// MarshalLogObject keeps zap.Any and zap.Object from reflecting the Secret.
func (c Corp) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("id", c.ID)
	return nil
}

// Session is the part of jscode2session's answer the gateway uses. CorpID
// is the user's own corp, which differs from the corp asked when the code
// belongs to another corp (the UserID is then an opaque id useless for
// GetUser): the caller compares.
//
// SessionKey is WeCom's session secret. The gateway does not use it yet and
// drops it; it is kept for /wecom/decrypt (issue 19), which will hold it
// sealed server-side. String, Format, MarshalLogObject and the json tag keep
// it out of every log line and printout until then and after.
type Session struct {
	CorpID     string
	UserID     string
	SessionKey string `json:"-"` // never log it, never hand it on
}

func (s Session) String() string {
	return "wecom.Session{CorpID:" + strconv.Quote(s.CorpID) + " UserID:" + strconv.Quote(s.UserID) + "}"
}

// Format keeps SessionKey out of every fmt verb; kept for /wecom/decrypt
// (issue 19), like SessionKey.
func (s Session) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, s.String()) }

// MarshalLogObject keeps SessionKey out of zap.Any and zap.Object; kept
// for /wecom/decrypt (issue 19), like SessionKey.
func (s Session) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("corpid", s.CorpID)
	enc.AddString("userid", s.UserID)
	return nil
}

// User is the part of user/get's answer the gateway uses. Status is 1
// active, 2 disabled, 4 not activated, 5 left.
type User struct {
	Name       string
	Department []int64
	Status     int
}

// CodeToSession exchanges a wx.qy.login code for the user's identity.
func (c *Client) CodeToSession(ctx context.Context, corp Corp, code string) (Session, error) {
	if err := checkCorp(endpointSession, corp); err != nil {
		return Session{}, err
	}
	if code == "" || len(code) > MaxCodeLen {
		return Session{}, invalidArg(endpointSession, corp.ID, KindInvalidCode, "empty or oversized code")
	}
	var s Session
	err := c.withToken(ctx, endpointSession, corp, func(tok string) error {
		a, err := call[sessionAnswer](ctx, c, &request{
			endpoint: endpointSession,
			path:     "/cgi-bin/miniprogram/jscode2session",
			corpID:   corp.ID,
			query:    url.Values{"access_token": {tok}, "js_code": {code}, "grant_type": {"authorization_code"}},
			secrets:  []string{tok, code, corp.Secret},
			spends:   true,
		})
		if err == nil {
			s = Session{CorpID: a.CorpID, UserID: a.UserID, SessionKey: a.SessionKey}
		}
		return err
	})
	return s, err
}

// GetUser reads a member of corp. A user outside the app's visible range
// or unknown fails with KindUserNotAllowed. A userID that is not
// ValidUserID is refused with KindDefinitive without asking WeCom: no
// member can have it, so it is the caller's mistake.
func (c *Client) GetUser(ctx context.Context, corp Corp, userID string) (User, error) {
	if err := checkCorp(endpointUser, corp); err != nil {
		return User{}, err
	}
	if !ValidUserID(userID) {
		return User{}, invalidArg(endpointUser, corp.ID, KindDefinitive, "userid of %d bytes is not a WeCom userid", len(userID))
	}
	var u User
	err := c.withToken(ctx, endpointUser, corp, func(tok string) error {
		a, err := call[userAnswer](ctx, c, &request{
			endpoint: endpointUser,
			path:     "/cgi-bin/user/get",
			corpID:   corp.ID,
			query:    url.Values{"access_token": {tok}, "userid": {userID}},
			secrets:  []string{tok, corp.Secret},
		})
		if err == nil {
			u = User{Name: a.Name, Department: a.Department, Status: a.Status}
		}
		return err
	})
	return u, err
}

// withToken runs do with corp's token. When WeCom rejects the token it is
// dropped (if still cached), fetched anew through the single flight and do
// runs once more. A second rejection is returned as KindTransient: WeCom
// just issued that token, so the fault is on its side and likely brief,
// the login code was not consumed by a rejected call, and a 503 lets the
// client retry where a definitive error would make it give up.
func (c *Client) withToken(ctx context.Context, endpoint string, corp Corp, do func(tok string) error) error {
	k := c.keyOf(corp)
	for retried := false; ; retried = true {
		tok, err := c.token(ctx, corp, k)
		if err != nil {
			return err
		}
		err = do(tok)
		var e *Error
		if !errors.As(err, &e) || e.Kind != KindTokenInvalid {
			return err
		}
		dropped := c.tokens.invalidate(k, tok)
		if retried {
			e.Kind, e.Err = KindTransient, errRejectedTwice
			return err
		}
		c.log.Debug("wecom access token rejected; refreshing",
			zap.String("endpoint", endpoint), zap.String("corp_id", corp.ID),
			zap.Int("errcode", e.Errcode), zap.Bool("dropped", dropped))
	}
}

var errRejectedTwice = errors.New("access token rejected again right after a refresh")

func checkCorp(endpoint string, corp Corp) error {
	if corp.ID == "" || corp.Secret == "" {
		return invalidArg(endpoint, corp.ID, KindDefinitive, "corp id and secret are required")
	}
	return nil
}

type sessionAnswer struct {
	apiStatus
	CorpID     string `json:"corpid"`
	UserID     string `json:"userid"`
	SessionKey string `json:"session_key"`
}

// check refuses identities WeCom cannot have issued: the gateway trusts
// them as they are (SPEC §1), so a hostile API base answering
// "review:boss" must fail the login, not pass as that user.
func (a *sessionAnswer) check() error {
	if a.CorpID == "" {
		return errors.New("no corpid")
	}
	if !validCorpID(a.CorpID) {
		return errors.New("corpid of " + strconv.Itoa(len(a.CorpID)) + " bytes is not printable ASCII without ' ' or ':', at most 64 bytes")
	}
	return checkUserID(a.UserID)
}

type userAnswer struct {
	apiStatus
	// UserID is read only by check: the gateway keeps the userid it asked for.
	UserID     string  `json:"userid"`
	Name       string  `json:"name"`
	Department []int64 `json:"department"`
	Status     int     `json:"status"`
}

// check holds user/get's userid to the same rule as jscode2session's,
// though the gateway keeps the userid it asked for: an answer with an
// impossible one is not WeCom's, so none of its fields can be trusted.
func (a *userAnswer) check() error { return checkUserID(a.UserID) }
