package main

import (
	"math"
	"os"
	"runtime/debug"
	"testing"
)

// TestLoadMemoryOrder: loadMemory's done function returns at once and
// sets the serving settings in the background, but never over a load
// that started after it: the next loadMemory waits for it, so a load
// always runs without a memory limit and serving always ends with one.
func TestLoadMemoryOrder(t *testing.T) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOGC or GOMEMLIMIT is set: loadMemory leaves the settings alone")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for range 20 {
		done := loadMemory()
		done()
		next := loadMemory()
		if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
			t.Fatalf("a load runs with a memory limit of %d: the previous load's done ran after it started", got)
		}
		next()
	}
	final := loadMemory() // waits for the last done
	final()
	memMu.Lock() // and for this one
	defer memMu.Unlock()
	if got := debug.SetMemoryLimit(-1); got < minMemoryLimit || got == math.MaxInt64 {
		t.Fatalf("serving memory limit %d after a load", got)
	}
	if got := debug.SetGCPercent(servingGCPercent); got != servingGCPercent {
		t.Fatalf("serving GOGC %d after a load, want %d", got, servingGCPercent)
	}
}
