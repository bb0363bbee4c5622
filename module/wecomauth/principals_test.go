package wecomauth

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"

	"github.com/wecomgate/wecomgate/module/internal/session"
)

func testRing(t testing.TB, corps ...*corp) *boundRing {
	t.Helper()
	ring, err := session.NewRing(bytes.Repeat([]byte{7}, session.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	byID := make(map[string]*corp, len(corps))
	for _, c := range corps {
		byID[c.id] = c
	}
	return newBoundRing(ring, byID, testReview(t, "reviewer"))
}

// testReviewHash is one bcrypt hash of "pw" at the lowest cost: every
// testReview is then the same review block, as a reload would provision it.
var testReviewHash = sync.OnceValue(func() string {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(hash)
})

// testReview is a review block with the given accounts, all with password
// "pw".
func testReview(t testing.TB, names ...string) *review {
	t.Helper()
	cfg := &ReviewConfig{Allow: []string{"/api/public/*"}}
	for _, n := range names {
		cfg.Users = append(cfg.Users, ReviewUser{Username: n, PasswordHash: testReviewHash()})
	}
	rv, err := newReview(cfg, caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	return rv
}

func testCorp(name, id, secret string) *corp {
	return newCorp(CorpConfig{Name: name, CorpID: id, Secret: secret}, caddy.NewReplacer())
}

func corpClaims(c *corp, user string, now time.Time) *session.Claims {
	return &session.Claims{UserID: user, CorpID: c.id, Corp: c.name, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
}

func TestPrincipalsKeepLiveSessionsAcrossGenerations(t *testing.T) {
	acme := testCorp("acme", "wwacme", "secret")
	ring := testRing(t, acme)
	now := time.Now()
	seal := func(user string) string {
		tok, _, err := ring.Seal(corpClaims(acme, user, now))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	p := newPrincipals()
	live := seal("live")
	first, err := p.open(ring, live, now)
	if err != nil {
		t.Fatal(err)
	}
	if first.corp != acme {
		t.Fatalf("principal's corp = %+v, want acme", first.corp)
	}
	// Fill more than both generations hold, using the live token now and then.
	for i := range maxCachedTokens + 10 {
		if _, err := p.open(ring, seal(fmt.Sprint(i)), now); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 0 {
			if again, _ := p.open(ring, live, now); again != first {
				t.Fatalf("live session fell out of the cache after %d others", i)
			}
		}
	}
	if n := len(p.cur) + len(p.prev); n > maxCachedTokens {
		t.Fatalf("cache holds %d entries", n)
	}
	if _, err := p.open(ring, live, now.Add(2*time.Hour)); err != session.ErrExpired {
		t.Fatalf("expired cached token: %v", err)
	}
}

// A corp session opens only where its corp has the same app (corp id and
// secret); a review session only as a review session.
func TestBoundRingBindsSessionsToTheApp(t *testing.T) {
	now := time.Now()
	acme := testCorp("acme", "wwacme", "app-one-secret")
	acmeApp2 := testCorp("acme", "wwacme", "app-two-secret")
	partner := testCorp("partner", "wwpartner", "partner-secret")

	issuer := testRing(t, acme, partner)
	tok, _, err := issuer.Seal(corpClaims(acme, "zhangsan", now))
	if err != nil {
		t.Fatal(err)
	}
	review := &session.Claims{UserID: reviewUserPrefix + "reviewer", Name: "reviewer", Review: true, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	reviewTok, _, err := issuer.Seal(review)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		corps []*corp
		want  error
	}{
		{"the issuer", []*corp{acme, partner}, nil},
		// Another instance or a reload: corps provisioned anew from the same config.
		{"the same config again", []*corp{testCorp("acme", "wwacme", "app-one-secret"), testCorp("partner", "wwpartner", "partner-secret")}, nil},
		{"without the other corp", []*corp{testCorp("acme", "wwacme", "app-one-secret")}, nil},
		{"with the corps reordered and another added", []*corp{testCorp("other", "wwother", "x"), partner, acme}, nil},
		{"another app of the corp", []*corp{acmeApp2, partner}, session.ErrForged},
		{"the corp with a new secret", []*corp{testCorp("acme", "wwacme", "rotated-secret")}, session.ErrForged},
		{"without the corp", []*corp{partner}, session.ErrForged},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ring := testRing(t, tc.corps...)
			c, corp, err := ring.open(tok, now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("open = %+v, %v; want %v", c, err, tc.want)
			}
			if err == nil && (corp == nil || corp.app != acme.app || c.UserID != "zhangsan") {
				t.Fatalf("opened as %+v of corp %+v", c, corp)
			}
			// Through the principals cache, as requests see it.
			if _, err := newPrincipals().open(ring, tok, now); !errors.Is(err, tc.want) {
				t.Fatalf("principals.open: %v; want %v", err, tc.want)
			}
			// Review sessions are bound to no corp: they open wherever the key does.
			if c, corp, err := ring.open(reviewTok, now); err != nil || corp != nil || !c.Review {
				t.Fatalf("review token: %+v of corp %+v, %v", c, corp, err)
			}
		})
	}
}

// Claims that contradict their binding are refused even if authentic: a
// review record sealed for a corp's app, a corp record sealed for review,
// or a record of one corp sealed for another's app.
func TestBoundRingRefusesClaimsAgainstTheirBinding(t *testing.T) {
	now := time.Now()
	acme := testCorp("acme", "wwacme", "secret")
	partner := testCorp("partner", "wwpartner", "secret")
	ring := testRing(t, acme, partner)
	review := &session.Claims{UserID: reviewUserPrefix + "reviewer", Review: true, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	for name, tc := range map[string]struct {
		claims  *session.Claims
		binding session.Binding
	}{
		"review record for a corp": {review, acme.binding},
		"corp record for review":   {corpClaims(acme, "zhangsan", now), ring.review.accounts["reviewer"].binding},
		"corp record for another":  {corpClaims(acme, "zhangsan", now), partner.binding},
	} {
		tok, _, err := ring.ring.Seal(tc.claims, tc.binding)
		if err != nil {
			t.Fatal(err)
		}
		if c, corp, err := ring.open(tok, now); !errors.Is(err, session.ErrMalformed) {
			t.Errorf("%s: opened as %+v of corp %+v, %v; want ErrMalformed", name, c, corp, err)
		}
	}
	if _, _, err := ring.Seal(corpClaims(testCorp("x", "wwunknown", "s"), "u", now)); err == nil {
		t.Error("sealed a session for a corp that is not configured")
	}
}

// Two configured corps (or one and review) whose hints collide still
// each open their own tokens, and only theirs.
func TestBoundRingSurvivesHintCollisions(t *testing.T) {
	now := time.Now()
	acme := testCorp("acme", "wwacme", "secret")
	partner := testCorp("partner", "wwpartner", "secret")
	partner.binding.Hint = acme.binding.Hint
	stranger := testCorp("acme", "wwacme", "another-secret")
	ring := testRing(t, acme, partner)
	reviewer := ring.review.accounts["reviewer"]
	ring.byHint[reviewer.binding.Hint] = nil
	ring.byHint[acme.binding.Hint] = []bindingFor{{binding: acme.binding, corp: acme}, {binding: partner.binding, corp: partner}, {binding: reviewer.binding, account: reviewer}}
	for _, c := range []*corp{acme, partner} {
		tok, _, err := ring.Seal(corpClaims(c, "u", now))
		if err != nil {
			t.Fatal(err)
		}
		if _, got, err := ring.open(tok, now); err != nil || got != c {
			t.Errorf("%s: opened for %+v, %v", c.name, got, err)
		}
	}
	tok, _, err := testRing(t, stranger).Seal(corpClaims(stranger, "u", now))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ring.open(tok, now); !errors.Is(err, session.ErrForged) {
		t.Errorf("another app's token: %v; want ErrForged", err)
	}
}

func BenchmarkPrincipalsOpenCached(b *testing.B) {
	acme := testCorp("acme", "wwacme", "secret")
	ring := testRing(b, acme)
	now := time.Now()
	tok, _, err := ring.Seal(corpClaims(acme, "zhangsan", now))
	if err != nil {
		b.Fatal(err)
	}
	p := newPrincipals()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.open(ring, tok, now); err != nil {
			b.Fatal(err)
		}
	}
}
