//go:build linux

package main

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// harden runs first thing in serve: umask 077 so that Badger's files,
// which it creates 0666, come out 0600; no core dumps, which would hold
// keys and secrets; and not dumpable, which also keeps other processes of
// the same user from attaching with ptrace or reading /proc/PID/mem.
func harden() error {
	unix.Umask(0o077)
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("disabling core dumps: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("marking the process not dumpable: %w", err)
	}
	return nil
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, which systemd wants
// beside RELOADING=1.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts) != nil {
		return 0
	}
	return ts.Nano() / 1000
}
