package shard_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coffer-project/coffer/shard"
	"github.com/dgraph-io/badger/v4"
)

// benchDef is 10,000 clients of 10 values of 40 bytes.
func benchDef() *def { return fleetDef(10_000) }

// fleetDef is n clients of 10 values of 40 bytes, coffer-bench's shape.
func fleetDef(n int) *def {
	d := makeDef(1, n, 10)
	for _, c := range d.clients {
		for name, v := range c.Values {
			c.Values[name] = append(v, bytes.Repeat([]byte{'x'}, 40-len(v))...)[:40]
		}
	}
	return d
}

func (d *def) withSerial(s uint64) *def {
	n := *d
	n.sealed = fmt.Appendf(nil, "bench sealed %d", s)
	n.v = shard.Version{Serial: s, Hash: sha256.Sum256(n.sealed)}
	return &n
}

// peakRSS returns VmHWM from /proc/self/status in MiB, or 0.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func BenchmarkShard(b *testing.B) {
	st := open(b, b.TempDir(), shard.Options{})
	mustImport(b, st, benchDef())
	_, gen, _ := st.Current()
	keys := make([][32]byte, 10_000)
	for i := range keys {
		keys[i] = clientKey(i)
	}
	for _, bc := range []struct {
		name  string
		names []string
	}{{"all", nil}, {"two names", []string{"VALUE_3", "VALUE_7"}}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				m, err := st.Shard(gen, keys[i%len(keys)], bc.names)
				if err != nil || (bc.names == nil && len(m) != 10) {
					b.Fatalf("Shard: %d values, %v", len(m), err)
				}
				i += 7919
			}
		})
	}
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				if _, err := st.Shard(gen, keys[i%len(keys)], nil); err != nil {
					b.Fatal(err)
				}
				i += 7919
			}
		})
	})
}

// BenchmarkShardNames reads 256 names out of a shard of 65,536 values,
// the worst case of the name filter (frame's limits on a Get and a shard).
func BenchmarkShardNames(b *testing.B) {
	st := open(b, b.TempDir(), shard.Options{})
	mustImport(b, st, makeDef(1, 1, 65536))
	_, gen, _ := st.Current()
	names := make([]string, 256)
	for i := range names {
		names[i] = fmt.Sprintf("VALUE_%d", i*256)
	}
	b.ReportAllocs()
	for b.Loop() {
		m, err := st.Shard(gen, clientKey(0), names)
		if err != nil || len(m) != len(names) {
			b.Fatalf("Shard: %d values, %v", len(m), err)
		}
	}
}

