package wecom

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// DefaultBaseURL is WeCom's server API.
const DefaultBaseURL = "https://qyapi.weixin.qq.com"

const (
	defaultTimeout  = 5 * time.Second
	defaultAttempts = 3
	defaultBackoff  = 200 * time.Millisecond
	maxBackoff      = 2 * time.Second
	// maxBody bounds what is read from an answer: WeCom's are a few hundred
	// bytes; anything near this is a proxy page or an attack.
	maxBody = 1 << 20
)

// Options configures a Client. The zero value talks to WeCom with defaults.
type Options struct {
	BaseURL  string        // default DefaultBaseURL; a trailing slash is tolerated
	Timeout  time.Duration // per attempt; default 5s
	Attempts int           // total attempts for retryable transient failures; default 3
	Backoff  time.Duration // base of the exponential, fully jittered backoff; default 200ms, capped at 2s
	Observer Observer      // optional metrics hooks
	Logger   *zap.Logger   // optional; debug lines on retries and refreshes
}

// Observer receives metrics. Implementations must be safe for concurrent use
// and fast: they run on the request path.
type Observer interface {
	// Call is invoked once per HTTP attempt. endpoint is "gettoken",
	// "jscode2session", "user/get", "department/simplelist" or "tag/get";
	// result is "0", WeCom's errcode in decimal, "transport",
	// "http_<status>" or "bad_response".
	Call(endpoint, result string, d time.Duration)
	// TokenRefresh is invoked once per access token actually fetched from
	// WeCom (never for cache hits, nor for failed fetches, which Call reports).
	TokenRefresh(corpID string)
}

// Client calls WeCom's server API. It is safe for concurrent use. It
// caches the access tokens it fetches (see doc.go), so one Client should
// serve every caller of an API base for as long as those tokens are
// wanted: a Client created per config would fetch a token per corp at
// every reload. The gateway keeps one per API base in a caddy.UsagePool.
type Client struct {
	base     string // scheme://host[/prefix], no trailing slash
	target   string // host[/prefix] for error messages: never the query
	baseErr  error
	hc       *http.Client
	timeout  time.Duration
	attempts int
	backoff  time.Duration
	obs      Observer
	log      *zap.Logger
	tokens   *tokenStore
	status   callStatus // status.go
}

// New returns a Client. An unusable BaseURL is reported by every call as a
// KindDefinitive error; callers that want to fail at configuration time
// should validate it themselves.
func New(opts Options) *Client {
	c := &Client{
		base:     strings.TrimRight(opts.BaseURL, "/"),
		hc:       httpClient(),
		timeout:  opts.Timeout,
		attempts: opts.Attempts,
		backoff:  opts.Backoff,
		obs:      opts.Observer,
		log:      opts.Logger,
		tokens:   newTokenStore(),
	}
	if c.base == "" {
		c.base = DefaultBaseURL
	}
	if c.timeout <= 0 {
		c.timeout = defaultTimeout
	}
	if c.attempts <= 0 {
		c.attempts = defaultAttempts
	}
	if c.backoff <= 0 {
		c.backoff = defaultBackoff
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	u, err := url.Parse(c.base)
	switch {
	case err != nil, u.Scheme != "http" && u.Scheme != "https", u.Host == "", u.User != nil,
		u.RawQuery != "", u.Fragment != "":
		c.baseErr = errors.New("invalid base URL (want http(s)://host[/prefix])")
	default:
		c.target = u.Host + u.EscapedPath()
	}
	return c
}

// httpClient is one for the process: its idle connections are a cache no
// Client needs to own, shared by every Client of the same host, and those
// to an API base no longer configured time out on their own.
var httpClient = sync.OnceValue(func() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	return &http.Client{
		Transport: t,
		// WeCom never redirects; following one would replay the secret in
		// the query to wherever it points.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
})

// request describes one WeCom call.
type request struct {
	endpoint string // for metrics, logs and errors
	path     string
	corpID   string
	query    url.Values
	secrets  []string // query values to scrub from any error text
	maxBody  int      // bound of the answer; 0 means maxBody
	// accept, if set, checks the answer against the question after its own
	// check (department/simplelist must include the department asked), so
	// that a refusal is a bad response like any other.
	accept func(answer) error
	// spends is set for a call that uses something up at WeCom (a login
	// code): once the request may have reached WeCom it is not sent again.
	spends bool
}

// answer is implemented by the wire structs: the errcode is looked at
// before any other field, then check validates those fields.
type answer interface {
	status() *apiStatus
	check() error
}

type apiStatus struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

func (s *apiStatus) status() *apiStatus { return s }

// call sends r, retrying transient failures with backoff within
// c.attempts, and decodes the answer into a fresh T per attempt.
func call[T any, P interface {
	*T
	answer
}](ctx context.Context, c *Client, r *request) (*T, error) {
	if c.baseErr != nil {
		return nil, &Error{Endpoint: r.endpoint, CorpID: r.corpID, Kind: KindDefinitive, Err: c.baseErr}
	}
	if ctx.Err() != nil { // not worth a request, nor a "transport" failure in the metrics
		return nil, ctxError(ctx, r.endpoint, r.corpID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+r.path+"?"+r.query.Encode(), nil)
	if err != nil { // the message would carry the URL: say nothing of it
		return nil, &Error{Endpoint: r.endpoint, CorpID: r.corpID, Kind: KindDefinitive, Err: errors.New("cannot build request")}
	}
	req.Header.Set("Accept", "application/json")

	for attempt := 1; ; attempt++ {
		out := P(new(T))
		err := c.attempt(ctx, req, r, out)
		if err == nil {
			return (*T)(out), nil
		}
		if !retryable(err) || attempt >= c.attempts {
			return nil, err
		}
		if r.spends && mayHaveReached(err) {
			// A timeout or a lost answer may come after WeCom spent the
			// code: the retry would answer 40029 and the user would read
			// "invalid code" after waiting for it. The caller answers 503
			// instead and the client takes a fresh code.
			var e *Error
			if errors.As(err, &e) {
				e.Err = errNotResent{e.Err}
			}
			return nil, err
		}
		wait := c.backoffFor(attempt)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return nil, err // the caller could not use the retry's answer anyway
		}
		c.log.Debug("wecom call failed; retrying",
			zap.String("endpoint", r.endpoint), zap.String("corp_id", r.corpID),
			zap.Int("attempt", attempt), zap.String("result", resultOf(err)), zap.Duration("backoff", wait))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctxError(ctx, r.endpoint, r.corpID)
		case <-t.C:
		}
	}
}

