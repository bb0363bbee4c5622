package wecomauth

// POST {endpoints}/decrypt (SPEC §4): what wx.qy.getMobile, getEmail and
// getEnterpriseUserInfo return is encrypted with the WeCom session_key of
// the user's latest login, which only the gateway holds (sealed in the
// session token). WeCom docs /document/path/96977, 96978, 96974.

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"time"

	"github.com/wecomgate/wecomgate/module/internal/session"
)

// watermarkMaxAge bounds how old (or early) the data's watermark may be:
// the client decrypts right after wx.qy.getMobile, and older data replayed
// is refused.
const watermarkMaxAge = 10 * time.Minute

// maxDecryptBody bounds the body: getEnterpriseUserInfo's data is the
// largest, well under this.
const maxDecryptBody = 16 << 10

// badData is the one answer for every way the data fails: a padding error
// must look like a wrong appid, or the endpoint is a padding oracle.
func badData() *denial {
	return invalidRequest("the data does not decrypt with this session (call wx.qy.login, then get it again)")
}

func (h *Handler) serveDecrypt(w http.ResponseWriter, r *http.Request) error {
	tok, present, d := h.credential(r)
	if d == nil && !present {
		d = unauthenticated("sign in first")
	}
	if d != nil {
		return h.deny(w, r, d)
	}
	id, d := h.check(r.Context(), tok)
	if d != nil {
		return h.deny(w, r, d)
	}
	if id.Review {
		return h.deny(w, r, reviewForbidden())
	}
	var body struct {
		EncryptedData string `json:"encrypted_data"`
		IV            string `json:"iv"`
	}
	if d := decodeBodyLimit(w, r, &body, maxDecryptBody); d != nil {
		return h.deny(w, r, d)
	}
	if len(id.sessionKey) != session.SessionKeySize {
		// A token from before decrypt was configured: only a new login
		// brings a session_key.
		return h.deny(w, r, invalidRequest("this session has no WeCom session key: sign in again with wx.qy.login"))
	}
	out, ok := openUserData(id.sessionKey, body.EncryptedData, body.IV, h.Decrypt, h.now())
	if !ok {
		return h.deny(w, r, badData())
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, err := w.Write(append(out, '\n'))
	return err
}

// openUserData decrypts data (AES-128-CBC, PKCS#7, key the session_key),
// checks its watermark and returns the JSON without it. Every failure is
// the same false, after the same steps as far as they can go.
func openUserData(key []byte, data, iv, appid string, now time.Time) ([]byte, bool) {
	ct, err1 := base64.StdEncoding.DecodeString(data)
	ivb, err2 := base64.StdEncoding.DecodeString(iv)
	if err1 != nil || err2 != nil || len(ivb) != aes.BlockSize || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, false
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, false
	}
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, ivb).CryptBlocks(plain, ct)
	plain, ok := unpad(plain)
	var fields map[string]json.RawMessage
	if json.Unmarshal(plain, &fields) != nil {
		ok = false
	}
	var wm struct {
		AppID     string `json:"appid"`
		Timestamp int64  `json:"timestamp"`
	}
	if json.Unmarshal(fields["watermark"], &wm) != nil {
		ok = false
	}
	if subtle.ConstantTimeCompare([]byte(wm.AppID), []byte(appid)) != 1 {
		ok = false
	}
	if age := now.Sub(time.Unix(wm.Timestamp, 0)); age > watermarkMaxAge || age < -watermarkMaxAge {
		ok = false
	}
	if !ok {
		return nil, false
	}
	delete(fields, "watermark")
	out, err := json.Marshal(fields)
	return out, err == nil
}

// unpad removes PKCS#7 padding, checking every padding byte in constant
// time; on bad padding it returns the data unchanged and false.
func unpad(b []byte) ([]byte, bool) {
	n := int(b[len(b)-1])
	good := subtle.ConstantTimeLessOrEq(1, n) & subtle.ConstantTimeLessOrEq(n, aes.BlockSize)
	for i := 1; i <= aes.BlockSize; i++ {
		inPad := subtle.ConstantTimeLessOrEq(i, n)
		match := subtle.ConstantTimeByteEq(b[len(b)-i], byte(n))
		good &= subtle.ConstantTimeSelect(inPad, match, 1)
	}
	if good != 1 {
		return b, false
	}
	return bytes.Clone(b[:len(b)-n]), true
}

// decodeSessionKey reads WeCom's base64 session_key; anything but 16 bytes
// is not one (and is not carried).
func decodeSessionKey(s string) []byte {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(k) != session.SessionKeySize {
		return nil
	}
	return k
}
