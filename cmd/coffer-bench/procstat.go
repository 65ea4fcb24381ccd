package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/PID/stat. It is 100 on every Linux architecture Go supports
// (sysconf(_SC_CLK_TCK) would need cgo), so CPU figures have 10 ms
// resolution: phases must run long enough for that not to matter.
const clockTicks = 100

// procCPU returns the user+system CPU time the process pid has used since
// it started, summed over all its threads (fields 14 and 15 of
// /proc/PID/stat).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("coffer-bench: malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("coffer-bench: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("coffer-bench: malformed /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * time.Second / clockTicks, nil
}

// memStat is a process's resident set: now (VmRSS) and its peak (VmHWM),
// in bytes.
type memStat struct {
	RSS, HWM int64
}

// procMem reads VmRSS and VmHWM from /proc/PID/status.
func procMem(pid int) (memStat, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memStat{}, err
	}
	defer f.Close()
	var m memStat
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		var dst *int64
		switch {
		case strings.HasPrefix(line, "VmRSS:"):
			dst = &m.RSS
		case strings.HasPrefix(line, "VmHWM:"):
			dst = &m.HWM
		default:
			continue
		}
		fs := strings.Fields(line)
		if len(fs) != 3 || fs[2] != "kB" {
			return memStat{}, fmt.Errorf("coffer-bench: malformed %q in /proc/%d/status", fs[0], pid)
		}
		kb, err := strconv.ParseInt(fs[1], 10, 64)
		if err != nil {
			return memStat{}, fmt.Errorf("coffer-bench: malformed %q in /proc/%d/status", fs[0], pid)
		}
		*dst = kb * 1024
	}
	return m, sc.Err()
}

// resetPeakRSS asks the kernel to reset pid's VmHWM to its current RSS
// (writing "5" to /proc/PID/clear_refs, Linux 4.0 and later). It reports
// whether that was permitted; if not, VmHWM stays the peak since start.
func resetPeakRSS(pid int) bool {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/clear_refs", pid), os.O_WRONLY, 0)
	if err != nil {
		return false
	}
	_, err = f.Write([]byte("5"))
	return f.Close() == nil && err == nil
}

// loadAvg returns the machine's 1-minute load average, or 0.
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}
