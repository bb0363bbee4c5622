package main

import (
	"strings"
	"testing"
)

func TestParseLatency(t *testing.T) {
	for in, want := range map[string]float64{
		"691.00us": 691,
		"0.85ms":   850,
		"7.86ms":   7860,
		"23.87ms":  23870,
		"1.02s":    1.02e6,
		"1.50m":    90e6,
		"1.00h":    3600e6,
		"0.00us":   0,
	} {
		if got, err := parseLatency(in); err != nil || got != want {
			t.Errorf("parseLatency(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "ms", "7.86", "7.86xs", "-1.00ms", "nanms", "infus", "1,5ms"} {
		if got, err := parseLatency(in); err == nil {
			t.Errorf("parseLatency(%q) = %v, want an error", in, got)
		}
	}
}

// As wrk 4.1 prints it with --latency, errors included.
const wrkOut = `Running 5s test @ http://127.0.0.1:20001/api/orders?page=1
  2 threads and 48 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.13ms    3.02ms   1.20s    90.00%
    Req/Sec     2.75k   180.11     3.05k    71.00%
  Latency Distribution
     50%  812.00us
     75%    9.80ms
     90%   12.01ms
     99%     1.02s
  27305 requests in 5.00s, 5.21MB read
  Socket errors: connect 1, read 2, write 0, timeout 4
  Non-2xx or 3xx responses: 12
Requests/sec:   5461.00
Transfer/sec:      1.04MB
`

func TestParseWrk(t *testing.T) {
	r, err := parseWrk(wrkOut)
	if err != nil {
		t.Fatal(err)
	}
	want := wrkResult{requests: 27305, rps: 5461, p50: 812, p99: 1.02e6, non2xx: 12, socketErrors: 7}
	if r != want {
		t.Errorf("parseWrk = %+v\nwant        %+v", r, want)
	}

	// wrk leaves the error lines out when there were none.
	var clean []string
	for _, l := range strings.Split(wrkOut, "\n") {
		if !strings.Contains(l, "errors") && !strings.Contains(l, "Non-2xx") {
			clean = append(clean, l)
		}
	}
	r, err = parseWrk(strings.Join(clean, "\n"))
	if err != nil || r.non2xx != 0 || r.socketErrors != 0 || r.requests != 27305 {
		t.Errorf("without error lines: %+v, %v", r, err)
	}
}

func TestParseWrkIncomplete(t *testing.T) {
	noLatency := strings.Replace(wrkOut, "Latency Distribution", "", 1) // run without --latency
	for name, c := range map[string]struct{ out, msg string }{
		"empty":      {"", "requests in"},
		"cut short":  {wrkOut[:strings.Index(wrkOut, "Requests/sec")], "Requests/sec"},
		"no latency": {noLatency, "--latency"},
		"no p99":     {strings.Replace(wrkOut, "99%", "98%", 1), "--latency"},
		"bad unit":   {strings.Replace(wrkOut, "9.80ms", "9.80qs", 1), "9.80qs"},
		"wrk failed": {"unable to connect to 127.0.0.1:1 Connection refused\n", "requests in"},
	} {
		if _, err := parseWrk(c.out); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, c.msg)
		}
	}
}