// BenchmarkImport imports 10,000 clients of 10 values of 40 bytes and
// drops the previous generation outside the timer. peak-RSS-MiB is the
// process's high-water mark, test data included.
func BenchmarkImport(b *testing.B) {
	d := benchDef()
	st := open(b, b.TempDir(), shard.Options{})
	serial := uint64(0)
	b.ReportAllocs()
	var cpu0 runtime.MemStats
	runtime.ReadMemStats(&cpu0)
	for b.Loop() {
		serial++
		prev, err := st.Import(d.withSerial(serial).v, d.withSerial(serial).sealed, d.seq())
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if prev != 0 {
			if err := st.DropGeneration(prev); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
	b.ReportMetric(peakRSS(), "peak-RSS-MiB")
	s, _ := st.Stats()
	b.ReportMetric(float64(s.DiskBytes)/(1<<20), "disk-MiB")
}

// BenchmarkOpen is the cost of a start on a store of 10,000 clients:
// Badger alone (which itself verifies every table block at open), Open
// without its pass over the served generation (adds checkDB and the
// recovery), and Open as the server runs it.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	st, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
	if err != nil {
		b.Fatal(err)
	}
	d := benchDef()
	if _, err := st.Import(d.v, d.sealed, d.seq()); err != nil {
		b.Fatal(err)
	}
	st.Close()
	b.Run("badger", func(b *testing.B) {
		for b.Loop() {
			db, err := badger.Open(shard.RawOptions(filepath.Join(dir, "db"), &badgerKey))
			if err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
	for _, bc := range []struct {
		name string
		opt  shard.Options
	}{{"no-generation-pass", shard.NoVerify(shard.Options{})}, {"shard", shard.Options{}}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				st, err := shard.Open(dir, &badgerKey, &sealKey, bc.opt)
				if err != nil {
					b.Fatal(err)
				}
				st.Close()
			}
		})
	}
}

// BenchmarkImportStores imports a fleet split the way a server with
// several definitions holds it: 4 stores, 25,000 clients of 10 values of
// 40 bytes each, one after the other, clients made as the import asks
// for them so that the test data weighs nothing. retained-MiB is the
// live heap right after the last import (a forced GC), less the heap
// before the first store opened: what Badger holds on to once the loads
// are done, table-builder buffers in its pools included (each instance
// keeps up to 8 and frees one every 2 s once idle). peak-heap-MiB is the
// largest heap in use sampled every 2 ms during the imports.
func BenchmarkImportStores(b *testing.B) {
	const stores, perStore = 4, 25_000
	gen := func(base int) iter.Seq2[shard.Client, error] { return fleetClients(base, perStore, 0) }
	var retained, peak []float64
	for b.Loop() {
		b.StopTimer()
		dirs := make([]string, stores)
		for i := range dirs {
			dirs[i] = b.TempDir()
		}
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		before := m.HeapAlloc
		stop, sampled := make(chan struct{}), make(chan uint64)
		go func() {
			var top uint64
			t := time.NewTicker(2 * time.Millisecond)
			defer t.Stop()
			s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
			for {
				select {
				case <-stop:
					sampled <- top
					return
				case <-t.C:
					metrics.Read(s)
					top = max(top, s[0].Value.Uint64())
				}
			}
		}()
		b.StartTimer()
		var open []*shard.Store
		for i, dir := range dirs {
			st, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
			if err != nil {
				b.Fatal(err)
			}
			open = append(open, st)
			sealed := fmt.Appendf(nil, "store %d", i)
			v := shard.Version{Serial: 1, Hash: sha256.Sum256(sealed)}
			if _, err := st.Import(v, sealed, gen(i*perStore)); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		close(stop)
		peak = append(peak, float64(<-sampled-before)/(1<<20))
		runtime.GC()
		runtime.ReadMemStats(&m)
		retained = append(retained, (float64(m.HeapAlloc)-float64(before))/(1<<20))
		for _, st := range open {
			st.Close()
		}
		b.StartTimer()
	}
	slices.Sort(retained)
	slices.Sort(peak)
	b.ReportMetric(retained[len(retained)/2], "retained-MiB")
	b.ReportMetric(peak[len(peak)/2], "peak-heap-MiB")
}

// fleetClients yields n clients of 10 values of 40 bytes, keys from
// base, each value marked with round.
func fleetClients(base, n, round int) iter.Seq2[shard.Client, error] {
	const values = 10
	return func(yield func(shard.Client, error) bool) {
		c := shard.Client{Values: map[string][]byte{}}
		buf := make([]byte, 0, values*40)
		for i := range n {
			c.Key, c.Name = clientKey(base+i), fmt.Sprintf("client-%d", base+i)
			buf = buf[:0]
			for j := range values {
				start := len(buf)
				buf = fmt.Appendf(buf, "%s c%d v%d r%d ", canary, base+i, j, round)
				buf = append(buf, bytes.Repeat([]byte{'x'}, 40)...)[:start+40]
				c.Values[fmt.Sprintf("VALUE_%d", j)] = buf[start : start+40]
			}
			if !yield(c, nil) {
				return
			}
		}
	}
}

// BenchmarkReimport is a reload's store work: one store of 25,000
// clients x 10 values, each op imports the next generation of the same
// clients and drops the previous one, as the server does after an
// install. cpu-ms/op is the process's CPU time per op (getrusage), so
// Badger's own goroutines count: the memtable flushes and compactions
// an import causes, which run after Import returns and land on the next
// op.
func BenchmarkReimport(b *testing.B) {
	const clients = 25_000
	st, err := shard.Open(b.TempDir(), &badgerKey, &sealKey, shard.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	serial := uint64(0)
	next := func() uint64 {
		serial++
		sealed := fmt.Appendf(nil, "serial %d", serial)
		prev, err := st.Import(shard.Version{Serial: serial, Hash: sha256.Sum256(sealed)}, sealed, fleetClients(0, clients, int(serial)))
		if err != nil {
			b.Fatal(err)
		}
		if err := st.DropGeneration(prev); err != nil {
			b.Fatal(err)
		}
		return prev
	}
	next()
	next()
	cpu0 := cpuTime(b)
	for b.Loop() {
		next()
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Milliseconds())/float64(b.N), "cpu-ms/op")
}

// BenchmarkShardFleet reads every client of one store once per round, in
// a shuffled order, as a fleet's sessions do: 2,500 clients is a quarter
// of coffer-bench's 10,000-client fleet in 4 definitions, 25,000 a
// quarter of its 100,000. The store is reopened after the import, so
// that reads go to tables as after a server's start.
func BenchmarkShardFleet(b *testing.B) {
	for _, n := range []int{2_500, 25_000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			st := open(b, dir, shard.Options{})
			mustImport(b, st, fleetDef(n))
			st.Close()
			st = open(b, dir, shard.Options{})
			_, gen, _ := st.Current()
			order := make([][32]byte, n)
			for i := range order {
				// i*7919 mod n visits every client once: 7919 is prime
				// to n.
				order[i] = clientKey(i * 7919 % n)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := st.Shard(gen, order[i], nil); err != nil {
					b.Fatal(err)
				}
				if i++; i == n {
					i = 0
				}
			}
		})
	}
}
