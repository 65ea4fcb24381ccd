package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/coffer-project/coffer/frame"
)

// Watch mode (docs/client.md, "Watch mode"): after the first fetch,
// check the served serial every interval, and act on a new one.
const (
	// defaultWatchInterval is the mean time between two checks. Each
	// wait is drawn uniformly from [interval/2, 3*interval/2), so a fleet
	// that booted together spreads over a whole interval after one check.
	defaultWatchInterval = time.Minute
	// minWatchInterval bounds --watch-interval from below: each check is
	// a whole session, and the server allows 10 per client per second
	// by default.
	minWatchInterval = 100 * time.Millisecond
	// watchRetryBase is the first wait after a failed check; it doubles
	// with each failure in a row, up to the interval, so a short outage
	// is bridged quickly and a long one costs one attempt per interval.
	watchRetryBase = time.Second
	// onChangeTimeout bounds an --on-change command, which must not stop
	// the watch for good if it hangs; it is killed after this.
	onChangeTimeout = time.Minute
)

// watchFlags are the flags of watch mode, shared by get and exec.
type watchFlags struct {
	watch    bool
	interval time.Duration
	onChange string
}

func (w *watchFlags) registerWatch(fs *flag.FlagSet) {
	fs.BoolVar(&w.watch, "watch", false, "")
	fs.DurationVar(&w.interval, "watch-interval", 0, "")
	fs.StringVar(&w.onChange, "on-change", "", "")
}

const watchUsage = `Watch options:
  --watch           after the first fetch, keep running and check the
                    served serial every --watch-interval; on a new serial
                    whose values differ, rewrite the --out files (each
                    atomically), then act. A failed check keeps the current
                    secrets and retries with backoff; the serial never goes
                    back. SIGINT or SIGTERM ends it.
  --watch-interval D  mean time between checks, default 1m, at least 100ms;
                    each wait is drawn from [D/2, 3D/2) so a fleet spreads
                    (COFFER_WATCH_INTERVAL, [watch] interval)
  --on-change CMD   run CMD with /bin/sh -c after each change, with
                    COFFER_SERIAL set (killed after 1m)
`

// checkSet refuses watch options without --watch, before anything is
// fetched.
func (w *watchFlags) checkSet(fs *flag.FlagSet, watchOnly ...string) error {
	if w.watch {
		return nil
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range append([]string{"watch-interval", "on-change"}, watchOnly...) {
		if set[name] {
			return usageErr("--%s applies to --watch only", name)
		}
	}
	return nil
}

// resolveInterval picks --watch-interval, then COFFER_WATCH_INTERVAL,
// then [watch] interval, then the default.
func (w *watchFlags) resolveInterval(fs *flag.FlagSet, s *session, getenv func(string) string) (time.Duration, error) {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "watch-interval" })
	var file time.Duration
	if s.file != nil {
		file = s.file.WatchInterval
	}
	d, err := pickDuration(set, w.interval, "COFFER_WATCH_INTERVAL", getenv("COFFER_WATCH_INTERVAL"), file, defaultWatchInterval)
	if err != nil {
		return 0, configErr(err)
	}
	if d < minWatchInterval {
		return 0, configErr(fmt.Errorf("watch interval %s is below the minimum %s", d, minWatchInterval))
	}
	return d, nil
}

// watchDelay is the wait before the next check: the interval after a
// success, watchRetryBase doubled per failure in a row (at most the
// interval) after failures, each scaled by 0.5+u for u in [0, 1).
func watchDelay(interval time.Duration, fails int, u float64) time.Duration {
	d := interval
	if fails > 0 {
		d = min(watchRetryBase<<min(fails-1, 30), interval)
	}
	return time.Duration(float64(d) * (0.5 + u))
}

// watcher checks the served serial and hands each new shard whose values
// differ to apply. It owns the values in use and clears old ones.
type watcher struct {
	e        *env
	s        *session
	names    []string
	interval time.Duration
	serial   uint64      // serial of the values in use
	values   frame.Shard // the values in use
	apply    func(sh *shard) error
	poke     <-chan os.Signal // check at once (SIGHUP to get --watch and agent)
}

