package wecom_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/wecom"
)

// clock is a movable time for the token cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// One gettoken per token: WeCom answers the same token with what is left
// of its life until it expires, so the cache keeps it until then and fetches
// once after (the soak saw calls at 0, 134, 148 and 150 s of a 150 s token).
func TestGettokenOncePerToken(t *testing.T) {
	f := newFakeWeCom(t)
	rec := &recorder{}
	c := wecom.New(wecom.Options{BaseURL: f.srv.URL, Attempts: 1, Observer: rec})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	wecom.SetClock(c, clk.Now)
	ctx := context.Background()

	f.set("/cgi-bin/gettoken", `{"errcode":0,"access_token":"token-one","expires_in":150}`)
	for range 150 {
		if tok, err := c.Token(ctx, fakeCorp); err != nil || tok != "token-one" {
			t.Fatalf("Token = %q, %v", tok, err)
		}
		clk.add(time.Second)
	}
	if n := f.count("/cgi-bin/gettoken"); n != 1 {
		t.Fatalf("gettoken called %d times in the token's 150 s, want 1", n)
	}
	clk.add(2 * time.Second) // past the expiry (and its second of slack)
	f.set("/cgi-bin/gettoken", `{"errcode":0,"access_token":"token-two","expires_in":150}`)
	if tok, _ := c.Token(ctx, fakeCorp); tok != "token-two" {
		t.Fatalf("after the expiry Token = %q, want the new token", tok)
	}
	if n := f.count("/cgi-bin/gettoken"); n != 2 {
		t.Fatalf("gettoken called %d times for two tokens, want 2", n)
	}
	if _, refreshes := rec.snapshot(); len(refreshes) != 2 {
		t.Fatalf("refreshes %v, want 2", refreshes)
	}
}

// A token WeCom answers again (here after a 40014 made the cache drop it)
// is the same token: not counted as a refresh, and kept for what WeCom says
// is left of it, not a fresh lifetime or the one-minute floor.
func TestTokenSeenAgainIsNotANewToken(t *testing.T) {
	f := newFakeWeCom(t)
	rec := &recorder{}
	c := wecom.New(wecom.Options{BaseURL: f.srv.URL, Attempts: 1, Observer: rec})
	clk := &clock{t: time.Unix(1_700_000_000, 0)}
	wecom.SetClock(c, clk.Now)
	ctx := context.Background()
	f.set("/cgi-bin/gettoken", `{"errcode":0,"access_token":"token-one","expires_in":7200}`)
	if _, err := c.Token(ctx, fakeCorp); err != nil {
		t.Fatal(err)
	}
	clk.add(7190 * time.Second)
	wecom.InvalidateToken(c, fakeCorp, "token-one")
	f.set("/cgi-bin/gettoken", `{"errcode":0,"access_token":"token-one","expires_in":10}`)
	if tok, _ := c.Token(ctx, fakeCorp); tok != "token-one" {
		t.Fatalf("Token = %q", tok)
	}
	if _, refreshes := rec.snapshot(); len(refreshes) != 1 {
		t.Fatalf("refreshes %v: the token seen again was counted", refreshes)
	}
	dropAt, _ := wecom.TokenDropAt(c, fakeCorp)
	if left := dropAt.Sub(clk.Now()); left > 12*time.Second {
		t.Fatalf("the token seen again is kept %v, want what WeCom said is left (10 s)", left)
	}
}

// A jscode2session that times out may have spent the code at WeCom: it is
// not sent again (the retry would answer 40029), and the error is
// transient so that the gateway answers 503 and the client takes a fresh
// code.
func TestCodeExchangeNotRetriedAfterTimeout(t *testing.T) {
	f := newFakeWeCom(t)
	f.set("/cgi-bin/gettoken", `{"errcode":0,"access_token":"token-one","expires_in":7200}`)
	f.set("/cgi-bin/miniprogram/jscode2session", `{"errcode":0,"corpid":"wwfake","userid":"alice"}`)
	f.push("/cgi-bin/miniprogram/jscode2session", fakeReply{body: `{"errcode":0}`, delay: time.Second})
	c := wecom.New(wecom.Options{BaseURL: f.srv.URL, Attempts: 3, Timeout: 100 * time.Millisecond, Backoff: time.Millisecond})
	_, err := c.CodeToSession(context.Background(), fakeCorp, "code-that-may-be-spent")
	if err == nil {
		t.Fatal("a timed-out exchange succeeded")
	}
	if n := f.count("/cgi-bin/miniprogram/jscode2session"); n != 1 {
		t.Fatalf("jscode2session sent %d times after a timeout, want 1", n)
	}
	if e := asError(t, err); e.Kind != wecom.KindTransient || !strings.Contains(e.Error(), "not sent again") {
		t.Fatalf("error %v (kind %v), want a transient one saying it was not resent", e, e.Kind)
	}
	// user/get spends nothing: the same timeout is retried.
	f.set("/cgi-bin/user/get", `{"errcode":0,"userid":"alice","name":"A","status":1}`)
	f.push("/cgi-bin/user/get", fakeReply{body: `{}`, delay: time.Second})
	if _, err := c.GetUser(context.Background(), fakeCorp, "alice"); err != nil {
		t.Fatalf("user/get not retried after a timeout: %v", err)
	}
}
