// Command coffer-bench measures coffer beside TLS 1.3 and mutual TLS 1.3
// in one run on one machine: definition sealing and server start, load at
// several concurrencies, a boot storm, and the client's cold start. It
// prints a table and, last, one JSON line with every figure.
//
// See docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `Usage: coffer-bench [options]

Seals a definition of N clients x M secrets, starts the real coffer-server
on 127.0.0.1, and measures it beside a TLS 1.3 and a mutual TLS 1.3 server
(crypto/tls, X25519, Ed25519 certificates, full handshakes) under the same
load, from a separate load generator process. Prints a table and, last,
one JSON line with every figure.

Options:
  -server PATH       coffer-server binary (default bin/coffer-server)
  -client PATH       coffer-client binary (default bin/coffer-client)
  -companion PATH    coffer-companion binary used to seal; "" seals in
                     process with coffer.SealDefinition (default bin/coffer-companion)
  -clients N         clients in the definition (default 10000)
  -definitions N     split the clients into N definitions of about equal
                     size, each sealed on its own and listed as a
                     [[definitions]] table in a server config (default 1)
  -scale LIST        instead of the comparison with TLS, the scale run of
                     issue 19: for each fleet size in LIST (e.g.
                     1000,10000,100000), split into -definitions, seal,
                     start, boot storm, load at concurrency 16 (-rounds
                     rounds, medians), and reload one definition while
                     the others are under load
  -secrets M         secrets per client (default 10)
  -value-size B      bytes per secret value (default 40)
  -duration D        length of each load phase (default 5s)
  -rounds R          rounds of every load phase, interleaved; figures are
                     medians over rounds (default 3)
  -conc LIST         concurrencies of the load phases (default 1,16,256)
  -storm-conc C      concurrency of the boot storm (default 256)
  -cold-starts K     coffer-client runs for the cold start (default 30)
  -empty PATH        static Go binary whose main does nothing, the cold
                     start's yardstick (default: built with go build,
                     CGO_ENABLED=0, in the work directory)
  -quick             CI smoke settings: 1000 clients, 2s phases, 1 round,
                     10 cold starts (explicit flags still win)
  -server-flags S    extra coffer-server serve flags, space-separated
                     (e.g. "--log-level warn")
  -cpuprofile FILE   ask coffer-server to write a CPU profile to FILE
                     (only if the server has a --cpuprofile flag)
  -keep              keep the work directory (keys, data, logs)
  -h                 this help

Everything talks only to 127.0.0.1. Every child process is killed at the
end, on error and on Ctrl-C.

Examples:
  make bench
  bin/coffer-bench -server bin/coffer-server -client bin/coffer-client -quick
  bin/coffer-bench -clients 10000 -duration 10s -rounds 5
  bin/coffer-bench -scale 1000,10000,100000 -definitions 4
