package wecom_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
	"github.com/wecomgate/wecomgate/module/wecomsim"
)

func TestTokenReusedAcrossCalls(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for range 20 {
		if _, err := e.c.GetUser(ctx, e.corp, "alice"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.c.CodeToSession(ctx, e.corp, e.mint(t, "main", "alice")); err != nil {
		t.Fatal(err)
	}
	if n := e.count(wecomsim.EndpointGetToken); n != 1 {
		t.Fatalf("gettoken called %d times, want 1", n)
	}
	if _, refreshes := e.rec.snapshot(); len(refreshes) != 1 || refreshes[0] != e.corp.ID {
		t.Fatalf("TokenRefresh = %v, want one for %s", refreshes, e.corp.ID)
	}
}

// TestClientsKeepTheirOwnTokens: the cache is the Client's, with no
// process-wide copy behind it, so what keeps tokens across a config reload
// is keeping the Client (the gateway pools it), and one Client's memory
// of a failure does not fail another's calls.
func TestClientsKeepTheirOwnTokens(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	bad := wecom.Corp{ID: e.corp.ID, Secret: "wrong-secret-of-first"}
	if _, err := e.c.Token(ctx, e.corp); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.Token(ctx, bad); wecom.KindOf(err) != wecom.KindDefinitive {
		t.Fatalf("wrong secret: %v", err)
	}
	second := wecom.New(wecom.Options{BaseURL: e.srv.URL})
	if _, err := second.Token(ctx, e.corp); err != nil {
		t.Fatal(err)
	}
	if n := e.count(wecomsim.EndpointGetToken); n != 3 {
		t.Fatalf("gettoken called %d times, want 3: the second Client fetches its own token", n)
	}
	if _, err := second.Token(ctx, bad); wecom.KindOf(err) != wecom.KindDefinitive || e.count(wecomsim.EndpointGetToken) != 4 {
		t.Fatalf("second Client with the wrong secret: %v; want WeCom asked, not the first Client's memory", err)
	}
	if _, err := e.c.Token(ctx, e.corp); err != nil || e.count(wecomsim.EndpointGetToken) != 4 {
		t.Fatalf("first Client lost its token to the second: %v", err)
	}
}

// TestForgetFailures: what a config reload does. A remembered definitive
// failure is forgotten, so a fix made in WeCom's console (here a trusted
// IP, 60020) takes effect at once; cached tokens stay, and so does a 45009,
// whose block no configuration lifts.
func TestForgetFailures(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	tok, err := e.c.Token(ctx, e.corp)
	if err != nil {
		t.Fatal(err)
	}
	e.sim.InjectFault(wecomsim.Fault{Endpoint: "gettoken", Errcode: 60020, Count: 1})
	for range 2 {
		if _, err := e.c.Token(ctx, e.other); asError(t, err).Errcode != 60020 {
			t.Fatalf("got %v, want 60020", err)
		}
	}
	if n := e.count(wecomsim.EndpointGetToken); n != 2 {
		t.Fatalf("gettoken called %d times, want 2: the 60020 is remembered", n)
	}
	e.c.ForgetFailures()
	if _, err := e.c.Token(ctx, e.other); err != nil {
		t.Fatalf("after ForgetFailures: %v, want WeCom asked again", err)
	}
	if again, err := e.c.Token(ctx, e.corp); err != nil || again != tok {
		t.Fatalf("cached token not kept: same = %v, err %v", again == tok, err)
	}
	if n := e.count(wecomsim.EndpointGetToken); n != 3 {
		t.Fatalf("gettoken called %d times, want 3", n)
	}

	limited := wecom.New(wecom.Options{BaseURL: e.srv.URL})
	e.sim.InjectFault(wecomsim.Fault{Endpoint: "gettoken", Errcode: 45009, Count: 1})
	if _, err := limited.Token(ctx, e.corp); asError(t, err).Errcode != 45009 {
		t.Fatalf("got %v, want 45009", err)
	}
	limited.ForgetFailures()
	if _, err := limited.Token(ctx, e.corp); asError(t, err).Errcode != 45009 {
		t.Fatalf("after ForgetFailures: %v, want the 45009 repeated from memory", err)
	}
	if n := e.count(wecomsim.EndpointGetToken); n != 4 {
		t.Fatalf("gettoken called %d times, want 4: WeCom not asked during its block", n)
	}
}

func TestTokenKeyedBySecret(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.c.Token(ctx, e.corp); err != nil {
		t.Fatal(err)
	}
	// Same corp id, another (wrong) secret: must not be served the cached token.
	_, err := e.c.Token(ctx, wecom.Corp{ID: e.corp.ID, Secret: "another-app-secret"})
	if ee := asError(t, err); ee.Errcode != 40001 {
		t.Fatalf("got %v, want errcode 40001", err)
	}
	// And the cached 40001 of that key does not block the right secret.
	if _, err := e.c.Token(ctx, e.corp); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentFirstCallersShareOneGettoken(t *testing.T) {
	e := newEnv(t)
	// Slow gettoken down so that all callers surely overlap with the fetch.
	e.sim.InjectFault(wecomsim.Fault{Endpoint: "gettoken", Delay: 50 * time.Millisecond, Count: 1})
	const n = 200
	var (
		start  = make(chan struct{})
		wg     sync.WaitGroup
		tokens = make([]string, n)
		errs   = make([]error, n)
	)
	for i := range n {
		wg.Go(func() {
			<-start
			tokens[i], errs[i] = e.c.Token(context.Background(), e.corp)
		})
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || tokens[i] == "" || tokens[i] != tokens[0] {
			t.Fatalf("caller %d: token %q, err %v (caller 0 got %q)", i, tokens[i], errs[i], tokens[0])
		}
	}
	if got := e.count(wecomsim.EndpointGetToken); got != 1 {
		t.Fatalf("gettoken called %d times by %d concurrent callers, want 1", got, n)
	}
}

func TestCallerMissingCacheAfterFlightEndsUsesItsToken(t *testing.T) {
	e := newEnv(t)
	// The late caller misses the cache, then stalls until another caller's
	// fetch has completed and left the single flight.
	var (
		once    = make(chan struct{}, 1)
		stalled = make(chan struct{})
		resume  = make(chan struct{})
	)
	once <- struct{}{}
	wecom.SetBeforeFlightHook(t, func() {
		select {
		case <-once:
			close(stalled)
			<-resume
		default:
		}
	})
	late := make(chan error, 1)
	go func() {
		_, err := e.c.Token(context.Background(), e.corp)
		late <- err
	}()
	<-stalled
	if _, err := e.c.Token(context.Background(), e.corp); err != nil {
		t.Fatal(err)
	}
	close(resume)
	if err := <-late; err != nil {
		t.Fatal(err)
	}
	if got := e.count(wecomsim.EndpointGetToken); got != 1 {
		t.Fatalf("gettoken called %d times, want 1", got)
	}
}

func TestTokenRejectedMidUseRefreshesOnce(t *testing.T) {
	for _, errcode := range []int{42001, 40014} {
		t.Run(strconv.Itoa(errcode), func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			if _, err := e.c.GetUser(ctx, e.corp, "alice"); err != nil {
				t.Fatal(err)
			}
			e.sim.ExpireTokens(e.corp.ID, errcode)
			// Many requests holding the dead token fail together.
			var wg sync.WaitGroup
			errs := make(chan error, 50)
			for range 50 {
				wg.Go(func() {
					_, err := e.c.GetUser(ctx, e.corp, "alice")
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if _, err := e.c.CodeToSession(ctx, e.corp, e.mint(t, "main", "alice")); err != nil {
				t.Fatal(err)
			}
			if got := e.count(wecomsim.EndpointGetToken); got != 2 {
				t.Fatalf("gettoken called %d times, want 2 (initial + one refresh)", got)
			}
			if _, refreshes := e.rec.snapshot(); len(refreshes) != 2 {
				t.Fatalf("TokenRefresh reported %d times, want 2", len(refreshes))
			}
		})
	}
}

func TestStaleTokenFailureDoesNotDropFreshToken(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	stale, err := e.c.Token(ctx, e.corp)
	if err != nil {
		t.Fatal(err)
	}
	e.sim.ExpireTokens(e.corp.ID, 42001)
	if _, err := e.c.GetUser(ctx, e.corp, "alice"); err != nil { // refreshes
		t.Fatal(err)
	}
	fresh, err := e.c.Token(ctx, e.corp)
	if err != nil || fresh == stale {
		t.Fatalf("after refresh: token changed = %v, err %v", fresh != stale, err)
	}
	// A slow request whose stale token failed only now must not drop the fresh one.
	if wecom.InvalidateToken(e.c, e.corp, stale) {
		t.Fatal("invalidating the stale token dropped the cached one")
	}
	if tok, err := e.c.Token(ctx, e.corp); err != nil || tok != fresh {
		t.Fatalf("token after stale invalidation: same = %v, err %v", tok == fresh, err)
	}
	if got := e.count(wecomsim.EndpointGetToken); got != 2 {
		t.Fatalf("gettoken called %d times, want 2", got)
	}
	// The failing token itself is dropped.
	if !wecom.InvalidateToken(e.c, e.corp, fresh) {
		t.Fatal("invalidating the cached token did nothing")
	}
	if _, err := e.c.Token(ctx, e.corp); err != nil {
		t.Fatal(err)
	}
	if got := e.count(wecomsim.EndpointGetToken); got != 3 {
		t.Fatalf("gettoken called %d times, want 3", got)
	}
}

func TestTokenRejectedTwiceIsTransient(t *testing.T) {
	e := newEnv(t)
	e.sim.InjectFault(wecomsim.Fault{Endpoint: "user/get", Errcode: 42001})
	_, err := e.c.GetUser(context.Background(), e.corp, "alice")
	ee := asError(t, err)
	if ee.Kind != wecom.KindTransient || ee.Errcode != 42001 || ee.Endpoint != "user/get" {
		t.Fatalf("got %v (kind %v), want transient 42001 from user/get", err, ee.Kind)
	}
	if got := e.count(wecomsim.EndpointUserGet); got != 2 {
		t.Fatalf("user/get called %d times, want 2 (one retry after refresh)", got)
	}
	if got := e.count(wecomsim.EndpointGetToken); got != 2 {
		t.Fatalf("gettoken called %d times, want 2", got)
	}
}

func TestWrongSecretIsDefinitiveAndNotRepeated(t *testing.T) {
	e := newEnv(t)
	bad := wecom.Corp{ID: e.corp.ID, Secret: "wrong-secret-must-not-leak"}
	ctx := context.Background()
	_, err := e.c.GetUser(ctx, bad, "alice")
	ee := asError(t, err)
	if ee.Kind != wecom.KindDefinitive || ee.Errcode != 40001 || ee.Endpoint != "gettoken" || ee.CorpID != bad.ID {
		t.Fatalf("got %v (kind %v), want definitive gettoken 40001 for %s", err, ee.Kind, bad.ID)
	}
	if msg := err.Error(); !strings.Contains(msg, bad.ID) || strings.Contains(msg, bad.Secret) {
		t.Fatalf("error %q must name the corp and not the secret", msg)
	}
	// A burst of logins with the wrong secret: WeCom is not asked again.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			var err error
			switch i % 3 {
			case 0:
				_, err = e.c.Token(ctx, bad)
			case 1:
				_, err = e.c.CodeToSession(ctx, bad, "some-code")
			default:
				_, err = e.c.GetUser(ctx, bad, "alice")
			}
			var ee *wecom.Error
			if !errors.As(err, &ee) || ee.Kind != wecom.KindDefinitive || ee.Errcode != 40001 {
				t.Errorf("call %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if got := e.count(wecomsim.EndpointGetToken); got != 1 {
		t.Fatalf("gettoken called %d times for 51 calls with a wrong secret, want 1", got)
	}
}

func TestRateLimitedGettokenNotRepeated(t *testing.T) {
	e := newEnv(t)
	e.sim.InjectFault(wecomsim.Fault{Endpoint: "gettoken", Errcode: 45009})
	for range 5 {
		_, err := e.c.Token(context.Background(), e.corp)
		if ee := asError(t, err); ee.Kind != wecom.KindTransient || ee.Errcode != 45009 {
			t.Fatalf("got %v, want transient 45009", err)
		}
	}
	if got := e.count(wecomsim.EndpointGetToken); got != 1 {
		t.Fatalf("gettoken called %d times after 45009, want 1", got)
	}
}

func TestWaiterCancellationDoesNotFailSharedFetch(t *testing.T) {
	e := newEnv(t)
	e.sim.InjectFault(wecomsim.Fault{Endpoint: "gettoken", Delay: 300 * time.Millisecond, Count: 1})
	// The first caller starts the fetch and gives up early.
	short, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	first := make(chan error, 1)
	go func() {
		_, err := e.c.Token(short, e.corp)
		first <- err
	}()
	time.Sleep(10 * time.Millisecond)
	// A second caller joins the same fetch and must get the token.
	second := make(chan error, 1)
	go func() {
		_, err := e.c.Token(context.Background(), e.corp)
		second <- err
	}()
	start := time.Now()
	err := <-first
	if !errors.Is(err, context.DeadlineExceeded) || wecom.KindOf(err) != wecom.KindTransient {
		t.Fatalf("first caller: %v, want its deadline as a transient error", err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Fatalf("first caller waited %v for the shared fetch", d)
	}
	if err := <-second; err != nil {
		t.Fatalf("second caller failed with the first caller's cancellation: %v", err)
	}
	if got := e.count(wecomsim.EndpointGetToken); got != 1 {
		t.Fatalf("gettoken called %d times, want 1", got)
	}
}

// TestExpiresInClamped: whatever expires_in says, the token is cached for
// between a minute and four hours (twice WeCom's 7200 s), less the refresh
// margin, and never fails the fetch. The cache's drop time is read, not
// waited for.
func TestExpiresInClamped(t *testing.T) {
	const (
		floor   = time.Minute + time.Second      // 60 s, and a second for whole seconds
		ceiling = 4*time.Hour + time.Second      // 4 h
		normal  = 7200*time.Second + time.Second // WeCom's usual answer
	)
	f := newFakeWeCom(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		expiresIn string // JSON text; "" leaves the field out
		want      time.Duration
	}{
		{"normal", `7200`, normal},
		{"fraction", `7200.5`, normal + 500*time.Millisecond},
		{"at the floor", `60`, floor},
		{"under the floor", `59`, floor},
		{"zero", `0`, floor},
		{"negative", `-1`, floor},
		{"most negative int64", `-9223372036854775808`, floor},
		{"null", `null`, floor},
		{"missing", ``, floor},
		{"just over the ceiling", `14401`, ceiling},
		{"max int64", `9223372036854775807`, ceiling},
		{"beyond time.Duration", `9223372036855`, ceiling},
		{"wraps time.Duration positive", `1000000000000`, ceiling},
		{"beyond int64", `1e30`, ceiling},
		{"beyond float64", `1e400`, ceiling},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"errcode":0,"errmsg":"ok","access_token":"fake-access-token"`
			if tc.expiresIn != "" {
				body += `,"expires_in":` + tc.expiresIn
			}
			f.set("/cgi-bin/gettoken", body+"}")
			c := wecom.New(wecom.Options{BaseURL: f.srv.URL, Attempts: 1}) // with an empty cache
			corp := fakeCorp
			before := time.Now()
			if _, err := c.Token(ctx, corp); err != nil {
				t.Fatalf("expires_in %s: %v", tc.expiresIn, err)
			}
			after := time.Now()
			dropAt, ok := wecom.TokenDropAt(c, corp)
			if !ok {
				t.Fatal("token not cached")
			}
			if dropAt.Before(before.Add(tc.want)) || dropAt.After(after.Add(tc.want)) {
				t.Fatalf("token dropped %v after the fetch, want %v", dropAt.Sub(before), tc.want)
			}
			hits := f.count("/cgi-bin/gettoken")
			if _, err := c.Token(ctx, corp); err != nil {
				t.Fatal(err)
			}
			if f.count("/cgi-bin/gettoken") != hits {
				t.Fatal("second Token fetched again: the token was not cached")
			}
		})
	}
}
