package session_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/session"
)

var (
	keyA = bytes.Repeat([]byte{0xA1}, session.KeySize)
	keyB = bytes.Repeat([]byte{0xB2}, session.KeySize)
	now  = time.Unix(1_800_000_000, 0)

	// appA and appB are two apps of one corp: the same public hint (the corp
	// id) and different data (the app). review has its own hint.
	appA   = session.Binding{Hint: 0x5eed0001, Data: []byte("corp app\x00wwacme/aaaa")}
	appB   = session.Binding{Hint: 0x5eed0001, Data: []byte("corp app\x00wwacme/bbbb")}
	review = session.Binding{Hint: 0x5eed0002, Data: []byte("review")}
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
		tok, id, err := r.Seal(&in, appA)
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Open(tok, now.Add(time.Hour), appA)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		in.ID = id
		if !reflect.DeepEqual(out, in) {
			t.Fatalf("round trip changed claims:\n got %+v\nwant %+v", out, in)
		}
	}
}

func TestTokensAreShortAndUnique(t *testing.T) {
	r := mustRing(t, keyA)
	c := sample()
	a, idA, _ := r.Seal(&c, appA)
	b, idB, _ := r.Seal(&c, appA)
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
	tok, _, _ := r.Seal(&c, appA)
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
		"empty":           {"", now, session.ErrMalformed},
		"not base64":      {"!!!!" + tok[4:], now, session.ErrMalformed},
		"truncated":       {tok[:len(tok)-3], now, session.ErrForged},
		"too short":       {tok[:20], now, session.ErrMalformed},
		"huge":            {tok + string(bytes.Repeat([]byte("A"), 4096)), now, session.ErrMalformed},
		"version":         {flip(0), now, session.ErrMalformed},
		"old version":     {oldVersion(raw), now, session.ErrMalformed},
		"key id":          {flip(2), now, session.ErrUnknownKey},
		"hint":            {flip(7), now, session.ErrForged},
		"nonce":           {flip(12), now, session.ErrForged},
		"ciphertext":      {flip(len(raw) - 20), now, session.ErrForged},
		"tag":             {flip(len(raw) - 1), now, session.ErrForged},
		"expired":         {tok, now.Add(24 * time.Hour), session.ErrExpired},
		"long expired":    {tok, now.Add(48 * time.Hour), session.ErrExpired},
		"sealed by other": {sealWith(t, keyB), now, session.ErrUnknownKey},
		"other app":       {sealFor(t, keyA, appB), now, session.ErrForged},
		"review token":    {sealFor(t, keyA, review), now, session.ErrForged},
		// Long enough for the length check; only the decoded length is short.
		"short after CR/LF skipping": {strings.Repeat("\r", 60) + "AgAA", now, session.ErrMalformed},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := r.Open(tc.token, tc.at, appA)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open = %v, want %v", err, tc.want)
			}
		})
	}
}

// oldVersion re-labels a token as version 1, the format before bindings.
func oldVersion(raw []byte) string {
	b := bytes.Clone(raw)
	b[0] = 1
	return base64.RawURLEncoding.EncodeToString(b)
}

func sealWith(t *testing.T, key []byte) string { return sealFor(t, key, appA) }

