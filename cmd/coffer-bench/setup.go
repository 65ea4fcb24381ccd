package main

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// fixture is everything a run generates in its work directory.
type fixture struct {
	dir            string
	serverKey      string // coffer key files (0600)
	companionKey   string
	clientKeyFiles []string // key files of the first clients, one per cold start
	clientKeys     string   // every client's raw private key, 32 bytes each (0600)
	definition     string   // the TOML definition
	sealed         string   // the sealed definition
	shards         string   // the encoded shards, for the TLS baseline
	data           string   // coffer-server's data directory (fresh)
	certs          certFiles
	serverPub      coffer.PublicKey
	serverSealing  *coffer.SealingKey
	companionPub   coffer.AuthorPublicKey
	companionPriv  *coffer.AuthorKey
	defBytes       int     // size of the TOML definition
	shardBytes     int     // size of one encoded shard (the first client's)
	parts          []*part // with -definitions N > 1: the definitions (split.go)
	config         string  // with parts: the server config listing them
}

// valueAlphabet makes printable secret values that need no TOML escaping.
const valueAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// newFixture generates keys, the definition, the shards file and the TLS
// certificates in dir.
func newFixture(dir string, opt *options) (*fixture, error) {
	fx := &fixture{
		dir:          dir,
		serverKey:    filepath.Join(dir, "server.key"),
		companionKey: filepath.Join(dir, "companion.key"),
		clientKeys:   filepath.Join(dir, "clients.bin"),
		definition:   filepath.Join(dir, "secrets.toml"),
		sealed:       filepath.Join(dir, "secrets.sealed"),
		shards:       filepath.Join(dir, "shards.bin"),
		data:         filepath.Join(dir, "data"),
	}
	sk, err := newKeyFile(fx.serverKey)
	if err != nil {
		return nil, err
	}
	fx.serverPub = sk.Public()
	if fx.serverSealing, err = sk.SealingKey(); err != nil {
		return nil, err
	}
	if fx.companionPriv, err = coffer.GenerateAuthorKey(rand.Reader); err != nil {
		return nil, err
	}
	if err := coffer.WriteAuthorKeyFile(fx.companionKey, fx.companionPriv); err != nil {
		return nil, err
	}
	fx.companionPub = fx.companionPriv.Public()
	raw := make([]byte, opt.clients*coffer.KeySize)
	defer clear(raw)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	pubs, firsts, err := clientPublics(raw, min(opt.clients, opt.coldStarts+1))
	if err != nil {
		return nil, err
	}
	// Each cold start is another machine booting: another client, so the
	// server's per-client rate limit never applies.
	for i, k := range firsts {
		path := filepath.Join(dir, fmt.Sprintf("client%d.key", i))
		if err := coffer.WriteKeyFile(path, k); err != nil {
			return nil, err
		}
		fx.clientKeyFiles = append(fx.clientKeyFiles, path)
	}
	if err := os.WriteFile(fx.clientKeys, raw, 0o600); err != nil {
		return nil, err
	}
	toml, shards, err := definition(pubs, opt)
	if err != nil {
		return nil, err
	}
	fx.defBytes, fx.shardBytes = len(toml), len(shards[0])
	if err := os.WriteFile(fx.definition, toml, 0o600); err != nil {
		return nil, err
	}
	if opt.definitions > 1 {
		if err := fx.writeParts(toml, opt.clients, opt.definitions); err != nil {
			return nil, err
		}
		if err := fx.writeServerConfig(); err != nil {
			return nil, err
		}
	}
	if err := writeShards(fx.shards, shards); err != nil {
		return nil, err
	}
	fx.certs, err = writeCerts(dir)
	return fx, err
}

func newKeyFile(path string) (*coffer.PrivateKey, error) {
	k, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return k, coffer.WriteKeyFile(path, k)
}

// clientPublics derives the public key of each raw private key in raw,
// on every core, and returns the first nKeys private keys too.
func clientPublics(raw []byte, nKeys int) ([]coffer.PublicKey, []*coffer.PrivateKey, error) {
	n := len(raw) / coffer.KeySize
	pubs := make([]coffer.PublicKey, n)
	firsts := make([]*coffer.PrivateKey, nKeys)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += workers {
				var b [coffer.KeySize]byte
				copy(b[:], raw[i*coffer.KeySize:])
				k, err := coffer.NewPrivateKey(&b)
				clear(b[:])
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				pubs[i] = k.Public()
				if i < nKeys {
					firsts[i] = k
				}
			}
		}()
	}
	wg.Wait()
	return pubs, firsts, firstErr
}

