package main

// Issue 15's rows from bench/scale.sh's output (scale.log in the raw
// directory): one RESULT line per row,
//
//	RESULT <row> at=<unix s> load=<1>/<5>/<15> [instances=… limit=…] <scalebench's fields>
//
// with row cluster, fast, slow (the latency row's two halves) or over.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// scaleRun is one RESULT line of scale.sh.
type scaleRun struct {
	row string
	at  time.Time
	// load is the load average when the row started, "1 5 15".
	load string
	f    map[string]float64
}

func (r scaleRun) n(key string) float64 { return r.f[key] }

// scaleNeeds are the fields each row's figures are made of.
var scaleNeeds = map[string][]string{
	"cluster": {"users", "seconds", "requests", "failed", "user_get", "per_user_per_recheck", "limited_45009", "window_s"},
	"fast":    {"users", "seconds", "requests", "failed", "p99_us", "max_us"},
	"slow":    {"users", "seconds", "requests", "failed", "p99_us", "max_us", "slow_100ms"},
	"over": {"users", "seconds", "requests", "failed", "limited_45009", "window_s", "quota", "user_get", "user_get_max_window",
		"login_rate", "logins", "logins_ok", "logins_503", "logins_failed", "logins_ok_per_s", "login_reserve_per_s", "login_p99_us"},
}

// parseScale reads scale.sh's RESULT lines; other lines are ignored.
func parseScale(text string) ([]scaleRun, error) {
	var runs []scaleRun
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(line, "RESULT ")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("scale.log: a RESULT line with nothing in it")
		}
		r := scaleRun{row: fields[0], f: map[string]float64{}}
		need, known := scaleNeeds[r.row]
		if !known {
			return nil, fmt.Errorf("scale.log: unknown row %q", r.row)
		}
		for _, kv := range fields[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return nil, fmt.Errorf("scale.log: row %s: %q is not key=value", r.row, kv)
			}
			switch k {
			case "load":
				r.load = strings.ReplaceAll(v, "/", " ")
			case "at":
				s, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("scale.log: row %s: at=%q is not unix seconds", r.row, v)
				}
				r.at = time.Unix(s, 0).UTC()
			default:
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					r.f[k] = f
				}
			}
		}
		if r.at.IsZero() || r.load == "" {
			return nil, fmt.Errorf("scale.log: row %s: no at= or load=", r.row)
		}
		for _, k := range need {
			if _, ok := r.f[k]; !ok {
				return nil, fmt.Errorf("scale.log: row %s: no number %s=", r.row, k)
			}
		}
		runs = append(runs, r)
	}
	return runs, nil
}

func readScale(dir string) ([]scaleRun, error) {
	b, err := os.ReadFile(filepath.Join(dir, "scale.log"))
	if err != nil {
		return nil, err
	}
	return parseScale(string(b))
}

func yesNo(ok bool) string {
	if ok {
		return "**yes**"
	}
	return "**no**"
}

// loaded is the note a row's verdict gets when the machine's load average
// (1 min) was above two per CPU when one of its runs started: other work
// then had most of the CPUs, and latencies above all say little.
func loaded(runs ...scaleRun) string {
	for _, r := range runs {
		cpus := r.n("cpus")
		l1, err := strconv.ParseFloat(strings.Fields(r.load)[0], 64)
		if cpus > 0 && err == nil && l1 > 2*cpus {
			return fmt.Sprintf(" (as measured, on a loaded machine: load %.0f on %.0f CPUs)", l1, cpus)
		}
	}
	return ""
}

