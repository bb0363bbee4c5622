package main

import (
	"strings"
	"testing"
)

func TestParseScale(t *testing.T) {
	runs, err := readScale("testdata/raw")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 4 {
		t.Fatalf("%d runs, want 4", len(runs))
	}
	over := runs[3]
	if over.row != "over" || over.load != "2.49 1.40 1.66" || over.at.Unix() != 1795782590 ||
		over.n("logins_ok") != 60 || over.n("quota") != 100 || over.n("login_reserve_per_s") != 1.2 {
		t.Errorf("over = %+v", over)
	}
	rows := scaleRows(runs)
	if len(rows) != 3 {
		t.Fatalf("%d rows, want cluster, latency (fast and slow together), over:\n%s", len(rows), strings.Join(rows, "\n"))
	}
	for i, want := range []string{"**1.000** user/get per user per recheck", "(**+4.2 ms**)", "logins **60 of 60** served"} {
		if !strings.Contains(rows[i], want) || !strings.HasPrefix(verdict(rows[i]), "**yes**") {
			t.Errorf("row %d = %s\nwant %q and met", i, rows[i], want)
		}
	}
	// The fixture's fast half started at a load of 5.10 on 2 CPUs.
	if v := verdict(rows[1]); v != "**yes** (as measured, on a loaded machine: load 5 on 2 CPUs)" {
		t.Errorf("latency verdict %q", v)
	}
	if v := verdict(rows[0]); v != "**yes**" {
		t.Errorf("cluster verdict %q (load 1.20 on 2 CPUs)", v)
	}
}

// verdict is a table row's last cell.
func verdict(row string) string {
	cells := strings.Split(strings.TrimSuffix(row, " |"), " | ")
	return cells[len(cells)-1]
}

// Each target decides its row's "met".
func TestScaleTargets(t *testing.T) {
	base, err := readScale("testdata/raw")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		run   int // which run to spoil
		key   string
		value float64
		row   int
	}{
		"cluster over 1.1":     {0, "per_user_per_recheck", 1.2, 0},
		"cluster 45009":        {0, "limited_45009", 1, 0},
		"latency +5.1 ms":      {2, "p99_us", 25400, 1},
		"over: a 45009":        {3, "limited_45009", 3, 2},
		"over: a failed":       {3, "failed", 1, 2},
		"over: a login 503":    {3, "logins_503", 1, 2},
		"over: a login failed": {3, "logins_failed", 1, 2},
	} {
		runs := make([]scaleRun, len(base))
		for i, r := range base {
			runs[i] = r
			runs[i].f = map[string]float64{}
			for k, v := range r.f {
				runs[i].f[k] = v
			}
		}
		runs[c.run].f[c.key] = c.value
		rows := scaleRows(runs)
		if !strings.HasPrefix(verdict(rows[c.row]), "**no**") {
			t.Errorf("%s: %s", name, rows[c.row])
		}
		for i, r := range rows {
			if i != c.row && !strings.HasPrefix(verdict(r), "**yes**") {
				t.Errorf("%s: row %d: %s", name, i, r)
			}
		}
	}
}

func TestParseScaleBroken(t *testing.T) {
	const over = "RESULT over at=1795782590 load=2.49/1.40/1.66 users=300 seconds=60 requests=18000 failed=0 limited_45009=0 window_s=10 quota=100 user_get=528 user_get_max_window=98 login_rate=1 logins=60 logins_ok=60 logins_503=0 logins_failed=0 logins_ok_per_s=1 login_reserve_per_s=1.2 login_p99_us=23309"
	if runs, err := parseScale("machine: …\n" + over + "\n"); err != nil || len(runs) != 1 {
		t.Fatalf("parseScale = %v, %v", runs, err)
	}
	for name, c := range map[string]struct{ line, msg string }{
		"unknown row":   {strings.Replace(over, "over", "under", 1), `unknown row "under"`},
		"empty":         {"RESULT ", "nothing in it"},
		"no at":         {strings.Replace(over, "at=1795782590 ", "", 1), "no at= or load="},
		"bad at":        {strings.Replace(over, "at=1795782590", "at=yesterday", 1), "not unix seconds"},
		"no load":       {strings.Replace(over, "load=2.49/1.40/1.66 ", "", 1), "no at= or load="},
		"missing field": {strings.Replace(over, "logins_503=0 ", "", 1), "no number logins_503="},
		"not a number":  {strings.Replace(over, "logins_503=0", "logins_503=none", 1), "no number logins_503="},
		"not key=value": {over + " stray", `"stray" is not key=value`},
	} {
		if _, err := parseScale(c.line + "\n"); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, c.msg)
		}
	}
	// A latency row with only one half says so rather than judging.
	runs, _ := parseScale(over + "\n")
	runs[0].row = "fast"
	runs[0].f["p99_us"], runs[0].f["max_us"] = 20300, 90000
	if rows := scaleRows(runs); len(rows) != 1 || !strings.Contains(rows[0], "no slow run") {
		t.Errorf("fast alone: %v", rows)
	}
}

// Without scale.log results.md has no scale section; with it, the section
// comes last.
func TestResultsScaleSection(t *testing.T) {
	dir := copyFixture(t)
	d, err := readDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := results(d)
	if i := strings.Index(got, "## WeCom at scale (issue 15)"); i < 0 || strings.Contains(got[i:], "## The middleware") {
		t.Errorf("no scale section at the end:\n%s", got)
	}
	edit(t, dir+"/scale.log", "RESULT over", "RESULT under")
	if _, err := readDir(dir); err == nil || !strings.Contains(err.Error(), "unknown row") {
		t.Errorf("a broken scale.log: err = %v", err)
	}
	d.scale = nil
	if got, _ := results(d); strings.Contains(got, "WeCom at scale") || strings.Contains(got, "scale rows") {
		t.Errorf("a scale section without scale.log:\n%s", got)
	}
}
