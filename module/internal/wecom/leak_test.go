package wecom_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

// TestNoSecretsInErrorsOrLogs drives every failure path and checks that no
// error text (nor any cause in its chain) and no log line holds the secret,
// an access token, a login code or a session key.
func TestNoSecretsInErrorsOrLogs(t *testing.T) {
	e := newEnv(t, func(o *wecom.Options) { o.Timeout = 40 * time.Millisecond })
	ctx := context.Background()
	secrets := []string{e.corp.Secret, e.other.Secret}
	var errs []error
	collect := func(_ any, err error) {
		t.Helper()
		if err == nil {
			t.Fatal("expected a failure")
		}
		errs = append(errs, err)
	}
	remember := func() {
		tok, err := e.c.Token(ctx, e.corp)
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, tok)
	}
	code := func(corp, user string) string {
		c := e.mint(t, corp, user)
		secrets = append(secrets, c)
		return c
	}
	fault := func(f wecomsim.Fault) { e.sim.ClearFaults(); e.sim.InjectFault(f) }

	// A session key seen on success must not show up later either.
	s, err := e.c.CodeToSession(ctx, e.corp, code("main", "alice"))
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, s.SessionKey)
	remember()

	// Connection refused and timeouts: *url.Error would print the whole URL.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	core, refusedLogs := observer.New(zap.DebugLevel)
	refused := wecom.New(wecom.Options{BaseURL: "http://" + l.Addr().String(), Backoff: time.Millisecond, Logger: zap.New(core)})
	l.Close()
	collect(refused.Token(ctx, e.corp))

	bad := wecom.Corp{ID: e.corp.ID, Secret: "Wr0ng-secret-never-print"}
	secrets = append(secrets, bad.Secret)
	collect(e.c.GetUser(ctx, bad, "alice"))
	collect(e.c.GetUser(ctx, bad, "alice")) // the cached failure

	for _, f := range []wecomsim.Fault{
		{Endpoint: "jscode2session", Delay: time.Second},
		{Endpoint: "jscode2session", Garbage: true},
		{Endpoint: "jscode2session", Status: 500},
		{Endpoint: "jscode2session", Errcode: -1},
		{Endpoint: "jscode2session", Errcode: 45009},
		{Endpoint: "jscode2session", Errcode: 48002},
		{Endpoint: "jscode2session", Errcode: 40014}, // rejected twice
	} {
		fault(f)
		collect(e.c.CodeToSession(ctx, e.corp, code("main", "alice")))
		remember()
	}
	fault(wecomsim.Fault{Endpoint: "user/get", Delay: time.Second})
	collect(e.c.GetUser(ctx, e.corp, "alice"))
	e.sim.ClearFaults()

	spent := code("main", "alice")
	if _, err := e.c.CodeToSession(ctx, e.corp, spent); err != nil {
		t.Fatal(err)
	}
	collect(e.c.CodeToSession(ctx, e.corp, spent))
	collect(e.c.GetUser(ctx, e.corp, "hidden"))
	e.sim.ExpireTokens(e.corp.ID, 42001)
	fault(wecomsim.Fault{Endpoint: "gettoken", Errcode: -1})
	collect(e.c.GetUser(ctx, e.corp, "alice"))
	e.sim.ClearFaults()

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	collect(e.c.CodeToSession(cctx, e.corp, code("main", "alice")))

	if len(e.logs.All()) == 0 || len(refusedLogs.All()) == 0 {
		t.Fatal("no debug log lines: the log check would prove nothing")
	}
	checkNoLeaks(t, errs, append(e.logs.All(), refusedLogs.All()...), secrets)
}

