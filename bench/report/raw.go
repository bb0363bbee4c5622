package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// The rows, in table order. run.sh names its raw files with the keys.
var rows = []struct{ key, label string }{
	{"bare", "(1) bare reverse_proxy"},
	{"headers", "(1b) bare + 5 identity headers"},
	{"bearer", "(2) wecom_auth, Bearer session"},
	{"cookie", "(3) wecom_auth, session cookie"},
	{"forward", "(4) forward_auth → /wecom/auth"},
}

func label(key string) string {
	for _, r := range rows {
		if r.key == key {
			return r.label
		}
	}
	return key
}

// meta is run.sh's KEY=value file: the knobs of the run and facts about
// the machine, taken when the run started.
type meta map[string]string

func readMeta(dir string) (meta, error) {
	b, err := os.ReadFile(filepath.Join(dir, "meta"))
	if err != nil {
		return nil, err
	}
	m := meta{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			m[k] = v
		}
	}
	return m, nil
}

func (m meta) num(key string) (float64, error) {
	v, ok := m[key]
	if !ok {
		return 0, fmt.Errorf("meta: no %s", key)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return 0, fmt.Errorf("meta: %s=%q is not a number", key, v)
	}
	return f, nil
}

// counters are the @ lines run.sh writes around a run: user+system clock
// ticks of the two Caddy processes (/proc/PID/stat), the machine's busy
// and total ticks (/proc/stat), before and after, and wrk's own CPU
// seconds (bash's time).
type counters struct {
	front, upstream, busy, all [2]float64 // [0] before, [1] after
	wrkSeconds                 float64
	seen                       map[string]bool
}

// splitRaw separates a raw file into the counters and what the measuring
// program printed (every line not starting with @).
func splitRaw(text string) (counters, string, error) {
	c := counters{seen: map[string]bool{}}
	var out strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "@") {
			out.WriteString(line + "\n")
			continue
		}
		f := strings.Fields(line)
		if f[0] == "@wrk-cpu" {
			for _, s := range f[1:] {
				v, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return c, "", fmt.Errorf("%q: %v", line, err)
				}
				c.wrkSeconds += v
			}
			c.seen["wrk-cpu"] = true
			continue
		}
		i := slices.Index([]string{"@before", "@after"}, f[0])
		if i < 0 || len(f) < 2 {
			return c, "", fmt.Errorf("unknown line %q", line)
		}
		var err error
		switch f[1] {
		case "front":
			c.front[i], err = procTicks(line)
		case "upstream":
			c.upstream[i], err = procTicks(line)
		case "cpu":
			c.busy[i], c.all[i], err = statTicks(f[2:])
		default:
			err = errors.New("unknown counter")
		}
		if err != nil {
			return c, "", fmt.Errorf("%q: %v", line, err)
		}
		c.seen[f[0][1:]+" "+f[1]] = true
	}
	return c, out.String(), nil
}

func (c counters) need(names ...string) error {
	for _, n := range names {
		if !c.seen[n] {
			return fmt.Errorf("no @%s line", n)
		}
	}
	return nil
}

// procTicks reads utime + stime (fields 14 and 15) of a /proc/PID/stat
// line. The command name, field 2, is in parentheses and may hold spaces,
// so fields are counted from the last ')'.
func procTicks(line string) (float64, error) {
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0, errors.New("not a /proc/PID/stat line")
	}
	f := strings.Fields(line[i+1:]) // f[0] is field 3
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat line")
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	s, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return u + s, nil
}

// statTicks reads /proc/stat's cpu line (user nice system idle iowait irq
// softirq steal …): all is the sum of the eight, busy all but idle and
// iowait. guest time is already counted in user.
func statTicks(f []string) (busy, all float64, err error) {
	if len(f) < 8 {
		return 0, 0, errors.New("short cpu line")
	}
	var v [8]float64
	for i := range v {
		if v[i], err = strconv.ParseFloat(f[i], 64); err != nil {
			return 0, 0, err
		}
		all += v[i]
	}
	return all - v[3] - v[4], all, nil
}

// run is one wrk run and what it cost.
type run struct {
	name             string // the raw file's, for messages
	kind, row, round string // from the name: load.bearer.3.raw, light.bare.1.raw, load.cookie.R1.raw
	wrk              wrkResult
	frontUS, upstrUS float64 // CPU µs per request of the front and upstream Caddy
	otherPct         float64 // % of the machine's CPU used by anything but wrk and the two Caddy processes
}

func (r run) disturbed(otherMax float64) bool { return r.otherPct > otherMax }

var reRunName = regexp.MustCompile(`^(load|light)\.([a-z]+)\.(\d+|R\d+)\.raw$`)

