package coffer

import (
	"bytes"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// BenchmarkUnverifiedHello measures the reply time of a Hello whose
// proof does not open, for a key in the definition and for one that is
// not (issue 12, section 3): the two must cost the same, or the time
// tells an unauthenticated peer which keys the server knows. Each op is
// one of each, in turns, so that the machine's load weighs on both
// alike; each is timed from writing the Hello to reading the whole reply
// (connect and close are outside it, but in ns/op). It reports the two medians and
// checks that every reply is the same bytes. Rate limits are off, so
// neither path is cut short by a bucket.
func BenchmarkUnverifiedHello(b *testing.B) {
	fx := newFixture(b, 1, noLimits)
	known, _ := helloFrame(b, fx.config(0))
	unknown, _ := helloFrame(b, &ClientConfig{Key: testKey(b, 90), Server: fx.key.Public()})
	hellos := [2][]byte{known, unknown}
	for _, h := range hellos {
		h[len(h)-1] ^= 1 // a garbage proof
	}
	var (
		times [2][]time.Duration
		want  []byte
		buf   = make([]byte, 64)
	)
	for i := range b.N {
		for j := range 2 {
			k := (i + j) % 2
			c, err := net.Dial("tcp", fx.addr)
			if err != nil {
				b.Fatal(err)
			}
			start := time.Now()
			c.Write(hellos[k])
			n, _ := io.ReadFull(c, buf)
			times[k] = append(times[k], time.Since(start))
			c.Close()
			if want == nil {
				want = bytes.Clone(buf[:n])
			}
			if !bytes.Equal(buf[:n], want) {
				b.Fatalf("reply %x, want %x (the same for both keys)", buf[:n], want)
			}
		}
	}
	for k, unit := range []string{"known-median-µs", "unknown-median-µs"} {
		slices.Sort(times[k])
		b.ReportMetric(float64(times[k][len(times[k])/2].Nanoseconds())/1e3, unit)
	}
}
