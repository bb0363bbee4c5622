package wxcrypt

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// FuzzDecrypt: no input panics Open or Decrypt, and no change to a message
// WeCom signed is accepted, whether to its ciphertext or its signature.
func FuzzDecrypt(f *testing.F) {
	f.Add(sampleEncrypt, sampleEventSig, uint16(0), byte(1))
	f.Add(sampleEchoStr, sampleVerifySig, uint16(5), byte(0x80))
	f.Add("", "", uint16(0), byte(0))
	f.Add("AAAA", "x", uint16(1), byte(0xff))
	c := sample(f)
	f.Fuzz(func(t *testing.T, ct, sig string, at uint16, flip byte) {
		// Arbitrary input: errors are fine, panics are not.
		_, _ = c.Decrypt(ct)
		_, _ = c.Open(sig, sampleEventTS, sampleEventNonce, ct)

		// A sealed message with one byte of its ciphertext changed (after
		// base64, so the change is real) is refused by Open, as its
		// signature no longer matches; and a changed signature is refused.
		msg := []byte(ct)
		good, gsig, err := c.Seal(msg, sampleEventTS, sampleEventNonce)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := base64.StdEncoding.DecodeString(good)
		if flip != 0 {
			raw[int(at)%len(raw)] ^= flip
			bad := base64.StdEncoding.EncodeToString(raw)
			if got, err := c.Open(gsig, sampleEventTS, sampleEventNonce, bad); err == nil {
				t.Fatalf("tampered ciphertext accepted: %q", got)
			}
			// Re-signed by someone with the token but not the key, the
			// change still must not yield the original message.
			if got, err := c.Decrypt(bad); err == nil && bytes.Equal(got, msg) {
				t.Fatalf("tampered ciphertext decrypted to the original")
			}
			s := []byte(gsig)
			s[int(at)%len(s)] ^= flip
			if bytes.EqualFold(s, []byte(gsig)) {
				return // a case flip of a hex letter is the same signature
			}
			if _, err := c.Open(string(s), sampleEventTS, sampleEventNonce, good); err == nil {
				t.Fatalf("tampered signature %q accepted", s)
			}
		}
		if got, err := c.Open(gsig, sampleEventTS, sampleEventNonce, good); err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("untampered message refused: %v", err)
		}
	})
}
