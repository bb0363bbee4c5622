package wecomauth

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/session"
)

func TestPrincipalsKeepLiveSessionsAcrossGenerations(t *testing.T) {
	ring, err := session.NewRing(bytes.Repeat([]byte{7}, session.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	seal := func(user string) string {
		tok, _, err := ring.Seal(&session.Claims{UserID: user, IssuedAt: now, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	p := newPrincipals()
	live := seal("live")
	first, err := p.open(ring, noCorp, live, now)
	if err != nil {
		t.Fatal(err)
	}
	// Fill more than both generations hold, using the live token now and then.
	for i := range maxCachedTokens + 10 {
		if _, err := p.open(ring, noCorp, seal(fmt.Sprint(i)), now); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			if again, _ := p.open(ring, noCorp, live, now); again != first {
				t.Fatalf("live session fell out of the cache after %d others", i)
			}
		}
	}
	if n := len(p.cur) + len(p.prev); n > maxCachedTokens {
		t.Fatalf("cache holds %d entries", n)
	}
	if _, err := p.open(ring, noCorp, live, now.Add(2*time.Hour)); err != session.ErrExpired {
		t.Fatalf("expired cached token: %v", err)
	}
}

func noCorp(string) *corp { return nil }