`

// options are the benchmark's settings.
type options struct {
	serverBin, clientBin, companionBin string
	clients, secrets, valueSize        int
	definitions                        int   // the fleet is split into this many definitions (issue 19)
	scale                              []int // -scale: the fleet sizes of a scale run (scale.go)
	duration                           time.Duration
	rounds                             int
	conc                               []int
	stormConc                          int
	coldStarts                         int
	emptyBin                           string
	quick                              bool
	serverFlags                        []string
	cpuprofile                         string
	keep                               bool
}

// Bounds on the settings: everything a run does is bounded.
const (
	maxClients    = 100_000
	maxSecrets    = 1000
	maxValueSize  = 4096
	maxRounds     = 20
	maxColdStarts = 1000
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		var err error
		switch args[0] {
		case "loadgen":
			err = runLoadgen(args[1:])
		case "tlsserver", "tcpserver":
			err = runBaselineServer(args[0], args[1:])
		default:
			return runBench(args, stdout, stderr)
		}
		if err != nil {
			fmt.Fprintf(stderr, "coffer-bench: %s: error: %v\n", args[0], err)
			return 1
		}
		return 0
	}
	return runBench(args, stdout, stderr)
}

func runBench(args []string, stdout, stderr io.Writer) int {
	opt, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "coffer-bench: error: %v\n", err)
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := newBench(opt, stdout, stderr)
	if opt.scale != nil {
		return b.runScaleMain(ctx)
	}
	figs, err := b.run(ctx)
	if ctx.Err() != nil {
		fmt.Fprintln(stderr, "coffer-bench: interrupted; every child process stopped")
		return 1
	}
	if err != nil {
		fmt.Fprintf(stderr, "coffer-bench: error: %v\n", err)
		return 1
	}
	if err := printReport(stdout, figs); err != nil {
		fmt.Fprintf(stderr, "coffer-bench: error: %v\n", err)
		return 1
	}
	return 0
}

func parseOptions(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("coffer-bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opt := &options{}
	fs.StringVar(&opt.serverBin, "server", "bin/coffer-server", "")
	fs.StringVar(&opt.clientBin, "client", "bin/coffer-client", "")
	fs.StringVar(&opt.companionBin, "companion", "bin/coffer-companion", "")
	fs.IntVar(&opt.clients, "clients", 10000, "")
	fs.IntVar(&opt.definitions, "definitions", 1, "")
	scaleList := fs.String("scale", "", "")
	fs.IntVar(&opt.secrets, "secrets", 10, "")
	fs.IntVar(&opt.valueSize, "value-size", 40, "")
	fs.DurationVar(&opt.duration, "duration", 5*time.Second, "")
	fs.IntVar(&opt.rounds, "rounds", 3, "")
	concList := fs.String("conc", "1,16,256", "")
	fs.IntVar(&opt.stormConc, "storm-conc", 256, "")
	fs.IntVar(&opt.coldStarts, "cold-starts", 30, "")
	fs.StringVar(&opt.emptyBin, "empty", "", "")
	fs.BoolVar(&opt.quick, "quick", false, "")
	serverFlags := fs.String("server-flags", "", "")
	fs.StringVar(&opt.cpuprofile, "cpuprofile", "", "")
	fs.BoolVar(&opt.keep, "keep", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, usage)
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if opt.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["clients"] {
			opt.clients = 1000
		}
		if !set["duration"] {
			opt.duration = 2 * time.Second
		}
		if !set["rounds"] {
			opt.rounds = 1
		}
		if !set["cold-starts"] {
			opt.coldStarts = 10
		}
	}
	opt.serverFlags = strings.Fields(*serverFlags)
	var err error
	if opt.conc, err = parseConc(*concList); err != nil {
		return nil, err
	}
	if *scaleList != "" {
		if opt.scale, err = parseScale(*scaleList, opt.definitions); err != nil {
			return nil, err
		}
	}
	switch {
	case opt.clients < 1 || opt.clients > maxClients:
		return nil, fmt.Errorf("-clients %d out of range 1..%d", opt.clients, maxClients)
	case opt.definitions < 1 || opt.definitions > maxDefinitions || opt.definitions > opt.clients:
		return nil, fmt.Errorf("-definitions %d out of range 1..%d (and at most -clients)", opt.definitions, maxDefinitions)
	case opt.secrets < 1 || opt.secrets > maxSecrets:
		return nil, fmt.Errorf("-secrets %d out of range 1..%d", opt.secrets, maxSecrets)
	case opt.valueSize < 1 || opt.valueSize > maxValueSize:
		return nil, fmt.Errorf("-value-size %d out of range 1..%d", opt.valueSize, maxValueSize)
	case opt.duration < 100*time.Millisecond || opt.duration > maxPhaseDuration:
		return nil, fmt.Errorf("-duration %v out of range 100ms..%v", opt.duration, maxPhaseDuration)
	case opt.rounds < 1 || opt.rounds > maxRounds:
		return nil, fmt.Errorf("-rounds %d out of range 1..%d", opt.rounds, maxRounds)
	case opt.stormConc < 1 || opt.stormConc > maxConcurrency:
		return nil, fmt.Errorf("-storm-conc %d out of range 1..%d", opt.stormConc, maxConcurrency)
	case opt.coldStarts < 0 || opt.coldStarts > maxColdStarts:
		return nil, fmt.Errorf("-cold-starts %d out of range 0..%d", opt.coldStarts, maxColdStarts)
	}
	return opt, nil
}

func parseConc(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxConcurrency {
			return nil, fmt.Errorf("-conc: %q is not a concurrency in 1..%d", f, maxConcurrency)
		}
		out = append(out, n)
	}
	return out, nil
}
