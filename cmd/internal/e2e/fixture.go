package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
)

// Fixture is one server's keys and files in a test's temporary
// directory, and the chain of definitions sealed for it.
type Fixture struct {
	Dir      string
	Server   *coffer.PrivateKey
	Author   *coffer.AuthorKey // the trusted author
	Stranger *coffer.AuthorKey // an untrusted author
	Clients  map[string]*coffer.PrivateKey
	KeyFile  string // the server's key file
	DataDir  string
	DefPath  string   // where the sealed definition goes
	Conf     string   // the server config file
	Last     [32]byte // hash of the last sealed file
	LastSeal uint64   // serial of the last sealed file
}

// NewFixture writes a server key file and a server config file holding
// conf in a fresh directory, with a key for each named client. The config
// file keeps the machine's /etc/coffer/server.toml from being read.
func NewFixture(t testing.TB, conf string, clients ...string) *Fixture {
	t.Helper()
	dir := t.TempDir()
	f := &Fixture{Dir: dir, Server: GenKey(t), Author: GenAuthorKey(t), Stranger: GenAuthorKey(t),
		Clients: map[string]*coffer.PrivateKey{}, KeyFile: filepath.Join(dir, "server.key"),
		DataDir: filepath.Join(dir, "data"), DefPath: filepath.Join(dir, "secrets.sealed"),
		Conf: filepath.Join(dir, "server.toml")}
	for _, c := range clients {
		f.Clients[c] = GenKey(t)
	}
	if err := coffer.WriteKeyFile(f.KeyFile, f.Server); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.Conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// GenAuthorKey returns a new author key from crypto/rand.
func GenAuthorKey(t testing.TB) *coffer.AuthorKey {
	t.Helper()
	k, err := coffer.GenerateAuthorKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Seal seals src by author to server with the given serial and previous
// hash.
func Seal(t testing.TB, author *coffer.AuthorKey, server *coffer.PrivateKey, serial uint64, prev [32]byte, src []byte) []byte {
	t.Helper()
	sk, err := server.SealingKey()
	if err != nil {
		t.Fatal(err)
	}
	env := &coffer.Envelope{Author: author.Public(), Server: server.Public(), Serial: serial,
		Previous: prev, Created: time.Now(), TOML: src}
	sealed, err := coffer.SealDefinition(author, sk, env, rand.Reader)
	if err != nil {
		t.Fatalf("sealing serial %d: %v", serial, err)
	}
	return sealed
}

// Seal seals src by author to the fixture's server.
func (f *Fixture) Seal(t testing.TB, author *coffer.AuthorKey, serial uint64, prev [32]byte, src []byte) []byte {
	t.Helper()
	return Seal(t, author, f.Server, serial, prev, src)
}

// Next seals src as the next definition of the chain by the trusted
// author, writes it to DefPath and returns the sealed bytes.
func (f *Fixture) Next(t testing.TB, src []byte) []byte {
	t.Helper()
	f.LastSeal++
	sealed := f.Seal(t, f.Author, f.LastSeal, f.Last, src)
	f.Last = sha256.Sum256(sealed)
	f.Write(t, sealed)
	return sealed
}

// Write puts a sealed file at DefPath by rename, so a reading server sees
// the old file or the new one whole.
func (f *Fixture) Write(t testing.TB, sealed []byte) {
	t.Helper()
	tmp := f.DefPath + ".tmp"
	if err := os.WriteFile(tmp, sealed, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, f.DefPath); err != nil {
		t.Fatal(err)
	}
}

// Args are the flags that point the server at the fixture's files, trust
// its author and log at debug level.
func (f *Fixture) Args() []string {
	return []string{"--key", f.KeyFile, "--data-dir", f.DataDir, "--definition", f.DefPath,
		"--trusted", f.Author.Public().String(), "--log-level", "debug", "--config", f.Conf}
}

// WantShard checks that a fetched shard is the whole definition tagged
// tag, as the tests' definitions give every client (values a, b, and
// canary with the tag), and describes what it saw otherwise.
func WantShard(r *coffer.Result, tag, canary string) error {
	a, b, c := string(r.Shard["a"].Text), string(r.Shard["b"].Text), string(r.Shard["canary"].Text)
	if len(r.Shard) != 3 || a != tag+"-a" || b != tag+"-b" || c != canary+" "+tag {
		return fmt.Errorf("serial %d: got %d values (a=%q b=%q), want definition %q whole", r.Version.Serial, len(r.Shard), a, b, tag)
	}
	return nil
}
