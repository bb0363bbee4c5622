package wecomauth

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// sealUserData encrypts plain as wx.qy.getMobile's data: AES-128-CBC with
// PKCS#7, key and IV in standard base64.
func sealUserData(t *testing.T, key, iv, plain []byte) (string, string) {
	t.Helper()
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	n := aes.BlockSize - len(plain)%aes.BlockSize
	padded := append(bytes.Clone(plain), bytes.Repeat([]byte{byte(n)}, n)...)
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	return base64.StdEncoding.EncodeToString(ct), base64.StdEncoding.EncodeToString(iv)
}

// Every way the data can fail gives the same answer; good data comes back
// without its watermark.
func TestOpenUserData(t *testing.T) {
	key, iv := bytes.Repeat([]byte{1}, 16), bytes.Repeat([]byte{2}, 16)
	now := time.Unix(1_800_000_000, 0)
	mobile := func(appid string, ts int64) []byte {
		return []byte(fmt.Sprintf(`{"mobile":"13800000000","watermark":{"appid":%q,"timestamp":%d}}`, appid, ts))
	}
	data, ivs := sealUserData(t, key, iv, mobile("wxapp", now.Unix()-5))
	out, ok := openUserData(key, data, ivs, "wxapp", now)
	if !ok {
		t.Fatal("good data did not open")
	}
	var got map[string]any
	if json.Unmarshal(out, &got) != nil || got["mobile"] != "13800000000" || got["watermark"] != nil {
		t.Errorf("opened %s", out)
	}

	bad := map[string][2]string{}
	d, i := sealUserData(t, key, iv, mobile("wxother", now.Unix()))
	bad["wrong appid"] = [2]string{d, i}
	d, i = sealUserData(t, key, iv, mobile("wxapp", now.Add(-11*time.Minute).Unix()))
	bad["stale watermark"] = [2]string{d, i}
	d, i = sealUserData(t, key, iv, mobile("wxapp", now.Add(11*time.Minute).Unix()))
	bad["future watermark"] = [2]string{d, i}
	d, i = sealUserData(t, key, iv, []byte(`not json`))
	bad["not JSON"] = [2]string{d, i}
	d, i = sealUserData(t, key, iv, []byte(`{"mobile":"1"}`))
	bad["no watermark"] = [2]string{d, i}
	d, i = sealUserData(t, bytes.Repeat([]byte{9}, 16), iv, mobile("wxapp", now.Unix()))
	bad["another session's key"] = [2]string{d, i}
	raw, _ := base64.StdEncoding.DecodeString(data)
	raw[len(raw)-1] ^= 1 // breaks the padding
	bad["bad padding"] = [2]string{base64.StdEncoding.EncodeToString(raw), ivs}
	bad["not base64"] = [2]string{"%%%", ivs}
	bad["short IV"] = [2]string{data, base64.StdEncoding.EncodeToString(iv[:8])}
	bad["partial block"] = [2]string{base64.StdEncoding.EncodeToString(raw[:20]), ivs}
	bad["empty"] = [2]string{"", ivs}
	for name, in := range bad {
		if out, ok := openUserData(key, in[0], in[1], "wxapp", now); ok || out != nil {
			t.Errorf("%s: opened (%s)", name, out)
		}
	}
}

func TestUnpad(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want int // length kept, -1 for refused
	}{
		{append(bytes.Repeat([]byte{'a'}, 15), 1), 15},
		{bytes.Repeat([]byte{16}, 16), 0},
		{append(bytes.Repeat([]byte{'a'}, 14), 2, 2), 14},
		{append(bytes.Repeat([]byte{'a'}, 14), 1, 2), -1},
		{append(bytes.Repeat([]byte{'a'}, 15), 0), -1},
		{append(bytes.Repeat([]byte{'a'}, 15), 17), -1},
	} {
		out, ok := unpad(tc.in)
		if (tc.want < 0 && ok) || (tc.want >= 0 && (!ok || len(out) != tc.want)) {
			t.Errorf("unpad(%v) = %d bytes, %v; want %d", tc.in[12:], len(out), ok, tc.want)
		}
	}
}
