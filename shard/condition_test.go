package shard

import "testing"

// TestCondition names every row of Open's decision table.
func TestCondition(t *testing.T) {
	v := func(serial uint64, h byte) *Version { return &Version{Serial: serial, Hash: [32]byte{h}} }
	tests := []struct {
		name     string
		cur      *Version
		state    Version
		hasState bool
		want     Condition
	}{
		{"empty store, no state: first run", nil, Version{}, false, FirstRun},
		{"empty store, state: rebuild", nil, *v(3, 1), true, NeedsRebuild},
		{"store, no state: state recreated", v(3, 1), Version{}, false, StateRecreated},
		{"store equals state: consistent", v(3, 1), *v(3, 1), true, Consistent},
		{"store ahead of state: state updated", v(4, 2), *v(3, 1), true, StateUpdated},
		{"store behind state: rebuild", v(2, 9), *v(3, 1), true, NeedsRebuild},
		{"same serial, other hash: rebuild", v(3, 2), *v(3, 1), true, NeedsRebuild},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := condition(tc.cur, tc.state, tc.hasState); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
