package config

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"
)

// benchDefinition is a definition in the shape coffer-bench writes
// (cmd/coffer-bench/setup.go): a [clients] table of one key each, then
// one table per client of secrets values of 40 printable bytes.
func benchDefinition(clients, secrets int) []byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var sb strings.Builder
	sb.Grow(clients * (80 + secrets*60))
	sb.WriteString("# generated like coffer-bench\n[clients]\n")
	for i := range clients {
		fmt.Fprintf(&sb, "client%05d = %q\n", i, "cof1pub"+strings.Repeat("k", 52))
	}
	x := uint32(1)
	for i := range clients {
		fmt.Fprintf(&sb, "\n[client%05d]\n", i)
		for j := range secrets {
			fmt.Fprintf(&sb, "secret_%02d = \"", j)
			for range 40 {
				x = x*1664525 + 1013904223
				sb.WriteByte(alphabet[x>>26])
			}
			sb.WriteString("\"\n")
		}
	}
	return []byte(sb.String())
}

// BenchmarkParseDefinition parses definitions of 1,000, 10,000 and 25,000
// clients of 10 values. peak-heap-B is the largest live heap seen by the
// GC during the parses (a lower bound of the peak, sampled at each GC
// cycle), and src-B the source's size.
func BenchmarkParseDefinition(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 25_000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			src := benchDefinition(n, 10)
			b.SetBytes(int64(len(src)))
			b.ReportAllocs()
			var peak peakHeap
			peak.start()
			for b.Loop() {
				def, err := ParseDefinition(src)
				if err != nil {
					b.Fatal(err)
				}
				if len(def.Clients) != n {
					b.Fatalf("%d clients, want %d", len(def.Clients), n)
				}
				def.Clear()
			}
			b.ReportMetric(float64(peak.stop()), "peak-heap-B")
		})
	}
}

// peakHeap samples the live heap after each GC cycle. With GOGC's default
// the heap just before a cycle reaches about twice the live heap; the live
// figure is what a parse holds at once.
type peakHeap struct {
	done chan struct{}
	max  chan uint64
}

func (p *peakHeap) start() {
	runtime.GC()
	p.done, p.max = make(chan struct{}), make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
		var max, cycles uint64
		for {
			metrics.Read(s)
			if c := s[1].Value.Uint64(); c != cycles {
				cycles = c
				max = maxU(max, s[0].Value.Uint64())
			}
			select {
			case <-p.done:
				p.max <- max
				return
			case <-time.After(time.Millisecond): // sampling, not synchronisation
			}
		}
	}()
}

func (p *peakHeap) stop() uint64 {
	close(p.done)
	return <-p.max
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}
