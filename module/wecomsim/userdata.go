package wecomsim

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
)

// Kinds of [Simulator.UserData], after the wx.qy call whose answer it makes.
const (
	KindMobile     = "mobile"     // wx.qy.getMobile, /document/path/96977
	KindEmail      = "email"      // wx.qy.getEmail, /document/path/96978
	KindEnterprise = "enterprise" // wx.qy.getEnterpriseUserInfo, /document/path/96974
)

// watermark is what WeCom appends to every decrypted payload so that a server can tell that the
// data was made for its mini program, and recently.
type watermark struct {
	AppID     string `json:"appid"`
	Timestamp int64  `json:"timestamp"`
}

// UserData makes what wx.qy.getMobile (kind "mobile"), wx.qy.getEmail ("email") or
// wx.qy.getEnterpriseUserInfo ("enterprise") return inside WeCom for a member of corp (name or
// corp_id; "" = the first corp): encryptedData and iv, both standard base64. As in WeCom
// (/document/path/96977), the plaintext is JSON with a watermark {appid, timestamp} of the
// configured mini program appid and now, encrypted with AES-128-CBC under the key
// base64-decoded from the session_key of the user's latest jscode2session, a random IV and
// PKCS#7 padding. It fails with [ErrUnknownCorp], [ErrUnknownUser], [ErrNoLogin] (no code of
// the user has been exchanged yet) or [ErrUnknownKind].
func (s *Simulator) UserData(corpKey, userID, kind string) (encryptedData, iv string, err error) {
	if kind != KindMobile && kind != KindEmail && kind != KindEnterprise {
		return "", "", fmt.Errorf("%w %q: want %s, %s or %s", ErrUnknownKind, kind, KindMobile, KindEmail, KindEnterprise)
	}
	s.mu.Lock()
	c := s.findCorpLocked(corpKey)
	if c == nil {
		s.mu.Unlock()
		return "", "", fmt.Errorf("%w %q", ErrUnknownCorp, corpKey)
	}
	u, ok := c.users[userID]
	if !ok {
		s.mu.Unlock()
		return "", "", fmt.Errorf("%w %q in corp %q", ErrUnknownUser, userID, c.name)
	}
	sessionKey, corpID, appID := c.sessionKeys[userID], c.id, s.miniAppID
	s.mu.Unlock()
	if sessionKey == "" {
		return "", "", fmt.Errorf("%w: user %q of corp %q has exchanged no code at jscode2session", ErrNoLogin, userID, c.name)
	}

	wm := watermark{AppID: appID, Timestamp: time.Now().Unix()}
	var v any
	switch kind {
	case KindMobile:
		v = struct {
			Mobile    string    `json:"mobile"`
			Watermark watermark `json:"watermark"`
		}{u.Mobile, wm}
	case KindEmail:
		v = struct {
			Email     string    `json:"email"`
			Watermark watermark `json:"watermark"`
		}{u.Email, wm}
	default:
		v = struct {
			CorpID    string    `json:"corpid"`
			UserID    string    `json:"userid"`
			Watermark watermark `json:"watermark"`
		}{corpID, u.UserID, wm}
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return "", "", err
	}
	key, err := base64.StdEncoding.DecodeString(sessionKey)
	if err != nil {
		return "", "", err // never: jscode2session issues the keys
	}
	ct, ivBytes, err := encryptCBC(key, plain)
	if err != nil {
		return "", "", err
	}
	return base64.StdEncoding.EncodeToString(ct), base64.StdEncoding.EncodeToString(ivBytes), nil
}

// encryptCBC encrypts plain with AES-CBC under key and a fresh random IV, PKCS#7-padded to the
// 16-byte block as WeCom pads mini program data (unlike its callbacks, which pad to 32).
func encryptCBC(key, plain []byte) (ct, iv []byte, err error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, nil, err
	}
	pad := aes.BlockSize - len(plain)%aes.BlockSize
	padded := append(append([]byte(nil), plain...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	iv = randomBytes(aes.BlockSize)
	ct = make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	return ct, iv, nil
}
