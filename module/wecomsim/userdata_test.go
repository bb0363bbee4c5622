package wecomsim

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// decryptUserData decrypts as a mini program's server does (/document/path/96977): AES-128-CBC
// with the base64 session_key and iv, PKCS#7 to 16-byte blocks. It is written here from the
// WeCom description rather than shared with userdata.go, so that the two cannot agree on a
// mistake.
func decryptUserData(sessionKey, encryptedData, iv string) (map[string]any, error) {
	key, err := base64.StdEncoding.DecodeString(sessionKey)
	if err != nil || len(key) != 16 {
		return nil, errors.New("session_key is not 16 bytes of base64")
	}
	ivb, err := base64.StdEncoding.DecodeString(iv)
	if err != nil || len(ivb) != aes.BlockSize {
		return nil, errors.New("iv is not 16 bytes of base64")
	}
	ct, err := base64.StdEncoding.DecodeString(encryptedData)
	if err != nil || len(ct) == 0 || len(ct)%aes.BlockSize != 0 {
		return nil, errors.New("encryptedData is not whole blocks of base64")
	}
	block, _ := aes.NewCipher(key)
	plain := make([]byte, len(ct))
	cipher.NewCBCDecrypter(block, ivb).CryptBlocks(plain, ct)
	n := int(plain[len(plain)-1])
	if n < 1 || n > aes.BlockSize || !bytes.Equal(plain[len(plain)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, errors.New("bad padding")
	}
	var m map[string]any
	if err := json.Unmarshal(plain[:len(plain)-n], &m); err != nil {
		return nil, err
	}
	return m, nil
}

func userDataConfig() Config {
	cfg := testConfig()
	cfg.MiniProgramAppID = "wx1234567890abcdef"
	cfg.Corps[0].Users[0].Mobile = "13800000001"
	cfg.Corps[0].Users[0].Email = "zhangsan@acme.example"
	return cfg
}

// login mints a code for the user and exchanges it as the gateway would, returning the
// session_key jscode2session answered.
func login(t *testing.T, s *Simulator, corpID, secret, corp, userID string) string {
	t.Helper()
	a := exchange(t, s, getToken(t, s, corpID, secret), mint(t, s, corp, userID))
	wantErrcode(t, "jscode2session", a, 0)
	return a.str("session_key")
}

func TestUserDataRoundTrip(t *testing.T) {
	s := New(userDataConfig())
	key := login(t, s, acmeID, acmeSecret, "acme", "zhangsan")
	if b, err := base64.StdEncoding.DecodeString(key); err != nil || len(b) != 16 {
		t.Fatalf("session_key %q is not 16 bytes of standard base64", key)
	}
	for _, tc := range []struct {
		kind string
		want map[string]any
	}{
		{KindMobile, map[string]any{"mobile": "13800000001"}},
		{KindEmail, map[string]any{"email": "zhangsan@acme.example"}},
		{KindEnterprise, map[string]any{"corpid": acmeID, "userid": "zhangsan"}},
	} {
		before := time.Now().Unix()
		data, iv, err := s.UserData("acme", "zhangsan", tc.kind)
		if err != nil {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		m, err := decryptUserData(key, data, iv)
		if err != nil {
			t.Fatalf("%s: %v", tc.kind, err)
		}
		wm, _ := m["watermark"].(map[string]any)
		delete(m, "watermark")
		if !reflect.DeepEqual(m, tc.want) {
			t.Errorf("%s: decrypted %v, want %v", tc.kind, m, tc.want)
		}
		if wm["appid"] != "wx1234567890abcdef" {
			t.Errorf("%s: watermark appid %v, want the configured mini program appid", tc.kind, wm["appid"])
		}
		ts, _ := wm["timestamp"].(float64)
		if int64(ts) < before || int64(ts) > time.Now().Unix() || ts != float64(int64(ts)) {
			t.Errorf("%s: watermark timestamp %v is not the unix second of now", tc.kind, wm["timestamp"])
		}
	}

	// A fresh IV each time, as WeCom's: the same data never encrypts the same twice.
	d1, iv1, _ := s.UserData(acmeID, "zhangsan", KindMobile) // by corp_id too
	d2, iv2, _ := s.UserData("acme", "zhangsan", KindMobile)
	if iv1 == iv2 || d1 == d2 {
		t.Errorf("two calls gave the same iv or ciphertext")
	}

	// A user without a mobile gets an empty one rather than an error, and the default appid.
	s = New(testConfig())
	key = login(t, s, acmeID, acmeSecret, "", "lisi")
	data, iv, err := s.UserData("", "lisi", KindMobile)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decryptUserData(key, data, iv)
	if err != nil {
		t.Fatal(err)
	}
	if m["mobile"] != "" || m["watermark"].(map[string]any)["appid"] != DefaultMiniProgramAppID {
		t.Errorf("decrypted %v, want an empty mobile and appid %s", m, DefaultMiniProgramAppID)
	}
}

func TestUserDataLatestLoginWins(t *testing.T) {
	s := New(userDataConfig())
	old := login(t, s, acmeID, acmeSecret, "acme", "zhangsan")
	latest := login(t, s, acmeID, acmeSecret, "acme", "zhangsan")
	if old == latest {
		t.Fatal("two logins answered the same session_key")
	}
	data, iv, err := s.UserData("acme", "zhangsan", KindMobile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decryptUserData(latest, data, iv); err != nil {
		t.Errorf("the latest session_key does not decrypt: %v", err)
	}
	// The old key may by chance unpad to something; it never yields the JSON.
	if m, err := decryptUserData(old, data, iv); err == nil {
		t.Errorf("the old session_key decrypts: %v", m)
	}

	// Another user's login leaves this one's key alone.
	login(t, s, acmeID, acmeSecret, "acme", "lisi")
	data, iv, _ = s.UserData("acme", "zhangsan", KindMobile)
	if _, err := decryptUserData(latest, data, iv); err != nil {
		t.Errorf("another user's login replaced zhangsan's key: %v", err)
	}

	// Replacing the user (the dev interface's PUT /users) keeps the login, and the new mobile shows.
	st, _, body := dev(t, s, "PUT", "/sim/users", `{"corp":"acme","userid":"zhangsan","mobile":"13900000002"}`)
	wantStatus(t, "change the mobile", st, 200, body)
	data, iv, _ = s.UserData("acme", "zhangsan", KindMobile)
	if m, err := decryptUserData(latest, data, iv); err != nil || m["mobile"] != "13900000002" {
		t.Errorf("after PUT /users: %v %v", m, err)
	}
}

func TestUserDataErrors(t *testing.T) {
	s := New(userDataConfig())
	if _, _, err := s.UserData("acme", "zhangsan", KindMobile); !errors.Is(err, ErrNoLogin) {
		t.Errorf("before any login: %v, want ErrNoLogin", err)
	}
	// A code minted but not exchanged is no login: WeCom issues the session_key at jscode2session.
	mint(t, s, "acme", "zhangsan")
	if _, _, err := s.UserData("acme", "zhangsan", KindMobile); !errors.Is(err, ErrNoLogin) {
		t.Errorf("with a code not exchanged: %v, want ErrNoLogin", err)
	}
	login(t, s, acmeID, acmeSecret, "acme", "zhangsan")
	for _, tc := range []struct {
		corp, user, kind string
		want             error
	}{
		{"nope", "zhangsan", KindMobile, ErrUnknownCorp},
		{"acme", "nobody", KindMobile, ErrUnknownUser},
		{"beta", "zhangsan", KindMobile, ErrUnknownUser}, // the key is per corp
		{"acme", "lisi", KindMobile, ErrNoLogin},
		{"acme", "zhangsan", "phone", ErrUnknownKind},
		{"acme", "zhangsan", "", ErrUnknownKind},
		{"acme", "zhangsan", "Mobile", ErrUnknownKind},
	} {
		data, iv, err := s.UserData(tc.corp, tc.user, tc.kind)
		if !errors.Is(err, tc.want) || data != "" || iv != "" {
			t.Errorf("UserData(%q, %q, %q) = %q, %q, %v; want %v", tc.corp, tc.user, tc.kind, data, iv, err, tc.want)
		}
	}
}

func TestDevUserData(t *testing.T) {
	s := New(userDataConfig())
	st, m, body := dev(t, s, "POST", "/sim/userdata", `{"corp":"acme","userid":"zhangsan","kind":"mobile"}`)
	if st != http.StatusConflict || m["error"] != "conflict" || !strings.Contains(body, "no login yet") {
		t.Errorf("before a login: HTTP %d %s, want 409 conflict saying no login yet", st, body)
	}

	key := login(t, s, acmeID, acmeSecret, "acme", "zhangsan")
	st, m, body = dev(t, s, "POST", "/sim/userdata", `{"corp":"acme","userid":"zhangsan","kind":"mobile"}`)
	wantStatus(t, "userdata", st, 200, body)
	if len(m) != 2 {
		t.Errorf("answer %s, want exactly encrypted_data and iv", body)
	}
	data, _ := m["encrypted_data"].(string)
	iv, _ := m["iv"].(string)
	got, err := decryptUserData(key, data, iv)
	if err != nil || got["mobile"] != "13800000001" {
		t.Errorf("decrypted %v, %v", got, err)
	}
	if strings.Contains(body, key) || strings.Contains(body, "13800000001") {
		t.Errorf("the answer shows the session_key or the plaintext: %s", body)
	}

	// The corp defaults to the first, as for POST /code.
	st, _, body = dev(t, s, "POST", "/sim/userdata", `{"userid":"zhangsan","kind":"enterprise"}`)
	wantStatus(t, "userdata without corp", st, 200, body)

	for _, tc := range []struct {
		body      string
		st        int
		errorCode string
	}{
		{`{"corp":"acme","userid":"nobody","kind":"mobile"}`, 404, "not_found"},
		{`{"corp":"nope","userid":"zhangsan","kind":"mobile"}`, 404, "not_found"},
		{`{"corp":"acme","userid":"lisi","kind":"mobile"}`, 409, "conflict"},
		{`{"corp":"acme","userid":"zhangsan","kind":"phone"}`, 400, "invalid_request"},
		{`{"corp":"acme","userid":"zhangsan"}`, 400, "invalid_request"},
		{`{"corp":"acme","kind":"mobile"}`, 400, "invalid_request"},
		{`{"corp":"acme","userid":"zhangsan","kind":"mobile","appid":"wx"}`, 400, "invalid_request"},
		{`not json`, 400, "invalid_request"},
	} {
		st, m, body := dev(t, s, "POST", "/sim/userdata", tc.body)
		if st != tc.st || m["error"] != tc.errorCode || m["message"] == "" {
			t.Errorf("%s: HTTP %d %s, want %d %s", tc.body, st, body, tc.st, tc.errorCode)
		}
	}
	st, m, body = dev(t, s, "GET", "/sim/userdata", "")
	if st != http.StatusMethodNotAllowed || m["error"] != "method_not_allowed" {
		t.Errorf("GET: HTTP %d %s, want 405", st, body)
	}

	// The state names the appid that the gateway's decrypt must name, and the users' data.
	_, m, body = dev(t, s, "GET", "/sim/state", "")
	if m["miniprogram_appid"] != "wx1234567890abcdef" || !strings.Contains(body, `"mobile":"13800000001"`) {
		t.Errorf("state %s lacks the appid or the mobile", body)
	}
}

// TestDevUserDataGuarded: the endpoint hands out what only the user's consent should reveal, so
// it has the interface's guards: loopback clients at a loopback Host, JSON writes.
func TestDevUserDataGuarded(t *testing.T) {
	s := New(userDataConfig())
	login(t, s, acmeID, acmeSecret, "acme", "zhangsan")
	const body = `{"corp":"acme","userid":"zhangsan","kind":"mobile"}`
	st, m, b := serveDevRequest(t, s, remoteRequest("POST", "/sim/userdata", body))
	wantRefused(t, "from a remote client", st, m, b)
	r := localRequest("POST", "/sim/userdata", strings.NewReader(body))
	r.Host = "attacker.example"
	st, m, b = serveDevRequest(t, s, r)
	wantRefused(t, "at a foreign Host", st, m, b)
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
		r := localRequest("POST", "/sim/userdata", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		st, m, b := serveDevRequest(t, s, r)
		if st != http.StatusUnsupportedMediaType || m["error"] != "unsupported_media_type" {
			t.Errorf("as %q: HTTP %d %s, want 415", ct, st, b)
		}
	}
}

func TestUserDataCaddyfile(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`wecom_simulator {
	miniprogram_appid wx1234567890abcdef
	corp acme {
		corp_id ww0000000000acme
		secret  s
		user zhangsan 张三 {
			mobile 13800000001
			email  zhangsan@acme.example
		}
	}
}`))
	if err != nil {
		t.Fatal(err)
	}
	if h.MiniProgramAppID != "wx1234567890abcdef" {
		t.Errorf("MiniProgramAppID %q", h.MiniProgramAppID)
	}
	if u := h.Corps[0].Users[0]; u.Mobile != "13800000001" || u.Email != "zhangsan@acme.example" {
		t.Errorf("user %+v", u)
	}
	// The Caddy module hands them to the Simulator.
	cfg := h.config()
	if cfg.MiniProgramAppID != "wx1234567890abcdef" || cfg.Corps[0].Users[0].Mobile != "13800000001" || cfg.Corps[0].Users[0].Email != "zhangsan@acme.example" {
		t.Errorf("config %+v", cfg)
	}
	b, _ := json.Marshal(&h)
	for _, key := range []string{`"miniprogram_appid":"wx1234567890abcdef"`, `"mobile":"13800000001"`, `"email":"zhangsan@acme.example"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("JSON %s lacks %s", b, key)
		}
	}

	for _, tc := range []struct{ input, want string }{
		{"wecom_simulator {\n miniprogram_appid\n}", "miniprogram_appid"},
		{"wecom_simulator {\n miniprogram_appid a b\n}", "miniprogram_appid"},
		{"wecom_simulator {\n corp a {\n user u {\n mobile\n }\n }\n}", "mobile"},
		{"wecom_simulator {\n corp a {\n user u {\n email a@x b@x\n }\n }\n}", "email"},
	} {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tc.input)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.input, err, tc.want)
		}
	}
}
