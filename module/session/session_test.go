package session_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/session"
)

var (
	keyA = bytes.Repeat([]byte{0xA1}, session.KeySize)
	keyB = bytes.Repeat([]byte{0xB2}, session.KeySize)
	now  = time.Unix(1_800_000_000, 0)
)

func sample() session.Claims {
	return session.Claims{
		UserID: "zhangsan", CorpID: "ww0000000000acme", Corp: "acme",
		Name: "张三", Departments: "1,20",
		IssuedAt: now, ExpiresAt: now.Add(24 * time.Hour),
	}
}

func mustRing(t testing.TB, keys ...[]byte) *session.Ring {
	t.Helper()
	r, err := session.NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSealOpenRoundTrip(t *testing.T) {
	r := mustRing(t, keyA)
	for _, review := range []bool{false, true} {
		in := sample()
		in.Review = review
		tok, id, err := r.Seal(&in)
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Open(tok, now.Add(time.Hour))
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		in.ID = id
		if out != in {
			t.Fatalf("round trip changed claims:\n got %+v\nwant %+v", out, in)
		}
	}
}

func TestTokensAreShortAndUnique(t *testing.T) {
	r := mustRing(t, keyA)
	c := sample()
	a, idA, _ := r.Seal(&c)
	b, idB, _ := r.Seal(&c)
	if a == b || idA == idB {
		t.Fatal("two seals of the same claims gave the same token or id")
	}
	if len(a) > 160 {
		t.Fatalf("token is %d chars; it rides in every request and should stay short", len(a))
	}
}

func TestOpenRefuses(t *testing.T) {
	r := mustRing(t, keyA)
	c := sample()
	tok, _, _ := r.Seal(&c)
	raw, _ := base64.RawURLEncoding.DecodeString(tok)

	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 1
		return base64.RawURLEncoding.EncodeToString(b)
	}
	cases := map[string]struct {
		token string
		at    time.Time
		want  error
	}{
		"empty":                      {"", now, session.ErrMalformed},
		"not base64":                 {"!!!!" + tok[4:], now, session.ErrMalformed},
		"truncated":                  {tok[:len(tok)-3], now, session.ErrForged},
		"too short":                  {tok[:20], now, session.ErrMalformed},
		"huge":                       {tok + string(bytes.Repeat([]byte("A"), 4096)), now, session.ErrMalformed},
		"version":                    {flip(0), now, session.ErrMalformed},
		"key id":                     {flip(2), now, session.ErrUnknownKey},
		"nonce":                      {flip(8), now, session.ErrForged},
		"ciphertext":                 {flip(len(raw) - 20), now, session.ErrForged},
		"tag":                        {flip(len(raw) - 1), now, session.ErrForged},
		"expired":                    {tok, now.Add(24 * time.Hour), session.ErrExpired},
		"long expired":               {tok, now.Add(48 * time.Hour), session.ErrExpired},
		"sealed by other":            {sealWith(t, keyB), now, session.ErrUnknownKey},
		"short after CR/LF skipping": {strings.Repeat("\r", 40) + "AQAA", now, session.ErrMalformed},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := r.Open(tc.token, tc.at)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
		})
	}
}

func sealWith(t *testing.T, key []byte) string {
	c := sample()
	tok, _, err := mustRing(t, key).Seal(&c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Rotation: a ring with a new first key still opens tokens of the old one,
// and new tokens are sealed with the new key only.
func TestKeyRotation(t *testing.T) {
	old := sealWith(t, keyA)
	rotated := mustRing(t, keyB, keyA)
	if _, err := rotated.Open(old, now); err != nil {
		t.Fatalf("rotated ring refused a token of the retired key: %v", err)
	}
	fresh := sealWith(t, keyB)
	if _, err := mustRing(t, keyA).Open(fresh, now); !errors.Is(err, session.ErrUnknownKey) {
		t.Fatalf("old-only ring opened a token of the new key: %v", err)
	}
}

func TestNewRingValidates(t *testing.T) {
	if _, err := session.NewRing(); err == nil {
		t.Error("empty ring accepted")
	}
	if _, err := session.NewRing(keyA[:16]); err == nil {
		t.Error("16-byte key accepted")
	}
	if _, err := session.NewRing(keyA, keyA); err == nil {
		t.Error("repeated key accepted")
	}
	if k1, k2 := session.NewKey(), session.NewKey(); bytes.Equal(k1, k2) || len(k1) != session.KeySize {
		t.Error("NewKey is not fresh random 32 bytes")
	}
}

func BenchmarkOpen(b *testing.B) {
	r := mustRing(b, keyA)
	c := sample()
	tok, _, _ := r.Seal(&c)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Open(tok, now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	r := mustRing(b, keyA)
	c := sample()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Seal(&c); err != nil {
			b.Fatal(err)
		}
	}
}