// newWatcher starts from the first shard, fetched or cached.
func newWatcher(e *env, s *session, names []string, interval time.Duration, first *shard) *watcher {
	w := &watcher{e: e, s: s, names: names, interval: interval, values: first.values, serial: first.cacheSerial}
	if first.res != nil {
		w.serial = first.res.Version.Serial
	}
	return w
}

func (w *watcher) logf(format string, args ...any) {
	fmt.Fprintf(w.e.stderr, "coffer-client: watch: "+format+"\n", args...)
}

// run checks until ctx ends. It never returns an error: a failed check
// is logged and retried, and the values in use stay.
func (w *watcher) run(ctx context.Context) {
	fails := 0
	for {
		d := watchDelay(w.interval, fails, rand.Float64())
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-w.poke:
			t.Stop()
		case <-t.C:
		}
		if err := w.check(); err != nil {
			fails++
			next := watchDelay(w.interval, fails, 0.5)
			w.logf("check failed; keeping serial %d, retrying in about %s: %v", w.serial, next.Round(time.Millisecond), err)
			continue
		}
		fails = 0
	}
}

// check runs one fetch (one round over the servers, no cache) that
// refuses a serial below the one in use, and applies a new serial.
func (w *watcher) check() error {
	st := *w.s.settings
	st.wait, st.cache = 0, ""
	ps := *w.s
	ps.settings = &st
	ps.floor = max(w.s.floor, w.serial)
	sh, err := w.e.fetchShard(&ps, w.names)
	if err != nil {
		return err
	}
	serial := sh.res.Version.Serial
	if serial <= w.serial {
		clearShard(sh.values)
		return nil
	}
	if sameShard(sh.values, w.values) {
		w.logf("serial %d (was %d): no value of this client changed", serial, w.serial)
	} else if err := w.apply(sh); err != nil {
		clearShard(sh.values)
		return fmt.Errorf("serial %d: %w", serial, err)
	}
	if err := w.e.commit(w.s, sh); err != nil {
		w.logf("warning: serial %d applied, but: %v", serial, err)
	}
	clearShard(w.values)
	w.values, w.serial = sh.values, serial
	return nil
}

// sameShard reports whether a and b hold the same names, kinds and
// values (a float compared by its bits, so NaN equals NaN).
func sameShard(a, b frame.Shard) bool {
	if len(a) != len(b) {
		return false
	}
	for n, va := range a {
		vb, ok := b[n]
		if !ok || va.Kind != vb.Kind || !bytes.Equal(va.Text, vb.Text) || va.Int != vb.Int ||
			math.Float64bits(va.Float) != math.Float64bits(vb.Float) || va.Bool != vb.Bool {
			return false
		}
	}
	return true
}

// clearShard zeroes the text of every value.
func clearShard(s frame.Shard) {
	for _, v := range s {
		clear(v.Text)
	}
}

// runOnChange runs an --on-change command with /bin/sh -c, its output on
// stderr, and reports how it ended. The secrets are not in its
// environment.
func runOnChange(cmdline string, serial uint64, log io.Writer) error {
	ctx, cancel := context.WithTimeout(context.Background(), onChangeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", cmdline)
	cmd.Env = append(os.Environ(), "COFFER_SERIAL="+strconv.FormatUint(serial, 10))
	cmd.Stdout, cmd.Stderr = log, log
	err := cmd.Run()
	if ctx.Err() != nil {
		return fmt.Errorf("--on-change command killed after %s", onChangeTimeout)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("--on-change command exited with %s", ee.ProcessState)
	}
	return err
}

// watchGet is get --watch: the first shard is written and committed
// already, and g.interval resolved; rewrite the files on each change
// until SIGINT or SIGTERM.
func (e *env) watchGet(g *getFlags, s *session, names []string, plan *outputPlan, first *shard) error {
	w := newWatcher(e, s, names, g.interval, first)
	w.apply = func(sh *shard) error {
		if err := plan.write(sh, e); err != nil {
			return err
		}
		w.logf("serial %d (was %d): wrote %s", sh.res.Version.Serial, w.serial, plan.path)
		if g.onChange != "" {
			if err := runOnChange(g.onChange, sh.res.Version.Serial, e.stderr); err != nil {
				w.logf("warning: %v", err)
			}
		}
		return nil
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	w.poke = hup
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	w.logf("serial %d written to %s; checking every %s", w.serial, plan.path, g.interval)
	w.run(ctx)
	return nil
}
