package session_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/session"
)

// The fuzz ring's bindings: a corp app and review sign-in, as the gateway
// uses them, and another app of the same corp (same hint, other data)
// whose tokens must never open.
var (
	fuzzCorp     = session.Binding{Hint: 0x1c0ffee1, Data: []byte("corp app\x00ww0000000000acme/1111111111111111")}
	fuzzReview   = session.Binding{Hint: 0x2dec0de2, Data: []byte("review")}
	fuzzOtherApp = session.Binding{Hint: fuzzCorp.Hint, Data: []byte("corp app\x00ww0000000000acme/2222222222222222")}

	// fuzzBindings are those FuzzOpen opens with; fuzzClaims()[i] is sealed
	// with fuzzBindings[i].
	fuzzBindings = []session.Binding{fuzzCorp, fuzzReview}
)

// Tokens sealed once, offline, with keyA and keyB (both in the fuzz ring)
// and with keyC (not in it), from fuzzClaims at fuzzNow, each with its
// fuzzBindings entry; and with keyA for fuzzOtherApp. genuineA and genuineB
// are the only strings besides those sealed during the run that may open,
// and only with their own binding; all of them seed FuzzOpen (openSeeds)
// with truncations and bit flips. To make them
// again: go test -run TestPrintFuzzTokens -print-fuzz-tokens ./module/internal/session
var (
	keyC = bytes.Repeat([]byte{0xC3}, session.KeySize)

	genuineA = []string{
		"ArtZZI0cD_7hoJsSUxQT6YfZpvMZyN27cqMIOP_zcxtXtmk_jF51jRQhlLNkKVfiCOyIHEqCg_njr1zbhHIMNlVwdxTN8HACVMd1tEL0D0UZls_A-TE0TWY",
		"ArtZZI0t7A3i8q2lFJHqMxWdACo1KTWZ-X0qtyQnsGC6-QBLbaGXWk8OyHWtaVrmn-hSnbz8OKhcHnCXt8FUIEGKAWt84XALKfk",
	}

	genuineB = []string{
		"AuW0X1ocD_7hH6d99Mm6vowi2dQB7ZD2uhTGHeFwk_HTugcYgXq-dOD9mA9Zyo1XNK6msT5KGLKHnUWgpEdCcNFGEZ60jXe4UPzK5P6c_6hVw-zug7ZzhgM",
		"AuW0X1ot7A3i7KNGXBkSwVEq2so2ekvOIr5ERqcHkTDjWTAwVugenikp-H_GPWb0WjquvgbMmwBQZPdvcx8A5AvifqZ1L-o2_tY",
	}

	foreignC = []string{
		"AkcDXOQcD_7hU8E5KqN_Djpr5HKtPZh7Rg98yOW5oyHPiRFJy8w52Eb5u3_OModTTj2DQsOswmXX_Fka8_V-RRFUXbQsgubkBufdigOuXmzgbJ9bBPjCczI",
		"AkcDXOQt7A3iF3C2o_9h7hcM-hPzkVQNjhZ0QekKEaYaqSFEXGQw2nQ5cQ6KiQZK0cLBxeNXp4PPcxpJhbh4fpNt6wGkFQA4UN0",
	}

	otherApp = []string{
		"ArtZZI0cD_7hM4gFeXcupPdXPtgrwUVw6DPuRIl4Ey7JAAhUISVOHFyMzgNNPKAZzy8yT80mZss1HSPAS06FnqpY5ZF1ZbPp6xP8wgzvzPnHhpQPDakdiHU",
		"ArtZZI0cD_7hwq13yRy-mgo0JomEVVU-PLySnpKo91JELlhx1jbvMns_2uPZPNNPAtUs7Nuyh2fbdEYnOQWbsaZy7TB09FTRc3o",
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
// claims (ID left zero) and the binding it was sealed with.
type genuine struct {
	mu     sync.Mutex
	claims map[string]sealed
}

type sealed struct {
	claims  session.Claims
	binding int // index in fuzzBindings
}

func (g *genuine) add(tok string, c session.Claims, binding int) {
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		panic("a sealed token is not base64url: " + err.Error())
	}
	c.ID = session.ID{}
	g.mu.Lock()
	g.claims[string(raw)] = sealed{c, binding}
	g.mu.Unlock()
}

func (g *genuine) lookup(raw []byte) (sealed, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s, ok := g.claims[string(raw)]
	return s, ok
}

// openSeeds are the genuine and foreign tokens with truncations, bit flips
// (of the version, key id, hint, nonce, ciphertext and tag) and other
// spellings: the seed corpus of FuzzOpen.
func openSeeds() []string {
	var seeds []string
	for _, tok := range slices.Concat(genuineA, genuineB, foreignC, otherApp) {
		seeds = append(seeds, tok, tok[:len(tok)-1], tok[:len(tok)/2], tok+"A", " "+tok, strings.ToUpper(tok))
		raw, _ := base64.RawURLEncoding.DecodeString(tok)
		for _, i := range []int{0, 1, 5, 9, 21, len(raw) / 2, len(raw) - 17, len(raw) - 1} {
			b := bytes.Clone(raw)
			b[i] ^= 0x01
			seeds = append(seeds, base64.RawURLEncoding.EncodeToString(b))
		}
		seeds = append(seeds, base64.StdEncoding.EncodeToString(raw)) // padded, standard alphabet
	}
	return append(seeds, "", "Bearer x", strings.Repeat("A", 52), strings.Repeat("_", 2049), "\x00\xff\xfe")
}

// FuzzOpen: no string makes Open or HintOf panic, and only what the ring
// sealed opens, with the binding it was sealed with only, to exactly the
// claims it was sealed with.
func FuzzOpen(f *testing.F) {
	ring := mustRing(f, keyA, keyB)
	known := &genuine{claims: map[string]sealed{}}
	for i, c := range fuzzClaims() {
		known.add(genuineA[i], c, i)
		known.add(genuineB[i], c, i)
	}
	// A token sealed now opens too. (It is not a seed: every fuzz worker
	// process seals its own, so a worker would not know another's.)
	live := fuzzClaims()[0]
	liveTok, liveID, err := ring.Seal(&live, fuzzCorp)
	if err != nil {
		f.Fatal(err)
	}
	if got, err := ring.Open(liveTok, fuzzNow, fuzzCorp); err != nil || got.ID != liveID || got.UserID != live.UserID {
		f.Fatalf("fresh token: %+v, %v", got, err)
	}

	for _, tok := range openSeeds() {
		f.Add(tok)
	}

	f.Fuzz(func(t *testing.T, tok string) {
		hint, herr := session.HintOf(tok)
		if herr != nil && !errors.Is(herr, session.ErrMalformed) {
			t.Fatalf("HintOf(%q) = %v: not ErrMalformed", tok, herr)
		}
		for bi, b := range fuzzBindings {
			c, err := ring.Open(tok, fuzzNow.Add(time.Hour), b)
			if err != nil {
				if !errors.Is(err, session.ErrMalformed) && !errors.Is(err, session.ErrUnknownKey) &&
					!errors.Is(err, session.ErrForged) && !errors.Is(err, session.ErrExpired) {
					t.Fatalf("Open(%q) = %v: not one of the documented errors", tok, err)
				}
				if errors.Is(err, session.ErrExpired) {
					// Only authentic tokens can be expired; none of ours is yet.
					t.Fatalf("Open(%q) = ErrExpired: the token is authentic but was never sealed to expire now", tok)
				}
				if !reflect.DeepEqual(c, session.Claims{}) {
					t.Fatalf("Open(%q) failed with %v but returned claims %+v", tok, err, c)
				}
				continue
			}
			raw, derr := base64.RawURLEncoding.DecodeString(tok)
			if derr != nil {
				t.Fatalf("Open accepted %q, which is not base64url: %v", tok, derr)
			}
			want, ok := known.lookup(raw)
			if !ok {
				t.Fatalf("Open accepted %q, which the ring never sealed, as %+v", tok, c)
			}
			if want.binding != bi {
				t.Fatalf("Open accepted %q with binding %d; it was sealed with binding %d", tok, bi, want.binding)
			}
			// What opens has its binding's hint, as HintOf reads it (unless
			// CR or LF, which decoding skips, shift the header).
			if !strings.ContainsAny(tok, "\r\n") && (herr != nil || hint != b.Hint) {
				t.Fatalf("HintOf(%q) = %#x, %v; it opened with hint %#x", tok, hint, herr, b.Hint)
			}
			var id session.ID
			copy(id[:], raw[9:21])
			if c.ID != id {
				t.Fatalf("Open(%q) gave ID %x, want the nonce %x", tok, c.ID, id)
			}
			c.ID = session.ID{}
			if !reflect.DeepEqual(c, want.claims) {
				t.Fatalf("Open(%q) = %+v, want the sealed %+v", tok, c, want.claims)
			}
		}
	})
}

var printFuzzTokens = flag.Bool("print-fuzz-tokens", false, "TestPrintFuzzTokens: print fresh genuineA, genuineB, foreignC and otherApp")

// TestPrintFuzzTokens makes the tokens above anew, for a change of format;
// openSeeds derives FuzzOpen's seeds from them.
func TestPrintFuzzTokens(t *testing.T) {
	if !*printFuzzTokens {
		t.Skip("needs -print-fuzz-tokens")
	}
	for _, set := range []struct {
		name    string
		key     []byte
		binding func(i int) session.Binding
	}{
		{"genuineA", keyA, func(i int) session.Binding { return fuzzBindings[i] }},
		{"genuineB", keyB, func(i int) session.Binding { return fuzzBindings[i] }},
		{"foreignC", keyC, func(i int) session.Binding { return fuzzBindings[i] }},
		{"otherApp", keyA, func(int) session.Binding { return fuzzOtherApp }},
	} {
		fmt.Printf("\t%s = []string{\n", set.name)
		for i, c := range fuzzClaims() {
			tok, _, err := mustRing(t, set.key).Seal(&c, set.binding(i))
			if err != nil {
				t.Fatal(err)
			}
			fmt.Printf("\t\t%q,\n", tok)
		}
		fmt.Printf("\t}\n")
	}
}

// FuzzSealRoundTrip: whatever a login puts into a session comes back out
// of its token, or Seal refuses it; it never issues a token that Open
// then refuses.
func FuzzSealRoundTrip(f *testing.F) {
	ring := mustRing(f, keyA, keyB)
	f.Add("zhangsan", "wwacme", "acme", "张三", "1,2", false, int64(1_800_000_000), uint32(86400), uint32(0x1c0ffee1), "corp app\x00wwacme/0123456789abcdef")
	f.Add("review:reviewer", "", "", "reviewer", "", true, int64(0), uint32(1), uint32(0x2dec0de2), "review")
	f.Add("", "", "", "", "", false, int64(1), uint32(60), uint32(0), "")
	f.Add("u\x00\xff", "c\r\n", "名", "\xe4\xb8", strings.Repeat("9", 300), true, int64(1<<40), uint32(1<<31), uint32(1<<32-1), strings.Repeat("\xff", 300))
	// Claims around the size where a token would outgrow what Open takes.
	f.Add("u\x00\xff", "c\r\n", "名", "\xe4\xb8", strings.Repeat("1234567,", 150), true, int64(1<<40), uint32(1<<31), uint32(1<<32-1), "\xff\xfecorp app\x00"+strings.Repeat("x", 200))
	f.Add("zhangsan", "wwacme", "acme", "张三", strings.Repeat("1234567,", 300), false, int64(1_800_000_000), uint32(86400), uint32(0x1c0ffee1), "corp app\x00ww0000000000acme/1111111111111111")
	f.Fuzz(func(t *testing.T, user, corpID, corp, name, depts string, review bool, iat int64, life uint32, hint uint32, data string) {
		if iat < 0 || iat > 1<<40 || life == 0 {
			return // times outside what a clock produces, or a token born expired
		}
		in := session.Claims{
			UserID: user, CorpID: corpID, Corp: corp, Name: name, Departments: depts, Review: review,
			IssuedAt: time.Unix(iat, 0), ExpiresAt: time.Unix(iat+int64(life), 0),
		}
		b := session.Binding{Hint: hint, Data: []byte(data)}
		tok, id, err := ring.Seal(&in, b)
		if err != nil {
			return // refusing is fine: the login then fails instead of issuing a dud
		}
		out, err := ring.Open(tok, in.IssuedAt, b)
		if err != nil && len(tok) > 2048 {
			t.Fatalf("Seal issued a %d-char token that Open refuses as too long (%v); see TestSealNeverIssuesUnopenableTokens", len(tok), err)
		}
		if err != nil {
			claimBytes := len(user) + len(corpID) + len(corp) + len(name) + len(depts)
			t.Fatalf("Seal issued a %d-char token (claims of %d bytes) that Open refuses: %v", len(tok), claimBytes, err)
		}
		in.ID = id
		if !reflect.DeepEqual(out, in) {
			t.Fatalf("round trip changed claims:\n got %+v\nwant %+v", out, in)
		}
		if _, err := ring.Open(tok, in.ExpiresAt, b); !errors.Is(err, session.ErrExpired) {
			t.Fatalf("token opened at its expiry: %v", err)
		}
		if got, err := session.HintOf(tok); err != nil || got != hint {
			t.Fatalf("HintOf = %#x, %v; sealed with hint %#x", got, err, hint)
		}
		// Any other binding refuses it: another app (data) or another hint.
		for _, other := range []session.Binding{
			{Hint: hint, Data: []byte(data + "x")},
			{Hint: hint, Data: []byte(data)[:len(data)/2]},
			{Hint: hint ^ 1, Data: []byte(data)},
		} {
			if bytes.Equal(other.Data, b.Data) && other.Hint == b.Hint {
				continue // the half of "" is ""
			}
			if _, err := ring.Open(tok, in.IssuedAt, other); !errors.Is(err, session.ErrForged) {
				t.Fatalf("token sealed for %q/%#x opened for %q/%#x: %v", data, hint, other.Data, other.Hint, err)
			}
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
	tok, _, err := ring.Seal(&in, appA)
	if err != nil {
		return // refused at issue: the login can answer an error
	}
	if _, err := ring.Open(tok, now, appA); err != nil {
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
	tok, id, _ := ring.Seal(&c, appA)
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for _, ch := range alphabet {
		alt := tok[:len(tok)-1] + string(ch)
		if alt == tok {
			continue
		}
		out, err := ring.Open(alt, now, appA)
		if err != nil {
			continue
		}
		if out.ID != id {
			t.Fatalf("alternate spelling %q opened with another ID", alt)
		}
	}
}
