package wecomauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
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

// Item 15: an unknown username is compared with a hash of the same cost as
// every known account's: mixed costs are refused, since any decoy would
// answer in another time than some known names.
func TestReviewHashesShareOneCost(t *testing.T) {
	hash := func(cost int) string {
		h, err := bcrypt.GenerateFromPassword([]byte("pw"), cost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	same := &ReviewConfig{Allow: []string{"/x"}, Users: []ReviewUser{{"a", hash(bcrypt.MinCost + 1)}, {"b", hash(bcrypt.MinCost + 1)}}}
	rv, err := newReview(same, caddy.NewReplacer())
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := bcrypt.Cost(rv.decoy); cost != bcrypt.MinCost+1 {
		t.Errorf("decoy cost %d, want %d", cost, bcrypt.MinCost+1)
	}
	mixed := &ReviewConfig{Allow: []string{"/x"}, Users: []ReviewUser{{"a", hash(bcrypt.MinCost)}, {"b", hash(bcrypt.MinCost + 3)}}}
	if _, err := newReview(mixed, caddy.NewReplacer()); err == nil || !strings.Contains(err.Error(), "same bcrypt cost") {
		t.Errorf("mixed costs: %v", err)
	}
}

// Item 3: the assertion reuse cache stays bounded however many distinct
// paths a signed-in client requests.
func TestAssertionCacheIsBounded(t *testing.T) {
	a := testAsserter(t)
	id := &identity{UserID: "zhangsan", CorpID: "wwacme", Corp: "acme"}
	now := time.Now()
	for i := range maxCachedAssertions + 500 {
		if _, err := a.sign("GET", fmt.Sprintf("/api/%d", i), "", id, now); err != nil {
			t.Fatal(err)
		}
	}
	if n := a.issued.ItemCount(); n > maxCachedAssertions {
		t.Errorf("%d cached assertions, bound %d", n, maxCachedAssertions)
	}
	// Reuse still works for what was cached.
	first, _ := a.sign("GET", "/api/0", "", id, now)
	again, _ := a.sign("GET", "/api/0", "", id, now)
	if first != again {
		t.Error("a cached assertion was not reused")
	}
}

// The burned codes are bounded in number, and kept as fixed-size hashes.
func TestBurnedCodesAreBounded(t *testing.T) {
	h := &Handler{shared: newShared("http://127.0.0.1:9", zap.NewNop())}
	for i := range maxBurned + 100 {
		h.burnCode(fmt.Sprintf("%0200d", i))
	}
	if n := h.shared.burned.ItemCount(); n > maxBurned {
		t.Errorf("%d burned codes kept, bound %d", n, maxBurned)
	}
	for k := range h.shared.burned.Items() {
		if len(k) != 16 {
			t.Fatalf("a burned code is kept as %d bytes", len(k))
		}
	}
}

// Assertions for long paths are signed but not cached.
func TestLongTargetsAreNotCached(t *testing.T) {
	a := testAsserter(t)
	id := &identity{UserID: "zhangsan"}
	if _, err := a.sign("GET", "/"+strings.Repeat("x", maxCachedTarget), "", id, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := a.issued.ItemCount(); n != 0 {
		t.Errorf("a long path was cached (%d entries)", n)
	}
}

// testAsserter is an asserter for audience api.example with a fresh key.
func testAsserter(t *testing.T) *asserter {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newAsserterWithKey(&AssertionConfig{Audience: "api.example"}, key)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
