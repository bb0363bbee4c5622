// Package wxcrypt is WeCom's message encryption for callbacks (加解密方案说明,
// https://developer.work.weixin.qq.com/document/path/90968 for self-built
// apps, /document/path/91144 for third-party ones), written from that
// documentation with the standard library alone:
//
//   - AESKey = Base64_Decode(EncodingAESKey + "="), 32 bytes, from the 43
//     characters the admin console shows;
//   - AES-256-CBC with IV = AESKey[:16], PKCS#7 padding to a multiple of 32
//     bytes (not AES's 16: WeCom pads to the key size);
//   - plaintext = random(16) ‖ msg_len (4 bytes, big-endian) ‖ msg ‖ receiveid;
//   - msg_signature = hex(SHA-1(sort(token, timestamp, nonce, msg_encrypt)
//     concatenated)).
//
// Decryption is strict: a wrong signature, bad base64, a length that is
// not a whole number of blocks, padding other than PKCS#7 to 32, a msg_len
// that runs past the plaintext, or a receiveid other than the expected one
// is an error, never a best-effort message. No error says more than which
// check failed: none carries the key, the token or any plaintext.
package wxcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// EncodingAESKeyLen is the length of an EncodingAESKey as WeCom's console
// shows it.
const EncodingAESKeyLen = 43

// blockSize is WeCom's padding block: PKCS#7 to 32 bytes.
const blockSize = 32

// maxMessage bounds what Encrypt takes and Decrypt returns; WeCom's
// callbacks are a few KiB. It keeps the length arithmetic far from
// overflow on every platform.
const maxMessage = 1 << 24

// Errors of Decrypt and Verify. They name the check that failed and
// nothing of the input.
var (
	ErrSignature = errors.New("wxcrypt: msg_signature does not match")
	ErrEncoding  = errors.New("wxcrypt: ciphertext is not base64")
	ErrLength    = errors.New("wxcrypt: ciphertext is not a whole number of AES blocks")
	ErrPadding   = errors.New("wxcrypt: bad PKCS#7 padding")
	ErrFormat    = errors.New("wxcrypt: decrypted message length is inconsistent")
	ErrReceiver  = errors.New("wxcrypt: receiveid does not match")
)

// Crypter encrypts and decrypts one callback configuration's messages: a
// token, an EncodingAESKey and the receiveid (the corp id, for a
// self-built app). Its String never shows the token or the key.
type Crypter struct {
	token      string
	key        []byte
	block      cipher.Block
	receiverID string
}

// ParseKey decodes an EncodingAESKey: exactly 43 characters of base64
// that decode, with the "=" WeCom leaves off, to 32 bytes.
func ParseKey(encodingAESKey string) ([]byte, error) {
	if len(encodingAESKey) != EncodingAESKeyLen {
		return nil, fmt.Errorf("an EncodingAESKey has %d characters, not %d", EncodingAESKeyLen, len(encodingAESKey))
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, errors.New("the EncodingAESKey is not base64 of 32 bytes (copy it from WeCom's console as shown)")
	}
	return key, nil
}

// New returns a Crypter for token, encodingAESKey and receiverID.
func New(token, encodingAESKey, receiverID string) (*Crypter, error) {
	if token == "" {
		return nil, errors.New("the callback token is empty")
	}
	key, err := ParseKey(encodingAESKey)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err // cannot happen with 32 bytes
	}
	return &Crypter{token: token, key: key, block: block, receiverID: receiverID}, nil
}

// String keeps the token and the key out of every printout.
func (c *Crypter) String() string { return "wxcrypt.Crypter{receiveid:" + c.receiverID + "}" }

// Signature is msg_signature for the four values: SHA-1 over token,
// timestamp, nonce and ciphertext, sorted as strings and concatenated.
func Signature(token, timestamp, nonce, ciphertext string) string {
	parts := []string{token, timestamp, nonce, ciphertext}
	sort.Strings(parts)
	sum := sha1.Sum([]byte(strings.Join(parts, "")))
	return hex.EncodeToString(sum[:])
}

