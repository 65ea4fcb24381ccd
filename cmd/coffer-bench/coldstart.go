package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// emptyBuildTimeout bounds building the empty program (a cold go build
// cache compiles the runtime).
const emptyBuildTimeout = 5 * time.Minute

// emptyProgram is the cold start's yardstick: a Go program that does
// nothing. Built static (CGO_ENABLED=0) like the client, its exec time is
// what any Go program pays on this machine at this moment (runtime
// start-up, page faults of a small binary, exit), and issue 17's target
// is the client's cold start as a multiple of it.
const emptyProgram = "package main\n\nfunc main() {}\n"

// floorProgram is the cold start's floor: a static Go program that does
// only what no client of coffer/2 can skip, with the standard library. It
// dials a TCP address, makes an ML-KEM-768 key pair and decapsulates, makes
// an X25519 key pair and runs three X25519 multiplications (the client's
// key exchange: its ephemeral key, and three shared secrets), writes 32
// bytes derived from the results, and exits. No protocol, no files, no
// server work: a coffer-client get takes at least this, and issue 17's
// 1.6x the empty program is measured against what this takes.
const floorProgram = `package main

import (
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha256"
	"net"
	"os"
)

func main() {
	c, err := net.Dial("tcp", os.Args[1])
	if err != nil {
		os.Exit(1)
	}
	dk, err := mlkem.GenerateKey768()
	if err != nil {
		os.Exit(1)
	}
	ct := make([]byte, mlkem.CiphertextSize768)
	rand.Read(ct)
	k, err := dk.Decapsulate(ct)
	if err != nil {
		os.Exit(1)
	}
	h := sha256.New()
	h.Write(k)
	h.Write(dk.EncapsulationKey().Bytes())
	a, _ := ecdh.X25519().GenerateKey(rand.Reader)
	b, _ := ecdh.X25519().GenerateKey(rand.Reader)
	for _, p := range []*ecdh.PublicKey{b.PublicKey(), b.PublicKey(), a.PublicKey()} {
		s, err := a.ECDH(p)
		if err != nil {
			os.Exit(1)
		}
		h.Write(s)
	}
	if _, err := c.Write(h.Sum(nil)); err != nil {
		os.Exit(1)
	}
	c.Close()
}
`

// coldStarts runs `coffer-client get --format json` against the running
// coffer-server, once untimed (to warm the page cache) and then
// -cold-starts times, timing each whole process. Each run is another
// client, as each would be another machine booting. Each run is followed
// by coffer-client -h, the empty program and the floor program, so that
// the four meet the same noise; the ratios to the empty program are taken
// run by run.
func (b *bench) coldStarts(ctx context.Context, f *figures) error {
	if b.opt.coldStarts == 0 {
		return nil
	}
	empty, err := b.emptyBinary(ctx)
	if err != nil {
		b.logf("cold start: no empty program to compare with: %v", err)
		f.Notes = append(f.Notes, "cold start: no empty Go program to compare with ("+firstLine(err.Error())+"); give one with -empty")
	} else if _, err := runOnce(ctx, empty); err != nil { // warm its pages too
		return fmt.Errorf("empty program %s: %w", empty, err)
	}
	floor, sink, err := b.floorBinary(ctx)
	if err != nil {
		b.logf("cold start: no floor program: %v", err)
		f.Notes = append(f.Notes, "cold start: no floor program ("+firstLine(err.Error())+")")
	} else {
		defer sink.Close()
		if _, err := runOnce(ctx, floor, sink.Addr().String()); err != nil { // warm its pages too
			return fmt.Errorf("floor program %s: %w", floor, err)
		}
	}
	b.logf("cold start: %d runs of coffer-client get --format json...", b.opt.coldStarts)
	var times, helps, empties, floors []time.Duration
	var ratios, floorRatios []float64
	errs := 0
	keys := b.fx.clientKeyFiles
	for i := -1; i < b.opt.coldStarts; i++ {
		d, err := b.clientOnce(ctx, keys[(i+1)%len(keys)], i == -1)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			if i == -1 {
				return err
			}
			errs++
			if f.ColdStart.ErrorSample == "" {
				f.ColdStart.ErrorSample = err.Error()
			}
			continue
		}
		if i < 0 {
			continue
		}
		times = append(times, d)
		// The same binary doing nothing but start, print its usage and
		// exit: what is left of a cold start is the fetch itself.
		if d, err := runOnce(ctx, b.opt.clientBin, "-h"); err == nil {
			helps = append(helps, d)
		}
		if empty == "" {
			continue
		}
		e, err := runOnce(ctx, empty)
		if err != nil {
			continue
		}
		empties = append(empties, e)
		ratios = append(ratios, float64(d)/float64(e))
		if floor == "" {
			continue
		}
		if fl, err := runOnce(ctx, floor, sink.Addr().String()); err == nil {
			floors = append(floors, fl)
			floorRatios = append(floorRatios, float64(fl)/float64(e))
		}
	}
	f.ColdStart.fill(times, helps, empties, ratios)
	f.ColdStart.fillFloor(floors, floorRatios)
	f.ColdStart.Errors = errs
	return nil
}

