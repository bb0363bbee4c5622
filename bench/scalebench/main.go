// Command scalebench drives many steady WeCom users through a cluster of
// wecom_auth gateways and reports what that cost at the WeCom simulator
// (issue 15's benchmark rows; bench/scale.sh starts everything it needs).
//
// It starts nothing itself. Given the gateways' base URLs and the
// simulator's, it mints a code for each of -users users (userids
// -prefix0000, -prefix0001, …, which must exist in the simulator) at the
// development interface (POST /sim/code), signs each user in at one gateway
// (user i at gateway i mod n), then clears the simulator's call counts and
// for -d has every user make a protected request every -interval (each user
// at its own phase, open loop), request k of user i going to gateway
// (i+k) mod n: a round-robin across the instances. At the end it reads
// GET /sim/counts and GET /sim/limits and reports the user/get calls per
// user per -recheck, the 45009s the simulator answered, and the latency of
// the protected requests.
//
// Signing in honours the budget: a login answered 503 (the gateway's
// share of its quota is spent) is tried again with a fresh code after its
// Retry-After, up to -signin-timeout, so that a small `quota` only slows
// the sign-ins down.
//
// With -login-rate, new users (-login-prefix0000 …, -login-users of them,
// which must exist in the simulator) sign in at that rate, cluster-wide,
// during the measured run, login j going to gateway j mod n, each once and
// with no retry; they make no protected requests. Each login's answer is
// counted: 200, 503 (no budget, or WeCom paused) or another failure.
// With -quota (the gateways' calls per -window), the user/get calls of the
// busiest -window of the run (GET /sim/counts sampled every 200 ms) are
// reported beside it, and so is what the budget leaves logins while the
// rechecks take all they may (see loginReserve).
//
//	go run ./bench/scalebench -gateways http://127.0.0.1:19001,http://127.0.0.1:19002 \
//		-sim http://127.0.0.1:19000 -users 1000 -d 60s -recheck 10s
//
// The last line is machine-readable:
//
//	RESULT users=… seconds=… requests=… failed=… p50_us=… p90_us=… p99_us=… p999_us=… max_us=… slow_100ms=… user_get=… per_user_per_recheck=… limited_45009=… jscode2session=… gettoken=…
//	  signin_s=… signin_503=… login_rate=… logins=… logins_ok=… logins_503=… logins_failed=… logins_ok_per_s=… login_p50_us=… login_p99_us=…
//	  quota=… window_s=… user_get_max_window=… login_reserve_per_s=…
//
// (one line; the login fields are 0 without -login-rate, the last three
// without -quota).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wecomgate/wecomgate/bench/internal/simload"
)

