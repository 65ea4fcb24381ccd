//go:build stress

package hardening_test

import (
	mrand "math/rand/v2"
	"testing"
)

// TestStressCorruptionSweep is the whole sweep that make stress runs:
// every file of the data directory, each damage at 8 offsets spread
// across the file (the first and last byte included), plus deletion and
// emptying.
func TestStressCorruptionSweep(t *testing.T) {
	s := buildSweepStore(t)
	t.Logf("files: %v", s.files)
	sweep(t, s, s.cases(8, mrand.New(mrand.NewPCG(13, sweepSeed(t)))))
}
