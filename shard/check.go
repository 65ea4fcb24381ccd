package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
)

// Bounds of a table footer's checksum record and index.
const (
	maxChecksumLen = 64
	aesIVSize      = 16 // an encrypted index ends with its IV
)

// checkTables verifies the footer of every table the manifest lists before Badger
// opens them. Badger 4.9.6 opens tables in goroutines of its own, and a
// zeroed or truncated footer makes one of them panic (the index decrypt
// slices an empty buffer; badger #2201), which no recover in Open can
// catch and which kills the daemon. Checking the footer's lengths and
// the index checksum here turns that into ErrCorrupt.
func checkTables(path string) error {
	entries, err := os.ReadDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("shard: listing database directory: %w", err)
	}
	// Without its key registry Badger starts a new one and reads the
	// tables with no data key: garbage indexes and a panic.
	registry, data := false, false
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".sst", ".vlog", ".mem":
			data = true
		}
		registry = registry || e.Name() == badger.KeyRegistryFileName
		data = data || e.Name() == "MANIFEST"
	}
	if data && !registry {
		return fmt.Errorf("%w: %s is missing", ErrCorrupt, badger.KeyRegistryFileName)
	}
	tables, err := manifestTables(path)
	if err != nil || tables == nil {
		return nil // no manifest, or one Badger itself refuses cleanly
	}
	for _, name := range tables {
		if err := checkTable(filepath.Join(path, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: table %s: %v", ErrCorrupt, name, err)
		}
	}
	return nil
}

// manifestTables returns the file names of the tables the manifest
// lists. A table file it does not list is a leftover of a kill during a
// flush or compaction, which Badger deletes.
func manifestTables(path string) ([]string, error) {
	f, err := os.Open(filepath.Join(path, badger.ManifestFilename))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, _, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(path).WithLogger(nil))
	if err != nil {
		return nil, err
	}
	names := []string{}
	for id := range m.Tables {
		names = append(names, table.IDToFilename(id))
	}
	return names, nil
}

// checkTable reads a table's footer: index, index length (4 BE),
// checksum record, checksum length (4 BE).
func checkTable(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	var b4 [4]byte
	if size < 8 {
		return errors.New("too short")
	}
	if _, err := f.ReadAt(b4[:], size-4); err != nil {
		return err
	}
	cl := int64(binary.BigEndian.Uint32(b4[:]))
	if cl == 0 || cl > maxChecksumLen || cl+8 > size {
		return errors.New("bad checksum length")
	}
	csRec := make([]byte, cl)
	if _, err := f.ReadAt(csRec, size-4-cl); err != nil {
		return err
	}
	algo, sum, err := parseChecksum(csRec)
	if err != nil {
		return err
	}
	if _, err := f.ReadAt(b4[:], size-8-cl); err != nil {
		return err
	}
	il := int64(binary.BigEndian.Uint32(b4[:]))
	if il <= aesIVSize || il > size-8-cl {
		return errors.New("bad index length")
	}
	index := make([]byte, il)
	if _, err := f.ReadAt(index, size-8-cl-il); err != nil && err != io.EOF {
		return err
	}
	if y.CalculateChecksum(index, algo) != sum {
		return errors.New("index checksum mismatch")
	}
	return nil
}

// parseChecksum decodes the protobuf record pb.Checksum {1: algo varint,
// 2: sum varint} by hand; the record is a few bytes.
func parseChecksum(b []byte) (pb.Checksum_Algorithm, uint64, error) {
	var algo, sum uint64
	for len(b) > 0 {
		tag, n := binary.Uvarint(b)
		if n <= 0 || tag&7 != 0 {
			return 0, 0, errors.New("bad checksum record")
		}
		b = b[n:]
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, 0, errors.New("bad checksum record")
		}
		b = b[n:]
		switch tag >> 3 {
		case 1:
			algo = v
		case 2:
			sum = v
		}
	}
	if algo != uint64(pb.Checksum_CRC32C) && algo != uint64(pb.Checksum_XXHash64) {
		return 0, 0, errors.New("unknown checksum algorithm")
	}
	return pb.Checksum_Algorithm(algo), sum, nil
}