// Verify checks msg_signature in constant time (an attacker timing the
// comparison learns nothing of the right signature). WeCom sends it in
// lower-case hex; upper case is accepted as the same value.
func (c *Crypter) Verify(signature, timestamp, nonce, ciphertext string) error {
	want := Signature(c.token, timestamp, nonce, ciphertext)
	got := strings.ToLower(signature)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return ErrSignature
	}
	return nil
}

// Open verifies the signature and decrypts: what a callback receiver does
// with the echostr of a URL verification or the <Encrypt> of an event.
func (c *Crypter) Open(signature, timestamp, nonce, ciphertext string) ([]byte, error) {
	if err := c.Verify(signature, timestamp, nonce, ciphertext); err != nil {
		return nil, err
	}
	return c.Decrypt(ciphertext)
}

// Decrypt decrypts a base64 ciphertext and returns the message, checking
// padding, length and receiveid. It does not check a signature: use Open
// for anything received.
func (c *Crypter) Decrypt(ciphertext string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(ciphertext)
	if err != nil {
		return nil, ErrEncoding
	}
	if len(raw) == 0 || len(raw)%aes.BlockSize != 0 || len(raw) > maxMessage+4*blockSize {
		return nil, ErrLength
	}
	plain := make([]byte, len(raw))
	cipher.NewCBCDecrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(plain, raw)

	// PKCS#7 to 32-byte blocks: the last byte n is 1..32 and the last n
	// bytes all equal n. A ciphertext of whole AES blocks that is not a
	// whole number of 32-byte blocks cannot be WeCom's.
	if len(plain)%blockSize != 0 {
		return nil, ErrLength
	}
	n := int(plain[len(plain)-1])
	if n < 1 || n > blockSize {
		return nil, ErrPadding
	}
	pad := plain[len(plain)-n:]
	if subtle.ConstantTimeCompare(pad, bytes.Repeat([]byte{byte(n)}, n)) != 1 {
		return nil, ErrPadding
	}
	plain = plain[:len(plain)-n]

	// random(16) ‖ msg_len(4) ‖ msg ‖ receiveid
	if len(plain) < 20 {
		return nil, ErrFormat
	}
	msgLen := binary.BigEndian.Uint32(plain[16:20])
	rest := plain[20:]
	if uint64(msgLen) > uint64(len(rest)) {
		return nil, ErrFormat
	}
	msg, receiver := rest[:msgLen], rest[msgLen:]
	if subtle.ConstantTimeCompare(receiver, []byte(c.receiverID)) != 1 {
		return nil, ErrReceiver
	}
	return msg, nil
}

// Encrypt encrypts msg as WeCom does, with a fresh random prefix, and
// returns the base64 ciphertext.
func (c *Crypter) Encrypt(msg []byte) (string, error) {
	if len(msg) > maxMessage {
		return "", fmt.Errorf("wxcrypt: message of %d bytes is too long", len(msg))
	}
	var prefix [16]byte
	if _, err := rand.Read(prefix[:]); err != nil {
		return "", err
	}
	return c.encryptWith(prefix, msg), nil
}

func (c *Crypter) encryptWith(prefix [16]byte, msg []byte) string {
	plain := make([]byte, 0, 20+len(msg)+len(c.receiverID)+blockSize)
	plain = append(plain, prefix[:]...)
	plain = binary.BigEndian.AppendUint32(plain, uint32(len(msg)))
	plain = append(plain, msg...)
	plain = append(plain, c.receiverID...)
	n := blockSize - len(plain)%blockSize
	plain = append(plain, bytes.Repeat([]byte{byte(n)}, n)...)
	out := make([]byte, len(plain))
	cipher.NewCBCEncrypter(c.block, c.key[:aes.BlockSize]).CryptBlocks(out, plain)
	return base64.StdEncoding.EncodeToString(out)
}

// Seal encrypts msg and signs it with timestamp and nonce: what WeCom
// sends (the simulator and tests use it).
func (c *Crypter) Seal(msg []byte, timestamp, nonce string) (ciphertext, signature string, err error) {
	ciphertext, err = c.Encrypt(msg)
	if err != nil {
		return "", "", err
	}
	return ciphertext, Signature(c.token, timestamp, nonce, ciphertext), nil
}