// readRun reads one raw wrk run. tick is the clock ticks per second of
// /proc's counters.
func readRun(path string, tick float64) (run, error) {
	name := filepath.Base(path)
	m := reRunName.FindStringSubmatch(name)
	if m == nil {
		return run{}, fmt.Errorf("%s: not a run's name (load|light.ROW.ROUND.raw)", name)
	}
	r := run{name: name, kind: m[1], row: m[2], round: m[3]}
	if label(r.row) == r.row {
		return r, fmt.Errorf("%s: unknown row %q", name, r.row)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	c, out, err := splitRaw(string(b))
	if err == nil {
		err = c.need("before front", "before upstream", "before cpu", "after front", "after upstream", "after cpu", "wrk-cpu")
	}
	if err == nil {
		r.wrk, err = parseWrk(out)
	}
	if err == nil && (r.wrk.requests == 0 || r.wrk.rps <= 0) {
		err = errors.New("wrk completed no requests")
	}
	if err != nil {
		return r, fmt.Errorf("%s: %v", name, err)
	}
	sec := func(v [2]float64) float64 { return (v[1] - v[0]) / tick }
	n := float64(r.wrk.requests)
	r.frontUS = sec(c.front) * 1e6 / n
	r.upstrUS = sec(c.upstream) * 1e6 / n
	if all := sec(c.all); all > 0 {
		other := sec(c.busy) - sec(c.front) - sec(c.upstream) - c.wrkSeconds
		r.otherPct = max(0, 100*other/all)
	}
	return r, nil
}

// login is bench/loginbench's run: its RESULT line and the CPU the two
// Caddy processes spent meanwhile.
type login struct {
	logins, errors   int64
	rps, p50, p99    float64 // p50, p99 in µs
	frontUS, upstrUS float64 // CPU µs per login
}

func readLogin(path string, tick float64) (login, error) {
	var l login
	b, err := os.ReadFile(path)
	if err != nil {
		return l, err
	}
	c, out, err := splitRaw(string(b))
	if err == nil {
		err = c.need("before front", "before upstream", "after front", "after upstream")
	}
	if err != nil {
		return l, fmt.Errorf("%s: %v", filepath.Base(path), err)
	}
	kv := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "RESULT "); ok {
			for _, f := range strings.Fields(rest) {
				k, v, _ := strings.Cut(f, "=")
				kv[k] = v
			}
		}
	}
	get := func(k string) float64 {
		v, e := strconv.ParseFloat(kv[k], 64)
		if e != nil && err == nil {
			err = fmt.Errorf("%s: no number %s= in loginbench's RESULT line", filepath.Base(path), k)
		}
		return v
	}
	l.logins, l.errors = int64(get("logins")), int64(get("errors"))
	l.rps, l.p50, l.p99 = get("rps"), get("p50_us"), get("p99_us")
	if err == nil && l.logins == 0 {
		err = fmt.Errorf("%s: no logins", filepath.Base(path))
	}
	if err != nil {
		return l, err
	}
	n := float64(l.logins)
	l.frontUS = (c.front[1] - c.front[0]) / tick * 1e6 / n
	l.upstrUS = (c.upstream[1] - c.upstream[0]) / tick * 1e6 / n
	return l, nil
}

// dataset is a whole raw directory.
type dataset struct {
	meta        meta
	otherMax    float64
	load, light map[string][]run // by row key
	login       login
	goLogs      map[string]string // go.session.log, …: absent without the Go benchmarks
	scale       []scaleRun        // scale.log: absent without bench/scale.sh's rows
}

func readDir(dir string) (*dataset, error) {
	m, err := readMeta(dir)
	if err != nil {
		return nil, err
	}
	tick, err := m.num("CLK_TCK")
	if err != nil {
		return nil, err
	}
	d := &dataset{meta: m, load: map[string][]run{}, light: map[string][]run{}, goLogs: map[string]string{}}
	if d.otherMax, err = m.num("OTHER_MAX"); err != nil {
		return nil, err
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.raw"))
	if err != nil {
		return nil, err
	}
	for _, p := range names {
		if filepath.Base(p) == "login.raw" {
			continue
		}
		r, err := readRun(p, tick)
		if err != nil {
			return nil, err
		}
		if r.kind == "load" {
			d.load[r.row] = append(d.load[r.row], r)
		} else {
			d.light[r.row] = append(d.light[r.row], r)
		}
	}
	if d.login, err = readLogin(filepath.Join(dir, "login.raw"), tick); err != nil {
		return nil, err
	}
	if d.scale, err = readScale(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, name := range []string{"go.session.log", "go.protected.log", "go.memory.log", "go.cluster.log"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err == nil {
			d.goLogs[name] = string(b)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return d, nil
}
