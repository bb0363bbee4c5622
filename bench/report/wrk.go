package main

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// wrkResult is what one wrk run printed (wrk --latency, its ordinary report).
type wrkResult struct {
	requests     int64
	rps          float64
	p50, p99     float64 // µs
	non2xx       int64   // answers with a status of 400 or more (wrk's "Non-2xx or 3xx")
	socketErrors int64   // connect + read + write + timeout
}

var (
	reRequests = regexp.MustCompile(`^(\d+) requests in `)
	reRPS      = regexp.MustCompile(`^Requests/sec:\s+([0-9.]+)$`)
	reSocket   = regexp.MustCompile(`^Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)$`)
	reNon2xx   = regexp.MustCompile(`^Non-2xx or 3xx responses: (\d+)$`)
	rePct      = regexp.MustCompile(`^([0-9.]+)%\s+(\S+)$`)
)

// parseWrk reads wrk's report. wrk prints the error lines only when there
// were errors, so their absence means zero; the request count, the rate
// and the latency distribution must be there, or the output was cut short.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRequests, haveRPS bool
	pct := map[string]float64{}
	inDist := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "Latency Distribution" {
			inDist = true
			continue
		}
		if m := rePct.FindStringSubmatch(line); inDist && m != nil {
			us, err := parseLatency(m[2])
			if err != nil {
				return r, err
			}
			pct[m[1]] = us
			continue
		}
		inDist = false
		if m := reRequests.FindStringSubmatch(line); m != nil {
			r.requests, _ = strconv.ParseInt(m[1], 10, 64)
			haveRequests = true
		} else if m := reRPS.FindStringSubmatch(line); m != nil {
			r.rps, _ = strconv.ParseFloat(m[1], 64)
			haveRPS = true
		} else if m := reSocket.FindStringSubmatch(line); m != nil {
			for _, s := range m[1:] {
				n, _ := strconv.ParseInt(s, 10, 64)
				r.socketErrors += n
			}
		} else if m := reNon2xx.FindStringSubmatch(line); m != nil {
			r.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
		}
	}
	switch {
	case !haveRequests:
		return r, errors.New(`no "N requests in" line in wrk's output`)
	case !haveRPS:
		return r, errors.New(`no "Requests/sec:" line in wrk's output`)
	}
	var ok50, ok99 bool
	r.p50, ok50 = pct["50"]
	r.p99, ok99 = pct["99"]
	if !ok50 || !ok99 {
		return r, errors.New("no 50% and 99% latencies in wrk's output (it must run with --latency)")
	}
	return r, nil
}

// parseLatency reads a latency as wrk prints it ("691.00us", "7.86ms",
// "1.20s", "1.50m") and returns microseconds. wrk keeps three significant
// digits, so between 1 and 10 ms the steps are 10 µs.
func parseLatency(s string) (float64, error) {
	units := []struct {
		suffix string
		us     float64
	}{{"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}, {"h", 3600e6}} // "us" and "ms" before "s"
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || !(v >= 0) || math.IsInf(v, 1) {
				break
			}
			return v * u.us, nil
		}
	}
	return 0, fmt.Errorf("latency %q: not a number followed by us, ms, s, m or h", s)
}
