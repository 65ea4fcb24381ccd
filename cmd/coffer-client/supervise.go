package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// restartGrace is how long --restart waits for the program to exit after
// SIGTERM before it sends SIGKILL, so a program that ignores SIGTERM
// cannot keep the old secrets in use for ever.
const restartGrace = 10 * time.Second

// forwardedSignals are passed on to the program in exec --watch, which
// is what it would get if it were the process systemd or the shell
// started. SIGINT and SIGTERM also end the watch.
var forwardedSignals = [...]os.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// signalNames are the signals --signal accepts.
var signalNames = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "TERM": syscall.SIGTERM,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "WINCH": syscall.SIGWINCH,
}

// parseSignal parses --signal: HUP, SIGHUP or hup.
func parseSignal(s string) (syscall.Signal, error) {
	if sig, ok := signalNames[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; ok {
		return sig, nil
	}
	return 0, fmt.Errorf("--signal %q: want HUP, INT, QUIT, TERM, USR1, USR2 or WINCH", s)
}

// execWatchFlags are exec's watch flags: how the program learns of a
// change, and the files kept up to date for it.
type execWatchFlags struct {
	watchFlags
	signal                          string
	restart                         bool
	out, format, mode, owner, group string
}

func (x *execWatchFlags) registerExecWatch(fs *flag.FlagSet) {
	x.registerWatch(fs)
	fs.StringVar(&x.signal, "signal", "HUP", "")
	fs.BoolVar(&x.restart, "restart", false, "")
	fs.StringVar(&x.out, "out", "", "")
	fs.StringVar(&x.format, "format", "", "")
	fs.StringVar(&x.mode, "mode", "", "")
	fs.StringVar(&x.owner, "owner", "", "")
	fs.StringVar(&x.group, "group", "", "")
}

const execWatchUsage = watchUsage + `  --signal SIG      with --watch: send SIG to CMD after a change; default
                    HUP (HUP, INT, QUIT, TERM, USR1, USR2, WINCH)
  --restart         with --watch: instead, stop CMD (SIGTERM, SIGKILL
                    after 10s) and start it again with the new environment
                    (--on-change runs instead of the signal)
  --out PATH        with --watch: also write the secrets to files, as get
                    --out does (--format, --mode, --owner, --group too),
                    before CMD starts and before each signal
  With --watch coffer-client stays CMD's parent: it forwards HUP, INT,
  QUIT, TERM, USR1, USR2 and WINCH to CMD, and exits with CMD's status
  (128+N if a signal N ended it).
`

// checkExecWatch checks the watch options of exec before anything is
// fetched, and returns the signal to send and the files to write (nil
// for none).
func (x *execWatchFlags) checkExecWatch(fs *flag.FlagSet, prefix string) (syscall.Signal, *outputPlan, error) {
	if err := x.checkSet(fs, "signal", "restart", "out", "format", "mode", "owner", "group"); err != nil {
		return 0, nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if n := btoi(set["signal"]) + btoi(x.restart) + btoi(x.onChange != ""); n > 1 {
		return 0, nil, usageErr("give one of --signal, --restart and --on-change")
	}
	sig, err := parseSignal(x.signal)
	if err != nil {
		return 0, nil, usageErr("%v", err)
	}
	if x.out == "" {
		for _, f := range []string{"format", "mode", "owner", "group"} {
			if set[f] {
				return 0, nil, usageErr("--%s applies to --out only", f)
			}
		}
		return sig, nil, nil
	}
	g := &getFlags{format: x.format, prefix: prefix, out: x.out, mode: x.mode, owner: x.owner, group: x.group}
	plan, err := g.plan(fs, nil)
	return sig, plan, err
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// execWatch is exec --watch: fetch, write the files, start the program
// as a child, then watch and signal or restart it on each change. It
// returns the program's exit status as an *exitError (nil for 0).
func (e *env) execWatch(fs *flag.FlagSet, x *execFlags, s *session, sig syscall.Signal, plan *outputPlan, path string, argv []string) error {
	interval, err := x.resolveInterval(fs, s, e.getenv)
	if err != nil {
		return err
	}
	sh, err := e.fetchShard(s, x.names)
	if err != nil {
		return err
	}
	environ, err := x.childEnv(sh)
	if err != nil {
		return err
	}
	if plan != nil {
		if err := plan.write(sh, e); err != nil {
			return err
		}
	}
	if err := e.commit(s, sh); err != nil {
		return err
	}
	sv := &supervisor{path: path, argv: argv, log: e.stderr, sig: sig, restart: x.restart, changes: make(chan change)}
	w := newWatcher(e, s, x.names, interval, sh)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w.apply = func(sh *shard) error {
		if plan != nil {
			if err := plan.write(sh, e); err != nil {
				return err
			}
		}
		serial := sh.res.Version.Serial
		if x.onChange != "" {
			w.logf("serial %d (was %d): running --on-change", serial, w.serial)
			if err := runOnChange(x.onChange, serial, e.stderr); err != nil {
				w.logf("warning: %v", err)
			}
			return nil
		}
		c := change{serial: serial, was: w.serial, done: make(chan error, 1)}
		if x.restart {
			var err error
			if c.environ, err = x.childEnv(sh); err != nil {
				return err
			}
		}
		select {
		case sv.changes <- c:
			return <-c.done
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	code := sv.run(environ, func() { go w.run(ctx) })
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}

// childEnv is the environment of CMD for a shard, built as one-shot
// exec builds it; the one place exec --watch makes it, at the start and
// at each --restart, so every rule of exec's environment applies to both.
func (x *execFlags) childEnv(sh *shard) ([]string, error) {
	var base []string
	if !x.pristine {
		base = os.Environ()
	}
	plan, err := execPlan(x.prefix, positional(x.names, x.env), x.env, sh.values)
	if err != nil {
		return nil, err
	}
	if err := checkStartupPlan(plan, x.allowEnv); err != nil {
		return nil, err
	}
	return buildEnv(base, plan, sh.values)
}

// change asks the supervisor to signal or restart the program.
type change struct {
	serial, was uint64
	environ     []string // for --restart
	done        chan error
}

// supervisor runs the program of exec --watch as a child. One goroutine
// (run) owns the child; the watcher talks to it through changes.
type supervisor struct {
	path    string
	argv    []string
	log     io.Writer
	sig     syscall.Signal
	restart bool
	changes chan change
}

type childExit struct {
	gen  int
	code int
}

// run starts the program and supervises it until it exits by itself or
// after SIGINT or SIGTERM, and returns the exit status to end with.
// started runs once the first child is running.
func (sv *supervisor) run(environ []string, started func()) int {
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, forwardedSignals[:]...)
	defer signal.Stop(sigs)
	exits := make(chan childExit, 4)
	gen := 0
	proc, err := sv.start(environ, gen, exits)
	if err != nil {
		fmt.Fprintf(sv.log, "coffer-client: error: %v\n", err)
		return exitFailure
	}
	started()
	var pending *change // a restart in progress
	var kill *time.Timer
	stopping := false
	for {
		select {
		case sig := <-sigs:
			proc.Signal(sig)
			if sig == syscall.SIGINT || sig == syscall.SIGTERM {
				stopping = true
			}
		case ex := <-exits:
			if ex.gen != gen {
				continue
			}
			if pending == nil || stopping {
				return ex.code
			}
			kill.Stop()
			gen++
			old := proc.Pid
			if proc, err = sv.start(pending.environ, gen, exits); err != nil {
				fmt.Fprintf(sv.log, "coffer-client: error: restarting: %v\n", err)
				pending.done <- err
				return exitFailure
			}
			fmt.Fprintf(sv.log, "coffer-client: watch: serial %d (was %d): restarted %s: pid %d -> %d\n",
				pending.serial, pending.was, sv.path, old, proc.Pid)
			pending.done <- nil
			pending = nil
		case c := <-sv.changes:
			switch {
			case stopping:
				c.done <- nil
			case sv.restart:
				pending = &c
				p := proc
				proc.Signal(syscall.SIGTERM)
				kill = time.AfterFunc(restartGrace, func() { p.Kill() })
			default:
				err := proc.Signal(sv.sig)
				if err == nil {
					fmt.Fprintf(sv.log, "coffer-client: watch: serial %d (was %d): sent %s to pid %d\n",
						c.serial, c.was, signalName(sv.sig), proc.Pid)
				}
				c.done <- err
			}
		}
	}
}

// start starts one child and a goroutine that reaps it and reports its
// exit status on exits.
func (sv *supervisor) start(environ []string, gen int, exits chan<- childExit) (*os.Process, error) {
	cmd := exec.Command(sv.path)
	cmd.Args = sv.argv
	cmd.Env = environ
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// If coffer-client dies without forwarding a signal (SIGKILL), the
	// program is told to stop rather than run on unwatched.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", sv.path, bareErr(err))
	}
	go func() {
		cmd.Wait()
		exits <- childExit{gen: gen, code: exitStatus(cmd.ProcessState)}
	}()
	return cmd.Process, nil
}

// exitStatus is the status a shell would report: the exit code, or 128+N
// for a program ended by signal N.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func signalName(sig syscall.Signal) string {
	for name, s := range signalNames {
		if s == sig {
			return "SIG" + name
		}
	}
	return sig.String()
}
