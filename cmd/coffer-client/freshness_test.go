package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/coffer-project/coffer/coffer"
)

// TestRecordSerialConcurrent: runs that share one state file each record
// a serial at the same time; the highest must win, whatever the order
// (without the lock one run reads, another writes a higher serial, and
// the first writes its lower one over it).
func TestRecordSerialConcurrent(t *testing.T) {
	k, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	server := k.Public()
	const runs = 32
	for round := range 10 {
		path := filepath.Join(t.TempDir(), "state")
		var wg sync.WaitGroup
		errs := make(chan error, runs)
		for serial := uint64(1); serial <= runs; serial++ {
			wg.Go(func() { errs <- recordSerial(path, server, "default", serial) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		st, err := readState(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := st[stateKey{server, "default"}]; got != runs {
			t.Errorf("round %d: remembered serial %d, want %d", round, got, runs)
		}
		if round > 0 {
			continue
		}
		fi, err := os.Stat(path + ".lock")
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Errorf("lock file mode %04o, want 0600", got)
		}
	}
}
