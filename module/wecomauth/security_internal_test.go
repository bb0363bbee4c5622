package wecomauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"golang.org/x/crypto/bcrypt"
)

// Item 11: review paths that any server might read otherwise are refused.
func TestCanonicalPathRefusesEveryAmbiguity(t *testing.T) {
	for _, raw := range []string{
		"/api/public/%252e%252e/admin", // %25: an escape of % itself
		"/api/public/%25",
		"/api/public/%c0%ae%c0%ae/admin", // overlong UTF-8 dots
		"/api/public/\u2025/admin",       // two dot leader
		"/api/public/\uff0e\uff0e/admin", // fullwidth full stops
		"/api/public/..%20/admin",        // trailing space
		"/api/public/.../admin",          // trailing dots
		"/api/public/admin.",
		"/api/public/file::$DATA",
		"/api/public/a b",
		"/api/public/..",
		"/api/public//x",
		"/api/public/a\\b",
		"/api/public/a;b",
		"/api/public/名",
	} {
		u, err := url.Parse(raw)
		if err != nil {
			continue // not even a URL: refused before this check
		}
		if canonicalPath(u) {
			t.Errorf("%q (path %q) passed as canonical", raw, u.Path)
		}
	}
	for _, raw := range []string{"/", "/api/public/a", "/api/public/a/", "/api/public/file.json", "/api/v1.2/x", "/api/public/a-b_c~d"} {
		u, _ := url.Parse(raw)
		if !canonicalPath(u) {
			t.Errorf("%q refused", raw)
		}
	}
}

// Item 15: an unknown username is compared with the costliest hash, so it
// takes as long as the slowest known account.
func TestReviewDecoyHasTheHighestCost(t *testing.T) {
	cfg := &ReviewConfig{Allow: []string{"/x"}}
	for i, cost := range []int{bcrypt.MinCost, bcrypt.MinCost + 3, bcrypt.MinCost + 1} {
		h, err := bcrypt.GenerateFromPassword([]byte("pw"), cost)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Users = append(cfg.Users, ReviewUser{Username: fmt.Sprint("u", i), PasswordHash: string(h)})
	}
	rv, err := newReview(cfg, caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost(rv.decoy); cost != bcrypt.MinCost+3 {
		t.Errorf("decoy cost %d, want %d", cost, bcrypt.MinCost+3)
	}
}

// Item 3: the assertion reuse cache stays bounded however many distinct
// paths a signed-in client requests.
func TestAssertionCacheIsBounded(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAsserterWithKey(&AssertionConfig{Audience: "api.example"}, key)
	if err != nil {
		t.Fatal(err)
	}
	id := &identity{UserID: "zhangsan", CorpID: "wwacme", Corp: "acme"}
	now := time.Now()
	for i := range maxCachedAssertions + 500 {
		if _, err := a.sign("GET", fmt.Sprintf("/api/%d", i), id, now); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.issued.ItemCount(); n > maxCachedAssertions {
		t.Errorf("%d cached assertions, bound %d", n, maxCachedAssertions)
	}
	// Reuse still works for what was cached.
	first, _ := a.sign("GET", "/api/0", id, now)
	again, _ := a.sign("GET", "/api/0", id, now)
	if first != again {
		t.Error("a cached assertion was not reused")
	}
}
