package shard

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/coffer-project/coffer/internal/atomicfile"
)

// The state file mirrors the current version outside Badger, so a store
// restored from an older copy is noticed (definitions-and-store.md). It
// is four text lines, the last an HMAC-SHA256 of the first three under a
// key derived from the seal key:
//
//	coffer-state 1
//	serial 7
//	hash <64 hex digits>
//	mac <64 hex digits>
const (
	stateMagic    = "coffer-state 1\n"
	maxStateBytes = 512
)

func formatStateBody(v Version) []byte {
	var b bytes.Buffer
	b.WriteString(stateMagic)
	fmt.Fprintf(&b, "serial %d\nhash %x\n", v.Serial, v.Hash)
	return b.Bytes()
}

// writeState atomically replaces dir/state with v.
func writeState(dir string, sl *sealer, v Version) error {
	body := formatStateBody(v)
	body = fmt.Appendf(body, "mac %x\n", sl.stateMAC(body))
	if err := atomicfile.Write(filepath.Join(dir, stateFile), body, 0o600); err != nil {
		return fmt.Errorf("shard: writing state file: %w", err)
	}
	return nil
}

// readState reads dir/state. ok is false if there is none; a file that
// does not parse or verify is ErrBadState.
func readState(dir string, sl *sealer) (v Version, ok bool, err error) {
	f, err := os.Open(filepath.Join(dir, stateFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Version{}, false, nil
	}
	if err != nil {
		return Version{}, false, fmt.Errorf("shard: reading state file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxStateBytes+1))
	if err != nil {
		return Version{}, false, fmt.Errorf("shard: reading state file: %w", err)
	}
	v, err = parseState(data, sl)
	if err != nil {
		return Version{}, false, fmt.Errorf("%w (%s): %v", ErrBadState, filepath.Join(dir, stateFile), err)
	}
	return v, true, nil
}

func parseState(data []byte, sl *sealer) (Version, error) {
	var v Version
	if len(data) > maxStateBytes {
		return v, errors.New("too large")
	}
	lines := strings.Split(string(data), "\n")
	if len(lines) != 5 || lines[4] != "" || lines[0]+"\n" != stateMagic {
		return v, errors.New("not a version 1 state file")
	}
	s, ok := strings.CutPrefix(lines[1], "serial ")
	if !ok {
		return v, errors.New("line 2 is not the serial")
	}
	serial, err := strconv.ParseUint(s, 10, 64)
	if err != nil || serial == 0 || strconv.FormatUint(serial, 10) != s {
		return v, errors.New("bad serial")
	}
	h, ok := strings.CutPrefix(lines[2], "hash ")
	if !ok || len(h) != 64 {
		return v, errors.New("line 3 is not the hash")
	}
	if _, err := hex.Decode(v.Hash[:], []byte(h)); err != nil || strings.ToLower(h) != h {
		return v, errors.New("bad hash")
	}
	m, ok := strings.CutPrefix(lines[3], "mac ")
	mac, err := hex.DecodeString(m)
	if !ok || err != nil || len(mac) != sha256.Size {
		return v, errors.New("line 4 is not the mac")
	}
	v.Serial = serial
	if !hmac.Equal(mac, sl.stateMAC(formatStateBody(v))) {
		return Version{}, errors.New("mac does not verify")
	}
	return v, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("shard: syncing directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("shard: syncing directory: %w", err)
	}
	return nil
}

func keptName(hash [32]byte) string { return hex.EncodeToString(hash[:]) + ".sealed" }

// writeKept stores the sealed file under its hash.
func writeKept(dir string, hash [32]byte, sealed []byte) error {
	if err := atomicfile.Write(filepath.Join(dir, sealedDir, keptName(hash)), sealed, 0o600); err != nil {
		return fmt.Errorf("shard: keeping sealed file: %w", err)
	}
	return nil
}

// pruneKept removes kept sealed files and temporary files other than
// those of keep, in dir and dir/sealed.
func pruneKept(dir string, keep [][32]byte) error {
	names := map[string]bool{}
	for _, h := range keep {
		if h != ([32]byte{}) {
			names[keptName(h)] = true
		}
	}
	for _, d := range []string{dir, filepath.Join(dir, sealedDir)} {
		entries, err := os.ReadDir(d)
		if err != nil {
			return fmt.Errorf("shard: listing kept files: %w", err)
		}
		for _, e := range entries {
			n := e.Name()
			stale := strings.HasSuffix(n, ".tmp") || (d != dir && strings.HasSuffix(n, ".sealed") && !names[n])
			if !stale || !e.Type().IsRegular() {
				continue
			}
			if err := os.Remove(filepath.Join(d, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("shard: removing stale file: %w", err)
			}
		}
	}
	return nil
}

// KeptSealed returns the kept sealed file whose SHA-256 is hash: the one
// to import when the store NeedsRebuild (hash = State().Hash). It
// returns ErrNoKept if there is none, and ErrTampered if the file no
// longer matches its hash.
func (st *Store) KeptSealed(hash [32]byte) ([]byte, error) {
	f, err := os.Open(filepath.Join(st.dir, sealedDir, keptName(hash)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNoKept
	}
	if err != nil {
		return nil, fmt.Errorf("shard: reading kept sealed file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxSealedBytes+1))
	if err != nil {
		return nil, fmt.Errorf("shard: reading kept sealed file: %w", err)
	}
	if len(data) > maxSealedBytes || sha256.Sum256(data) != hash {
		return nil, fmt.Errorf("%w: kept sealed file %s does not match its hash", ErrTampered, keptName(hash))
	}
	return data, nil
}
