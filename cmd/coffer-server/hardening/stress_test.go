//go:build stress

package hardening_test

import "testing"

// The long runs, for make stress.

// TestStressKillDuringLoads: 60 kills at random points of loads of a
// 2000-client definition, each followed by a restart that must serve one
// whole definition.
func TestStressKillDuringLoads(t *testing.T) {
	killDuringLoads(t, 60, 2000)
}

// TestStressHostileBytes: the hostile-bytes suite with 30 times as many
// random and Hello-then-garbage connections.
func TestStressHostileBytes(t *testing.T) {
	hostileBytes(t, 30)
}

// TestStressSlowClients: 256 slow clients holding all 256 slots.
func TestStressSlowClients(t *testing.T) {
	slowClients(t, 256)
}
