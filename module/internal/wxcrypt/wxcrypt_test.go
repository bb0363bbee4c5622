package wxcrypt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

// WeCom's own sample (WXBizMsgCrypt Sample.py of the official SDKs linked
// from /document/path/90968): the settings "the enterprise set in the
// admin console" and a URL verification and an event it would receive.
const (
	sampleToken  = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
	sampleKey    = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
	sampleCorpID = "ww1436e0e65a779aee"

	sampleVerifySig   = "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb"
	sampleVerifyTS    = "1476416373"
	sampleVerifyNonce = "47744683"
	sampleEchoStr     = "fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="

	sampleEventSig   = "0c3914025cb4b4d68103f6bfc8db550f79dcf48e"
	sampleEventTS    = "1476422779"
	sampleEventNonce = "1597212914"
	sampleEncrypt    = "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNshw2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010wsHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjUQVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)

func sample(t testing.TB) *Crypter {
	t.Helper()
	c, err := New(sampleToken, sampleKey, sampleCorpID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// WeCom's sample URL verification and event verify and decrypt to what
// the sample prints.
func TestSampleVectors(t *testing.T) {
	c := sample(t)
	echo, err := c.Open(sampleVerifySig, sampleVerifyTS, sampleVerifyNonce, sampleEchoStr)
	if err != nil || string(echo) != "1288432023552776189" {
		t.Fatalf("URL verification: %q, %v", echo, err)
	}
	msg, err := c.Open(sampleEventSig, sampleEventTS, sampleEventNonce, sampleEncrypt)
	if err != nil || !strings.HasPrefix(string(msg), "<xml><ToUserName>ww1436e0e65a779aee</ToUserName>") ||
		!strings.Contains(string(msg), "<Content>你好</Content>") {
		t.Fatalf("event: %q, %v", msg, err)
	}
	// The same message sealed by us opens as WeCom's does.
	ct, sig, err := c.Seal(msg, sampleEventTS, sampleEventNonce)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := c.Open(sig, sampleEventTS, sampleEventNonce, ct); err != nil || !bytes.Equal(back, msg) {
		t.Fatalf("round trip: %q, %v", back, err)
	}
	if ct == sampleEncrypt {
		t.Error("Encrypt reused WeCom's random prefix")
	}
	if Signature(sampleToken, sampleVerifyTS, sampleVerifyNonce, sampleEchoStr) != sampleVerifySig {
		t.Error("Signature differs from the sample's")
	}
	if strings.Contains(c.String(), sampleToken) || strings.Contains(c.String(), sampleKey) {
		t.Error("String shows a secret")
	}
}

func TestParseKey(t *testing.T) {
	for _, k := range []string{"", sampleKey[:42], sampleKey + "A", "!" + sampleKey[1:], sampleKey[:42] + "="} {
		if _, err := ParseKey(k); err == nil {
			t.Errorf("ParseKey(%q) accepted", k)
		}
	}
	if _, err := New("", sampleKey, sampleCorpID); err == nil {
		t.Error("an empty token was accepted")
	}
}

// Every strictness check refuses, with its own error.
func TestDecryptRefuses(t *testing.T) {
	c := sample(t)
	other, _ := New(sampleToken, sampleKey, "wwsomeoneelse")
	wrongKey, _ := New(sampleToken, strings.Repeat("A", 42)+"E", sampleCorpID)

	good := func() []byte { b, _ := base64.StdEncoding.DecodeString(sampleEncrypt); return b }
	// A block that decrypts to bytes chosen here: CBC lets the test set
	// the padding of the last block by flipping the one before it.
	withLastPlain := func(last byte) string {
		b := good()
		b[len(b)-17] ^= last ^ 4 // the sample's padding byte is 4
		return base64.StdEncoding.EncodeToString(b)
	}
	cases := []struct {
		name string
		ct   string
		c    *Crypter
		want error
	}{
		{"not base64", "%%%", c, ErrEncoding},
		{"empty", "", c, ErrLength},
		{"partial block", base64.StdEncoding.EncodeToString(good()[:len(good())-1]), c, ErrLength},
		{"16-byte multiple, not 32", base64.StdEncoding.EncodeToString(good()[:len(good())-16]), c, ErrLength},
		{"padding 0", withLastPlain(0), c, ErrPadding},
		{"padding 33", withLastPlain(33), c, ErrPadding},
		{"padding bytes differ", withLastPlain(3), c, ErrPadding},
		{"other receiver", sampleEncrypt, other, ErrReceiver},
	}
	for _, tc := range cases {
		if _, err := tc.c.Decrypt(tc.ct); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := wrongKey.Decrypt(sampleEncrypt); err == nil {
		t.Error("another key decrypted the sample")
	}
	// A msg_len running past the plaintext.
	var prefix [16]byte
	ct := c.encryptWith(prefix, []byte("hello"))
	raw, _ := base64.StdEncoding.DecodeString(ct)
	// In CBC a flip in ciphertext block 0 garbles plaintext block 0 (the
	// random prefix) and flips the same bit of plaintext byte 16: the
	// high byte of msg_len.
	raw[0] ^= 0x7f
	if _, err := c.Decrypt(base64.StdEncoding.EncodeToString(raw)); !errors.Is(err, ErrFormat) {
		t.Errorf("msg_len past the end: %v, want ErrFormat", err)
	}
}

// A signature is checked over all four values.
func TestVerify(t *testing.T) {
	c := sample(t)
	if err := c.Verify(strings.ToUpper(sampleVerifySig), sampleVerifyTS, sampleVerifyNonce, sampleEchoStr); err != nil {
		t.Errorf("upper-case hex refused: %v", err)
	}
	for _, tc := range [][4]string{
		{sampleVerifySig, "1476416374", sampleVerifyNonce, sampleEchoStr},
		{sampleVerifySig, sampleVerifyTS, "47744684", sampleEchoStr},
		{sampleVerifySig, sampleVerifyTS, sampleVerifyNonce, sampleEncrypt},
		{sampleVerifySig[:39], sampleVerifyTS, sampleVerifyNonce, sampleEchoStr},
		{"", sampleVerifyTS, sampleVerifyNonce, sampleEchoStr},
	} {
		if _, err := c.Open(tc[0], tc[1], tc[2], tc[3]); !errors.Is(err, ErrSignature) {
			t.Errorf("Open%q: %v, want ErrSignature", tc, err)
		}
	}
}

func TestRoundTripSizes(t *testing.T) {
	c := sample(t)
	for n := range 100 {
		msg := bytes.Repeat([]byte{'x'}, n)
		ct, err := c.Encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(ct)
		if len(raw)%32 != 0 {
			t.Fatalf("%d bytes: ciphertext of %d bytes is not padded to 32", n, len(raw))
		}
		back, err := c.Decrypt(ct)
		if err != nil || !bytes.Equal(back, msg) {
			t.Fatalf("%d bytes: %q %v", n, back, err)
		}
	}
}
