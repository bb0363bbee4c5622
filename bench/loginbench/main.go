// Command loginbench measures sign-ins per second through wecom_auth's
// POST /wecom/login against the WeCom simulator.
//
// Every login spends a one-time code, so the codes are minted first at the
// simulator's development interface (POST /sim/code), before the clock
// starts; then -c workers post them to the gateway for -d (or until the
// codes run out) and the program reports logins/s and latency percentiles.
// A login costs the gateway a jscode2session and a user/get call to the
// simulator, a session seal and a log line; the simulator's work is part of
// what is measured, as WeCom's would be.
//
//	go run ./bench/loginbench -gateway http://127.0.0.1:8080 -sim http://127.0.0.1:8081 -users zhangsan
//
// The last line is machine-readable, for bench/report:
//
//	RESULT logins=… errors=… seconds=… rps=… p50_us=… p90_us=… p99_us=… max_us=… codes_per_s=…
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wecomgate/wecomgate/bench/internal/simload"
)

func main() {
	gateway := flag.String("gateway", "http://127.0.0.1:8080", "gateway base URL")
	endpoints := flag.String("endpoints", "/wecom", "the gateway's endpoints prefix")
	sim := flag.String("sim", "http://127.0.0.1:8081", "simulator base URL (with its dev interface)")
	devPath := flag.String("dev-path", "/sim", "the simulator's dev_path")
	corp := flag.String("corp", "", "corp name for the codes and logins (empty: the first)")
	users := flag.String("users", "zhangsan", "comma-separated userids to sign in, round-robin")
	codes := flag.Int("codes", 30000, "codes to mint before the run (the run stops early if they run out)")
	warmup := flag.Int("warmup", 300, "logins before the measured run, not counted")
	conc := flag.Int("c", 32, "concurrent connections")
	dur := flag.Duration("d", 10*time.Second, "measured duration")
	flag.Parse()

	ids := strings.Split(*users, ",")
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        *conc * 2,
			MaxIdleConnsPerHost: *conc * 2,
			DisableCompression:  true,
		},
	}

	// Mint the codes.
	total := *codes + *warmup
	pool := make([]string, total)
	start := time.Now()
	err := simload.Parallel(*conc, total, func(i int) error {
		c, err := simload.Mint(client, *sim+*devPath+"/code", *corp, ids[i%len(ids)])
		pool[i] = c
		return err
	})
	if err != nil {
		fail("minting codes: %v", err)
	}
	mintRate := float64(total) / time.Since(start).Seconds()
	fmt.Fprintf(os.Stderr, "minted %d codes in %.1fs (%.0f/s)\n", total, time.Since(start).Seconds(), mintRate)

	loginURL := *gateway + *endpoints + "/login"
	// Warm up: connections, the access_token, caches.
	if err := simload.Parallel(*conc, *warmup, func(i int) error {
		_, err := login(client, loginURL, pool[i], *corp)
		return err
	}); err != nil {
		fail("warm-up: %v", err)
	}
	pool = pool[*warmup:]

	// The measured run.
	var next atomic.Int64
	var errCount atomic.Int64
	var firstErr atomic.Value
	lat := make([][]time.Duration, *conc)
	ctx, cancel := context.WithTimeout(context.Background(), *dur)
	defer cancel()
	var wg sync.WaitGroup
	start = time.Now()
	for w := range *conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(pool)) {
					return
				}
				d, err := login(client, loginURL, pool[i], *corp)
				if err != nil {
					errCount.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				lat[w] = append(lat[w], d)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if n := next.Load(); n >= int64(len(pool)) && elapsed < *dur {
		fmt.Fprintf(os.Stderr, "ran out of codes after %.1fs: raise -codes for a full-length run (the rate below is still right)\n", elapsed.Seconds())
	}

	all := slices.Concat(lat...)
	slices.Sort(all)
	pct := func(p float64) time.Duration {
		if len(all) == 0 {
			return 0
		}
		return all[min(len(all)-1, int(p/100*float64(len(all))))]
	}
	ok := len(all)
	rps := float64(ok) / elapsed.Seconds()
	fmt.Fprintf(os.Stderr, "%d logins in %.2fs: %.0f/s  p50 %v  p90 %v  p99 %v  max %v  errors %d\n",
		ok, elapsed.Seconds(), rps, pct(50), pct(90), pct(99), pct(100), errCount.Load())
	if e := firstErr.Load(); e != nil {
		fmt.Fprintf(os.Stderr, "first error: %s\n", e)
	}
	fmt.Printf("RESULT logins=%d errors=%d seconds=%.3f rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d codes_per_s=%.0f\n",
		ok, errCount.Load(), elapsed.Seconds(), rps, pct(50).Microseconds(), pct(90).Microseconds(),
		pct(99).Microseconds(), pct(100).Microseconds(), mintRate)
	if ok == 0 {
		os.Exit(1)
	}
}

var tokenField = []byte(`"token":"`)

// login posts one code and checks that a token came back.
func login(client *http.Client, url, code, corp string) (time.Duration, error) {
	body, _ := json.Marshal(map[string]string{"code": code, "corp": corp})
	t0 := time.Now()
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(b, tokenField) {
		if len(b) > 200 {
			b = b[:200]
		}
		return 0, errors.New("login: HTTP " + resp.Status + " " + string(bytes.TrimSpace(b)))
	}
	return d, nil
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "loginbench: "+format+"\n", args...)
	os.Exit(1)
}
