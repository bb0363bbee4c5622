package wecomauth_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Failed sign-ins from one address are limited; the limit answers 429 with
// Retry-After, and it blocks good sign-ins from that address too until the
// window passes. 403s (real users WeCom refuses) are not counted.
func TestLoginRateLimit(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "login_rate 3 1m\n\t\t" + reviewBlock})
	for range 5 {
		r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "lisi")))
		expectError(t, r, http.StatusForbidden, "user_inactive")
	}
	for range 3 {
		expectError(t, e.do(http.MethodPost, "/wecom/login", `{"code":"guess"}`), 401, "invalid_code")
	}
	r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
	expectError(t, r, http.StatusTooManyRequests, "rate_limited")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	expectError(t, e.do(http.MethodPost, "/wecom/review/login", reviewLoginBody),
		http.StatusTooManyRequests, "rate_limited")
	expectError(t, e.do(http.MethodGet, "/api/x", "", "X-WeCom-Code: abc"), http.StatusTooManyRequests, "rate_limited")
	e.backend.none(t)
}

// postFrom sends a POST from a local address of the test's choosing (any
// of 127.0.0.0/8), so that tests can play several clients. It is safe to
// call from many goroutines: failures are reported with t.Error.
func postFrom(t *testing.T, client *http.Client, url, body string, headers ...string) reply {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return reply{}
	}
	req.Header.Set("Content-Type", "application/json")
	for _, h := range headers {
		name, val, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(val))
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return reply{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return newReply(resp.StatusCode, resp.Header, raw)
}

// clientAt is an HTTP client whose connections come from localIP.
func clientAt(t *testing.T, localIP string) *http.Client {
	tr := &http.Transport{DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}).DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// concurrently runs n requests at once and tallies the answers by status
// and error code ("401 invalid_code").
func concurrently(n int, send func(i int) reply) map[string]int {
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		tally = map[string]int{}
		start = make(chan struct{})
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r := send(i)
			key := fmt.Sprintf("%d %s", r.status, r.str("error"))
			if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
				key += " without Retry-After"
			}
			mu.Lock()
			tally[key]++
			mu.Unlock()
		}()
	}
	close(start)
	wg.Wait()
	return tally
}

// A burst of bogus codes from one client reaches WeCom at most login_rate
// times: each attempt reserves its unit before calling WeCom. Another
// client is not affected.
func TestLoginRateHoldsUnderConcurrency(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "login_rate 5 1m"})
	before := e.counts()["jscode2session"]
	client := clientAt(t, "127.0.0.1")
	tally := concurrently(200, func(i int) reply {
		return postFrom(t, client, e.gw+"/wecom/login", fmt.Sprintf(`{"code":"bogus-%03d"}`, i))
	})
	calls := e.counts()["jscode2session"] - before
	if calls > 5 || tally["401 invalid_code"] > 5 || tally["401 invalid_code"]+tally["429 rate_limited"] != 200 {
		t.Fatalf("200 concurrent bogus codes with login_rate 5: %d reached WeCom; answers %v", calls, tally)
	}
	r := e.do(http.MethodPost, "/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
	expectError(t, r, http.StatusTooManyRequests, "rate_limited")

	r = postFrom(t, clientAt(t, "127.0.0.2"), e.gw+"/wecom/login", fmt.Sprintf(`{"code":%q}`, e.code("acme", "zhangsan")))
	if r.status != http.StatusOK {
		t.Fatalf("another client after the burst: %d %s", r.status, r.raw)
	}
}

// A burst of wrong review passwords runs bcrypt at most login_rate times.
// Every 401 of a well-formed review login comes out of a bcrypt comparison
// and the refused ones answer 429 before it, so the 401s count the
// comparisons.
func TestReviewLoginRateHoldsUnderConcurrency(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "login_rate 5 1m\n\t\t" + reviewBlock})
	client := clientAt(t, "127.0.0.1")
	tally := concurrently(60, func(i int) reply {
		return postFrom(t, client, e.gw+"/wecom/review/login", fmt.Sprintf(`{"username":"reviewer","password":"guess-%d"}`, i))
	})
	if compared := tally["401 unauthenticated"]; compared > 5 || compared < 1 || compared+tally["429 rate_limited"] != 60 {
		t.Fatalf("60 concurrent wrong review passwords with login_rate 5: answers %v", tally)
	}
}

// Behind a trusted proxy, clients are told apart by X-Forwarded-For: IPv6
// clients by their /64, so rotating addresses inside one /64 is limited;
// IPv4 clients (also written IPv4-mapped) by their address. Each is limited
// on its own.
func TestLoginRateKeysIPv6By64AndIPv4ByAddress(t *testing.T) {
	e := startGateway(t, gatewayOptions{extra: "login_rate 3 1m", global: "servers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}"})
	bogus := func(from string) reply {
		return e.do(http.MethodPost, "/wecom/login", `{"code":"guess"}`, "X-Forwarded-For: "+from)
	}
	for i := range 3 {
		expectError(t, bogus(fmt.Sprintf("2001:db8:1:2::%x", i+1)), http.StatusUnauthorized, "invalid_code")
	}
	expectError(t, bogus("2001:db8:1:2:ffff:ffff:ffff:ffff"), http.StatusTooManyRequests, "rate_limited")
	expectError(t, bogus("2001:db8:1:3::1"), http.StatusUnauthorized, "invalid_code")

	for range 3 {
		expectError(t, bogus("198.51.100.9"), http.StatusUnauthorized, "invalid_code")
	}
	expectError(t, bogus("::ffff:198.51.100.9"), http.StatusTooManyRequests, "rate_limited")
	expectError(t, bogus("198.51.100.10"), http.StatusUnauthorized, "invalid_code")
	expectError(t, bogus("2001:db8:1:3::2"), http.StatusUnauthorized, "invalid_code")
}
