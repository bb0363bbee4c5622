package wecomsim

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Past a corp's limit an endpoint answers 45009, and keeps answering it
// for the block, whatever the count does meanwhile; other endpoints and
// other corps are not affected.
func TestFrequencyLimit(t *testing.T) {
	cfg := testConfig()
	cfg.Limits = []Limit{{Endpoint: EndpointUserGet, Calls: 3, Window: time.Minute, Block: time.Minute}}
	s := New(cfg)
	tok := getToken(t, s, cfg.Corps[0].CorpID, cfg.Corps[0].Secret)
	user := cfg.Corps[0].Users[0].UserID
	for range 3 {
		wantErrcode(t, "call within the limit", userGet(t, s, tok, user), 0)
	}
	wantErrcode(t, "call past the limit", userGet(t, s, tok, user), 45009)
	if got := s.Limited()[EndpointUserGet]; got != 1 {
		t.Fatalf("Limited = %d, want 1", got)
	}
	other := getToken(t, s, cfg.Corps[1].CorpID, cfg.Corps[1].Secret)
	wantErrcode(t, "another corp's user/get", userGet(t, s, other, cfg.Corps[1].Users[0].UserID), 0)
	wantErrcode(t, "gettoken has no limit", call(t, s, pathGetToken, "corpid", cfg.Corps[0].CorpID, "corpsecret", cfg.Corps[0].Secret), 0)
	wantErrcode(t, "call during the block", userGet(t, s, tok, user), 45009)
	if err := s.SetLimits(); err != nil {
		t.Fatal(err)
	}
	wantErrcode(t, "limits off", userGet(t, s, tok, user), 0)
}

func TestLatency(t *testing.T) {
	cfg := testConfig()
	cfg.Latency = []Latency{{Endpoint: EndpointUserGet, Delay: 80 * time.Millisecond}}
	s := New(cfg)
	tok := getToken(t, s, cfg.Corps[0].CorpID, cfg.Corps[0].Secret)
	start := time.Now()
	wantErrcode(t, "slow call", userGet(t, s, tok, cfg.Corps[0].Users[0].UserID), 0)
	if d := time.Since(start); d < 80*time.Millisecond {
		t.Fatalf("user/get answered in %v, want at least the 80ms latency", d)
	}
}

func TestLimitsCaddyfile(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`wecom_simulator {
		frequency_limit user/get 200 10s 60s
		frequency_limit * 10000 1m
		latency user/get 300ms
		corp acme {
			corp_id wwacme
			secret s
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(h.FrequencyLimits) != 2 || h.FrequencyLimits[0].Calls != 200 || time.Duration(h.FrequencyLimits[0].Block) != time.Minute ||
		len(h.Latency) != 1 || time.Duration(h.Latency[0].Delay) != 300*time.Millisecond {
		t.Fatalf("parsed %+v %+v", h.FrequencyLimits, h.Latency)
	}
	for _, bad := range []string{"frequency_limit user/get 0 10s", "frequency_limit nope 1 1s", "frequency_limit user/get 1", "latency user/get soon"} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("wecom_simulator {\n" + bad + "\n}"))
		if err == nil || !strings.Contains(err.Error(), strings.Fields(bad)[0]) {
			t.Errorf("%q: %v, want an error naming the subdirective", bad, err)
		}
	}
}
