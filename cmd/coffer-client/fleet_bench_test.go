package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/coffer"
)

// fleetClients and fleetRate are the fleet BenchmarkWatchFleet stands in
// for: 10,000 watchers at the default interval of one minute make
// 10,000/60 sessions/s, drawn here from 2,000 client keys (each key
// then fetches under once a second, far below the server's per-client
// limit).
const (
	fleetClients = 2000
	fleetRate    = 10000.0 / 60
)

// BenchmarkWatchFleet measures what a fleet of watchers costs the real
// coffer-server: b.N sessions (each a whole coffer/1 fetch of 10 values
// of 40 bytes, as coffer-bench's) started at fleetRate, on a schedule
// that catches up rather than drops, and the server's utime+stime from
// /proc over them. It reports server-us/session and server-ms/s (CPU
// per wall second: 100 is 10% of one core). Run it with about 40 s of
// sessions:
//
//	go test ./cmd/coffer-client -run '^$' -bench WatchFleet -benchtime 6680x
func BenchmarkWatchFleet(b *testing.B) {
	serverBinOnce.Do(func() {
		serverBin, serverBinErr = e2e.Build(filepath.Dir(clientBin), "coffer-server", "../coffer-server")
	})
	if serverBinErr != nil {
		b.Fatal(serverBinErr)
	}
	bin := serverBin
	f := e2e.NewFixture(b, "")
	keys := make([]*coffer.PrivateKey, fleetClients)
	var def strings.Builder
	def.WriteString("[clients]\n")
	for i := range keys {
		keys[i] = e2e.GenKey(b)
		fmt.Fprintf(&def, "c%d = %q\n", i, keys[i].Public())
	}
	for i := range keys {
		fmt.Fprintf(&def, "\n[c%d]\n", i)
		for j := range 10 {
			fmt.Fprintf(&def, "v%d = \"%040d\"\n", j, i*10+j)
		}
	}
	f.Next(b, []byte(def.String()))
	// As deployed (and as coffer-bench runs it): log level info, one line
	// and one audit record per session.
	srv := e2e.Launch(b, []string{bin, "serve", "--key", f.KeyFile, "--data-dir", f.DataDir, "--definition", f.DefPath,
		"--trusted", f.Author.Public().String(), "--config", f.Conf, "--listen", "127.0.0.1:0"}, e2e.Options{Env: environ()})
	srv.WaitListening()
	var ok, failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	fetch := func() {
		defer wg.Done()
		if _, err := e2e.Fetch(srv.Addr, f.Server.Public(), keys[rand.N(len(keys))], 10*time.Second); err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		ok.Add(1)
	}
	for range 200 { // warm up: page cache, goroutine stacks, the store's cache
		wg.Add(1)
		fetch()
	}
	ok.Store(0)
	period := time.Duration(float64(time.Second) / fleetRate)
	b.ResetTimer()
	cpu0 := procCPU(b, srv.Pid())
	start := time.Now()
	for i := range b.N {
		if d := time.Until(start.Add(time.Duration(i) * period)); d > 0 {
			time.Sleep(d) // pacing the load, not synchronisation
		}
		wg.Add(1)
		go fetch()
	}
	wg.Wait()
	wall := time.Since(start)
	cpu := procCPU(b, srv.Pid()) - cpu0
	b.StopTimer()
	if failed.Load() > 0 {
		b.Errorf("%d of %d sessions failed, the first with: %v", failed.Load(), b.N, firstErr.Load())
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(ok.Load()), "server-us/session")
	b.ReportMetric(float64(cpu.Milliseconds())/wall.Seconds(), "server-ms/s")
	b.ReportMetric(float64(ok.Load())/wall.Seconds(), "sessions/s")
}

// procCPU is a process's utime+stime from /proc/PID/stat (10 ms ticks).
func procCPU(b *testing.B, pid int) time.Duration {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		b.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.Atoi(f[11])
	stime, _ := strconv.Atoi(f[12])
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
