package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

// coldStarts runs `coffer-client get --format json` against the running
// coffer-server, once untimed (to warm the page cache) and then
// -cold-starts times, timing each whole process. Each run is another
// client, as each would be another machine booting. Each run is followed
// by coffer-client -h and by the empty program, so that the three meet
// the same noise; the ratio to the empty program is taken run by run.
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
	b.logf("cold start: %d runs of coffer-client get --format json...", b.opt.coldStarts)
	var times, helps, empties []time.Duration
	var ratios []float64
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
		if e, err := runOnce(ctx, empty); err == nil {
			empties = append(empties, e)
			ratios = append(ratios, float64(d)/float64(e))
		}
	}
	f.ColdStart.fill(times, helps, empties, ratios)
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
	if n := len(ratios); n > 0 {
		c.EmptyRatio = (ratios[(n-1)/2] + ratios[n/2]) / 2
	}
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
	src := filepath.Join(b.fx.dir, "empty")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "main.go"), []byte(emptyProgram), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(src, "go.mod"), []byte("module empty\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	b.logf("cold start: building the empty Go program (CGO_ENABLED=0)...")
	ctx, cancel := context.WithTimeout(ctx, emptyBuildTimeout)
	defer cancel()
	out := filepath.Join(b.fx.dir, "empty-program")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, ".")
	cmd.Dir = src
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
