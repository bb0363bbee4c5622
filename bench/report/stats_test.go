package main

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{7}, 7},
		{[]float64{3, 1, 2}, 2},
		{[]float64{5, 1, 4, 2, 3}, 3},
		{[]float64{4, 1}, 2.5},
		{[]float64{10, 40, 20, 30}, 25}, // mean of the middle two, after sorting
		{[]float64{2, 2, 2, 9}, 2},
	} {
		in := slices.Clone(c.in)
		got, err := median(in)
		if err != nil || got != c.want {
			t.Errorf("median(%v) = %v, %v; want %v", c.in, got, err, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("median reordered its argument: %v", in)
		}
	}
	if _, err := median(nil); !errors.Is(err, errNoData) {
		t.Errorf("median(nil): err = %v, want errNoData", err)
	}
	if _, _, err := span(nil); !errors.Is(err, errNoData) {
		t.Errorf("span(nil): err = %v, want errNoData", err)
	}
}

func fakeRun(round string, rps, other float64) run {
	return run{round: round, wrk: wrkResult{rps: rps, requests: 1}, otherPct: other}
}

func TestPairedRatio(t *testing.T) {
	bare := []run{fakeRun("1", 1000, 0), fakeRun("2", 800, 0), fakeRun("3", 1000, 0), fakeRun("R1", 50, 0)}
	for _, c := range []struct {
		name string
		row  []run
		want float64
	}{
		{"odd count", []run{fakeRun("1", 900, 0), fakeRun("2", 760, 0), fakeRun("3", 990, 0)}, 0.95},
		// Pairs by round, not by position: a median of the raw req/s (900)
		// over bare's (1000) would say 0.9.
		{"even count", []run{fakeRun("3", 900, 0), fakeRun("1", 990, 0)}, (0.9 + 0.99) / 2},
		{"retries have no partner", []run{fakeRun("1", 900, 0), fakeRun("R1", 5000, 0)}, 0.9},
		{"disturbed rounds left out", []run{fakeRun("1", 500, 30), fakeRun("2", 760, 0), fakeRun("3", 980, 0)}, (0.95 + 0.98) / 2},
		{"all disturbed: all rounds", []run{fakeRun("1", 500, 30), fakeRun("2", 720, 30), fakeRun("3", 700, 30)}, 0.7},
	} {
		got, err := pairedRatio(bare, c.row, 5)
		if err != nil || math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%s: pairedRatio = %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	// A bare run that was disturbed spoils its round's pair too.
	disturbedBare := []run{fakeRun("1", 1000, 0), fakeRun("2", 1000, 50)}
	got, err := pairedRatio(disturbedBare, []run{fakeRun("1", 900, 0), fakeRun("2", 500, 0)}, 5)
	if err != nil || got != 0.9 {
		t.Errorf("disturbed bare run: pairedRatio = %v, %v; want 0.9", got, err)
	}
	if _, err := pairedRatio(bare, []run{fakeRun("R1", 900, 0)}, 5); err == nil || !strings.Contains(err.Error(), "no round") {
		t.Errorf("no common round: err = %v", err)
	}
	if _, err := pairedRatio(nil, nil, 5); err == nil {
		t.Error("no runs at all: no error")
	}
}

func TestUsed(t *testing.T) {
	runs := []run{fakeRun("1", 1, 0), fakeRun("2", 2, 6), fakeRun("R1", 3, 5)}
	if got := used(runs, 5); len(got) != 2 || got[0].round != "1" || got[1].round != "R1" {
		t.Errorf("used = %v, want rounds 1 and R1 (OTHER_MAX itself is not disturbed)", got)
	}
	all := []run{fakeRun("1", 1, 9), fakeRun("2", 2, 6)}
	if got := used(all, 5); len(got) != 2 {
		t.Errorf("all disturbed: used = %v, want all of them", got)
	}
}
