package coffer_test

import (
	"bytes"
	"encoding/hex"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/coffer"
)

// cacheGolden is a cache file sealed with a fixed key and nonce. It pins
// the on-disk format "coffer-cache1\n" || nonce || secretbox, so caches
// written by earlier builds keep opening.
const cacheGolden = "testdata/cache1.hex"

// TestCacheFormat seals the test entry with a zero key and an all-0x5a
// nonce and compares the bytes with the golden file, then opens the file.
func TestCacheFormat(t *testing.T) {
	var seed [32]byte
	client, err := coffer.NewPrivateKey(&seed)
	if err != nil {
		t.Fatal(err)
	}
	entry := cacheTestEntry(coffer.PublicKey{9})
	got, err := coffer.SealCache(client, entry, bytes.NewReader(bytes.Repeat([]byte{0x5a}, 24)))
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(cacheGolden)
	if err != nil {
		t.Fatal(err)
	}
	want, err := hex.DecodeString(strings.TrimSpace(string(text)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("sealed cache differs from %s:\ngot  %x\nwant %x", cacheGolden, got, want)
	}
	opened, err := coffer.OpenCache(client, want)
	if err != nil {
		t.Fatalf("opening %s: got %v, want nil", cacheGolden, err)
	}
	if !reflect.DeepEqual(opened, entry) {
		t.Errorf("got %+v, want %+v", opened, entry)
	}
}

// TestNaclImporters checks that seal.go is the package's only importer of
// golang.org/x/crypto/nacl/* (STYLE.md, "Who owns what").
func TestNaclImporters(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || name == "seal.go" {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "golang.org/x/crypto/nacl/") {
				t.Errorf("%s imports %s; only seal.go may import nacl/*", name, path)
			}
		}
	}
}
