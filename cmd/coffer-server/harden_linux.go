//go:build linux

package main

import (
	"golang.org/x/sys/unix"

	hardenproc "github.com/coffer-project/coffer/cmd/internal/harden"
)

// harden runs first thing in serve: umask 077 so that Badger's files,
// which it creates 0666, come out 0600; and, again, no core dumps and
// not dumpable (hardenproc.Process, which main already ran for every
// command), so serve stays hardened whoever calls it.
func harden() error {
	unix.Umask(0o077)
	return hardenproc.Process()
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
