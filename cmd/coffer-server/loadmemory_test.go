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

// TestLoadMemoryBound: once a load knows its file's size, it runs under a
// memory limit of the runtime's memory at its start plus its budget, ten
// times the file at least 64 MiB; serving gets its own limit back after
// it; and a GOMEMLIMIT in the environment is never replaced.
func TestLoadMemoryBound(t *testing.T) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		t.Skip("GOGC or GOMEMLIMIT is set: loadMemory leaves the settings alone")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	for _, size := range []int{1 << 10, 16 << 20} {
		done := loadMemory()
		base := curLoad.base
		boundLoadMemory(size)
		got := debug.SetMemoryLimit(-1)
		now := goMemory()
		done()
		budget := max(int64(64<<20), 10*int64(size))
		if base <= 0 || base > 2*now || got != base+budget {
			t.Errorf("file of %d bytes: load limit %d, want %d plus the runtime's memory at the load's start (%d; %d now)",
				size, got, budget, base, now)
		}
	}
	memMu.Lock() // the last done has set the serving limit
	got := debug.SetMemoryLimit(-1)
	memMu.Unlock()
	if got == math.MaxInt64 || got > 2*goMemory()+minMemoryLimit {
		t.Errorf("serving limit %d after the loads", got)
	}

	t.Setenv("GOMEMLIMIT", "1GiB") // read by loadMemory, not by the runtime here
	debug.SetMemoryLimit(123 << 20)
	done := loadMemory()
	boundLoadMemory(16 << 20)
	got = debug.SetMemoryLimit(-1)
	done()
	memMu.Lock()
	memMu.Unlock()
	if got != 123<<20 {
		t.Errorf("with GOMEMLIMIT set, a load changed the limit to %d", got)
	}
}

// goMemory is the Go runtime's memory as the soft memory limit counts
// it: everything mapped, less what has been returned to the OS.
func goMemory() int64 {
	m := readMemory()
	return m.total - m.released
}
