package main

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// summary is a row's figures over a set of runs.
type summary struct {
	rps, rpsLo, rpsHi float64
	p50, p99          float64 // µs
	p99Lo, p99Hi      float64
	cpu               float64 // front CPU µs per request
	worstOther        float64
}

func summarize(runs []run) (summary, error) {
	var s summary
	if len(runs) == 0 {
		return s, errNoData
	}
	// With runs, none of these can fail.
	rps := field(runs, func(r run) float64 { return r.wrk.rps })
	p99 := field(runs, func(r run) float64 { return r.wrk.p99 })
	s.rps, _ = median(rps)
	s.rpsLo, s.rpsHi, _ = span(rps)
	s.p50, _ = median(field(runs, func(r run) float64 { return r.wrk.p50 }))
	s.p99, _ = median(p99)
	s.p99Lo, s.p99Hi, _ = span(p99)
	s.cpu, _ = median(field(runs, func(r run) float64 { return r.frontUS }))
	_, s.worstOther, _ = span(field(runs, func(r run) float64 { return r.otherPct }))
	return s, nil
}

// loadTable is the saturated-load table with the login row under it.
func loadTable(d *dataset) (string, error) {
	var b strings.Builder
	b.WriteString("| row | req/s (median) | req/s range | × bare | p50 ms | p99 ms | Δp99 vs bare | front CPU µs/req | Δ CPU vs bare | runs used | other load (worst run) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var base summary
	for _, row := range rows {
		runs := d.load[row.key]
		use := used(runs, d.otherMax)
		s, err := summarize(use)
		if err != nil {
			return "", fmt.Errorf("%s: no measured runs", row.label)
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f–%.0f | ", row.label, s.rps, s.rpsLo, s.rpsHi)
		if row.key == "bare" {
			base = s
			fmt.Fprintf(&b, "1 | %.2f | %.2f | — | %.1f | — | ", s.p50/1000, s.p99/1000, s.cpu)
		} else {
			x, err := pairedRatio(d.load["bare"], runs, d.otherMax)
			if err != nil {
				return "", fmt.Errorf("%s: %v", row.label, err)
			}
			fmt.Fprintf(&b, "%.3f | %.2f | %.2f | %+.2f ms | %.1f | %+.1f | ",
				x, s.p50/1000, s.p99/1000, (s.p99-base.p99)/1000, s.cpu, s.cpu-base.cpu)
		}
		fmt.Fprintf(&b, "%d/%d | %.1f %% |\n", len(use), len(runs), s.worstOther)
	}
	l := d.login
	fmt.Fprintf(&b, "| (5) POST /wecom/login (simulator as WeCom) | %.0f logins/s | %d logins, %d errors | — | %.2f | %.2f | — | %.1f | — | 1/1 | |",
		l.rps, l.logins, l.errors, l.p50/1000, l.p99/1000, l.frontUS)
	return b.String(), nil
}

// lightTable is the light-load table: every run counts, none is retried.
func lightTable(d *dataset) (string, error) {
	var b strings.Builder
	b.WriteString("| row (light load) | req/s | p50 ms | p99 ms | p99 range ms | Δp99 vs bare | other load (worst run) |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|")
	var base summary
	for _, row := range rows {
		s, err := summarize(d.light[row.key])
		if err != nil {
			return "", fmt.Errorf("%s: no light-load runs", row.label)
		}
		delta := "—"
		if row.key == "bare" {
			base = s
		} else {
			delta = fmt.Sprintf("%+.3f ms", (s.p99-base.p99)/1000)
		}
		fmt.Fprintf(&b, "\n| %s | %.0f | %.3f | %.3f | %.3f–%.3f | %s | %.1f %% |",
			row.label, s.rps, s.p50/1000, s.p99/1000, s.p99Lo/1000, s.p99Hi/1000, delta, s.worstOther)
	}
	return b.String(), nil
}

var (
	reBenchSuffix = regexp.MustCompile(`-\d+$`) // GOMAXPROCS
	reTestLog     = regexp.MustCompile(`^\s*bench_test\.go:\d+: (.*)$`)
)

// goBenchRows turns `go test -bench -benchmem` result lines into table rows.
func goBenchRows(log string) string {
	var b strings.Builder
	for _, line := range strings.Split(log, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := reBenchSuffix.ReplaceAllString(strings.TrimPrefix(f[0], "Benchmark"), "")
		unit := map[string]string{"ns/op": "—", "B/op": "—", "allocs/op": "—"}
		for i := 1; i < len(f); i++ {
			if _, ok := unit[f[i]]; ok {
				unit[f[i]] = f[i-1]
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, unit["ns/op"], unit["B/op"], unit["allocs/op"])
	}
	return b.String()
}

// testLogLines is what a benchmark logged (b.Logf), without the file:line prefix.
func testLogLines(log string) string {
	var b strings.Builder
	for _, line := range strings.Split(log, "\n") {
		if m := reTestLog.FindStringSubmatch(line); m != nil {
			b.WriteString(m[1] + "\n")
		}
	}
	return b.String()
}

func goSection(d *dataset) string {
	if len(d.goLogs) == 0 {
		return ""
	}
	s := "\n" + goTemplate1 + goBenchRows(d.goLogs["go.session.log"]+d.goLogs["go.protected.log"]) +
		goTemplate2 + testLogLines(d.goLogs["go.memory.log"]) + "```\n"
	if lines := testLogLines(d.goLogs["go.cluster.log"]); lines != "" {
		s += "\n" + clusterTemplate + lines + "```\n"
	}
	return s
}

const clusterTemplate = "## The cluster state on Redis\n\n" +
	"`go test -run '^$' -bench Redis200k -benchtime 50x ./module/internal/cluster/`: a real redis-server holding\n" +
	"200,000 live logouts spread over 24 h (targets: a new instance loads them in under 1 s; a poll costs under\n" +
	"5 ms CPU and 100 KB read; a logout reaches another instance within 10 s). CPU is this process's\n" +
	"(the gateway's side, Redis client included), not redis-server's.\n\n```\n"

const goTemplate1 = "## The middleware alone (Go benchmarks)\n\n" +
	"`go test -run '^$' -bench . -benchmem ./module/internal/session/ ./module/wecomauth/`: one request through\n" +
	"`(*wecomauth.Handler).ServeHTTP` with a no-op next handler, no network (`fresh-*`: with Caddy's\n" +
	"per-request preparation; the middleware's share is fresh-bearer − fresh-none).\n\n" +
	"| benchmark | ns/op | B/op | allocs/op |\n|---|---:|---:|---:|\n"

const goTemplate2 = "\n10,000 sessions × 1,000,000 requests (`go test -run '^$' -bench Memory10kSessions -benchtime 1000000x ./module/wecomauth/`):\n\n```\n"

var resultsTemplate = template.Must(template.New("results").Parse(`# wecomgate benchmark results

Produced by ` + "`bench/run.sh`" + ` (see [README](README.md) for what the rows mean and how to read them).

- date: {{.Date}}
- machine: {{.CPUS}} CPUs ({{.CPUModel}}), {{.Mem}} RAM, {{.KERNEL}}
- Go: {{.GO_VERSION}}; Caddy: {{.Caddy}}; wrk: {{.Wrk}}
- wecomgate commit: {{.COMMIT}}
- load: wrk -t{{.THREADS}} -c{{.CONNS}}, {{.DURATION}}s per run, {{.ROUNDS}} rounds with the rows interleaved, {{.WARMUP}}s warm-up per row;
  medians over the rounds. Logins: bench/loginbench, {{.LOGIN_CONNS}} connections, {{.LOGIN_DURATION}}s.
- load average just before the run: {{.LOAD_BEFORE}} (anything much above 0 means other work shared the CPUs)
- everything (wrk, the front Caddy, the upstream Caddy with backend and simulator) shares the same {{.CPUS}} CPUs:
  req/s is what is left for the proxy after the load generator and the backend took their share.
- every row sends the same request: a mini program's usual wx.request headers and a Bearer token (row 3:
  the token as a cookie instead); upstream keep-alive pools hold {{.Keepalive}} idle connections, so no row redials.

{{.Table}}

"× bare" is the median over the rounds of the row's req/s divided by row (1)'s in the same round (rows of a
round run back to back, so slow drifts of the machine cancel out). Row (1b) is stock Caddy adding the five
identity headers of SPEC §5 with fixed values, no authentication: the cost of the headers themselves, which
rows 2 and 3 also pay. "Δp99" is the p99 latency minus row (1)'s. "front CPU" is the
CPU time the front Caddy process (the proxies and the gateway) spent per request, from /proc: the
least noisy measure of what each row costs; "Δ CPU" is that minus row (1)'s. A login also cost the simulator (upstream process)
about {{.LoginSimUS}} µs of CPU. "other load" is the share of the machine's CPU time used by anything
but wrk and the two Caddy processes (/proc/stat), the worst of the runs used: above a few percent
something else was running and that row's req/s and latency are disturbed. Runs with more than
{{.OTHER_MAX}} % were made again after the rounds (at most {{.RETRIES}} times in all) and a row's figures come from its
undisturbed runs when it has any ("runs used": used/made).

Under light load ({{.LIGHT_CONNS}} connections, each pausing 2–6 ms between requests, {{.LIGHT_ROUNDS}} interleaved rounds of
{{.LIGHT_DURATION}}s per row, medians) the CPUs are mostly idle, so latency is what a request takes rather than how long it queued:

{{.Light}}
{{.GoSection}}
Whole run: {{.Seconds}} s of load{{if .ScaleSection}} (the scale rows below not included){{end}}.
{{.ScaleSection}}`))

// metaKeys are the meta entries results.md quotes as they are.
var metaKeys = []string{"CPUS", "KERNEL", "GO_VERSION", "COMMIT", "THREADS", "CONNS", "DURATION", "ROUNDS", "WARMUP",
	"LOGIN_CONNS", "LOGIN_DURATION", "LOAD_BEFORE", "OTHER_MAX", "RETRIES", "LIGHT_CONNS", "LIGHT_ROUNDS", "LIGHT_DURATION"}

// results is the whole of results.md.
func results(d *dataset) (string, error) {
	table, err := loadTable(d)
	if err != nil {
		return "", err
	}
	light, err := lightTable(d)
	if err != nil {
		return "", err
	}
	v := map[string]string{"Table": table, "Light": light, "GoSection": goSection(d), "ScaleSection": scaleSection(d.scale)}
	for _, k := range metaKeys {
		s, ok := d.meta[k]
		if !ok {
			return "", fmt.Errorf("meta: no %s", k)
		}
		v[k] = s
	}
	var nums [4]float64
	for i, k := range []string{"T0", "T1", "CONNS", "CLK_TCK"} {
		if nums[i], err = d.meta.num(k); err != nil {
			return "", err
		}
	}
	v["Date"] = time.Unix(int64(nums[0]), 0).UTC().Format("2006-01-02 15:04 UTC")
	v["Seconds"] = strconv.FormatFloat(nums[1]-nums[0], 'f', 0, 64)
	v["Keepalive"] = strconv.FormatFloat(nums[2]*2, 'f', -1, 64)
	v["LoginSimUS"] = fmt.Sprintf("%.0f", d.login.upstrUS)
	v["CPUModel"] = word(d.meta["CPU_MODEL"], -1)
	v["Caddy"] = word(d.meta["CADDY_VERSION"], 0) // "v2.11.9 h1:…"
	v["Wrk"] = word(d.meta["WRK_VERSION"], 1)     // "wrk debian/4.1.0-3+b2 [epoll] Copyright …"
	v["Mem"] = "unknown"
	if kb, err := strconv.ParseFloat(word(d.meta["MEMTOTAL"], 0), 64); err == nil { // "24641312 kB"
		v["Mem"] = fmt.Sprintf("%.1f GiB", kb/(1<<20))
	}
	var b strings.Builder
	if err := resultsTemplate.Execute(&b, v); err != nil {
		return "", err
	}
	return b.String(), nil
}

// word is the i-th word of s, all of s (trimmed) for i < 0, or "unknown".
func word(s string, i int) string {
	f := strings.Fields(s)
	switch {
	case i < 0 && len(f) > 0:
		return strings.Join(f, " ")
	case i >= 0 && i < len(f):
		return f[i]
	}
	return "unknown"
}
