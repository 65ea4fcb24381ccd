//go:build linux

package harden

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Process sets the core file limit to 0 (soft and hard, so nothing in
// the process can raise it again) and marks the process not dumpable
// (PR_SET_DUMPABLE 0). A core dump would hold keys and secrets; not
// dumpable also keeps other processes of the same user from attaching
// with ptrace or reading /proc/PID/mem and /proc/PID/environ. Both hold
// until the process ends; across execve the core limit is inherited and
// the dumpable flag is reset by the kernel. It changes nothing else (not
// the umask).
func Process() error {
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}); err != nil {
		return fmt.Errorf("disabling core dumps: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return fmt.Errorf("marking the process not dumpable: %w", err)
	}
	return nil
}