func main() {
	gateways := flag.String("gateways", "http://127.0.0.1:8080", "comma-separated gateway base URLs (the round-robin)")
	endpoints := flag.String("endpoints", "/wecom", "the gateways' endpoints prefix")
	sim := flag.String("sim", "http://127.0.0.1:8081", "simulator base URL (with its dev interface)")
	devPath := flag.String("dev-path", "/sim", "the simulator's dev_path")
	corp := flag.String("corp", "", "corp name (empty: the simulator's first)")
	nUsers := flag.Int("users", 1000, "users, userids <prefix>0000 …")
	prefix := flag.String("prefix", "s", "userid prefix")
	path := flag.String("path", "/api/orders?page=1", "protected path requested")
	interval := flag.Duration("interval", time.Second, "each user's time between requests")
	dur := flag.Duration("d", 60*time.Second, "measured duration")
	recheck := flag.Duration("recheck", 10*time.Second, "the gateways' recheck, for the per-user figure")
	settle := flag.Duration("settle", 0, "requests made after the logins and before the measurement (not counted)")
	conc := flag.Int("c", 32, "concurrent minting and logins")
	signinTimeout := flag.Duration("signin-timeout", 3*time.Minute, "how long signing everyone in may take (503s are retried until then)")
	loginRate := flag.Float64("login-rate", 0, "new users signing in per second during the measured run, cluster-wide (0: none)")
	loginPrefix := flag.String("login-prefix", "l", "userid prefix of the users signing in during the run")
	loginUsers := flag.Int("login-users", 0, "users <login-prefix>0000 … in the simulator (default: what -login-rate needs for -d)")
	quota := flag.Int("quota", 0, "the gateways' quota per -window, for the figures beside it (0: not reported)")
	window := flag.Duration("window", 0, "the quota's window (default -recheck)")
	flag.Parse()
	if *window <= 0 {
		*window = *recheck
	}
	if *loginUsers <= 0 {
		*loginUsers = int(math.Ceil(*loginRate*dur.Seconds())) + 1
	}

	gws := strings.Split(*gateways, ",")
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 512,
			DisableCompression:  true,
		},
	}
	ids := make([]string, *nUsers)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%04d", *prefix, i)
	}

	// Sign everyone in.
	t0 := time.Now()
	deadline := t0.Add(*signinTimeout)
	tokens := make([]string, len(ids))
	var signin503 atomic.Int64
	err := simload.Parallel(*conc, len(ids), func(i int) error {
		for {
			code, err := simload.Mint(client, *sim+*devPath+"/code", *corp, ids[i])
			if err != nil {
				return err
			}
			var wait time.Duration
			tokens[i], wait, err = login(client, gws[i%len(gws)]+*endpoints+"/login", code, *corp)
			if err == nil || wait == 0 {
				return err
			}
			signin503.Add(1)
			if time.Now().Add(wait).After(deadline) {
				return fmt.Errorf("still refused after %v: %v", *signinTimeout, err)
			}
			time.Sleep(wait + time.Duration(rand.Int64N(int64(time.Second)))) // spread the retries
		}
	})
	if err != nil {
		fail("signing in: %v", err)
	}
	signinSecs := time.Since(t0).Seconds()
	fmt.Fprintf(os.Stderr, "signed in %d users at %d gateways in %.1fs (%d logins answered 503 and tried again)\n",
		len(ids), len(gws), signinSecs, signin503.Load())

	if *settle > 0 {
		fmt.Fprintf(os.Stderr, "settling for %v (not measured)\n", *settle)
		run(client, gws, *path, tokens, *interval, *settle)
	}

	before, err := counts(client, *sim+*devPath)
	if err != nil {
		fail("%v", err)
	}
	limBefore, err := limited(client, *sim+*devPath)
	if err != nil {
		fail("%v", err)
	}
	start := time.Now()
	stop := make(chan struct{})
	sampled := make(chan []sample, 1)
	go func() { sampled <- sampleCounts(client, *sim+*devPath, "user/get", stop) }()
	logins := make(chan loginStats, 1)
	go func() {
		logins <- loginStream(client, gws, *endpoints+"/login", *sim+*devPath+"/code", *corp, *loginPrefix, *loginUsers, *loginRate, *dur)
	}()
	res := run(client, gws, *path, tokens, *interval, *dur)
	elapsed := time.Since(start)
	ls := <-logins
	close(stop)
	busiest := maxInWindow(<-sampled, *window)
	after, err := counts(client, *sim+*devPath)
	if err != nil {
		fail("%v", err)
	}
	limAfter, err := limited(client, *sim+*devPath)
	if err != nil {
		fail("%v", err)
	}

	all := res.lat
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p/100*float64(len(all))))]
	}
	slow := len(all) - sort.Search(len(all), func(i int) bool { return all[i] >= 100*time.Millisecond })
	userGet := after["user/get"] - before["user/get"]
	intervals := elapsed.Seconds() / recheck.Seconds()
	perUser := float64(userGet) / float64(len(ids)) / intervals
	l45009 := 0
	for e, n := range limAfter {
		l45009 += n - limBefore[e]
	}
	fmt.Fprintf(os.Stderr, "%d requests in %.1fs (%.0f/s): p50 %v p90 %v p99 %v p99.9 %v max %v, %d took 100 ms or more, failed %d %v\n",
		len(all)+int(res.failed), elapsed.Seconds(), float64(len(all))/elapsed.Seconds(),
		pct(50), pct(90), pct(99), pct(99.9), pct(100), slow, res.failed, res.statuses)
	fmt.Fprintf(os.Stderr, "requests of 100 ms or more by second of the run: %v\n", res.slowAt)
	if res.firstErr != "" {
		fmt.Fprintf(os.Stderr, "first failure: %s\n", res.firstErr)
	}
	fmt.Fprintf(os.Stderr, "simulator: user/get %d (%.3f per user per %v recheck), 45009 answered %d (since start: %v), calls %v\n",
		userGet, perUser, *recheck, l45009, limAfter, diff(after, before))
	reserve := 0.0
	if *quota > 0 {
		reserve = loginReserve(*quota, len(gws)) / window.Seconds()
		fmt.Fprintf(os.Stderr, "user/get in the busiest %v of the run: %d (quota %d per %v; mean %.1f per %v)\n",
			*window, busiest, *quota, *window, float64(userGet)/elapsed.Seconds()*window.Seconds(), *window)
	}
	if *loginRate > 0 {
		fmt.Fprintf(os.Stderr, "logins: %d at %.2f/s: %d ok (%.2f/s), %d answered 503, %d failed otherwise %v; p50 %v p99 %v; what rechecks leave logins: %.2f/s\n",
			ls.n, *loginRate, ls.ok, float64(ls.ok)/elapsed.Seconds(), ls.n503, ls.failed, ls.statuses, ls.pct(50), ls.pct(99), reserve)
		if ls.firstErr != "" {
			fmt.Fprintf(os.Stderr, "first failed login: %s\n", ls.firstErr)
		}
	}
	fmt.Printf("RESULT users=%d seconds=%.3f requests=%d failed=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d slow_100ms=%d user_get=%d per_user_per_recheck=%.3f limited_45009=%d jscode2session=%d gettoken=%d"+
		" signin_s=%.1f signin_503=%d login_rate=%g logins=%d logins_ok=%d logins_503=%d logins_failed=%d logins_ok_per_s=%.3f login_p50_us=%d login_p99_us=%d"+
		" quota=%d window_s=%g user_get_max_window=%d login_reserve_per_s=%.3f\n",
		len(ids), elapsed.Seconds(), len(all)+int(res.failed), res.failed,
		pct(50).Microseconds(), pct(90).Microseconds(), pct(99).Microseconds(), pct(99.9).Microseconds(), pct(100).Microseconds(), slow,
		userGet, perUser, l45009, after["jscode2session"]-before["jscode2session"], after["gettoken"]-before["gettoken"],
		signinSecs, signin503.Load(), *loginRate, ls.n, ls.ok, ls.n503, ls.failed, float64(ls.ok)/elapsed.Seconds(), ls.pct(50).Microseconds(), ls.pct(99).Microseconds(),
		*quota, window.Seconds(), busiest, reserve)
}

