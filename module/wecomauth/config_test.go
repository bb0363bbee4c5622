package wecomauth_test

import (
	"strings"
	"testing"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
)

// Bad configuration fails adapt or validate with a message naming the
// directive at fault (SPEC §3).
func TestBadConfigNamesTheDirective(t *testing.T) {
	const corpOK = "corp acme {\n corp_id wwacme\n secret s\n}\n"
	cases := []struct {
		name, block, want string
	}{
		{"no corp", "", "at least one corp"},
		{"missing corp_id", "corp acme {\n secret s\n}", "corp acme: corp_id is required"},
		{"missing secret", "corp acme {\n corp_id wwacme\n}", "corp acme: secret is required"},
		{"corp without name", "corp {\n corp_id a\n secret s\n}", "corp: expected a name"},
		{"duplicate corp_id", corpOK + "corp b {\n corp_id wwacme\n secret t\n}", "duplicate corp_id"},
		{"duplicate corp name", corpOK + "corp acme {\n corp_id wwb\n secret t\n}", "duplicate corp name"},
		{"unknown subdirective", corpOK + "frobnicate yes", `unknown subdirective "frobnicate"`},
		{"unknown corp subdirective", "corp acme {\n corp_id a\n secret s\n agent 1\n}", `corp acme: unknown subdirective "agent"`},
		{"bad duration", corpOK + "recheck soon", "recheck"},
		{"negative duration", corpOK + "session_ttl -1h", "session_ttl: must be positive"},
		{"two durations", corpOK + "stale_grace 1h 2h", "stale_grace: expected exactly one duration"},
		{"short session_key", corpOK + "session_key AAAA", "session_key"},
		{"session_key not base64", corpOK + "session_key !!!", "session_key"},
		{"bad department", corpOK + "corp b {\n corp_id b\n secret s\n allow_departments x\n}", "allow_departments"},
		{"bad cookie name", corpOK + "cookie_name a;b", "cookie_name"},
		{"review without allow", corpOK + "review {\n user r $2a$10$gj7argJclI6sBw5KGGCtXud16zwhsehRL7iZ3X6KTa2uIFjkZh.hy\n}", "review: allow"},
		{"review hash not bcrypt", corpOK + "review {\n user r plaintext\n allow /x\n}", "review: user r: password hash is not bcrypt"},
		{"review unknown subdirective", corpOK + "review {\n role admin\n}", `review: unknown subdirective "role"`},
		{"unset environment secret", "corp acme {\n corp_id a\n secret {env.WECOMGATE_TEST_SURELY_UNSET}\n}", "secret is empty after replacing placeholders"},
		{"endpoints with wildcard", corpOK + "endpoints /we*", "endpoints"},
		{"api_base not a URL", corpOK + "api_base qyapi.weixin.qq.com", "api_base"},
		{"api_base plain http to a remote host", corpOK + "api_base http://qyapi.weixin.qq.com", "api_base \"http://qyapi.weixin.qq.com\": plain http is allowed only to a loopback address"},
		{"callback without token", "corp acme {\n corp_id a\n secret s\n callback {\n aes_key ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM\n }\n}", "corp acme: callback: token is required"},
		{"callback without aes_key", "corp acme {\n corp_id a\n secret s\n callback {\n token t\n }\n}", "corp acme: callback: aes_key is required"},
		{"callback aes_key of 42", "corp acme {\n corp_id a\n secret s\n callback {\n token t\n aes_key ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgo\n }\n}", "corp acme: callback: aes_key: an EncodingAESKey has 43 characters"},
		{"callback aes_key not base64", "corp acme {\n corp_id a\n secret s\n callback {\n token t\n aes_key !GVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM\n }\n}", "corp acme: callback: aes_key: the EncodingAESKey is not base64"},
		{"callback unknown subdirective", "corp acme {\n corp_id a\n secret s\n callback {\n url x\n }\n}", `corp acme: callback: unknown subdirective "url"`},
		{"callback aes_key placeholder unset", "corp acme {\n corp_id a\n secret s\n callback {\n token t\n aes_key {env.WECOMGATE_TEST_SURELY_UNSET}\n }\n}", "corp acme: callback:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := "{\n admin off\n}\n:0 {\n wecom_auth {\n" + tc.block + "\n }\n}\n"
			err := testcaddy.LoadError(cfg)
			if err == nil {
				t.Fatalf("config accepted:\n%s", cfg)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestGoodConfigValidates(t *testing.T) {
	cfg := "{\n admin off\n}\n:0 {\n wecom_auth {\n corp acme {\n corp_id wwacme\n secret s\n }\n}\n}\n"
	if err := testcaddy.LoadError(cfg); err != nil {
		t.Fatal(err)
	}
}
