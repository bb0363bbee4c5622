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
//	go run ./bench/scalebench -gateways http://127.0.0.1:19001,http://127.0.0.1:19002 \
//		-sim http://127.0.0.1:19000 -users 1000 -d 60s -recheck 10s
//
// The last line is machine-readable:
//
//	RESULT users=… seconds=… requests=… failed=… p50_us=… p90_us=… p99_us=… p999_us=… max_us=… slow_100ms=… user_get=… per_user_per_recheck=… limited_45009=… jscode2session=… gettoken=…
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
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
	flag.Parse()

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
	tokens := make([]string, len(ids))
	err := simload.Parallel(*conc, len(ids), func(i int) error {
		code, err := simload.Mint(client, *sim+*devPath+"/code", *corp, ids[i])
		if err != nil {
			return err
		}
		tokens[i], err = login(client, gws[i%len(gws)]+*endpoints+"/login", code, *corp)
		return err
	})
	if err != nil {
		fail("signing in: %v", err)
	}
	fmt.Fprintf(os.Stderr, "signed in %d users at %d gateways in %.1fs\n", len(ids), len(gws), time.Since(t0).Seconds())

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
	res := run(client, gws, *path, tokens, *interval, *dur)
	elapsed := time.Since(start)
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
	fmt.Printf("RESULT users=%d seconds=%.3f requests=%d failed=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d slow_100ms=%d user_get=%d per_user_per_recheck=%.3f limited_45009=%d jscode2session=%d gettoken=%d\n",
		len(ids), elapsed.Seconds(), len(all)+int(res.failed), res.failed,
		pct(50).Microseconds(), pct(90).Microseconds(), pct(99).Microseconds(), pct(99.9).Microseconds(), pct(100).Microseconds(), slow,
		userGet, perUser, l45009, after["jscode2session"]-before["jscode2session"], after["gettoken"]-before["gettoken"])
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

func login(client *http.Client, url, code, corp string) (string, error) {
	body, _ := json.Marshal(map[string]string{"code": code, "corp": corp})
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return "", err
	}
	var out struct {
		Token string `json:"token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Token == "" {
		if len(b) > 200 {
			b = b[:200]
		}
		return "", errors.New("login at " + url + ": HTTP " + resp.Status + " " + string(bytes.TrimSpace(b)))
	}
	return out.Token, nil
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
