package wecomauth

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wecomgate/wecomgate/module/internal/session"
)

// Headers of SPEC §5. Everything starting with headerPrefix is the
// gateway's to set: a client can never send one through.
const (
	headerPrefix     = "X-Wecom-"
	headerUserID     = "X-WeCom-UserId"
	headerCorpID     = "X-WeCom-CorpId"
	headerCorp       = "X-WeCom-Corp"
	headerName       = "X-WeCom-Name"
	headerDepartment = "X-WeCom-Department"
	headerReview     = "X-WeCom-Review"
	headerCode       = "X-WeCom-Code"    // inline login: the code from wx.qy.login
	headerSession    = "X-WeCom-Session" // inline login: the new token, in the response
)

// routingOverrides are request headers some frameworks route on instead of
// the request line.
var routingOverrides = []string{"X-Original-Url", "X-Rewrite-Url", "X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// The header map's keys for them, computed once.
var (
	keyUserID     = http.CanonicalHeaderKey(headerUserID)
	keyCorpID     = http.CanonicalHeaderKey(headerCorpID)
	keyCorp       = http.CanonicalHeaderKey(headerCorp)
	keyName       = http.CanonicalHeaderKey(headerName)
	keyDepartment = http.CanonicalHeaderKey(headerDepartment)
	keyReview     = http.CanonicalHeaderKey(headerReview)
)

// identity is who a request is from, as the backend is told.
type identity struct {
	sid session.ID // the session it came with

	UserID      string
	CorpID      string
	Corp        string
	Name        string
	Departments string  // comma-separated ids
	deptIDs     []int64 // the same, for the allow-lists of wecom_require and chained wecom_auth
	Review      bool

	checkedAt time.Time // when WeCom confirmed the user (corp users)
	expiresAt time.Time // when the session ends
	// sessionKey is WeCom's session_key of the login, for /wecom/decrypt
	// (only where it is on); never logged, never answered.
	sessionKey []byte
	nameEsc    string    // Name percent-encoded, as X-WeCom-Name carries it
	values     [5]string // backing store of the header values (one allocation)
}

// forward prepares an admitted request for the next handler: identity
// headers and placeholders set, the gateway's own token taken out.
func (h *Handler) forward(r *http.Request, id *identity) error {
	identityHeaders(r.Header, id)
	if id.Review {
		// A review session is confined by path; these headers make some
		// backends (IIS rewrite, older Symfony and Zend) route elsewhere.
		for _, name := range routingOverrides {
			r.Header.Del(name)
		}
	}
	if h.asserter != nil {
		jwt, err := h.asserter.sign(r.Method, r.URL.EscapedPath(), r.URL.RawQuery, id, h.now())
		if err != nil {
			return err
		}
		r.Header.Set(headerAssertion, jwt)
	}
	h.removeToken(r)

	if repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); repl != nil {
		// One provider rather than five Set calls: values are only turned
		// into placeholders' `any` when a later handler asks.
		repl.Map(id.placeholder)
	}
	return nil
}

// placeholder answers the http.auth.user.* placeholders; http.auth.user.id
// is what Caddy's access log reports as user_id.
func (id *identity) placeholder(key string) (any, bool) {
	rest, ok := strings.CutPrefix(key, "http.auth.user.")
	if !ok {
		return nil, false
	}
	switch rest {
	case "id":
		return id.UserID, true
	case "corpid":
		return id.CorpID, true
	case "corp":
		return id.Corp, true
	case "name":
		return id.Name, true
	case "department":
		return id.Departments, true
	}
	return nil, false
}

// identityHeaders writes the identity headers of SPEC §5 into h: a request
// going on, or the answer of the forward-auth endpoint. The values share
// one backing array; each slice is capped so that appending to one header
// cannot overwrite the next.
func identityHeaders(h http.Header, id *identity) {
	v := &id.values
	v[0] = id.UserID
	h[keyUserID] = v[0:1:1]
	if id.Review {
		v[1] = "1"
		h[keyReview] = v[1:2:2]
		return
	}
	if id.nameEsc == "" && id.Name != "" {
		id.nameEsc = url.PathEscape(id.Name)
	}
	v[1], v[2], v[3], v[4] = id.CorpID, id.Corp, id.nameEsc, id.Departments
	h[keyCorpID] = v[1:2:2]
	h[keyCorp] = v[2:3:3]
	h[keyName] = v[3:4:4]
	h[keyDepartment] = v[4:5:5]
}
