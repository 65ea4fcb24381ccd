package shard

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/fb"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
)

// Bounds of a table footer's checksum record and index.
const (
	maxChecksumLen = 64
	aesIVSize      = 16 // an encrypted index ends with its IV
)

// errRegistryKey reports that KEYREGISTRY's sanity text does not decrypt
// under the Badger key: a wrong server key or a damaged registry. Open
// tells the two apart with the state file's MAC (checkDB's caller).
var errRegistryKey = errors.New("shard: KEYREGISTRY does not decrypt with this key")

// checkDB verifies, before Badger opens the directory, everything that
// Badger 4.9.6 would otherwise panic on from goroutines of its own, where
// no recover in Open can catch it and the daemon dies on every start:
//
//   - KEYREGISTRY must exist when anything else does (without it Badger
//     starts a new one and reads the tables with no data key) and must
//     read: its sanity text decrypts (else errRegistryKey) and every data
//     key record has its CRC.
//   - Every table the manifest lists must have a sound footer and index
//     (a zeroed footer panics in initIndex, badger #2201) and every data
//     block must match its checksum: OpenTable verifies each block with
//     ChecksumVerificationMode OnTableAndBlockRead, and on a mismatch
//     Table.VerifyChecksum formats its error with b.offset of the nil
//     block that Table.block returned (table.go:711), a nil dereference.
//
// Any damage is an error wrapping ErrCorrupt that names the file.
func checkDB(path string, key []byte) error {
	entries, err := os.ReadDir(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("shard: listing database directory: %w", err)
	}
	registry, manifest, data := false, false, false
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".sst", ".vlog", ".mem":
			data = true
		}
		registry = registry || e.Name() == badger.KeyRegistryFileName
		manifest = manifest || e.Name() == badger.ManifestFilename
	}
	switch {
	case !data && !manifest:
		return nil
	case !registry:
		return fmt.Errorf("%w: %s is missing", ErrCorrupt, badger.KeyRegistryFileName)
	case !manifest:
		// Badger would start a new manifest, delete every table, replay
		// the memtable logs with timestamps above its new counter, and
		// let older records shadow newer writes.
		return fmt.Errorf("%w: %s is missing", ErrCorrupt, badger.ManifestFilename)
	}
	kr, err := openRegistry(path, key)
	if errors.Is(err, badger.ErrEncryptionKeyMismatch) {
		return errRegistryKey
	}
	if err != nil {
		return fmt.Errorf("%w: %s does not read: %v", ErrCorrupt, badger.KeyRegistryFileName, err)
	}
	tables, err := manifestTables(path)
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	if err != nil {
		return nil // no manifest, or one Badger itself refuses cleanly
	}
	for id, tm := range tables {
		name := table.IDToFilename(id)
		dk, err := kr.DataKey(tm.KeyID)
		if err != nil {
			return fmt.Errorf("%w: table %s: its data key is not in %s", ErrCorrupt, name, badger.KeyRegistryFileName)
		}
		var dkey []byte
		if dk != nil {
			dkey = dk.Data
		}
		if err := checkTable(filepath.Join(path, name), dkey); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: table %s: %v", ErrCorrupt, name, err)
		}
	}
	return nil
}

// openRegistry reads KEYREGISTRY read-only. A zeroed data key record
// (length 0, CRC 0: the CRC of nothing) passes Badger's check and then
// panics in the AES-CTR setup on its empty IV ("bad IV length"); that
// panic is ours to recover here, in the caller's goroutine.
func openRegistry(path string, key []byte) (kr *badger.KeyRegistry, err error) {
	defer func() {
		if r := recover(); r != nil {
			kr, err = nil, fmt.Errorf("badger panicked reading it: %v", r)
		}
	}()
	return badger.OpenKeyRegistry(badger.KeyRegistryOptions{Dir: path, ReadOnly: true, EncryptionKey: key})
}