func sealFor(t *testing.T, key []byte, b session.Binding) string {
	t.Helper()
	c := sample()
	tok, _, err := mustRing(t, key).Seal(&c, b)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A token opens only with the binding it was sealed with: the same key,
// hint and claims under another app's data are refused as forged.
func TestBindingMustMatch(t *testing.T) {
	r := mustRing(t, keyA)
	all := map[string]session.Binding{
		"appA": appA, "appB": appB, "review": review,
		"appA other hint": {Hint: appA.Hint + 1, Data: appA.Data},
		"no data":         {Hint: appA.Hint},
	}
	for sealName, sealB := range all {
		c := sample()
		tok, id, err := r.Seal(&c, sealB)
		if err != nil {
			t.Fatal(err)
		}
		if h, err := session.HintOf(tok); err != nil || h != sealB.Hint {
			t.Errorf("HintOf(token sealed for %s) = %#x, %v; want %#x", sealName, h, err, sealB.Hint)
		}
		for openName, openB := range all {
			out, err := r.Open(tok, now, openB)
			switch {
			case openName == sealName && (err != nil || out.ID != id):
				t.Errorf("sealed and opened for %s: %v", sealName, err)
			case openName != sealName && !errors.Is(err, session.ErrForged):
				t.Errorf("sealed for %s, opened for %s: %v (claims %+v); want ErrForged", sealName, openName, err, out)
			}
		}
	}
}

// HintOf reads only the clear header and refuses what is not one.
func TestHintOf(t *testing.T) {
	tok := sealFor(t, keyA, appA)
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	for name, bad := range map[string]string{
		"empty": "", "short": tok[:11], "not base64": "!!!!" + tok[4:], "old version": oldVersion(raw),
		"CR/LF inside": tok[:5] + "\r\n" + tok[5:],
	} {
		if h, err := session.HintOf(bad); !errors.Is(err, session.ErrMalformed) {
			t.Errorf("%s: HintOf = %#x, %v; want ErrMalformed", name, h, err)
		}
	}
	// A hint that does not match the token's is refused before decrypting,
	// and one that matches alone opens nothing.
	if _, err := mustRing(t, keyA).Open(tok, now, session.Binding{Hint: appA.Hint}); !errors.Is(err, session.ErrForged) {
		t.Errorf("hint without the data opened: %v", err)
	}
}

// Rotation: a ring with a new first key still opens tokens of the old one,
// with their binding only, and new tokens are sealed with the new key only.
func TestKeyRotation(t *testing.T) {
	old := sealWith(t, keyA)
	rotated := mustRing(t, keyB, keyA)
	if _, err := rotated.Open(old, now, appA); err != nil {
		t.Fatalf("rotated ring refused a token of the retired key: %v", err)
	}
	if _, err := rotated.Open(old, now, appB); !errors.Is(err, session.ErrForged) {
		t.Fatalf("rotated ring opened a token of the retired key for another app: %v", err)
	}
	fresh := sealWith(t, keyB)
	if _, err := mustRing(t, keyA).Open(fresh, now, appA); !errors.Is(err, session.ErrUnknownKey) {
		t.Fatalf("old-only ring opened a token of the new key: %v", err)
	}
	if _, err := rotated.Open(fresh, now, appA); err != nil {
		t.Fatalf("rotated ring refused its own token: %v", err)
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
	tok, _, _ := r.Seal(&c, appA)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Open(tok, now, appA); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSeal(b *testing.B) {
	r := mustRing(b, keyA)
	c := sample()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := r.Seal(&c, appA); err != nil {
			b.Fatal(err)
		}
	}
}

// A token carries when the user was checked, if earlier than its issue
// (a replayed login code), and whether it carries facts at all; tokens
// without either open as before: checked at issue, facts carried.
func TestCheckTimeAndUncheckedRoundTrip(t *testing.T) {
	r := mustRing(t, keyA)
	for _, tc := range []struct {
		name    string
		checked time.Time
		want    time.Time
		unchk   bool
	}{
		{"at issue", time.Time{}, now, false},
		{"earlier", now.Add(-4 * time.Minute), now.Add(-4 * time.Minute), false},
		{"later is taken as at issue", now.Add(time.Minute), now, false},
		{"unchecked", time.Time{}, now, true},
	} {
		in := sample()
		in.CheckedAt, in.Unchecked = tc.checked, tc.unchk
		tok, _, err := r.Seal(&in, appA)
		if err != nil {
			t.Fatal(err)
		}
		out, err := r.Open(tok, now, appA)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !out.Checked().Equal(tc.want) || out.Unchecked != tc.unchk {
			t.Errorf("%s: checked %v unchecked %v; want %v %v", tc.name, out.Checked(), out.Unchecked, tc.want, tc.unchk)
		}
	}
}

// Claims too large for a token are refused with ErrTooLarge, which the
// gateway answers by leaving the facts out.
func TestSealTooLarge(t *testing.T) {
	in := sample()
	in.Name = strings.Repeat("名", 2000)
	if _, _, err := mustRing(t, keyA).Seal(&in, appA); !errors.Is(err, session.ErrTooLarge) {
		t.Errorf("6,000-byte name: %v, want ErrTooLarge", err)
	}
}

// WeCom's session_key rides sealed in the token when given, and tokens
// without one open as before.
func TestSessionKeyRoundTrip(t *testing.T) {
	r := mustRing(t, keyA)
	for _, key := range [][]byte{nil, bytes.Repeat([]byte{0x5a}, session.SessionKeySize)} {
		in := sample()
		in.SessionKey = key
		in.CheckedAt = now.Add(-time.Minute)
		tok, _, err := r.Seal(&in, appA)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(tok, base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{0x5a}, 12))) {
			t.Fatal("the session key is readable in the token")
		}
		out, err := r.Open(tok, now, appA)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out.SessionKey, key) || !out.Checked().Equal(in.CheckedAt) {
			t.Errorf("session key %x, checked %v; want %x, %v", out.SessionKey, out.Checked(), key, in.CheckedAt)
		}
	}
}