// attempt sends req once under its own timeout and reports it.
func (c *Client) attempt(ctx context.Context, req *http.Request, r *request, out answer) error {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	start := time.Now()
	err := c.roundTrip(req.WithContext(actx), r, out)
	if c.obs != nil {
		c.obs.Call(r.endpoint, resultOf(err), time.Since(start))
	}
	c.noteAttempt(r, err, time.Now())
	if err != nil && ctx.Err() != nil {
		return ctxError(ctx, r.endpoint, r.corpID) // the caller left; not WeCom's failure
	}
	return err
}

func (c *Client) roundTrip(req *http.Request, r *request, out answer) error {
	fail := func(kind Kind, cause error) *Error {
		return &Error{Endpoint: r.endpoint, CorpID: r.corpID, Kind: kind, Err: cause}
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fail(KindTransient, sanitizeTransport(err, c.target+r.path, r.secrets))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // keep the connection reusable
		e := fail(KindDefinitive, nil)
		e.HTTPStatus = resp.StatusCode
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout {
			e.Kind = KindTransient
		}
		return e
	}
	limit := r.maxBody
	if limit <= 0 {
		limit = maxBody
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return fail(KindTransient, sanitizeTransport(err, c.target+r.path, r.secrets))
	}
	if len(body) > limit {
		return fail(KindTransient, errBadResponse("answer larger than "+strconv.Itoa(limit>>20)+" MiB"))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fail(KindTransient, errBadResponse(scrub(err.Error(), r.secrets)))
	}
	if st := out.status(); st.Errcode != 0 {
		e := fail(kindOfErrcode(r.endpoint, st.Errcode), nil)
		e.Errcode, e.Errmsg = st.Errcode, cleanErrmsg(st.Errmsg, r.secrets)
		return e
	}
	err = out.check()
	if err == nil && r.accept != nil {
		err = r.accept(out)
	}
	if err != nil {
		// Valid JSON saying success without the fields: WeCom changed, or
		// something answers in its place. Retrying will not fix it.
		return fail(KindDefinitive, errBadResponse(err.Error()))
	}
	return nil
}

// mayHaveReached tells whether a failed attempt may have been received
// by WeCom: everything but a connection that was never made, and WeCom's
// own "system busy" (-1), which answers before doing anything.
func mayHaveReached(err error) bool {
	var e *Error
	if !errors.As(err, &e) {
		return true
	}
	if e.Errcode == errcodeBusy {
		return false
	}
	if e.Errcode != 0 || e.HTTPStatus != 0 {
		return true
	}
	var op *net.OpError
	if errors.As(e.Err, &op) && op.Op == "dial" {
		return false
	}
	var dns *net.DNSError
	return !errors.As(e.Err, &dns)
}

// errNotResent marks a failure of a call that spends what it carries and
// was therefore not sent again.
type errNotResent struct{ cause error }

func (e errNotResent) Error() string {
	msg := "not sent again: WeCom may have spent the code"
	if e.cause != nil {
		msg = e.cause.Error() + " (" + msg + ")"
	}
	return msg
}

func (e errNotResent) Unwrap() error { return e.cause }

// badResponse marks an answer that could not be used, for resultOf.
type badResponse string

func errBadResponse(msg string) error { return badResponse(msg) }
func (b badResponse) Error() string   { return "bad response: " + string(b) }

// resultOf is the Observer's result label for err.
func resultOf(err error) string {
	var e *Error
	switch {
	case err == nil:
		return "0"
	case !errors.As(err, &e):
		return "transport"
	case e.Errcode != 0:
		return strconv.Itoa(e.Errcode)
	case e.HTTPStatus != 0:
		return "http_" + strconv.Itoa(e.HTTPStatus)
	}
	var b badResponse
	if errors.As(e.Err, &b) {
		return "bad_response"
	}
	return "transport"
}

// backoffFor is "full jitter": uniform in [0, min(cap, base·2^(attempt-1))],
// so that callers failing together do not retry together.
func (c *Client) backoffFor(attempt int) time.Duration {
	d := maxBackoff
	if attempt < 16 {
		if b := c.backoff << (attempt - 1); b > 0 && b < maxBackoff {
			d = b
		}
	}
	return jitter(d + 1)
}

// jitter is replaced by tests that need a predictable backoff.
var jitter = rand.N[time.Duration]
