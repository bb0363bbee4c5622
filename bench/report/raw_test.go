package main

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProcTicks(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "@before front 4242 (my (odd) caddy) S 1 1 1 0 -1 4194560 11429 0 2 0 660 276 0 0 20 0 12 0 301169"
	if got, err := procTicks(line); err != nil || got != 936 {
		t.Errorf("procTicks = %v, %v; want 660+276", got, err)
	}
	for _, bad := range []string{"@before front", "@before front 1 (caddy) S 1 2", "@before front 1 (caddy) S 1 1 1 0 -1 0 0 0 0 0 x 2 0"} {
		if _, err := procTicks(bad); err == nil {
			t.Errorf("procTicks(%q): no error", bad)
		}
	}
	busy, all, err := statTicks(strings.Fields("100 5 50 800 40 3 2 0 7 0"))
	if err != nil || all != 1000 || busy != 160 {
		t.Errorf("statTicks = %v, %v, %v; want busy 160 of 1000 (guest is part of user)", busy, all, err)
	}
}

// copyFixture copies testdata/raw to a temporary directory for a test to
// spoil.
func copyFixture(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	names, err := filepath.Glob("testdata/raw/*")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range names {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func edit(t *testing.T, path, old, new string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s has no %q", path, old)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadRun(t *testing.T) {
	r, err := readRun("testdata/raw/load.bare.1.raw", 100)
	if err != nil {
		t.Fatal(err)
	}
	if r.row != "bare" || r.round != "1" || r.wrk.requests != 30000 || r.wrk.rps != 6000 {
		t.Errorf("readRun = %+v", r)
	}
	// The fixture spent 651 front ticks and 150 upstream ticks on 30000
	// requests, and 10 ticks of 1000 went to other programs.
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	if !near(r.frontUS, 217) || !near(r.upstrUS, 50) || !near(r.otherPct, 1) {
		t.Errorf("front %v µs, upstream %v µs, other %v %%; want 217, 50, 1", r.frontUS, r.upstrUS, r.otherPct)
	}
}

func TestCheck(t *testing.T) {
	dir := copyFixture(t)
	line, err := check(filepath.Join(dir, "load.bearer.2.raw"))
	if err != nil || !strings.Contains(line, "(2) wecom_auth, Bearer session") || !strings.Contains(line, "5600 req/s") {
		t.Errorf("check = %q, %v", line, err)
	}
	line, err = check(filepath.Join(dir, "load.bearer.1.raw")) // 9 % other load
	if !errors.Is(err, errDisturbed) || !strings.Contains(line, "disturbed") {
		t.Errorf("disturbed run: check = %q, %v", line, err)
	}

	p := filepath.Join(dir, "load.cookie.1.raw")
	edit(t, p, "Requests/sec:", "  Non-2xx or 3xx responses: 3\nRequests/sec:")
	if _, err := check(p); err == nil || !strings.Contains(err.Error(), "3 non-2xx answers, 0 socket errors") {
		t.Errorf("run with errors: err = %v", err)
	}
}

func TestReadRunBroken(t *testing.T) {
	dir := copyFixture(t)
	for name, c := range map[string]struct{ old, new, msg string }{
		"no after":      {"@after cpu", "@later cpu", "unknown line"},
		"no wrk time":   {"@wrk-cpu", "#wrk-cpu", "no @wrk-cpu line"},
		"zero requests": {"30000 requests in", "0 requests in", "no requests"},
		"bad counter":   {"@before cpu  ", "@before cpu  x", "@before cpu"},
	} {
		p := filepath.Join(dir, "load.bare.1.raw")
		orig, _ := os.ReadFile(p)
		edit(t, p, c.old, c.new)
		if _, err := readRun(p, 100); err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: err = %v, want one mentioning %q", name, err, c.msg)
		}
		os.WriteFile(p, orig, 0o644)
	}
	if _, err := readRun(filepath.Join(dir, "load.nobody.1.raw"), 100); err == nil || !strings.Contains(err.Error(), "unknown row") {
		t.Errorf("unknown row: err = %v", err)
	}
}
