//go:build stress

package hardening_test

import "testing"

// TestStressKillDuringLoads: make stress. At least 50 kills at random
// points of definition loads, each followed by a restart that must serve
// one whole definition.
func TestStressKillDuringLoads(t *testing.T) {
	killDuringLoads(t, 60)
}
