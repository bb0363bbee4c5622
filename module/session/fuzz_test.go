package session_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/session"
)

// Tokens sealed once, offline, with keyA and keyB (both in the fuzz ring)
// and with keyC (not in it), from fuzzClaims at fuzzNow. They are the only
// strings besides those sealed during the run that may open, and they seed
// the corpus (testdata/fuzz/FuzzOpen) with truncations and bit flips.
var (
	keyC = bytes.Repeat([]byte{0xC3}, session.KeySize)

	genuineA = []string{
		"AbtZZI07Bm1K0iFouGjq2bkNbYAP73uZgoW3FP1p9mXxn8NgwZ9uTJ5k_1nDEDDpkydp6OsZ7VCRQ9fj810sbjN3c-_xd_1PQs3oSYikyduKNRY5jg",
		"AbtZZI3Gwzle5yf-JpnasiorIlDTgEmVdMm7fDjt767IQoL78wTxbIAf8L7xg6dqMAayM7tZ7VgM9xJELqVRc2395q36jw",
	}
	genuineB = []string{
		"AeW0X1o5ztR_icTBsnOXbpvayyEpwr5CHbnb8Kl_YrKJYOe3Diz3jrnuxXHa8ggovaiTkfitiVF-o_vb9AS5-t22pXIPyGWtdBMUjpnhu29JtX-IEQ",
		"AeW0X1okq14zsZKTBtOAo-cg7n54BBn-s1Kv_SqmtywWV6-Dh8rGAMoaEe42uTJa3MVOXLC4ZJH06vA2LNW7RdXYfBzZMQ",
	}
	foreignC = []string{
		"AUcDXOTNYEslh6Ykbk645z_rhEzYiLWz-syPf_OsvJgTBE7YLAHx5zA1-Q9WllHaGHHoKreXIsD2j5lbddTk0DFvzl9dF_efN9mwYninyhE26313uA",
		"AUcDXOSBtxL6b_DiZOFB1tJMKNt_e_CbjRFYjYbskxuAKCwApH-tfSbodTzQ5W3crUaLpskycgTOfQUWJLIPvFFxdczqQA",
	}
)

var fuzzNow = time.Unix(1_800_000_000, 0)

// fuzzClaims are the claims the genuine tokens carry, in order.
func fuzzClaims() []session.Claims {
	return []session.Claims{
		{UserID: "zhangsan", CorpID: "ww0000000000acme", Corp: "acme", Name: "张三", Departments: "1,20",
			IssuedAt: fuzzNow, ExpiresAt: fuzzNow.Add(24 * time.Hour)},
		{UserID: "review:reviewer", Name: "reviewer", Review: true,
			IssuedAt: fuzzNow, ExpiresAt: fuzzNow.Add(24 * time.Hour)},
	}
}

// genuine maps the raw bytes of every token the fuzz ring sealed to the
// claims it was sealed with (ID left zero).
type genuine struct {
	mu     sync.Mutex
	claims map[string]session.Claims
}

func (g *genuine) add(tok string, c session.Claims) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		panic("a sealed token is not base64url: " + err.Error())
	}
	c.ID = session.ID{}
	g.mu.Lock()
	g.claims[string(raw)] = c
	g.mu.Unlock()
}

func (g *genuine) lookup(raw []byte) (session.Claims, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.claims[string(raw)]
	return c, ok
}

// openSeeds are the genuine and foreign tokens with truncations, bit flips
// and other spellings: the seed corpus of FuzzOpen.
func openSeeds() []string {
	var seeds []string
	for _, tok := range append(append(append([]string{}, genuineA...), genuineB...), foreignC...) {
		seeds = append(seeds, tok, tok[:len(tok)-1], tok[:len(tok)/2], tok+"A", " "+tok, strings.ToUpper(tok))
		raw, _ := base64.RawURLEncoding.DecodeString(tok)
		for _, i := range []int{0, 1, 5, 17, len(raw) / 2, len(raw) - 17, len(raw) - 1} {
			b := bytes.Clone(raw)
			b[i] ^= 0x01
			seeds = append(seeds, base64.RawURLEncoding.EncodeToString(b))
		}
		seeds = append(seeds, base64.StdEncoding.EncodeToString(raw)) // padded, standard alphabet
	}
	return append(seeds, "", "Bearer x", strings.Repeat("A", 44), strings.Repeat("_", 2049), "\x00\xff\xfe")
}

