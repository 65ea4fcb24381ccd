package main

import (
	"strings"
	"testing"
	"time"
)

// TestColdFigFill checks the cold start's figures: medians of each
// series, and the ratio to the empty program as the median of the run
// by run ratios, not the ratio of the medians.
func TestColdFigFill(t *testing.T) {
	msd := func(xs ...float64) []time.Duration {
		var out []time.Duration
		for _, x := range xs {
			out = append(out, time.Duration(x*float64(time.Millisecond)))
		}
		return out
	}
	var c coldFig
	c.fill(msd(9, 7, 8, 30), msd(6, 5, 7, 6), msd(4, 5, 4, 6), []float64{9.0 / 4, 7.0 / 5, 8.0 / 4, 30.0 / 6})
	if c.Runs != 4 || c.MinMs != 7 || c.MedianMs != 8 || c.HelpMedianMs != 6 || c.EmptyMedianMs != 4 {
		t.Errorf("fill: got %+v", c)
	}
	if want := (2.0 + 2.25) / 2; c.EmptyRatio != want {
		t.Errorf("EmptyRatio: got %v, want %v (median of the pairs)", c.EmptyRatio, want)
	}
}

// TestColdStartTarget checks issue 17's cold start target: met at 1.6x
// the empty program, not met above it, with errors, or without the
// empty program.
func TestColdStartTarget(t *testing.T) {
	tests := []struct {
		c    coldFig
		met  bool
		text string
	}{
		{coldFig{Runs: 30, MedianMs: 6.4, EmptyMedianMs: 4, EmptyRatio: 1.6}, true, "1.60x (6.4 vs 4.0 ms, 30 runs)"},
		{coldFig{Runs: 30, MedianMs: 9, EmptyMedianMs: 4, EmptyRatio: 2.25}, false, "2.25x"},
		{coldFig{Runs: 29, Errors: 1, MedianMs: 6, EmptyMedianMs: 4, EmptyRatio: 1.5}, false, "1.50x"},
		{coldFig{Runs: 30, MedianMs: 6}, false, "no empty program"},
	}
	for _, tt := range tests {
		f := &figures{ColdStart: tt.c}
		var got *target
		for _, tg := range f.targets() {
			if strings.HasPrefix(tg.Name, "client cold start") {
				got = &tg
			}
		}
		if got == nil {
			t.Fatalf("%+v: no cold start target", tt.c)
		}
		if got.Met != tt.met || !strings.Contains(got.Got, tt.text) {
			t.Errorf("%+v: got %+v, want met %v and %q", tt.c, *got, tt.met, tt.text)
		}
	}
}
