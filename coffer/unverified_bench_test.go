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
// one connection: the time from writing the Hello to reading the whole
// reply (connect and close are outside it). It reports the median and
// checks that every reply is the same bytes. Rate limits are off, so
// neither path is cut short by a bucket.
func BenchmarkUnverifiedHello(b *testing.B) {
	fx := newFixture(b, 1, noLimits)
	known, _ := helloFrame(b, fx.config(0))
	unknown, _ := helloFrame(b, &ClientConfig{Key: testKey(b, 90), Server: fx.key.Public()})
	for _, h := range [][]byte{known, unknown} {
		h[len(h)-1] ^= 1 // a garbage proof
	}
	var want []byte
	for _, tt := range []struct {
		name  string
		hello []byte
	}{{"known", known}, {"unknown", unknown}} {
		b.Run(tt.name, func(b *testing.B) {
			var times []time.Duration
			buf := make([]byte, 64)
			for b.Loop() {
				b.StopTimer()
				c, err := net.Dial("tcp", fx.addr)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start := time.Now()
				c.Write(tt.hello)
				n, _ := io.ReadFull(c, buf)
				times = append(times, time.Since(start))
				b.StopTimer()
				c.Close()
				if want == nil {
					want = bytes.Clone(buf[:n])
				}
				if !bytes.Equal(buf[:n], want) {
					b.Fatalf("reply %x, want %x (the same for both keys)", buf[:n], want)
				}
				b.StartTimer()
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Nanoseconds())/1e3, "median-µs")
		})
	}
}
