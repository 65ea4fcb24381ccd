package shard_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/shard"
)

// Environment of the crash child (TestCrashChild re-executed).
const (
	envCrashDir    = "SHARD_CRASH_DIR"
	envCrashSerial = "SHARD_CRASH_SERIAL"
	envCrashStep   = "SHARD_CRASH_STEP"
	// crashMarker starts the line the child writes as it kills itself.
	crashMarker = "crash-child: killed at "
)

// crashDef is the definition of serial s in the crash test: the number
// of clients changes with the serial, so a mix would show.
func crashDef(s uint64) *def { return makeDef(s, 300+int(s%5)*10, 4) }

// TestCrashChild is the subprocess of TestCrashImport: it imports
// crashDef(serial) and kills itself with SIGKILL at the step-th crash
// point of Import (never if step < 0; the parent may kill it instead).
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(envCrashDir)
	if dir == "" {
		t.Skip("only run as the crash test's subprocess")
	}
	serial, _ := strconv.ParseUint(os.Getenv(envCrashSerial), 10, 64)
	step, _ := strconv.Atoi(os.Getenv(envCrashStep))
	st, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	shard.SetHook(st, func(name string) {
		if n == step {
			// Unbuffered, so the parent reads it after the SIGKILL.
			fmt.Fprintf(os.Stderr, "%s%s\n", crashMarker, name)
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
		n++
	})
	d := crashDef(serial)
	prev, err := st.Import(d.v, d.sealed, d.seq())
	if err != nil {
		t.Fatal(err)
	}
	// A step past the last crash point must be exactly one past it, so
	// the parent learns how many points Import has.
	if step >= 0 && step != n {
		t.Fatalf("Import passed %d crash points, and step %d is not one past the last", n, step)
	}
	if prev != 0 {
		if err := st.DropGeneration(prev); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
}

// TestCrashImport kills an importing process at every crash point of
// Import and at random times, then checks that the store serves exactly
// one complete definition, old or new, with a consistent state file, no
// leftover generation and no stale kept or temporary file.
func TestCrashImport(t *testing.T) {
	if os.Getenv(envCrashDir) != "" {
		t.Skip("in the subprocess")
	}
	dir := t.TempDir()
	st, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mustImport(t, st, crashDef(1))
	st.Close()

	// Import's crash points, in order: 3 batches of clients.
	points := []string{"start", "kept", "batch", "batch", "batch", "written", "flipped", "state", "done"}
	steps := len(points)
	rounds := 40
	if testing.Short() {
		rounds = 15
	}
	rng := rand.New(rand.NewPCG(1, 2))
	serial := uint64(1)
	killed := map[string]int{}
	for round := range rounds {
		step, delay := -1, time.Duration(0)
		if round < 2*(steps+1) {
			step = round % (steps + 1)
		} else {
			delay = time.Duration(20+rng.IntN(300)) * time.Millisecond
		}
		outcome := runCrashChild(t, dir, serial+1, step, delay)
		killed[outcome]++
		// A crash-point round must end at its point, and the round one
		// past the last point must complete: a hook that never fires
		// would otherwise let every round pass as a completed import.
		want := "completed"
		if step >= 0 && step < steps {
			want = "killed at " + points[step]
		}
		if step >= 0 && outcome != want {
			t.Fatalf("round %d (step %d): child %s, want %s", round, step, outcome, want)
		}

		st, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
		if err != nil {
			t.Fatalf("round %d (step %d, delay %v): Open: %v", round, step, delay, err)
		}
		switch c := st.Condition(); c {
		case shard.Consistent, shard.StateUpdated:
		default:
			t.Fatalf("round %d: Condition = %v", round, c)
		}
		v, gen, ok := st.Current()
		if !ok || (v.Serial != serial && v.Serial != serial+1) {
			t.Fatalf("round %d: serving serial %d (ok %v), want %d or %d", round, v.Serial, ok, serial, serial+1)
		}
		checkServes(t, st, crashDef(v.Serial))
		if sv, _ := st.State(); sv != v {
			t.Fatalf("round %d: state serial %d, store %d", round, sv.Serial, v.Serial)
		}
		if gens, _ := shard.Generations(st); !slices.Equal(gens, []uint64{gen}) {
			t.Fatalf("round %d: generations %v, want [%d]", round, gens, gen)
		}
		if kept := keptFiles(t, dir); !slices.Equal(kept, []string{fmt.Sprintf("%x.sealed", v.Hash)}) {
			t.Fatalf("round %d: kept files %v", round, kept)
		}
		serial = v.Serial
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("child outcomes over %d rounds: %v; final serial %d", rounds, killed, serial)
}

// runCrashChild runs TestCrashChild and, with a delay, kills it then.
// It reports how the child ended.
func runCrashChild(t *testing.T, dir string, serial uint64, step int, delay time.Duration) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), envCrashDir+"="+dir,
		envCrashSerial+"="+strconv.FormatUint(serial, 10), envCrashStep+"="+strconv.Itoa(step))
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if delay > 0 {
		timer := time.AfterFunc(delay, func() { cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	err := cmd.Wait()
	if err == nil {
		return "completed"
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		for _, line := range strings.Split(out.String(), "\n") {
			if name, ok := strings.CutPrefix(line, crashMarker); ok {
				return "killed at " + name
			}
		}
		return "killed"
	}
	t.Fatalf("child (serial %d, step %d): %v\n%s", serial, step, err, out.String())
	return ""
}

// TestCrashFirstImport kills a process at every crash point of a store's
// first import, which also closes and reopens Badger to return its build
// buffers ("reopen": closed, not yet opened again), then checks that the
// store opens and serves either nothing or the whole definition.
func TestCrashFirstImport(t *testing.T) {
	if os.Getenv(envCrashDir) != "" {
		t.Skip("in the subprocess")
	}
	points := []string{"start", "kept", "batch", "batch", "batch", "written", "flipped", "state", "reopen", "reopened", "done"}
	for step := range len(points) + 1 {
		dir := t.TempDir()
		outcome := runCrashChild(t, dir, 1, step, 0)
		want := "completed"
		if step < len(points) {
			want = "killed at " + points[step]
		}
		if outcome != want {
			t.Fatalf("step %d: child %s, want %s", step, outcome, want)
		}
		st, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
		if err != nil {
			t.Fatalf("step %d (%s): Open: %v", step, want, err)
		}
		v, gen, ok := st.Current()
		switch {
		case !ok && step < slices.Index(points, "flipped"):
			// killed before the flip: nothing is served, and the next
			// import starts clean
			if gens, _ := shard.Generations(st); len(gens) != 0 {
				t.Fatalf("step %d: generations %v with nothing current", step, gens)
			}
			mustImport(t, st, crashDef(1))
		case ok && v.Serial == 1:
			if gens, _ := shard.Generations(st); !slices.Equal(gens, []uint64{gen}) {
				t.Fatalf("step %d: generations %v, want [%d]", step, gens, gen)
			}
		default:
			t.Fatalf("step %d (%s): serving %v (ok %v)", step, want, v, ok)
		}
		checkServes(t, st, crashDef(1))
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
