package wecomauth_test

import (
	"strings"
	"testing"

	"github.com/wecomgate/wecomgate/module/internal/testcaddy"
)

// The Caddyfile adapter and Validate share one check per config type, so
// a bad config is refused with the same message whether it comes as a
// Caddyfile or as JSON, and without the module name Caddy already adds.
func TestCaddyfileAndJSONShareTheirChecks(t *testing.T) {
	t.Setenv("WECOMGATE_TEST_S", "s")
	for name, tc := range map[string]struct{ block, want string }{
		"duplicate corp_id": {"corp a {\n corp_id ww1\n secret s\n}\ncorp b {\n corp_id ww1\n secret s\n}", "corp b: duplicate corp_id ww1"},
		"bad cookie name":   {"corp a {\n corp_id ww1\n secret s\n}\ncookie_name a;b", `cookie_name "a;b" is not a valid cookie name`},
		"short key":         {"corp a {\n corp_id ww1\n secret s\n}\nsession_key AAAA", "session_key 1: decodes to 3 bytes"},
		"http api_base":     {"api_base http://10.1.2.3\ncorp a {\n corp_id ww1\n secret s\n}", "plain http is allowed only to a loopback address"},
	} {
		caddyfile := ":0 {\n\twecom_auth {\n" + tc.block + "\n\t}\n}"
		errAdapt := testcaddy.LoadError(caddyfile)
		if errAdapt == nil || !strings.Contains(errAdapt.Error(), tc.want) {
			t.Errorf("%s: Caddyfile: %v; want %q", name, errAdapt, tc.want)
		}
		if strings.Contains(errAdapt.Error(), "wecom_auth: wecom_auth") {
			t.Errorf("%s: the module name is repeated: %v", name, errAdapt)
		}
	}
	// The same check for a JSON config that never saw the Caddyfile adapter.
	json := `{"apps":{"http":{"servers":{"s":{"listen":["127.0.0.1:0"],"routes":[{"handle":[{"handler":"wecom_auth",` +
		`"corps":[{"name":"a","corp_id":"ww1","secret":"{env.WECOMGATE_TEST_S}"},{"name":"b","corp_id":"ww1","secret":"s"}]}]}]}}}}}`
	if err := testcaddy.LoadJSONError([]byte(json)); err == nil || !strings.Contains(err.Error(), "corp b: duplicate corp_id ww1") {
		t.Errorf("JSON: %v", err)
	}
}

// SPEC §3 (revision 2): any positive duration, seconds included.
func TestShortSessionTTLIsAccepted(t *testing.T) {
	t.Setenv("WECOMGATE_TEST_S", "s")
	if err := testcaddy.LoadError(":0 {\n\twecom_auth {\n\t\tcorp a {\n\t\t\tcorp_id ww1\n\t\t\tsecret {env.WECOMGATE_TEST_S}\n\t\t}\n\t\tsession_ttl 5s\n\t}\n}"); err != nil {
		t.Errorf("session_ttl 5s: %v", err)
	}
}