// fill sets the figures of the timed runs; ratios are the client's time
// over the empty program's, run by run.
func (c *coldFig) fill(times, helps, empties []time.Duration, ratios []float64) {
	slices.Sort(times)
	slices.Sort(helps)
	slices.Sort(empties)
	slices.Sort(ratios)
	c.Runs = len(times)
	if len(times) > 0 {
		c.MedianMs = ms(quantile(times, 0.5))
		c.P90Ms = ms(quantile(times, 0.9))
		c.MinMs = ms(times[0])
	}
	if len(helps) > 0 {
		c.HelpMedianMs = ms(quantile(helps, 0.5))
	}
	if len(empties) > 0 {
		c.EmptyMedianMs = ms(quantile(empties, 0.5))
	}
	c.EmptyRatio = medianOf(ratios)
}

// fillFloor sets the floor program's figures; ratios are its time over
// the empty program's, run by run.
func (c *coldFig) fillFloor(times []time.Duration, ratios []float64) {
	slices.Sort(times)
	slices.Sort(ratios)
	if len(times) > 0 {
		c.FloorMedianMs = ms(quantile(times, 0.5))
	}
	c.FloorRatio = medianOf(ratios)
}

// medianOf returns the median of sorted xs, 0 for none.
func medianOf(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	return (xs[(n-1)/2] + xs[n/2]) / 2
}

// emptyBinary returns the empty program: -empty if given, otherwise one
// built now with the go command into the work directory.
func (b *bench) emptyBinary(ctx context.Context) (string, error) {
	if b.opt.emptyBin != "" {
		if _, err := os.Stat(b.opt.emptyBin); err != nil {
			return "", err
		}
		return b.opt.emptyBin, nil
	}
	b.logf("cold start: building the empty Go program (CGO_ENABLED=0)...")
	return buildProgram(ctx, b.fx.dir, "empty", emptyProgram)
}

// floorBinary builds the floor program into the work directory and
// starts the loopback listener it dials, which reads what each run
// writes and closes the connection.
func (b *bench) floorBinary(ctx context.Context) (string, net.Listener, error) {
	b.logf("cold start: building the floor program (CGO_ENABLED=0)...")
	bin, err := buildProgram(ctx, b.fx.dir, "floor", floorProgram)
	if err != nil {
		return "", nil, err
	}
	l, err := sinkListener()
	if err != nil {
		return "", nil, err
	}
	return bin, l, nil
}

// sinkListener listens on 127.0.0.1 and, until closed, reads each
// connection to its end (at most 1 KiB, for at most coldStartTimeout)
// and closes it.
func sinkListener() (net.Listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(coldStartTimeout))
				io.Copy(io.Discard, io.LimitReader(c, 1024))
			}()
		}
	}()
	return l, nil
}

// buildProgram builds the one-file program src, which uses the standard
// library only, as a static binary named NAME-program in dir.
func buildProgram(ctx context.Context, dir, name, src string) (string, error) {
	srcDir := filepath.Join(dir, name)
	if err := os.MkdirAll(srcDir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(srcDir, "main.go"), []byte(src), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(srcDir, "go.mod"), []byte("module "+name+"\n\ngo 1.24\n"), 0o644); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, emptyBuildTimeout)
	defer cancel()
	out := filepath.Join(dir, name+"-program")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, firstLine(string(msg)))
	}
	return out, nil
}

// runOnce runs bin once with args, its output discarded, and returns its
// wall time.
func runOnce(ctx context.Context, bin string, args ...string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, coldStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	start := time.Now()
	err := cmd.Run()
	return time.Since(start), err
}

// clientOnce runs coffer-client get once and returns its wall time. With
// check, it also checks that the output is a JSON object with every
// secret.
func (b *bench) clientOnce(ctx context.Context, keyFile string, check bool) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, coldStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.opt.clientBin, "get", "--format", "json",
		"--server", b.servers["coffer"].addr, "--key", keyFile,
		"--server-key", b.fx.serverPub.String(),
		"--state", filepath.Join(b.fx.dir, "client.state")) // the default cost, not in /var/lib
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("coffer-client get: %v: %s", err, firstLine(stderr.String()))
	}
	if check {
		var m map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &m); err != nil {
			return 0, fmt.Errorf("coffer-client get --format json: output is not a JSON object: %v", err)
		}
		if len(m) != b.opt.secrets {
			return 0, fmt.Errorf("coffer-client get --format json: %d values, want %d", len(m), b.opt.secrets)
		}
	}
	return d, nil
}