// clientName is the definition's name of client i.
func clientName(i int) string { return fmt.Sprintf("client%05d", i) }

// definition writes the TOML definition of len(pubs) clients with
// opt.secrets random values of opt.valueSize bytes each, and the encoded
// shard of each client (what the server will send), in the same order.
func definition(pubs []coffer.PublicKey, opt *options) ([]byte, [][]byte, error) {
	var sb strings.Builder
	sb.Grow(len(pubs) * (80 + opt.secrets*(opt.valueSize+20)))
	sb.WriteString("# generated by coffer-bench\n[clients]\n")
	for i, p := range pubs {
		fmt.Fprintf(&sb, "%s = %q\n", clientName(i), p.String())
	}
	shards := make([][]byte, len(pubs))
	val := make([]byte, opt.valueSize)
	for i := range pubs {
		fmt.Fprintf(&sb, "\n[%s]\n", clientName(i))
		sh := make(frame.Shard, opt.secrets)
		for j := range opt.secrets {
			if _, err := rand.Read(val); err != nil {
				return nil, nil, err
			}
			for k := range val {
				val[k] = valueAlphabet[val[k]%byte(len(valueAlphabet))]
			}
			name := fmt.Sprintf("secret_%02d", j)
			fmt.Fprintf(&sb, "%s = \"%s\"\n", name, val)
			sh[name] = frame.Value{Kind: frame.KindString, Text: append([]byte(nil), val...)}
		}
		enc, err := frame.EncodeShard(sh)
		if err != nil {
			return nil, nil, err
		}
		shards[i] = enc
	}
	return []byte(sb.String()), shards, nil
}

// seal seals the definition for the server, with the real coffer-companion
// binary when one is given (whole-process wall time, as an operator sees
// it), or in process with the companion's code. It returns how long that
// took and how it was done.
func (fx *fixture) seal(companionBin string) (time.Duration, string, error) {
	if fx.parts != nil {
		return fx.sealParts(companionBin)
	}
	return sealFile(fx, companionBin, fx.definition, fx.sealed, "")
}

// sealFile seals the TOML file at src to sealed, as seal describes, as
// the definition named name ("": the default one).
func sealFile(fx *fixture, companionBin, src, sealed, name string) (time.Duration, string, error) {
	if companionBin != "" {
		args := []string{"seal", "--key", fx.companionKey, "--server", fx.serverSealing.String(), "-o", sealed}
		if name != "" {
			args = append(args, "--definition", name)
		}
		cmd := exec.Command(companionBin, append(args, src)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if err != nil {
			return 0, "", fmt.Errorf("%s seal: %v: %s", companionBin, err, firstLine(stderr.String()))
		}
		return d, "coffer-companion seal", nil
	}
	toml, err := os.ReadFile(src)
	if err != nil {
		return 0, "", err
	}
	start := time.Now()
	out, err := sealInProcess(fx.companionPriv, fx.serverSealing, toml, name)
	if err != nil {
		return 0, "", err
	}
	if err := os.WriteFile(sealed, out, 0o600); err != nil {
		return 0, "", err
	}
	return time.Since(start), "coffer.SealDefinition in process", nil
}

func firstLine(s string) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	if sc.Scan() {
		return sc.Text()
	}
	return ""
}

// sealInProcess parses the definition as the companion does and seals it
// with serial 1 for the server.
func sealInProcess(author *coffer.AuthorKey, server *coffer.SealingKey, toml []byte, name string) ([]byte, error) {
	if _, err := coffer.ParseDefinition(toml); err != nil {
		return nil, fmt.Errorf("parsing the generated definition: %w", err)
	}
	env := &coffer.Envelope{
		Author:  author.Public(),
		Server:  server.X25519,
		Serial:  1,
		Created: time.Now(),
		TOML:    toml,
		Name:    name,
	}
	return coffer.SealDefinition(author, server, env, rand.Reader)
}