// TestNoSecretsInDirectoryErrorsOrLogs drives the failure paths of
// DepartmentTree and Tag, whose URLs carry the access token, against an API
// base that echoes the token and the secret wherever it can.
func TestNoSecretsInDirectoryErrorsOrLogs(t *testing.T) {
	const (
		token1 = "TOKEN-dir-first-0123456789"
		token2 = "TOKEN-dir-second-0123456789"
		secret = "S3cr3t-dir-do-not-print"
	)
	secrets := []string{token1, token2, secret}
	echo := func(code int) string {
		return fmt.Sprintf(`{"errcode":%d,"errmsg":"bad {query} [{token}] corpsecret=%s\nforged line"}`, code, secret)
	}
	f := newFakeWeCom(t)
	f.push(pathGettoken, fakeReply{body: tokenBody(token1)})
	f.set(pathGettoken, tokenBody(token2))
	core, logs := observer.New(zap.DebugLevel)
	c := wecom.New(wecom.Options{BaseURL: f.srv.URL, Timeout: 40 * time.Millisecond, Backoff: time.Millisecond, Logger: zap.New(core)})
	corp := wecom.Corp{ID: "wwdirleak", Secret: secret}
	ctx := context.Background()
	var errs []error

	for _, call := range directoryCalls {
		for _, replies := range [][]fakeReply{
			{{delay: time.Second}, {delay: time.Second}, {delay: time.Second}}, // *url.Error would print the URL
			{{body: "<html>{token}</html>"}, {status: 500, body: "{query}"}, {body: echo(-1)}},
			{{body: echo(45009)}},
			{{body: echo(42001)}, {body: echo(40014)}}, // rejected twice
			{{body: echo(60011)}},
			{{body: echo(60123)}},
			{{body: echo(40068)}},
			{{body: echo(60020)}},
			{{body: `{"errcode":0,"errmsg":"{token}","tagname":"{token}","department_id":[{"id":3}],"userlist":[{"userid":"{token}:x"}]}`}},
		} {
			f.push(call.path, replies...)
			if err := call.do(c, ctx, corp); err != nil {
				errs = append(errs, err)
			} else {
				t.Fatalf("%s %+v: no failure", call.endpoint, replies)
			}
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		errs = append(errs, call.do(c, cctx, corp))
	}
	if len(logs.All()) == 0 {
		t.Fatal("no debug log lines: the log check would prove nothing")
	}
	checkNoLeaks(t, errs, logs.All(), secrets)
}

// checkNoLeaks fails the test if any error (or a cause in its chain, in
// any fmt form) or any log line holds one of secrets.
func checkNoLeaks(t *testing.T, errs []error, entries []observer.LoggedEntry, secrets []string) {
	t.Helper()
	for _, err := range errs {
		for cause := err; cause != nil; cause = errors.Unwrap(cause) {
			for _, text := range []string{cause.Error(), fmt.Sprintf("%+v", cause), fmt.Sprintf("%#v", cause)} {
				if s := leaked(text, secrets); s != "" {
					t.Errorf("error %q leaks %q", text, s)
				}
			}
		}
	}
	for _, entry := range entries {
		line := entry.Message + fmt.Sprint(entry.ContextMap())
		if s := leaked(line, secrets); s != "" {
			t.Errorf("log line %q leaks %q", line, s)
		}
	}
}

// TestEchoedSecretsScrubbed: a proxy or an impostor may echo the query in
// errmsg; it must not reach error strings.
func TestEchoedSecretsScrubbed(t *testing.T) {
	const token = "TOKEN-echo-0123456789"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case q.Get("corpsecret") == "echo-secret-at-gettoken":
			fmt.Fprintf(w, `{"errcode":40013,"errmsg":"bad %s\nforged log line"}`, r.URL.RawQuery)
		case r.URL.Path == "/cgi-bin/gettoken":
			fmt.Fprintf(w, `{"errcode":0,"access_token":%q,"expires_in":7200}`, token)
		default:
			fmt.Fprintf(w, `{"errcode":40029,"errmsg":"bad %s %s"}`, r.URL.RawQuery, q.Get("js_code"))
		}
	}))
	defer srv.Close()
	c := wecom.New(wecom.Options{BaseURL: srv.URL})
	corp := wecom.Corp{ID: "wwecho", Secret: "echo-secret-at-jscode2session"}
	_, err1 := c.Token(context.Background(), wecom.Corp{ID: corp.ID, Secret: "echo-secret-at-gettoken"})
	_, err2 := c.CodeToSession(context.Background(), corp, "CODE-echo-0123456789")
	_, err3 := c.DepartmentTree(context.Background(), corp, 2)
	_, err4 := c.Tag(context.Background(), corp, 7)
	for _, err := range []error{err1, err2, err3, err4} {
		if err == nil {
			t.Fatal("expected a failure")
		}
		msg := err.Error()
		if s := leaked(msg, []string{"echo-secret", token, "CODE-echo"}); s != "" || strings.Contains(msg, "\n") {
			t.Errorf("error %q leaks %q or a newline", msg, s)
		}
	}
}

func leaked(text string, secrets []string) string {
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			return s
		}
	}
	return ""
}

func TestCorpAndSessionNeverPrintSecrets(t *testing.T) {
	corp := wecom.Corp{ID: "ww123", Secret: "TopSecretValue"}
	sess := wecom.Session{CorpID: "ww123", UserID: "alice", SessionKey: "SessionKeyValue"}
	for _, v := range []any{corp, &corp, sess, &sess} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x"} {
			if s := fmt.Sprintf(verb, v); strings.Contains(s, "TopSecret") || strings.Contains(s, "SessionKeyValue") ||
				strings.Contains(s, "546f70") /* hex of "Top" */ {
				t.Errorf("%s of %T prints %s", verb, v, s)
			}
		}
		j, _ := json.Marshal(v)
		if strings.Contains(string(j), "TopSecret") || strings.Contains(string(j), "SessionKeyValue") {
			t.Errorf("JSON of %T: %s", v, j)
		}
	}
	core, logs := observer.New(zap.DebugLevel)
	zap.New(core).Info("x", zap.Any("corp", corp), zap.Any("session", sess), zap.Object("c", corp))
	if line := fmt.Sprint(logs.All()[0].ContextMap()); strings.Contains(line, "TopSecret") ||
		strings.Contains(line, "SessionKeyValue") || !strings.Contains(line, "ww123") {
		t.Errorf("zap fields: %s", line)
	}
}