// scaleRows are the table rows of the runs, in the order they ran; a
// latency row is its fast and slow halves together (the latest fast run
// before each slow one).
func scaleRows(runs []scaleRun) []string {
	var out []string
	var fast *scaleRun
	when := func(r scaleRun) string { return r.at.Format("2006-01-02 15:04") }
	for i := range runs {
		r := runs[i]
		switch r.row {
		case "cluster":
			limit := ""
			if l := r.n("limit"); l > 0 {
				limit = fmt.Sprintf(", simulator user/get limit %.0f per %gs", l, r.n("window_s"))
			}
			ok := r.n("per_user_per_recheck") <= 1.1 && r.n("limited_45009") == 0
			out = append(out, fmt.Sprintf("| 1. cluster: %.0f users, %s, %.0f s%s | %s | %s | **%.3f** user/get per user per recheck (%.0f calls), **%.0f** 45009; %.0f requests, %.0f failed | ≤ 1.1; 0 | %s |",
				r.n("users"), gateways(r), r.n("seconds"), limit, when(r), r.load,
				r.n("per_user_per_recheck"), r.n("user_get"), r.n("limited_45009"), r.n("requests"), r.n("failed"), yesNo(ok)+loaded(r)))
		case "fast":
			fast = &runs[i]
		case "slow":
			if fast == nil {
				out = append(out, fmt.Sprintf("| 2. latency: %.0f users | %s | %s | no fast run to compare with | within 5 ms | — |", r.n("users"), when(r), r.load))
				continue
			}
			d := (r.n("p99_us") - fast.n("p99_us")) / 1000
			out = append(out, fmt.Sprintf("| 2. latency: %.0f users, %s, %.0f s each, fast user/get then 300 ms | %s | %s; %s | p99 %.1f ms fast, %.1f ms slow (**%+.1f ms**); slowest %.1f ms; %.0f requests ≥ 100 ms; %.0f failed | within 5 ms | %s |",
				r.n("users"), gateways(r), r.n("seconds"), when(*fast), fast.load, r.load, fast.n("p99_us")/1000, r.n("p99_us")/1000, d,
				r.n("max_us")/1000, r.n("slow_100ms"), fast.n("failed")+r.n("failed"), yesNo(d <= 5)+loaded(*fast, r)))
			fast = nil
		case "over":
			ok := r.n("limited_45009") == 0 && r.n("failed") == 0 && r.n("logins_503") == 0 && r.n("logins_failed") == 0
			out = append(out, fmt.Sprintf("| 3. over budget: %.0f users, %s (%.0f user/get per %gs wanted), quota %.0f per %gs, new users signing in at %g/s, %.0f s | %s | %s | **%.0f** 45009; **%.0f** of %.0f requests failed; logins **%.0f of %.0f** served (%.2f/s; %.0f answered 503, %.0f failed otherwise; p99 %.1f ms), the budget leaving logins %.2f/s while rechecks take their 90 %%; user/get %.0f in the busiest %gs (quota %.0f) | 0; 0; no 503 | %s |",
				r.n("users"), gateways(r), r.n("users"), r.n("window_s"), r.n("quota"), r.n("window_s"), r.n("login_rate"), r.n("seconds"),
				when(r), r.load, r.n("limited_45009"), r.n("failed"), r.n("requests"), r.n("logins_ok"), r.n("logins"), r.n("logins_ok_per_s"),
				r.n("logins_503"), r.n("logins_failed"), r.n("login_p99_us")/1000, r.n("login_reserve_per_s"),
				r.n("user_get_max_window"), r.n("window_s"), r.n("quota"), yesNo(ok)+loaded(r)))
		}
	}
	if fast != nil {
		out = append(out, fmt.Sprintf("| 2. latency: %.0f users | %s | %s | p99 %.1f ms with a fast user/get; no slow run | within 5 ms | — |",
			fast.n("users"), when(*fast), fast.load, fast.n("p99_us")/1000))
	}
	return out
}

// gateways says how many gateways ran the row (scale.sh's instances=).
func gateways(r scaleRun) string {
	n, ok := r.f["instances"]
	switch {
	case !ok:
		return "gateways unknown"
	case n == 1:
		return "1 gateway"
	}
	return fmt.Sprintf("%.0f gateways", n)
}

// scaleSection is results.md's section of the scale rows, or "" without
// any.
func scaleSection(runs []scaleRun) string {
	rows := scaleRows(runs)
	if len(rows) == 0 {
		return ""
	}
	return "\n" + scaleTemplate + strings.Join(rows, "\n") + "\n"
}

const scaleTemplate = "## WeCom at scale (issue 15)\n\n" +
	"`bench/scale.sh` (bench/scalebench drives the load): one Caddy with the WeCom simulator and the echo backend,\n" +
	"gateway Caddies sharing one `storage file_system` directory, `recheck` the rows' window (10 s by default), all\n" +
	"on 127.0.0.1 and on the same CPUs as everything above. The users sign in (user i at gateway i mod n), then each\n" +
	"makes a protected request every second at its own phase, round-robin over the gateways. Counts are the\n" +
	"simulator's over the measured window only. Row 2 measures after 12 s of the same load (its users steady).\n" +
	"Row 3: the gateways' `quota` (every API) is a third of what the users' rechecks want and the simulator's\n" +
	"`frequency_limit` is the same, so any overspend is a 45009; new users (each once, no retry) sign in meanwhile;\n" +
	"\"the budget leaving logins\" is what the priorities leave them while request-path rechecks take their 90 % of\n" +
	"each instance's share. The load average is the machine's when the row (or each half of row 2) started: the\n" +
	"load generator and four Caddies share its CPUs, and a verdict from a machine loaded above two per CPU says so.\n\n" +
	"| row | started (UTC) | load average | figures | target | met |\n|---|---|---|---|---|---|\n"