// manifestTables returns the tables the manifest lists, by file ID. A
// table file it does not list is a leftover of a kill during a flush or
// compaction, which Badger deletes.
func manifestTables(path string) (_ map[uint64]badger.TableManifest, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s does not parse: %v", ErrCorrupt, badger.ManifestFilename, r)
		}
	}()
	f, err := os.Open(filepath.Join(path, badger.ManifestFilename))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	m, end, err := badger.ReplayManifestFile(f, 0, badger.DefaultOptions(path).WithLogger(nil))
	if err != nil {
		return nil, err
	}
	if end != fi.Size() {
		// Badger would cut the manifest here and forget the changes after
		// it: tables it then deletes as leftovers.
		return nil, fmt.Errorf("%w: %s is damaged after byte %d of %d", ErrCorrupt, badger.ManifestFilename, end, fi.Size())
	}
	if m.Tables == nil {
		return map[uint64]badger.TableManifest{}, nil
	}
	return m.Tables, nil
}

// checkTable verifies one table file: the footer (index, index length
// (4 BE), checksum record, checksum length (4 BE)), the index checksum
// (over the stored, encrypted bytes), then every block the index lists.
// A block is stored as plaintext || IV (16) when dkey is set, and its
// plaintext is entries || entry offsets || count (4 BE) || checksum
// record || checksum length (4 BE), the checksum over everything before
// the record (table/builder.go finishBlock). The store writes no
// compressed tables (badgerOptions).
func checkTable(name string, dkey []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("index does not parse: %v", r)
		}
	}()
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	index, err := tableIndex(b)
	if err != nil {
		return err
	}
	dataEnd := len(b) - len(index) - 8 // blocks end where the index starts
	if dkey != nil {
		index, err = decryptTablePart(index, dkey)
		if err != nil {
			return fmt.Errorf("index: %w", err)
		}
	}
	ti := fb.GetRootAsTableIndex(index, 0)
	var bo fb.BlockOffset
	n := ti.OffsetsLength()
	if n == 0 {
		return errors.New("index lists no block")
	}
	for i := range n {
		if !ti.Offsets(&bo, i) {
			return fmt.Errorf("block %d: no offset", i)
		}
		off, l := int(bo.Offset()), int(bo.Len())
		if off < 0 || l <= 0 || off > dataEnd || l > dataEnd-off {
			return fmt.Errorf("block %d: offset %d and length %d outside the table", i, off, l)
		}
		if err := checkBlock(b[off:off+l], dkey); err != nil {
			return fmt.Errorf("block %d at offset %d: %w", i, off, err)
		}
	}
	return nil
}

// tableIndex returns the stored index of table b after checking the
// footer's lengths and the index checksum.
func tableIndex(b []byte) ([]byte, error) {
	size := int64(len(b))
	if size < 8 {
		return nil, errors.New("too short")
	}
	cl := int64(binary.BigEndian.Uint32(b[size-4:]))
	if cl == 0 || cl > maxChecksumLen || cl+8 > size {
		return nil, errors.New("bad checksum length")
	}
	algo, sum, err := parseChecksum(b[size-4-cl : size-4])
	if err != nil {
		return nil, err
	}
	il := int64(binary.BigEndian.Uint32(b[size-8-cl:]))
	if il <= aesIVSize || il > size-8-cl {
		return nil, errors.New("bad index length")
	}
	index := b[size-8-cl-il : size-8-cl]
	if y.CalculateChecksum(index, algo) != sum {
		return nil, errors.New("index checksum mismatch")
	}
	return index, nil
}

// checkBlock verifies one stored block against its checksum.
func checkBlock(blk, dkey []byte) error {
	if dkey != nil {
		var err error
		if blk, err = decryptTablePart(blk, dkey); err != nil {
			return err
		}
	}
	if len(blk) < 8 {
		return errors.New("too short")
	}
	cl := len(blk) - 4
	chk := int(binary.BigEndian.Uint32(blk[cl:]))
	if chk == 0 || chk > maxChecksumLen || chk+8 > len(blk) {
		return errors.New("bad checksum length")
	}
	algo, sum, err := parseChecksum(blk[cl-chk : cl])
	if err != nil {
		return err
	}
	if y.CalculateChecksum(blk[:cl-chk], algo) != sum {
		return errors.New("checksum mismatch")
	}
	return nil
}

// decryptTablePart decrypts an encrypted index or block: AES-CTR
// ciphertext followed by its 16-byte IV (table.go decrypt).
func decryptTablePart(b, dkey []byte) ([]byte, error) {
	if len(b) <= aesIVSize {
		return nil, errors.New("shorter than its IV")
	}
	out := make([]byte, len(b)-aesIVSize)
	if err := y.XORBlock(out, b[:len(out)], dkey, b[len(out):]); err != nil {
		return nil, err
	}
	return out, nil
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
