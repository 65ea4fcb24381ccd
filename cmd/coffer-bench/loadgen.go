package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-project/coffer/coffer"
)

// Bounds of one load phase, so that a wrong flag cannot run away.
const (
	maxConcurrency   = 4096
	maxPhaseDuration = 10 * time.Minute
	maxLatencies     = 4 << 20 // latency samples kept per phase
	maxErrorSamples  = 5
	sessionTimeout   = 10 * time.Second
)

// phaseResult is what a loadgen process reports on stdout, as one JSON
// line, after its phase.
type phaseResult struct {
	Sessions     int64         `json:"sessions"` // completed without error
	Errors       int64         `json:"errors"`
	Elapsed      time.Duration `json:"elapsed_ns"`
	P50          time.Duration `json:"p50_ns"`
	P99          time.Duration `json:"p99_ns"`
	P999         time.Duration `json:"p999_ns"`
	Max          time.Duration `json:"max_ns"`
	ErrorSamples []string      `json:"error_samples,omitempty"`
}

// perSecond is the phase's rate of completed sessions.
func (r *phaseResult) perSecond() float64 { return perSecond(r.Sessions, r.Elapsed) }

// loadgen holds one phase's parameters.
type loadgen struct {
	target   string      // coffer, tls, tls-x25519, mtls or tcp
	group    tls.CurveID // the key exchange a TLS target must negotiate
	addr     string
	conc     int
	duration time.Duration
	count    int // if > 0: every client index in [0, count) once, then stop
	clients  int // number of client indices to draw from

	coffer []*coffer.ClientConfig
	tls    *tls.Config
}

// runLoadgen is the hidden "loadgen" subcommand. It prepares (reads the
// client keys), prints "ready", waits for a line on stdin, runs one phase
// and prints a phaseResult as one JSON line. Running in its own process
// keeps the client's CPU out of the server's figures and lets the parent
// sample the server's /proc counters exactly around the phase.
func runLoadgen(args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var lg loadgen
	fs.StringVar(&lg.target, "target", "coffer", "coffer, tls, tls-x25519, mtls or tcp")
	fs.StringVar(&lg.addr, "addr", "", "server address (127.0.0.1:PORT)")
	fs.IntVar(&lg.conc, "c", 1, "concurrent sessions")
	fs.DurationVar(&lg.duration, "duration", time.Second, "phase duration (unless -count)")
	fs.IntVar(&lg.count, "count", 0, "fetch each of the first `N` clients once (boot storm)")
	fs.IntVar(&lg.clients, "clients", 0, "number of clients to draw from (tls, mtls)")
	keys := fs.String("keys", "", "client private keys file, 32 raw bytes each (coffer)")
	serverKey := fs.String("server-key", "", "server public key (coffer)")
	var cf certFiles
	fs.StringVar(&cf.CA, "ca", "", "CA certificate (tls, mtls)")
	fs.StringVar(&cf.ClientCert, "cert", "", "client certificate (mtls)")
	fs.StringVar(&cf.ClientKey, "key", "", "client key (mtls)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if lg.conc < 1 || lg.conc > maxConcurrency || lg.duration <= 0 || lg.duration > maxPhaseDuration {
		return errors.New("coffer-bench: loadgen: concurrency or duration out of range")
	}
	host, _, err := net.SplitHostPort(lg.addr)
	if err != nil || host != "127.0.0.1" {
		return fmt.Errorf("coffer-bench: loadgen: address %q is not on 127.0.0.1", lg.addr)
	}
	if err := lg.prepare(*keys, *serverKey, cf); err != nil {
		return err
	}
	if lg.count > lg.clients {
		return fmt.Errorf("coffer-bench: loadgen: -count %d exceeds %d clients", lg.count, lg.clients)
	}
	fmt.Println("ready")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return errors.New("coffer-bench: loadgen: parent went away")
	}
	res := lg.run()
	return json.NewEncoder(os.Stdout).Encode(res)
}

func (lg *loadgen) prepare(keysPath, serverKey string, cf certFiles) error {
	switch lg.target {
	case "coffer":
		sk, err := coffer.ParsePublicKey(serverKey)
		if err != nil {
			return fmt.Errorf("coffer-bench: loadgen: server key: %w", err)
		}
		privs, err := readClientKeys(keysPath)
		if err != nil {
			return err
		}
		for _, k := range privs {
			lg.coffer = append(lg.coffer, &coffer.ClientConfig{Key: k, Server: sk})
		}
		lg.clients = len(lg.coffer)
	case "tls", "tls-x25519", "mtls":
		pool, err := loadPool(cf.CA)
		if err != nil {
			return err
		}
		// Go's default groups (X25519MLKEM768 first) for tls and mtls,
		// what users of a current Go run; X25519 alone for tls-x25519.
		lg.tls = &tls.Config{
			RootCAs:    pool,
			ServerName: "127.0.0.1",
			MinVersion: tls.VersionTLS13,
			MaxVersion: tls.VersionTLS13,
		}
		lg.group = tls.X25519MLKEM768
		if lg.target == "tls-x25519" {
			lg.tls.CurvePreferences = []tls.CurveID{tls.X25519}
			lg.group = tls.X25519
		}
		if lg.target == "mtls" {
			cert, err := tls.LoadX509KeyPair(cf.ClientCert, cf.ClientKey)
			if err != nil {
				return err
			}
			lg.tls.Certificates = []tls.Certificate{cert}
		}
	case "tcp":
		lg.clients = max(lg.clients, 1)
	default:
		return fmt.Errorf("coffer-bench: loadgen: unknown target %q", lg.target)
	}
	if lg.clients < 1 {
		return errors.New("coffer-bench: loadgen: no clients")
	}
	return nil
}