// loginReserve is what budget.go's priorities leave logins in one quota
// window, cluster-wide, while rechecks take all they may: each of n
// instances has quota/n; a request-path recheck stops at 9/10 of it, a
// login may spend all of it. (A copy of shareOf's arithmetic, for the
// report: if budget.go changes, so must this.)
func loginReserve(quota, n int) float64 {
	share := quota / n
	return float64(n * (share - share*9/10))
}

// loginStats is the login stream's outcome.
type loginStats struct {
	n, ok, n503, failed int
	lat                 []time.Duration // of the logins that succeeded
	statuses            map[int]int     // of the failed ones (0: no answer)
	firstErr            string
}

func (l loginStats) pct(p float64) time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	return l.lat[min(len(l.lat)-1, int(p/100*float64(len(l.lat))))]
}

// loginStream signs new users in at rate per second for d, login j at
// gateway j mod n as user prefix<j mod users>, each once, no retry.
func loginStream(client *http.Client, gws []string, loginPath, codeURL, corp, prefix string, users int, rate float64, d time.Duration) loginStats {
	st := loginStats{statuses: map[int]int{}}
	if rate <= 0 {
		return st
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	every := time.Duration(float64(time.Second) / rate)
	start := time.Now()
	for j := 0; ; j++ {
		at := start.Add(time.Duration(j) * every)
		if !at.Before(start.Add(d)) {
			break
		}
		time.Sleep(time.Until(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, err := simload.Mint(client, codeURL, corp, fmt.Sprintf("%s%04d", prefix, j%users))
			status := 0
			var took time.Duration
			if err == nil {
				t0 := time.Now()
				var wait time.Duration
				_, wait, err = login(client, gws[j%len(gws)]+loginPath, code, corp)
				took = time.Since(t0)
				if wait > 0 {
					status = http.StatusServiceUnavailable
				}
			}
			mu.Lock()
			defer mu.Unlock()
			st.n++
			switch {
			case err == nil:
				st.ok++
				st.lat = append(st.lat, took)
			case status == http.StatusServiceUnavailable:
				st.n503++
			default:
				st.failed++
			}
			if err != nil {
				var he *httpError
				if errors.As(err, &he) {
					status = he.status
				}
				st.statuses[status]++
				if st.firstErr == "" {
					st.firstErr = err.Error()
				}
			}
		}()
	}
	wg.Wait()
	slices.Sort(st.lat)
	return st
}

// sample is an endpoint's call count at the simulator at a moment.
type sample struct {
	at time.Time
	n  int
}

// sampleCounts reads the simulator's count of endpoint every 200 ms until
// stop is closed.
func sampleCounts(client *http.Client, dev, endpoint string, stop <-chan struct{}) []sample {
	var out []sample
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		if c, err := counts(client, dev); err == nil {
			out = append(out, sample{time.Now(), c[endpoint]})
		}
		select {
		case <-stop:
			return out
		case <-t.C:
		}
	}
}

// maxInWindow is the most calls between two samples at most window apart:
// the busiest window the samples can tell (it may miss calls at a
// window's ends, up to a sampling interval's worth).
func maxInWindow(s []sample, window time.Duration) int {
	best, j := 0, 0
	for i := range s {
		for s[i].at.Sub(s[j].at) > window {
			j++
		}
		best = max(best, s[i].n-s[j].n)
	}
	return best
}

type result struct {
	lat      []time.Duration
	slowAt   []int // requests of 100 ms or more, per second of the run they started in
	failed   int64
	statuses map[int]int
	firstErr string
}

// run has every user request path every interval for d, at its own phase,
// round-robin over the gateways.
func run(client *http.Client, gws []string, path string, tokens []string, interval, d time.Duration) result {
	start := time.Now()
	end := start.Add(d)
	lats := make([][]time.Duration, len(tokens))
	slowAt := make([]atomic.Int64, int(d/time.Second)+2)
	var failed atomic.Int64
	var mu sync.Mutex
	statuses := map[int]int{}
	firstErr := ""
	var wg sync.WaitGroup
	for u := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := start.Add(time.Duration(rand.Int64N(int64(interval))))
			for k := u; ; k++ {
				if !next.Before(end) {
					return
				}
				if w := time.Until(next); w > 0 {
					time.Sleep(w)
				}
				next = next.Add(interval)
				d, st, err := protected(client, gws[k%len(gws)]+path, tokens[u])
				if err != nil || st != http.StatusOK {
					failed.Add(1)
					mu.Lock()
					statuses[st]++
					if firstErr == "" {
						if err == nil {
							err = fmt.Errorf("HTTP %d", st)
						}
						firstErr = err.Error()
					}
					mu.Unlock()
					continue
				}
				lats[u] = append(lats[u], d)
				if d >= 100*time.Millisecond {
					i := int((time.Since(start) - d) / time.Second) // when it started
					slowAt[min(max(i, 0), len(slowAt)-1)].Add(1)
				}
			}
		}()
	}
	wg.Wait()
	at := make([]int, len(slowAt))
	for i := range slowAt {
		at[i] = int(slowAt[i].Load())
	}
	return result{lat: slices.Concat(lats...), slowAt: at, failed: failed.Load(), statuses: statuses, firstErr: firstErr}
}