// FuzzOpen: no string makes Open panic, and only what the ring sealed
// opens, to exactly the claims it was sealed with.
func FuzzOpen(f *testing.F) {
	ring := mustRing(f, keyA, keyB)
	known := &genuine{claims: map[string]session.Claims{}}
	for i, c := range fuzzClaims() {
		known.add(genuineA[i], c)
		known.add(genuineB[i], c)
	}
	// A token sealed now opens too. (It is not a seed: every fuzz worker
	// process seals its own, so a worker would not know another's.)
	live := fuzzClaims()[0]
	liveTok, liveID, err := ring.Seal(&live)
	if err != nil {
		f.Fatal(err)
	}
	if got, err := ring.Open(liveTok, fuzzNow); err != nil || got.ID != liveID || got.UserID != live.UserID {
		f.Fatalf("fresh token: %+v, %v", got, err)
	}

	for _, tok := range openSeeds() {
		f.Add(tok)
	}

	f.Fuzz(func(t *testing.T, tok string) {
		c, err := ring.Open(tok, fuzzNow.Add(time.Hour))
		if err != nil {
			if !errors.Is(err, session.ErrMalformed) && !errors.Is(err, session.ErrUnknownKey) &&
				!errors.Is(err, session.ErrForged) && !errors.Is(err, session.ErrExpired) {
				t.Fatalf("Open(%q) = %v: not one of the documented errors", tok, err)
			}
			if errors.Is(err, session.ErrExpired) {
				// Only authentic tokens can be expired; none of ours is yet.
				t.Fatalf("Open(%q) = ErrExpired: the token is authentic but was never sealed to expire now", tok)
			}
			if c != (session.Claims{}) {
				t.Fatalf("Open(%q) failed with %v but returned claims %+v", tok, err, c)
			}
			return
		}
		raw, derr := base64.RawURLEncoding.DecodeString(tok)
		if derr != nil {
			t.Fatalf("Open accepted %q, which is not base64url: %v", tok, derr)
		}
		want, ok := known.lookup(raw)
		if !ok {
			t.Fatalf("Open accepted %q, which the ring never sealed, as %+v", tok, c)
		}
		var id session.ID
		copy(id[:], raw[5:17])
		if c.ID != id {
			t.Fatalf("Open(%q) gave ID %x, want the nonce %x", tok, c.ID, id)
		}
		c.ID = session.ID{}
		if c != want {
			t.Fatalf("Open(%q) = %+v, want the sealed %+v", tok, c, want)
		}
	})
}

// FuzzSealRoundTrip: whatever a login puts into a session comes back out
// of its token, or Seal refuses it; it never issues a token that Open
// then refuses.
func FuzzSealRoundTrip(f *testing.F) {
	ring := mustRing(f, keyA, keyB)
	f.Add("zhangsan", "wwacme", "acme", "张三", "1,2", false, int64(1_800_000_000), uint32(86400))
	f.Add("review:reviewer", "", "", "reviewer", "", true, int64(0), uint32(1))
	f.Add("", "", "", "", "", false, int64(1), uint32(60))
	f.Add("u\x00\xff", "c\r\n", "名", "\xe4\xb8", strings.Repeat("9", 300), true, int64(1<<40), uint32(1<<31))
	f.Fuzz(func(t *testing.T, user, corpID, corp, name, depts string, review bool, iat int64, life uint32) {
		if iat < 0 || iat > 1<<40 || life == 0 {
			return // times outside what a clock produces, or a token born expired
		}
		in := session.Claims{
			UserID: user, CorpID: corpID, Corp: corp, Name: name, Departments: depts, Review: review,
			IssuedAt: time.Unix(iat, 0), ExpiresAt: time.Unix(iat+int64(life), 0),
		}
		tok, id, err := ring.Seal(&in)
		if err != nil {
			return // refusing is fine: the login then fails instead of issuing a dud
		}
		out, err := ring.Open(tok, in.IssuedAt)
		if err != nil && len(tok) > 2048 {
			t.Fatalf("Seal issued a %d-char token that Open refuses as too long (%v); see TestSealNeverIssuesUnopenableTokens", len(tok), err)
		}
		if err != nil {
			claimBytes := len(user) + len(corpID) + len(corp) + len(name) + len(depts)
			t.Fatalf("Seal issued a %d-char token (claims of %d bytes) that Open refuses: %v", len(tok), claimBytes, err)
		}
		in.ID = id
		if out != in {
			t.Fatalf("round trip changed claims:\n got %+v\nwant %+v", out, in)
		}
		if _, err := ring.Open(tok, in.ExpiresAt); !errors.Is(err, session.ErrExpired) {
			t.Fatalf("token opened at its expiry: %v", err)
		}
	})
}

// Seal must not issue a token that Open refuses as too long: the user
// would get 200 at login and 401 on every request after, and loop.
func TestSealNeverIssuesUnopenableTokens(t *testing.T) {
	ring := mustRing(t, keyA)
	in := sample()
	// A user in many departments with long ids: WeCom allows up to 100
	// departments per member; 200 here to cross the limit today.
	var ids []string
	for i := range 200 {
		ids = append(ids, "10000000"+string(rune('0'+i%10)))
	}
	in.Departments = strings.Join(ids, ",")
	tok, _, err := ring.Seal(&in)
	if err != nil {
		return // refused at issue: the login can answer an error
	}
	if _, err := ring.Open(tok, now); err != nil {
		t.Fatalf("Seal issued a %d-char token for %d bytes of departments that Open refuses (%v); "+
			"session/ring.go Seal must return an error when the token would exceed maxTokenLen", len(tok), len(in.Departments), err)
	}
}

// Base64url decoding ignores the unused low bits of the last character, so
// a sealed token has a few spellings that open. They carry the same bytes
// and hence the same ID: revocation by ID covers them all.
func TestTokenSpellingsShareID(t *testing.T) {
	ring := mustRing(t, keyA)
	c := sample()
	tok, id, _ := ring.Seal(&c)
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, ch := range alphabet {
		alt := tok[:len(tok)-1] + string(ch)
		if alt == tok {
			continue
		}
		out, err := ring.Open(alt, now)
		if err != nil {
			continue
		}
		if out.ID != id {
			t.Fatalf("alternate spelling %q opened with another ID", alt)
		}
	}
}
