package main

import (
	"errors"
	"slices"
	"strings"
)

var errNoData = errors.New("no values")

// median of xs; with an even count, the mean of the middle two.
func median(xs []float64) (float64, error) {
	if len(xs) == 0 {
		return 0, errNoData
	}
	s := slices.Sorted(slices.Values(xs))
	n := len(s)
	if n%2 == 1 {
		return s[n/2], nil
	}
	return (s[n/2-1] + s[n/2]) / 2, nil
}

// span is the smallest and the largest of xs.
func span(xs []float64) (lo, hi float64, err error) {
	if len(xs) == 0 {
		return 0, 0, errNoData
	}
	return slices.Min(xs), slices.Max(xs), nil
}

// field picks one number out of each run.
func field(runs []run, f func(run) float64) []float64 {
	out := make([]float64, len(runs))
	for i, r := range runs {
		out[i] = f(r)
	}
	return out
}

// used is the runs a row's figures come from: the undisturbed ones if it
// has any, else all of them (the table then shows how disturbed they were).
func used(runs []run, otherMax float64) []run {
	var calm []run
	for _, r := range runs {
		if !r.disturbed(otherMax) {
			calm = append(calm, r)
		}
	}
	if len(calm) == 0 {
		return runs
	}
	return calm
}

// isRetry tells the runs made again after the rounds (R1, R2, …): they ran
// apart from the bare row, so they have no partner for a ratio.
func isRetry(round string) bool { return strings.HasPrefix(round, "R") }

// pairedRatio is the median over the rounds of row's req/s divided by the
// bare row's in the same round. The rows of a round run back to back, so
// the ratio cancels the slow drifts of a shared virtual machine, which move
// both alike and can exceed the difference being measured. Rounds in which
// either run was disturbed are left out while any other round remains.
func pairedRatio(bare, row []run, otherMax float64) (float64, error) {
	partner := map[string]run{}
	for _, b := range bare {
		if !isRetry(b.round) {
			partner[b.round] = b
		}
	}
	var calm, all []float64
	for _, r := range row {
		b, ok := partner[r.round]
		if !ok || isRetry(r.round) {
			continue
		}
		x := r.wrk.rps / b.wrk.rps
		all = append(all, x)
		if !r.disturbed(otherMax) && !b.disturbed(otherMax) {
			calm = append(calm, x)
		}
	}
	if len(all) == 0 {
		return 0, errors.New("no round in which both it and the bare row ran")
	}
	if len(calm) > 0 {
		return median(calm)
	}
	return median(all)
}