// run drives lg.conc workers, each running one session after another,
// until the duration is over (sessions started before then finish) or,
// with -count, until every client has fetched once (the duration is then
// only a bound).
func (lg *loadgen) run() phaseResult {
	var (
		next     atomic.Int64
		errs     atomic.Int64
		mu       sync.Mutex
		lats     []time.Duration
		samples  []string
		wg       sync.WaitGroup
		start    = time.Now()
		deadline = start.Add(lg.duration)
	)
	order := rand.Perm(lg.clients)
	for w := range lg.conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(start.UnixNano())))
			local := make([]time.Duration, 0, 1024)
			var d net.Dialer
			for {
				if time.Now().After(deadline) {
					break
				}
				var idx int
				if lg.count > 0 {
					i := next.Add(1) - 1
					if i >= int64(lg.count) {
						break
					}
					idx = order[i]
				} else {
					idx = rng.IntN(lg.clients)
				}
				t0 := time.Now()
				err := lg.session(&d, idx)
				lat := time.Since(t0)
				if err != nil {
					errs.Add(1)
					mu.Lock()
					if len(samples) < maxErrorSamples {
						samples = append(samples, err.Error())
					}
					mu.Unlock()
					continue
				}
				if len(local) < maxLatencies/lg.conc {
					local = append(local, lat)
				}
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res := phaseResult{Elapsed: time.Since(start), Errors: errs.Load(), ErrorSamples: samples}
	res.Sessions = int64(len(lats))
	slices.Sort(lats)
	res.P50, res.P99, res.P999 = quantile(lats, 0.50), quantile(lats, 0.99), quantile(lats, 0.999)
	if len(lats) > 0 {
		res.Max = lats[len(lats)-1]
	}
	return res
}

// quantile returns the q-quantile of sorted (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// session runs one whole session on a new TCP connection.
func (lg *loadgen) session(d *net.Dialer, idx int) error {
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", lg.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(sessionTimeout))
	switch lg.target {
	case "coffer":
		res, err := coffer.Fetch(ctx, conn, lg.coffer[idx])
		if err != nil {
			return err
		}
		if len(res.Shard) == 0 {
			return errors.New("empty shard")
		}
		return nil
	case "tcp":
		var b [1]byte
		if _, err := conn.Read(b[:]); err != io.EOF {
			return fmt.Errorf("tcp: want EOF, got %v", err)
		}
		return nil
	}
	tc := tls.Client(conn, lg.tls)
	if err := tc.Handshake(); err != nil {
		return err
	}
	// A baseline that fell back to another group would compare coffer
	// with something nobody runs: count it as an error.
	if g := tc.ConnectionState().CurveID; g != lg.group {
		return fmt.Errorf("tls: negotiated %v, want %v", g, lg.group)
	}
	var req [4]byte
	binary.BigEndian.PutUint32(req[:], uint32(idx))
	if _, err := tc.Write(req[:]); err != nil {
		return err
	}
	var hdr [4]byte
	if _, err := io.ReadFull(tc, hdr[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 || n > maxShardBytes {
		return fmt.Errorf("tls: bad shard length %d", n)
	}
	if _, err := io.CopyN(io.Discard, tc, int64(n)); err != nil {
		return err
	}
	return tc.Close()
}

// readClientKeys reads a file of concatenated 32-byte X25519 private
// keys, refusing one that group or others can read.
func readClientKeys(path string) ([]*coffer.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("coffer-bench: %s has mode %v, want 0600", path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, 1<<30))
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if len(b)%coffer.KeySize != 0 || len(b) == 0 {
		return nil, fmt.Errorf("coffer-bench: %s: length %d is not a multiple of %d", path, len(b), coffer.KeySize)
	}
	keys := make([]*coffer.PrivateKey, len(b)/coffer.KeySize)
	// Deriving 10,000 public keys takes a while: use every core.
	var wg sync.WaitGroup
	var firstErr atomic.Value
	step := (len(keys) + 7) / 8
	for lo := 0; lo < len(keys); lo += step {
		wg.Add(1)
		go func(lo, hi int) {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				var raw [coffer.KeySize]byte
				copy(raw[:], b[i*coffer.KeySize:])
				k, err := coffer.NewPrivateKey(&raw)
				clear(raw[:])
				if err != nil {
					firstErr.Store(err)
					return
				}
				keys[i] = k
			}
		}(lo, min(lo+step, len(keys)))
	}
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return nil, err
	}
	return keys, nil
}
