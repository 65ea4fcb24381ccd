package shard_test

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/shard"
	"github.com/dgraph-io/badger/v4"
)

// benchDef is 10,000 clients of 10 values of 40 bytes.
func benchDef() *def {
	d := makeDef(1, 10_000, 10)
	for _, c := range d.clients {
		for n, v := range c.Values {
			c.Values[n] = append(v, bytes.Repeat([]byte{'x'}, 40-len(v))...)[:40]
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
