package wecomauth

import (
	"context"
	"io"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/wecomgate/wecomgate/module/internal/session"
)

func init() {
	caddy.RegisterModule(StripHeaders{})
}

// Header hygiene is the first step of every request of a protected site:
// whatever a client sends under an X-WeCom- name (header, trailer, or a
// Connection token naming one) is dropped before any handler can trust it
// (SPEC §5). It must run on requests that wecom_auth's matcher leaves out
// too: a backend behind the site cannot tell which of its paths the gateway
// covered. A matched wecom_auth in a Caddyfile therefore adapts to a
// subroute whose first, unmatched handler is StripHeaders.

// StripHeaders removes client-sent X-WeCom-* headers and trailers and
// passes the request on. wecom_auth does the same itself; this handler
// exists for the requests a matched wecom_auth does not see. JSON configs
// that put a matcher on wecom_auth's route need it in an unmatched route
// before that one, as the Caddyfile adapter writes it, and once more after
// it with cookie_name set.
type StripHeaders struct {
	// With a cookie name, the gateway's session token is removed too: the
	// cookie of that name, and a Bearer token in the gateway's format. The
	// session cookie has Path=/, so a browser sends it to public paths,
	// and whatever serves them must not receive it. Set it only after the
	// wecom_auth route: wecom_auth needs the token.
	CookieName string `json:"cookie_name,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (StripHeaders) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.wecom_strip",
		New: func() caddy.Module { return new(StripHeaders) },
	}
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (s StripHeaders) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	r, _ = hygiene(r)
	if s.CookieName != "" {
		removeToken(r, s.CookieName, looksLikeSession)
	}
	return next.ServeHTTP(w, r)
}

// looksLikeSession reports whether a Bearer token has the gateway's
// format: another service's token on a public path is left alone.
func looksLikeSession(token string) bool {
	_, err := session.HintOf(token)
	return err == nil
}

// inlineLogin is what a client asked for with X-WeCom-Code / X-WeCom-Corp.
type inlineLogin struct {
	code, corp string
}

// requestState is what the gateway knows of a request, kept in its
// context: the inline login its client headers carried, and once a
// wecom_auth admitted it, who it is from. Client headers are stripped once
// per request, when the state is made: by a second pass the X-WeCom-*
// headers are the gateway's own.
type requestState struct {
	inline inlineLogin
	auth   *established
}

// established is the identity a wecom_auth admitted, with the handler and
// corp that did, for a later wecom_require or wecom_auth to judge (SPEC §3a).
type established struct {
	id   *identity
	corp *corp // nil for review sessions
	h    *Handler
}

type stateKey struct{}

// hygiene strips r's client headers once per request and returns the
// request to pass on with its state. The inline code lives on only in
// that state, never in a header that a later handler or log could show.
func hygiene(r *http.Request) (*http.Request, *requestState) {
	if st := stateOf(r); st != nil {
		return r, st
	}
	st := &requestState{inline: stripClientHeaders(r.Header)}
	stripClientTrailers(r)
	return r.WithContext(context.WithValue(r.Context(), stateKey{}, st)), st
}

func stateOf(r *http.Request) *requestState {
	st, _ := r.Context().Value(stateKey{}).(*requestState)
	return st
}

// stripClientHeaders removes every header whose name starts with X-WeCom-
// and every Connection token naming one, and returns the inline-login
// request they carried, if any.
func stripClientHeaders(h http.Header) inlineLogin {
	var in inlineLogin
	for name, vals := range h {
		if !isWeComHeader(name) {
			continue
		}
		if len(vals) == 1 {
			switch {
			case strings.EqualFold(name, headerCode):
				in.code = vals[0]
			case strings.EqualFold(name, headerCorp):
				in.corp = vals[0]
			}
		}
		delete(h, name)
	}
	if conn := h["Connection"]; len(conn) > 0 {
		h["Connection"] = scrubConnection(conn)
		if len(h["Connection"]) == 0 {
			delete(h, "Connection")
		}
	}
	return in
}

// stripClientTrailers keeps X-WeCom-* names out of the request's trailers.
// net/http fills r.Trailer only when the body reaches EOF, and then with
// every trailer the client sent once any was declared, so the declared
// names go now and the rest at EOF, before a proxy reading the body copies
// them upstream.
func stripClientTrailers(r *http.Request) {
	if r.Trailer == nil {
		// Nothing declared: net/http keeps undeclared trailers out of the
		// handler's request.
		return
	}
	deleteWeCom(r.Trailer)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &trailerScrubber{ReadCloser: r.Body, trailer: r.Trailer}
	}
}

// trailerScrubber drops X-WeCom-* trailers as the body ends.
type trailerScrubber struct {
	io.ReadCloser
	trailer http.Header
}

func (b *trailerScrubber) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		deleteWeCom(b.trailer)
	}
	return n, err
}

func deleteWeCom(h http.Header) {
	for name := range h {
		if isWeComHeader(name) {
			delete(h, name)
		}
	}
}

// isWeComHeader reports whether a header name starts with X-WeCom- in any
// letter case (a header map built by hand need not be canonical), reading
// '_' and '.' as '-': CGI and FastCGI backends, Caddy's php_fastcgi among
// them, turn all three into HTTP_X_WECOM_… (PHP folds '.' into '_'), so
// X-WeCom_UserId or X.WeCom.UserId would reach them as the gateway's
// header.
func isWeComHeader(name string) bool {
	if len(name) < len(headerPrefix) {
		return false
	}
	for i := range len(headerPrefix) {
		c := name[i]
		switch {
		case c == '_' || c == '.':
			c = '-'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		want := headerPrefix[i]
		if 'A' <= want && want <= 'Z' {
			want += 'a' - 'A'
		}
		if c != want {
			return false
		}
	}
	return true
}

// scrubConnection drops X-WeCom-* names from Connection header values. A
// proxy deletes the headers a client's Connection names after this handler
// ran, so naming X-WeCom-Review there would remove the gateway's own.
func scrubConnection(vals []string) []string {
	dirty := false
	for _, v := range vals {
		for tok := range strings.SplitSeq(v, ",") {
			if isWeComHeader(strings.TrimSpace(tok)) {
				dirty = true
			}
		}
	}
	if !dirty {
		return vals
	}
	var kept []string
	for _, v := range vals {
		for tok := range strings.SplitSeq(v, ",") {
			if tok = strings.TrimSpace(tok); tok != "" && !isWeComHeader(tok) {
				kept = append(kept, tok)
			}
		}
	}
	if len(kept) == 0 {
		return nil
	}
	return []string{strings.Join(kept, ", ")}
}

// Interface guards
var (
	_ caddy.Module                = (*StripHeaders)(nil)
	_ caddyhttp.MiddlewareHandler = (*StripHeaders)(nil)
)