func protected(client *http.Client, url, token string) (time.Duration, int, error) {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(t0), resp.StatusCode, err
}

// httpError is a login's answer other than a token.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// login posts a code. A 503 comes with how long to wait before trying
// again (its Retry-After, at least a second).
func login(client *http.Client, url, code, corp string) (string, time.Duration, error) {
	body, _ := json.Marshal(map[string]string{"code": code, "corp": corp})
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", 0, err
	}
	var out struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Token == "" {
		if len(b) > 200 {
			b = b[:200]
		}
		err := &httpError{resp.StatusCode, "login at " + url + ": HTTP " + resp.Status + " " + string(bytes.TrimSpace(b))}
		if resp.StatusCode != http.StatusServiceUnavailable {
			return "", 0, err
		}
		wait := time.Second
		if n, e := strconv.Atoi(resp.Header.Get("Retry-After")); e == nil && n > 1 {
			wait = time.Duration(n) * time.Second
		}
		return "", wait, err
	}
	return out.Token, 0, nil
}

func counts(client *http.Client, dev string) (map[string]int, error) {
	var out map[string]int
	return out, getJSON(client, dev+"/counts", &out)
}

func limited(client *http.Client, dev string) (map[string]int, error) {
	var out struct {
		Limited map[string]int `json:"limited"`
	}
	err := getJSON(client, dev+"/limits", &out)
	return out.Limited, err
}

func getJSON(client *http.Client, url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func diff(a, b map[string]int) string {
	keys := make([]string, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var s []string
	for _, k := range keys {
		s = append(s, fmt.Sprintf("%s=%d", k, a[k]-b[k]))
	}
	return strings.Join(s, " ")
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scalebench: "+format+"\n", args...)
	os.Exit(1)
}
