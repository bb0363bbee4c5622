package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/results.golden.md")

// The whole of results.md from a fixed raw directory: two rounds, a
// disturbed run and its retry, light-load rounds, logins and Go benchmarks.
func TestResultsGolden(t *testing.T) {
	d, err := readDir("testdata/raw")
	if err != nil {
		t.Fatal(err)
	}
	got, err := results(d)
	if err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/results.golden.md"
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("results differ from %s (go test ./bench/report -update rewrites it):\n%s", golden, got)
	}
}

func TestMissingData(t *testing.T) {
	for name, c := range map[string]struct {
		remove []string
		msg    string
	}{
		"no meta":       {[]string{"meta"}, "meta"},
		"no login":      {[]string{"login.raw"}, "login.raw"},
		"no bare runs":  {[]string{"load.bare.1.raw", "load.bare.2.raw"}, "(1) bare reverse_proxy: no measured runs"},
		"no light runs": {[]string{"light.cookie.1.raw", "light.cookie.2.raw"}, "(3) wecom_auth, session cookie: no light-load runs"},
		"no forward":    {[]string{"load.forward.1.raw", "load.forward.2.raw"}, "(4) forward_auth → /wecom/auth: no measured runs"},
	} {
		dir := copyFixture(t)
		for _, f := range c.remove {
			os.Remove(filepath.Join(dir, f))
		}
		d, err := readDir(dir)
		if err == nil {
			_, err = results(d)
		}
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, c.msg)
		}
	}

	// Only retries left for a row: nothing to pair with the bare row.
	dir := copyFixture(t)
	for _, f := range []string{"load.bearer.1.raw", "load.bearer.2.raw"} {
		os.Remove(filepath.Join(dir, f))
	}
	d, err := readDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loadTable(d); err == nil || !strings.Contains(err.Error(), "no round in which both") {
		t.Errorf("retries only: err = %v", err)
	}

	// An empty directory, as after a run that stopped early.
	if _, err := readDir(t.TempDir()); err == nil {
		t.Error("empty directory: no error")
	}
}

func TestGoBenchRows(t *testing.T) {
	log := "goos: linux\n" +
		"BenchmarkOpen-2   \t  100\t  537.7 ns/op\t  160 B/op\t  2 allocs/op\n" +
		"BenchmarkProtected/bearer-parallel-16  \t 100\t 2613 ns/op\t 801 B/op\t 5 allocs/op\n" +
		"BenchmarkPlain \t 100\t 12 ns/op\n" + // GOMAXPROCS=1: no suffix; no -benchmem
		"PASS\n"
	want := "| Open | 537.7 | 160 | 2 |\n" +
		"| Protected/bearer-parallel | 2613 | 801 | 5 |\n" +
		"| Plain | 12 | — | — |\n"
	if got := goBenchRows(log); got != want {
		t.Errorf("goBenchRows =\n%s\nwant\n%s", got, want)
	}
}

// The cluster benchmark's findings get a section of their own, and none
// when it did not run (no redis-server).
func TestGoSectionShowsTheClusterBenchmark(t *testing.T) {
	d := &dataset{goLogs: map[string]string{"go.cluster.log": "BenchmarkRedis200k-2 \t 50\t 1 ns/op\n" +
		"    bench_test.go:106: Redis, 200000 live logouts: a new instance loads them in 491ms\n"}}
	got := goSection(d)
	if !strings.Contains(got, "## The cluster state on Redis") || !strings.Contains(got, "\nRedis, 200000 live logouts: a new instance loads them in 491ms\n") {
		t.Errorf("goSection =\n%s", got)
	}
	d.goLogs["go.cluster.log"] = "--- SKIP: BenchmarkRedis200k\n"
	if strings.Contains(goSection(d), "cluster state") {
		t.Error("a section for a benchmark that skipped")
	}
}
