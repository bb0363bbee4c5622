// Command report does bench/run.sh's arithmetic. The script only starts
// processes and keeps what they print; report reads that and computes
// req/s, latency and CPU figures, medians and paired ratios, and writes the
// tables and bench/results.md.
//
//	report check DIR/load.bearer.1.raw   one run's progress line; exit 1 if it had errors, 3 if disturbed
//	report tables DIR                    the two HTTP tables (Markdown)
//	report results DIR                   the whole of results.md
//	report scale FILE                    the scale rows' section alone, from bench/scale.sh's output
//
// DIR is the raw directory run.sh fills (kept with KEEP_TMP=1, as
// $TMP/raw):
//
//	meta                    KEY=value: the knobs, CLK_TCK, facts about the machine, T0 and T1
//	load.ROW.ROUND.raw      a measured wrk run (ROUND 1, 2, … or R1, R2, … for retries)
//	light.ROW.ROUND.raw     a light-load wrk run
//	login.raw               bench/loginbench's run
//	go.*.log                `go test -bench` output, when the Go benchmarks ran
//	scale.log               bench/scale.sh's output (RESULT lines of issue 15's rows), when they ran
//
// A .raw file is what the program printed (wrk --latency, or loginbench's
// RESULT line), between @before and @after lines holding /proc/PID/stat of
// the two Caddy processes and /proc/stat's cpu line as they were, and, for
// wrk, an "@wrk-cpu USER SYS" line from bash's time.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

const usage = `usage:
  report check FILE.raw   print one run's progress line; exit 1 if it had errors, 3 if it was disturbed
  report tables DIR       print the HTTP tables of a raw directory
  report results DIR      print results.md for a raw directory
  report scale FILE       print the scale rows' section of results.md from bench/scale.sh's output
`

// errDisturbed marks a run during which other programs took more than
// OTHER_MAX % of the machine: run.sh makes it again if it may.
var errDisturbed = errors.New("disturbed")

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "-h" || os.Args[1] == "--help") {
		fmt.Print(usage)
		return
	}
	if len(os.Args) != 3 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	arg := os.Args[2]
	var out string
	var err error
	switch os.Args[1] {
	case "check":
		// The progress line goes with the script's other messages, on stderr.
		var line string
		if line, err = check(arg); line != "" {
			fmt.Fprintln(os.Stderr, line)
		}
		if errors.Is(err, errDisturbed) {
			os.Exit(3)
		}
	case "tables":
		var d *dataset
		if d, err = readDir(arg); err == nil {
			out, err = tables(d)
		}
	case "results":
		var d *dataset
		if d, err = readDir(arg); err == nil {
			out, err = results(d)
		}
	case "scale":
		var b []byte
		if b, err = os.ReadFile(arg); err == nil {
			var runs []scaleRun
			if runs, err = parseScale(string(b)); err == nil && len(runs) == 0 {
				err = fmt.Errorf("%s: no RESULT lines", arg)
			}
			out = strings.TrimPrefix(scaleSection(runs), "\n")
		}
	default:
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "report: %v\n", err)
		os.Exit(1)
	}
	fmt.Print(out)
}

// check reads one run and returns its progress line. The error is
// errDisturbed for a run that is sound but disturbed, or why it is
// unusable: a run with any failed request measured something else.
func check(path string) (string, error) {
	m, err := readMeta(filepath.Dir(path))
	if err != nil {
		return "", err
	}
	tick, err := m.num("CLK_TCK")
	if err != nil {
		return "", err
	}
	otherMax, err := m.num("OTHER_MAX")
	if err != nil {
		return "", err
	}
	r, err := readRun(path, tick)
	if err != nil {
		return "", err
	}
	if r.wrk.non2xx != 0 || r.wrk.socketErrors != 0 {
		return "", fmt.Errorf("row %s round %s: %d non-2xx answers, %d socket errors — the numbers would be meaningless",
			r.row, r.round, r.wrk.non2xx, r.wrk.socketErrors)
	}
	var line string
	if r.kind == "load" {
		line = fmt.Sprintf("  round %-2s %-32s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  front CPU %5.1f µs/req  other load %4.1f%%",
			r.round, label(r.row), r.wrk.rps, r.wrk.p50/1000, r.wrk.p99/1000, r.frontUS, r.otherPct)
	} else {
		line = fmt.Sprintf("  light %-2s %-32s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  other load %4.1f%%",
			r.round, label(r.row), r.wrk.rps, r.wrk.p50/1000, r.wrk.p99/1000, r.otherPct)
	}
	if r.disturbed(otherMax) {
		return line + "  (disturbed)", errDisturbed
	}
	return line, nil
}

func tables(d *dataset) (string, error) {
	t, err := loadTable(d)
	if err != nil {
		return "", err
	}
	l, err := lightTable(d)
	if err != nil {
		return "", err
	}
	return "\n" + t + "\n\n" + l + "\n", nil
}
