package coffer_test

// Test vectors for coffer/2 (docs/protocol.md §9).
//
// The generator below is a minimal testkit written apart from the
// implementation: it uses x/crypto's nacl/box and curve25519, crypto/hkdf,
// crypto/mlkem only through its deterministic entry points (a key from a
// seed; encapsulation from given randomness, crypto/mlkem/mlkemtest) and a
// hand-written CBOR encoder, never the coffer internals, and takes every
// random byte from a ChaCha20 keystream. TestKitMLKEMKnownAnswer checks
// its ML-KEM-768 against FIPS 203 known-answer values. The replayer then drives
// the real coffer.Server (over loopback TCP, its Rand fed the vector's
// bytes) and the real coffer.Fetch (against a scripted fake server) with
// each vector and requires identical bytes or the expected error class.
//
//	go test ./coffer -run Vectors -update    rewrites testdata/vectors

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hkdf"
	"crypto/mlkem"
	"crypto/mlkem/mlkemtest"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

var updateVectors = flag.Bool("update", false, "rewrite coffer/testdata/vectors from the testkit")

const vectorDir = "testdata/vectors"

// ---- testkit: randomness, keys, CBOR, frames ----

// kitRand is the ChaCha20 keystream of one vector: key SHA-256("coffer/2
// test vectors"), nonce the first 12 bytes of SHA-256(name).
type kitRand struct{ c *chacha20.Cipher }

func newKitRand(name string) *kitRand {
	key := sha256.Sum256([]byte("coffer/2 test vectors"))
	n := sha256.Sum256([]byte(name))
	c, err := chacha20.NewUnauthenticatedCipher(key[:], n[:12])
	if err != nil {
		panic(err)
	}
	return &kitRand{c}
}

func (r *kitRand) bytes(n int) []byte {
	b := make([]byte, n)
	r.c.XORKeyStream(b, b)
	return b
}

func (r *kitRand) nonce() (n [24]byte) { copy(n[:], r.bytes(24)); return n }
func (r *kitRand) key() keyPair        { return newKeyPair(r.bytes(32)) }

type keyPair struct{ sec, pub [32]byte }

func newKeyPair(sec []byte) keyPair {
	var kp keyPair
	copy(kp.sec[:], sec)
	pub, err := curve25519.X25519(kp.sec[:], curve25519.Basepoint)
	if err != nil {
		panic(err)
	}
	copy(kp.pub[:], pub)
	return kp
}

// boxKey is K(a,B) = HSalsa20(X25519(a,B), 0^16), via box.Precompute.
// (It gives HSalsa20 of zeros for a low-order B, which is what a careless
// peer would compute; the low-order vectors rely on it.)
func boxKey(a keyPair, pub [32]byte) [32]byte {
	var k [32]byte
	box.Precompute(&k, &pub, &a.sec)
	return k
}

func counter(n uint64) (nc [24]byte) {
	for i := 0; i < 8; i++ {
		nc[23-i] = byte(n >> (8 * i))
	}
	return nc
}

func sealBox(k [32]byte, n [24]byte, m []byte) []byte {
	return box.SealAfterPrecomputation(nil, m, &n, &k)
}

func sha(parts ...[]byte) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func mkFrame(t byte, body []byte) []byte {
	return append([]byte{byte(len(body) >> 8), byte(len(body)), t}, body...)
}

// A hand-written deterministic CBOR encoder (RFC 8949 §4.2.1).
func cHead(major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return []byte{m | byte(n)}
	case n <= 0xff:
		return []byte{m | 24, byte(n)}
	case n <= 0xffff:
		return []byte{m | 25, byte(n >> 8), byte(n)}
	case n <= 0xffffffff:
		return []byte{m | 26, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return []byte{m | 27, byte(n >> 56), byte(n >> 48), byte(n >> 40), byte(n >> 32),
		byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

func cText(s string) []byte  { return append(cHead(3, uint64(len(s))), s...) }
func cBytes(b []byte) []byte { return append(cHead(2, uint64(len(b))), b...) }
func cUint(n uint64) []byte  { return cHead(0, n) }
func cBool(b bool) []byte {
	if b {
		return []byte{0xf5}
	}
	return []byte{0xf4}
}

// cMap encodes a map with text keys, sorted by their encodings.
func cMap(kv map[string][]byte) []byte {
	type pair struct{ k, v []byte }
	pairs := make([]pair, 0, len(kv))
	for k, v := range kv {
		pairs = append(pairs, pair{cText(k), v})
	}
	sort.Slice(pairs, func(i, j int) bool { return bytes.Compare(pairs[i].k, pairs[j].k) < 0 })
	out := cHead(5, uint64(len(kv)))
	for _, p := range pairs {
		out = append(append(out, p.k...), p.v...)
	}
	return out
}

// ---- testkit: a session ----

// kit holds one session's keys, randomness and transcript, as both sides
// would compute them.
type kit struct {
	S, C       keyPair  // statics
	pinned     [32]byte // the server key the client pinned
	Ce, Se     keyPair
	n1, n2     [24]byte
	th0, th1   [32]byte
	th2        [32]byte
	ss, es     [32]byte // client view: K(C,pinned), K(Ce,pinned)
	ee, se     [32]byte
	kcs, ksc   [32]byte
	hello      []byte
	link       []byte
	haveKeys   bool
	helloOuter byte   // version byte
	helloV     uint64 // v inside P1
	v1         bool   // a coffer/1 Hello: no ek, no k, the coffer/1 prologue

	kemSeed [64]byte // client: d || z of ML-KEM.KeyGen_internal
	kemM    [32]byte // server: m of ML-KEM.Encaps_internal
	ek      []byte   // the client's encapsulation key
	ct      []byte   // the server's ciphertext
	kem     [32]byte // the ML-KEM shared secret
}

// kitKEMKey is the testkit's ML-KEM-768 key generation: crypto/mlkem's
// deterministic entry point, from the 64-byte seed d || z.
func kitKEMKey(seed []byte) *mlkem.DecapsulationKey768 {
	dk, err := mlkem.NewDecapsulationKey768(seed)
	if err != nil {
		panic(err)
	}
	return dk
}

// kitEncapsulate is the testkit's derandomized ML-KEM-768 encapsulation
// (FIPS 203 ML-KEM.Encaps_internal with m).
func kitEncapsulate(ek []byte, m []byte) (shared, ct []byte) {
	k, err := mlkem.NewEncapsulationKey768(ek)
	if err != nil {
		panic(err)
	}
	shared, ct, err = mlkemtest.Encapsulate768(k, m)
	if err != nil {
		panic(err)
	}
	return shared, ct
}

func (k *kit) sealHello() []byte {
	k.ss = boxKey(k.C, k.pinned)
	k.es = boxKey(k.Ce, k.pinned)
	k.ek = kitKEMKey(k.kemSeed[:]).EncapsulationKey().Bytes()
	m := map[string][]byte{
		"h": cText("hello"), "v": cUint(k.helloV),
		"c": cBytes(k.C.pub[:]), "s": cBytes(k.pinned[:]), "e": cBytes(k.Ce.pub[:]),
	}
	if !k.v1 {
		kh := sha(k.ek)
		m["k"] = cBytes(kh[:])
	}
	body := []byte{k.helloOuter}
	body = append(body, k.C.pub[:]...)
	body = append(body, k.Ce.pub[:]...)
	body = append(body, k.n1[:]...)
	if !k.v1 {
		body = append(body, k.ek...)
	}
	body = append(body, sealBox(k.ss, k.n1, cMap(m))...)
	k.hello = mkFrame(0x00, body)
	k.th0 = sha([]byte("coffer/2"), k.pinned[:])
	if k.v1 {
		k.th0 = sha([]byte("coffer/1"), k.pinned[:])
	}
	k.th1 = sha(k.th0[:], k.hello)
	return k.hello
}

// sealLink makes the Link as server key `server` would, for this
// session's Ce and th1, and derives the session keys from it.
func (k *kit) sealLink(server keyPair, sePub [32]byte) []byte {
	return k.sealLinkTH(server, sePub, k.th1)
}

// sealLinkTH is sealLink with th in place of this session's th1.
func (k *kit) sealLinkTH(server keyPair, sePub, th [32]byte) []byte {
	shared, ct := kitEncapsulate(k.ek, k.kemM[:])
	copy(k.kem[:], shared)
	k.ct = ct
	p2 := cMap(map[string][]byte{"h": cText("link"), "se": cBytes(sePub[:]), "th": cBytes(th[:]), "ct": cBytes(ct)})
	kes := boxKey(server, k.Ce.pub)
	k.link = mkFrame(0x01, append(k.n2[:], sealBox(kes, k.n2, p2)...))
	k.th2 = sha(k.th1[:], k.link)
	k.ee = boxKey(k.Ce, sePub)
	k.se = boxKey(k.C, sePub)
	ikm := slices.Concat(k.kem[:], k.es[:], k.ss[:], k.ee[:], k.se[:])
	prk, err := hkdf.Extract(sha256.New, ikm, k.th2[:])
	if err != nil {
		panic(err)
	}
	cs, _ := hkdf.Expand(sha256.New, prk, "coffer/2 c2s", 32)
	sc, _ := hkdf.Expand(sha256.New, prk, "coffer/2 s2c", 32)
	copy(k.kcs[:], cs)
	copy(k.ksc[:], sc)
	k.haveKeys = true
	return k.link
}

func (k *kit) keyNotFound(n [24]byte) []byte {
	p := cMap(map[string][]byte{"h": cText("keynotfound"), "th": cBytes(k.th1[:])})
	kss := boxKey(k.S, k.C.pub)
	return mkFrame(0xaa, append(n[:], sealBox(kss, n, p)...))
}

func (k *kit) get(names []string) []byte { return k.getTH(k.th2, names) }

func (k *kit) getTH(th [32]byte, names []string) []byte {
	m := map[string][]byte{"h": cText("get"), "th": cBytes(th[:])}
	if len(names) > 0 {
		arr := cHead(4, uint64(len(names)))
		for _, n := range names {
			arr = append(arr, cText(n)...)
		}
		m["names"] = arr
	}
	return mkFrame(0x02, sealBox(k.kcs, counter(0), cMap(m)))
}

func (k *kit) bye() []byte {
	return mkFrame(0x99, sealBox(k.kcs, counter(1), cMap(map[string][]byte{"h": cText("bye")})))
}

type shardInfo struct {
	data      []byte
	serial    uint64
	dh        [32]byte
	chunkSize int
}

// okGets returns the OkGet frames for the shard; lastFlag false leaves
// `last` (and sh) out of the final chunk.
func (k *kit) okGets(sh shardInfo, lastFlag bool) [][]byte {
	return k.okGetsSH(sh, lastFlag, sha(sh.data))
}

// okGetsSH is okGets with sum as the whole-shard hash sh of the last chunk.
func (k *kit) okGetsSH(sh shardInfo, lastFlag bool, sum [32]byte) [][]byte {
	var out [][]byte
	for i, off := uint64(0), 0; ; i++ {
		end := min(off+sh.chunkSize, len(sh.data))
		last := end == len(sh.data)
		m := map[string][]byte{
			"h": cText("okget"), "i": cUint(i), "last": cBool(last && lastFlag),
			"serial": cUint(sh.serial), "dh": cBytes(sh.dh[:]), "size": cUint(uint64(len(sh.data))),
			"d": cBytes(sh.data[off:end]),
		}
		if last && lastFlag {
			m["sh"] = cBytes(sum[:])
		}
		out = append(out, mkFrame(0x03, sealBox(k.ksc, counter(i), cMap(m))))
		if last {
			return out
		}
		off = end
	}
}

func plainError(code uint64) []byte {
	return mkFrame(0xff, cMap(map[string][]byte{"code": cUint(code)}))
}

func (k *kit) sealedError(n uint64, code uint64) []byte {
	return mkFrame(0xff, sealBox(k.ksc, counter(n), cMap(map[string][]byte{"h": cText("error"), "code": cUint(code)})))
}

// ---- vectors ----

type vline struct {
	dir string // "c>s" or "s>c"
	raw []byte
}

type vector struct {
	name   string
	header [][2]string
	lines  []vline
}

func (v *vector) set(k, val string)         { v.header = append(v.header, [2]string{k, val}) }
func (v *vector) setHex(k string, b []byte) { v.set(k, hex.EncodeToString(b)) }
func (v *vector) cs(raw []byte)             { v.lines = append(v.lines, vline{"c>s", raw}) }
func (v *vector) sc(raw []byte)             { v.lines = append(v.lines, vline{"s>c", raw}) }

func (v *vector) get(k string) string {
	for _, kv := range v.header {
		if kv[0] == k {
			return kv[1]
		}
	}
	return ""
}

func (v *vector) getHex(t testing.TB, k string) []byte {
	t.Helper()
	b, err := hex.DecodeString(v.get(k))
	if err != nil {
		t.Fatalf("%s: header %s: %v", v.name, k, err)
	}
	return b
}

func (v *vector) encode() []byte {
	var b bytes.Buffer
	for _, kv := range v.header {
		fmt.Fprintf(&b, "%s: %s\n", kv[0], kv[1])
	}
	b.WriteString("\n")
	for _, l := range v.lines {
		fmt.Fprintf(&b, "%s: %x\n", l.dir, l.raw)
	}
	return b.Bytes()
}

func parseVector(name string, data []byte) (*vector, error) {
	v := &vector{name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<22)
	inFrames := false
	for sc.Scan() {
		line := sc.Text()
		if !inFrames {
			if line == "" {
				inFrames = true
				continue
			}
			k, val, ok := strings.Cut(line, ": ")
			if !ok {
				return nil, fmt.Errorf("header line %q", line)
			}
			v.set(k, val)
			continue
		}
		dir, h, ok := strings.Cut(line, ": ")
		if !ok || (dir != "c>s" && dir != "s>c") {
			return nil, fmt.Errorf("frame line %.20q", line)
		}
		raw, err := hex.DecodeString(h)
		if err != nil {
			return nil, err
		}
		v.lines = append(v.lines, vline{dir, raw})
	}
	return v, sc.Err()
}

// lowOrder8 is a point of order 8 on Curve25519.
var lowOrder8 = mustHex32("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")

func mustHex32(s string) (k [32]byte) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		panic("bad hex")
	}
	copy(k[:], b)
	return k
}

// gen holds what all vectors share: the static keys and the two shards.
type gen struct {
	S, C, U, W keyPair // server, client, an unknown client, a wrong server
	small      shardInfo
	big        shardInfo
}

func newGen() *gen {
	r := newKitRand("static keys")
	g := &gen{S: r.key(), C: r.key(), U: r.key(), W: r.key()}
	dh := sha([]byte("sealed definition, serial 7"))
	g.small = shardInfo{data: cMap(map[string][]byte{
		"db.password": cText("hunter2"),
		"port":        cUint(5432),
		"debug":       cBool(true),
		"ratio":       {0xf9, 0x38, 0x00}, // 0.5
		"since":       cMap(map[string][]byte{"t": cText("date-local"), "v": cText("2026-01-02")}),
	}), serial: 7, dh: dh, chunkSize: frame.MaxChunkBytes}
	blob := bytes.Repeat([]byte("0123456789abcdef"), (2*frame.MaxChunkBytes+1000)/16+1)
	data := cMap(map[string][]byte{"blob": cText(string(blob))})
	// Trim the text so the shard is exactly two full chunks and 1000 bytes.
	over := len(data) - (2*frame.MaxChunkBytes + 1000)
	blob = blob[:len(blob)-over]
	g.big = shardInfo{data: cMap(map[string][]byte{"blob": cText(string(blob))}), serial: 7, dh: dh, chunkSize: frame.MaxChunkBytes}
	return g
}

// newKit starts a session of client c with server s (pinned = s.pub),
// drawing Ce, the ML-KEM seed, n1, Se, the ML-KEM m, n2 from the
// vector's stream in that order.
func (g *gen) newKit(name string, c keyPair) (*kit, *kitRand) {
	r := newKitRand(name)
	k := &kit{S: g.S, C: c, pinned: g.S.pub, helloOuter: 2, helloV: 2}
	k.Ce = r.key()
	copy(k.kemSeed[:], r.bytes(64))
	k.n1 = r.nonce()
	k.Se = r.key()
	copy(k.kemM[:], r.bytes(32))
	k.n2 = r.nonce()
	return k, r
}

// header writes the standard header lines of a vector.
func (g *gen) header(v *vector, expect, comment string, k *kit, sh shardInfo, serverRand bool) {
	v.set("expect", expect)
	for _, c := range strings.Split(comment, "\n") {
		v.set("comment", c)
	}
	v.setHex("server-static", g.S.sec[:])
	v.setHex("server-static-pub", g.S.pub[:])
	v.setHex("client-static", k.C.sec[:])
	v.setHex("client-static-pub", k.C.pub[:])
	v.setHex("server-clients", g.C.pub[:])
	if k.pinned != g.S.pub {
		v.setHex("pinned-server-pub", k.pinned[:])
	}
	v.setHex("client-ephemeral", k.Ce.sec[:])
	v.setHex("client-ephemeral-pub", k.Ce.pub[:])
	if !k.v1 {
		v.setHex("client-mlkem-seed", k.kemSeed[:])
	}
	v.setHex("n1", k.n1[:])
	if serverRand {
		v.setHex("server-ephemeral", k.Se.sec[:])
		v.setHex("server-ephemeral-pub", k.Se.pub[:])
		v.setHex("server-mlkem-m", k.kemM[:])
		v.setHex("n2", k.n2[:])
	}
	v.setHex("shard", sh.data)
	v.set("serial", strconv.FormatUint(sh.serial, 10))
	v.setHex("dh", sh.dh[:])
	v.set("chunk-size", strconv.Itoa(sh.chunkSize))
}

func (g *gen) debug(v *vector, k *kit) {
	v.setHex("th0", k.th0[:])
	if k.th1 != ([32]byte{}) {
		v.setHex("th1", k.th1[:])
	}
	v.setHex("k_ss", k.ss[:])
	v.setHex("k_es", k.es[:])
	if k.ct != nil {
		v.setHex("mlkem-ct", k.ct)
		v.setHex("k_mlkem", k.kem[:])
	}
	if k.haveKeys {
		v.setHex("th2", k.th2[:])
		v.setHex("k_ee", k.ee[:])
		v.setHex("k_se", k.se[:])
		v.setHex("k_cs", k.kcs[:])
		v.setHex("k_sc", k.ksc[:])
	}
}

// fullSession builds the frames of a good session.
func (g *gen) fullSession(name, comment string, sh shardInfo, names []string) (*vector, *kit) {
	v := &vector{name: name}
	k, _ := g.newKit(name, g.C)
	g.header(v, "ok", comment, k, sh, true)
	if len(names) > 0 {
		v.set("names", strings.Join(names, ","))
	}
	v.cs(k.sealHello())
	v.sc(k.sealLink(g.S, k.Se.pub))
	v.cs(k.get(names))
	for _, f := range k.okGets(sh, true) {
		v.sc(f)
	}
	v.cs(k.bye())
	g.debug(v, k)
	return v, k
}

// chunked is a session whose shard the testkit cuts into small chunks,
// for the client-side chunk vectors.
func (g *gen) chunked(name, expect, comment string, order func(chunks [][]byte) [][]byte, lastFlag bool) *vector {
	v := &vector{name: name}
	k, _ := g.newKit(name, g.C)
	sh := g.small
	sh.chunkSize = 24
	g.header(v, expect, comment, k, sh, true)
	v.cs(k.sealHello())
	v.sc(k.sealLink(g.S, k.Se.pub))
	v.cs(k.get(nil))
	for _, f := range order(k.okGets(sh, lastFlag)) {
		v.sc(f)
	}
	g.debug(v, k)
	return v
}

func (g *gen) vectors() []*vector {
	var vs []*vector
	add := func(v *vector) { vs = append(vs, v) }

	full, fk := g.fullSession("full-session", "a whole session: Hello, Link, Get, one OkGet, Bye", g.small, nil)
	add(full)
	big, _ := g.fullSession("okget-3-chunks", "a shard of two full 61440-byte chunks and 1000 bytes, in three OkGet frames", g.big, nil)
	add(big)
	names, _ := g.fullSession("get-with-names", "Get names two values; the server's store returns the shard restricted to them", shardInfo{
		data: cMap(map[string][]byte{"db.password": cText("hunter2"), "port": cUint(5432)}), serial: 7, dh: g.small.dh, chunkSize: frame.MaxChunkBytes,
	}, []string{"db.password", "port"})
	add(names)

	{ // replayed Hello: a recorded Hello gets a fresh Link, the old Get fails
		v := &vector{name: "replayed-hello"}
		k, _ := g.newKit(v.name, g.C)
		k.Ce, k.kemSeed, k.n1 = fk.Ce, fk.kemSeed, fk.n1
		g.header(v, "server:auth", "the Hello of full-session replayed: the server answers with a fresh Se,\nso the recorded Get does not open (plain Error auth)", k, g.small, true)
		v.cs(k.sealHello())
		v.sc(k.sealLink(g.S, k.Se.pub))
		v.cs(full.lines[2].raw)
		v.sc(plainError(3))
		g.debug(v, k)
		add(v)
	}
	{ // Get replayed into a fresh session
		v := &vector{name: "replayed-get"}
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "server:auth", "a fresh Hello and Link, then the Get of full-session: it does not open", k, g.small, true)
		v.cs(k.sealHello())
		v.sc(k.sealLink(g.S, k.Se.pub))
		v.cs(full.lines[2].raw)
		v.sc(plainError(3))
		g.debug(v, k)
		add(v)
	}
	{ // a recorded Link replayed to a client in a new session
		v := &vector{name: "replayed-link"}
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "client:server-auth", "the client sends a fresh Hello and gets the Link of full-session: it does not open under K(Ce,S)", k, g.small, false)
		v.cs(k.sealHello())
		v.sc(full.lines[1].raw)
		g.debug(v, k)
		add(v)
	}
	add(g.chunked("reordered-chunks", "client:protocol", "three 24-byte chunks sent in the order 1, 0, 2",
		func(c [][]byte) [][]byte { return [][]byte{c[1], c[0], c[2]} }, true))
	add(g.chunked("dropped-chunk", "client:protocol", "chunk 1 of three is dropped",
		func(c [][]byte) [][]byte { return [][]byte{c[0], c[2]} }, true))
	add(g.chunked("duplicated-chunk", "client:protocol", "chunk 0 is sent twice",
		func(c [][]byte) [][]byte { return [][]byte{c[0], c[0], c[1], c[2]} }, true))
	add(g.chunked("missing-last", "client:truncated", "every chunk has last = false; the server then closes",
		func(c [][]byte) [][]byte { return c }, false))
	{ // the client pinned the wrong key
		v := &vector{name: "wrong-server-key"}
		k, _ := g.newKit(v.name, g.C)
		k.pinned = g.W.pub
		g.header(v, "server:auth client:plain-error", "the client pinned another server key: the real server cannot open the proof\nand answers a plain Error{auth}, which proves nothing about the server", k, g.small, false)
		v.cs(k.sealHello())
		v.sc(plainError(3))
		g.debug(v, k)
		add(v)
	}
	{ // an impostor without S_sec answers with its own key
		v := &vector{name: "impostor-link"}
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "client:server-auth", "a man in the middle holding another key (server-ephemeral here is its) answers\nwith a Link under K(W,Ce): it does not open under K(Ce,S)", k, g.small, true)
		v.cs(k.sealHello())
		v.sc(k.sealLink(g.W, k.Se.pub))
		g.debug(v, k)
		add(v)
	}
	{ // unknown client with a valid proof
		v := &vector{name: "unknown-client"}
		k, r := g.newKit(v.name, g.U)
		n := r.nonce()
		g.header(v, "server:keynotfound client:unknown-client", "a client key the server does not know, with a valid proof: sealed KeyNotFound", k, g.small, false)
		v.setHex("n-keynotfound", n[:])
		v.cs(k.sealHello())
		v.sc(k.keyNotFound(n))
		g.debug(v, k)
		add(v)
	}
	{ // bad proof: one flipped bit in the tag
		v := &vector{name: "bad-proof"}
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "server:auth", "a known client's Hello with one bit of the Poly1305 tag flipped", k, g.small, false)
		h := k.sealHello()
		h[3+89+mlkem.EncapsulationKeySize768] ^= 0x01
		v.cs(h)
		v.sc(plainError(3))
		g.debug(v, k)
		add(v)
	}
	{ // low-order client key
		v := &vector{name: "low-order-client-key"}
		k, _ := g.newKit(v.name, g.C)
		k.C = keyPair{sec: g.C.sec, pub: lowOrder8}
		g.header(v, "server:auth", "C_pub is a point of order 8 (the box is sealed under K(C_sec, S) but names it)", k, g.small, false)
		v.cs(k.sealHello())
		v.sc(plainError(3))
		g.debug(v, k)
		add(v)
	}
	{ // low-order client ephemeral
		v := &vector{name: "low-order-client-ephemeral"}
		k, _ := g.newKit(v.name, g.C)
		k.Ce = keyPair{sec: k.Ce.sec, pub: lowOrder8}
		g.header(v, "server:auth", "a known client with a valid proof, but Ce_pub is a point of order 8", k, g.small, false)
		v.cs(k.sealHello())
		v.sc(plainError(3))
		g.debug(v, k)
		add(v)
	}
	{ // low-order server ephemeral
		v := &vector{name: "low-order-server-ephemeral"}
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "client:server-auth", "a Link sealed correctly under K(S,Ce) whose se is a point of order 8", k, g.small, true)
		v.cs(k.sealHello())
		v.sc(k.sealLink(g.S, lowOrder8))
		k.haveKeys = false
		g.debug(v, k)
		add(v)
	}
	{ // frame-level rejects
		k, _ := g.newKit("frames", g.C)
		for _, c := range []struct {
			name, expect, comment string
			raw                   []byte
		}{
			{"oversized-frame", "server:malformed", "a Hello header declaring 65535 bytes: refused before reading the body", []byte{0xff, 0xff, 0x00}},
			{"oversized-hello-1537", "server:malformed", "a Hello header declaring 1537 bytes (limit 1536)", []byte{0x06, 0x01, 0x00}},
			{"unknown-type", "server:malformed", "a frame of type 0x04", []byte{0x00, 0x00, 0x04}},
			{"link-from-client", "server:malformed", "a Link where a Hello is expected", []byte{0x00, 0x00, 0x01}},
			{"empty-hello", "server:malformed", "a Hello with an empty body: there is no version byte, so it is only too short", []byte{0x00, 0x00, 0x00}},
			{"short-hello-version-1", "server:version", "a Hello whose whole body is the byte 0x01: the version is checked before the length", []byte{0x00, 0x01, 0x00, 0x01}},
		} {
			v := &vector{name: c.name}
			g.header(v, c.expect, c.comment, k, g.small, false)
			v.cs(c.raw)
			v.sc(plainError(map[string]uint64{"server:malformed": 1, "server:version": 2}[c.expect]))
			add(v)
		}
		v := &vector{name: "truncated-frame"}
		h := k.sealHello()
		g.header(v, "server:close", fmt.Sprintf("the first 100 bytes of a %d-byte Hello, then the client closes its side", len(h)), k, g.small, false)
		v.cs(h[:100])
		g.debug(v, k)
		add(v)
	}
	{ // a coffer/1 client
		v := &vector{name: "version-1"}
		k, _ := g.newKit(v.name, g.C)
		k.helloOuter, k.helloV, k.v1 = 1, 1, true
		g.header(v, "server:version", "the Hello of a coffer/1 client (version byte 1, no ML-KEM key, v: 1 inside):\nrefused with a plain Error{version}, never answered in coffer/1", k, g.small, false)
		v.cs(k.sealHello())
		v.sc(plainError(2))
		g.debug(v, k)
		add(v)
	}
	{ // version 3
		v := &vector{name: "version-3"}
		k, _ := g.newKit(v.name, g.C)
		k.helloOuter, k.helloV = 3, 3
		g.header(v, "server:version", "a coffer/2 Hello with version byte 3 (and v: 3 inside)", k, g.small, false)
		v.cs(k.sealHello())
		v.sc(plainError(2))
		g.debug(v, k)
		add(v)
	}
	{ // reflected OkGet
		v := &vector{name: "reflected-okget"}
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "server:auth", "this session's own OkGet 0 (sealed under k_sc) sent back as the Get", k, g.small, true)
		v.cs(k.sealHello())
		v.sc(k.sealLink(g.S, k.Se.pub))
		ok := k.okGets(g.small, true)[0]
		v.cs(mkFrame(0x02, ok[3:]))
		v.sc(plainError(3))
		g.debug(v, k)
		add(v)
	}
	{ // Get that opens but carries the wrong transcript hash
		v := &vector{name: "get-wrong-th"}
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "server:auth", "a Get sealed under the right k_cs whose th is th1 instead of th2:\nthe server answers with an Error sealed under k_sc, counter 0", k, g.small, true)
		v.cs(k.sealHello())
		v.sc(k.sealLink(g.S, k.Se.pub))
		v.cs(k.getTH(k.th1, nil))
		v.sc(k.sealedError(0, 3))
		g.debug(v, k)
		add(v)
	}
	{ // Get that opens but names an invalid value name
		v := &vector{name: "get-bad-name"}
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "server:malformed", "a Get whose names holds \".hidden\": a sealed Error malformed", k, g.small, true)
		v.cs(k.sealHello())
		v.sc(k.sealLink(g.S, k.Se.pub))
		v.cs(k.get([]string{".hidden"}))
		v.sc(k.sealedError(0, 1))
		g.debug(v, k)
		add(v)
	}
	{ // rollback
		v := &vector{name: "rollback"}
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "client:rollback", "the client requires serial 8; the server serves 7", k, g.small, true)
		v.set("min-serial", "8")
		v.cs(k.sealHello())
		v.sc(k.sealLink(g.S, k.Se.pub))
		v.cs(k.get(nil))
		for _, f := range k.okGets(g.small, true) {
			v.sc(f)
		}
		g.debug(v, k)
		add(v)
	}
	missing, _ := g.fullSession("get-missing-name", "Get names port and no.such.name; the shard has no no.such.name, so the server\nserves port alone and says nothing about the other name", shardInfo{
		data: cMap(map[string][]byte{"port": cUint(5432)}), serial: 7, dh: g.small.dh, chunkSize: frame.MaxChunkBytes,
	}, []string{"port", "no.such.name"})
	add(missing)
	{ // a Link the real server key sealed for this Ce, naming another session's th1
		v := &vector{name: "link-other-th"}
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "client:server-auth", "a Link sealed under K(S,Ce) for this session's Ce whose th is the th1 of\nfull-session: it opens, but it does not belong to this session", k, g.small, true)
		v.setHex("replayed-th", fk.th1[:])
		v.cs(k.sealHello())
		v.sc(k.sealLinkTH(g.S, k.Se.pub, fk.th1))
		k.haveKeys = false
		g.debug(v, k)
		add(v)
	}
	{ // a KeyNotFound recorded from another session of the same client
		v := &vector{name: "replayed-keynotfound"}
		rec, rr := g.newKit(v.name+" recorded", g.C)
		rec.sealHello()
		kn := rec.keyNotFound(rr.nonce())
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "client:unverified", "a KeyNotFound recorded from another session of this client (when the server\ndid not know it yet) replayed in answer to a fresh Hello: it opens under K(C,S)\nbut its th is the other session's th1, so it proves nothing", k, g.small, false)
		v.setHex("replayed-th", rec.th1[:])
		v.cs(k.sealHello())
		v.sc(kn)
		g.debug(v, k)
		add(v)
	}
	{ // a last chunk whose whole-shard hash is wrong
		v := &vector{name: "wrong-shard-hash"}
		k, _ := g.newKit(v.name, g.C)
		g.header(v, "client:protocol", "one OkGet that opens and has last, size and d right, but sh is the\nhash of other bytes: the client refuses the shard", k, g.small, true)
		v.cs(k.sealHello())
		v.sc(k.sealLink(g.S, k.Se.pub))
		v.cs(k.get(nil))
		for _, f := range k.okGetsSH(g.small, true, sha([]byte("not the shard"))) {
			v.sc(f)
		}
		g.debug(v, k)
		add(v)
	}
	for _, v := range vs {
		if view, ok := debugViews[v.name]; ok {
			v.set("debug-view", view)
		}
		if sub, ok := substituted[v.name]; ok {
			v.set("substituted", sub)
		}
	}
	return vs
}

// debugViews says, for each vector that is not a plain good session,
// whose view its debug values are in (docs/protocol.md §9).
var debugViews = map[string]string{
	"full-session":               "both sides",
	"okget-3-chunks":             "both sides",
	"get-with-names":             "both sides",
	"get-missing-name":           "both sides",
	"replayed-hello":             "both sides of the new session (the Hello is full-session's, byte for byte; the Get was sealed under full-session's k_cs)",
	"replayed-get":               "both sides of the new session (the Get was sealed under full-session's k_cs)",
	"replayed-link":              "the client's (the Link is full-session's, sealed for another Ce; no session keys exist)",
	"reordered-chunks":           "both sides",
	"dropped-chunk":              "both sides",
	"duplicated-chunk":           "both sides",
	"missing-last":               "both sides",
	"wrong-server-key":           "the client's: th0, k_ss and k_es use the key it pinned (pinned-server-pub), which the server does not hold",
	"impostor-link":              "th0, th1, k_ss, k_es: the client's; th2, k_ee, k_se, k_cs, k_sc: what the client would derive had the Link opened (server-ephemeral is the impostor's)",
	"unknown-client":             "th0, th1 and k_ss: both sides (the server computes k_ss for the unknown key once it has the tokens); k_es: the client's",
	"bad-proof":                  "the genuine client's: th1 is over the Hello before the bit was flipped",
	"low-order-client-key":       "the client's: k_ss is K(client-static, S) of the real secret, though the Hello names the substituted C_pub",
	"low-order-client-ephemeral": "the client's: k_es is K(client-ephemeral, S) of the real secret, though the Hello names the substituted Ce_pub",
	"low-order-server-ephemeral": "the client's, up to the Link (no session keys exist); the Link's se is the order-8 point e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800, not server-ephemeral-pub",
	"truncated-frame":            "the client's: th1 is over the whole Hello, of which only 100 bytes are sent",
	"version-1":                  "a coffer/1 client's: th0 = H(\"coffer/1\" || S_pub) (the server refuses the version byte before anything else)",
	"version-3":                  "the client's (the server refuses the version byte before anything else)",
	"reflected-okget":            "both sides",
	"get-wrong-th":               "both sides",
	"get-bad-name":               "both sides",
	"rollback":                   "both sides",
	"link-other-th":              "the client's, up to the Link (no session keys exist); the Link carries replayed-th, not th1",
	"replayed-keynotfound":       "the client's; the KeyNotFound carries replayed-th, the th1 of the recorded session",
	"wrong-shard-hash":           "both sides",
}

// substituted names, per vector, the header public keys that are points
// put in place of the listed secret's public key: they are not
// X25519(secret, 9).
var substituted = map[string]string{
	"low-order-client-key":       "client-static-pub",
	"low-order-client-ephemeral": "client-ephemeral-pub",
}

// ---- the tests ----

// TestVectorsUpToDate regenerates every vector and compares it with the
// file (or rewrites the files with -update).
func TestVectorsUpToDate(t *testing.T) {
	vs := newGen().vectors()
	if *updateVectors {
		if err := os.MkdirAll(vectorDir, 0o755); err != nil {
			t.Fatal(err)
		}
		old, _ := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
		for _, p := range old {
			os.Remove(p)
		}
	}
	for _, v := range vs {
		path := filepath.Join(vectorDir, v.name+".txt")
		if *updateVectors {
			if err := os.WriteFile(path, v.encode(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, v.encode()) {
			t.Errorf("%s is missing or differs from the testkit; run go test ./coffer -run Vectors -update", path)
		}
	}
}

func loadVectors(t *testing.T) []*vector {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no vectors in %s (%v)", vectorDir, err)
	}
	var vs []*vector
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		v, err := parseVector(strings.TrimSuffix(filepath.Base(p), ".txt"), data)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		vs = append(vs, v)
	}
	return vs
}

func hasClass(v *vector, prefix string) (string, bool) {
	for _, c := range strings.Fields(v.get("expect")) {
		if c == "ok" {
			return "ok", true
		}
		if after, ok := strings.CutPrefix(c, prefix); ok {
			return after, true
		}
	}
	return "", false
}

func TestVectorsServer(t *testing.T) {
	for _, v := range loadVectors(t) {
		class, ok := hasClass(v, "server:")
		if !ok {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			got := replayServer(t, v, v.lines, -1)
			if got.err != nil {
				t.Fatal(got.err)
			}
			want := "close"
			if class == "ok" {
				want = "ok"
			} else if class == "keynotfound" {
				want = "keynotfound"
			} else if class != "close" {
				want = "error:" + class
			}
			if got.outcome != want {
				t.Errorf("server outcome: got %s, want %s", got.outcome, want)
			}
		})
	}
}

func TestVectorsClient(t *testing.T) {
	for _, v := range loadVectors(t) {
		class, ok := hasClass(v, "client:")
		if !ok {
			continue
		}
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			res, err, srvErr := replayClient(t, v, v.lines, -1)
			if srvErr != nil {
				t.Fatalf("fake server: %v", srvErr)
			}
			if got := clientClass(err); got != class {
				t.Fatalf("client: got %s (%v), want %s", got, err, class)
			}
			if class != "ok" {
				return
			}
			enc, err := frame.EncodeShard(res.Shard)
			if err != nil || !bytes.Equal(enc, v.getHex(t, "shard")) {
				t.Errorf("shard: got %x, %v, want %s", enc, err, v.get("shard"))
			}
			if got := strconv.FormatUint(res.Version.Serial, 10); got != v.get("serial") {
				t.Errorf("serial: got %s, want %s", got, v.get("serial"))
			}
			if got := hex.EncodeToString(res.Version.Hash[:]); got != v.get("dh") {
				t.Errorf("dh: got %s, want %s", got, v.get("dh"))
			}
		})
	}
}

// TestVectorsMutation flips every byte of every frame of full-session
// (Bye aside: the server ignores it by design) and requires the receiver
// of the flipped frame to refuse it: the server answers with an Error or
// closes, the client returns an error and sends nothing further.
func TestVectorsMutation(t *testing.T) {
	var full *vector
	for _, v := range loadVectors(t) {
		if v.name == "full-session" {
			full = v
		}
	}
	if full == nil {
		t.Fatal("no full-session vector")
	}
	for idx, l := range full.lines {
		if l.raw[2] == 0x99 {
			continue
		}
		t.Run(fmt.Sprintf("%s-%d", l.dir, idx), func(t *testing.T) {
			t.Parallel()
			for pos := range l.raw {
				lines := slices.Clone(full.lines[:idx+1])
				lines[idx].raw = slices.Clone(l.raw)
				lines[idx].raw[pos] ^= 0xff
				if l.dir == "c>s" {
					got := replayServer(t, full, lines, idx)
					if got.err != nil {
						t.Fatalf("byte %d: %v", pos, got.err)
					}
					if got.outcome == "ok" || got.outcome == "keynotfound" || got.outcome == "accepted" {
						t.Errorf("byte %d flipped: server outcome %s, want an Error or a close", pos, got.outcome)
					}
					continue
				}
				_, err, srvErr := replayClient(t, full, lines, idx)
				if srvErr != nil {
					t.Fatalf("byte %d: fake server: %v", pos, srvErr)
				}
				if err == nil {
					t.Errorf("byte %d flipped: the client accepted it", pos)
				}
			}
		})
	}
}

// ---- replaying against the real server ----

// fixedShards serves one shard whatever is asked, and records the names
// the server passed on, so a replay can check them against `names`.
type fixedShards struct {
	data  []byte
	mu    sync.Mutex
	names []string
	asked bool
}

func (s *fixedShards) Shard(_ coffer.PublicKey, names []string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.names, s.asked = slices.Clone(names), true
	return bytes.Clone(s.data), nil
}

func pubKey(t *testing.T, b []byte) coffer.PublicKey {
	t.Helper()
	var p coffer.PublicKey
	if len(b) != 32 {
		t.Fatalf("key of %d bytes", len(b))
	}
	copy(p[:], b)
	return p
}

func privKey(t *testing.T, b []byte) *coffer.PrivateKey {
	t.Helper()
	var a [32]byte
	copy(a[:], b)
	k, err := coffer.NewPrivateKey(&a)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

type serverResult struct {
	outcome string // ok, keynotfound, error:CODE, close, accepted (mutation: a non-Error reply)
	err     error  // the replay itself failed: a byte mismatch or a hang
}

// replayServer runs v's script against a fresh coffer.Server. When
// mutated >= 0, lines[mutated] is a flipped frame: the script stops
// there, and whatever the server sends next is classified instead of
// compared.
func replayServer(t *testing.T, v *vector, lines []vline, mutated int) serverResult {
	t.Helper()
	rnd := slices.Concat(v.getHex(t, "server-ephemeral"), v.getHex(t, "server-mlkem-m"), v.getHex(t, "n2"), v.getHex(t, "n-keynotfound"))
	srv := &coffer.Server{
		Key:  privKey(t, v.getHex(t, "server-static")),
		Rand: bytes.NewReader(rnd),
		// No rate limit gets in the way of a replay.
		ClientLimit: coffer.Limit{Rate: -1}, UnknownLimit: coffer.Limit{Rate: -1},
		UnknownPerIPLimit: coffer.Limit{Rate: -1}, FailPerIPLimit: coffer.Limit{Rate: -1},
	}
	serial, _ := strconv.ParseUint(v.get("serial"), 10, 64)
	store := &fixedShards{data: v.getHex(t, "shard")}
	snap := &coffer.Snapshot{Version: coffer.Version{Serial: serial}, Clients: map[coffer.PublicKey]string{},
		Shards: store}
	copy(snap.Version.Hash[:], v.getHex(t, "dh"))
	for i, h := range strings.Split(v.get("server-clients"), ",") {
		b, _ := hex.DecodeString(h)
		snap.Clients[pubKey(t, b)] = fmt.Sprintf("client-%d", i)
	}
	srv.Swap(snap)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Close()
		<-served
	}()
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	tc := conn.(*net.TCPConn)

	last := byte(0)
	// byeAfterShard: the script's Bye follows the last OkGet. The server
	// may close without reading it (docs/protocol.md §4.5), so its kernel
	// may answer the Bye with a reset, which then ends our reads too.
	byeAfterShard := false
	for i, ln := range lines {
		if ln.dir == "c>s" {
			byeAfterShard = ln.raw[2] == 0x99 && last == 0x03
			if _, err := conn.Write(ln.raw); err != nil && !(byeAfterShard && isReset(err)) {
				return serverResult{err: fmt.Errorf("line %d: write: %v", i, err)}
			}
			if i == mutated {
				break
			}
			continue
		}
		got, err := readRawFrame(conn)
		if err != nil {
			return serverResult{err: fmt.Errorf("line %d: reading the server's frame: %v", i, err)}
		}
		if !bytes.Equal(got, ln.raw) {
			return serverResult{err: fmt.Errorf("line %d: server sent\n%x\nwant\n%x", i, got, ln.raw)}
		}
		last = ln.raw[2]
	}
	tc.CloseWrite()
	// Whatever comes now must be nothing (a replay) or, after a mutated
	// frame, at most an Error.
	rest, err := io.ReadAll(conn)
	if err != nil && mutated < 0 && !(byeAfterShard && isReset(err)) {
		return serverResult{err: fmt.Errorf("after the script: %v", err)}
	}
	if mutated >= 0 {
		if len(rest) == 0 {
			return serverResult{outcome: "close"}
		}
		if len(rest) >= 3 && rest[2] == 0xff {
			return serverResult{outcome: "error"}
		}
		return serverResult{outcome: "accepted"}
	}
	if len(rest) > 0 {
		return serverResult{err: fmt.Errorf("server sent %d bytes more than the vector: %x", len(rest), rest[:min(len(rest), 64)])}
	}
	if want := v.get("names"); store.asked && want != strings.Join(store.names, ",") {
		return serverResult{err: fmt.Errorf("the server asked its store for names %q, want %q", store.names, want)}
	}
	switch last {
	case 0xff:
		return serverResult{outcome: "error:" + errorName(t, v, lines[len(lines)-1].raw)}
	case 0xaa:
		return serverResult{outcome: "keynotfound"}
	case 0x03:
		return serverResult{outcome: "ok"}
	}
	return serverResult{outcome: "close"}
}

// errorName names the code of an Error frame from the last byte of its
// CBOR (codes are below 24). A sealed Error (the vectors have them only
// right after Get) is opened under k_sc with counter 0.
func errorName(t *testing.T, v *vector, raw []byte) string {
	body := raw[3:]
	if len(raw) != 10 {
		var k [32]byte
		copy(k[:], v.getHex(t, "k_sc"))
		n := counter(0)
		pt, ok := box.OpenAfterPrecomputation(nil, body, &n, &k)
		if !ok {
			return "unopenable"
		}
		body = pt
	}
	return map[byte]string{1: "malformed", 2: "version", 3: "auth", 4: "busy", 5: "unavailable", 6: "internal"}[body[len(body)-1]]
}

// isReset reports a reset connection, or a write to one.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func readRawFrame(r io.Reader) ([]byte, error) {
	h := make([]byte, 3)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, err
	}
	b := make([]byte, 3+(int(h[0])<<8|int(h[1])))
	copy(b, h)
	_, err := io.ReadFull(r, b[3:])
	return b, err
}

// ---- replaying against the real client ----

// replayClient runs coffer.Fetch against a fake server that plays the
// s>c lines and compares what the client sends with the c>s lines. When
// mutated >= 0 the script stops after lines[mutated] (an s>c frame) and
// the fake server requires the client to send nothing more.
func replayClient(t *testing.T, v *vector, lines []vline, mutated int) (*coffer.Result, error, error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srvErr := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			srvErr <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		srvErr <- fakeServer(c.(*net.TCPConn), lines, mutated)
	}()

	pinned := v.getHex(t, "server-static-pub")
	if p := v.get("pinned-server-pub"); p != "" {
		pinned = v.getHex(t, "pinned-server-pub")
	}
	cfg := &coffer.ClientConfig{
		Key:    privKey(t, v.getHex(t, "client-static")),
		Server: pubKey(t, pinned),
		Rand:   bytes.NewReader(slices.Concat(v.getHex(t, "client-ephemeral"), v.getHex(t, "client-mlkem-seed"), v.getHex(t, "n1"))),
	}
	if n := v.get("names"); n != "" {
		cfg.Names = strings.Split(n, ",")
	}
	if m := v.get("min-serial"); m != "" {
		cfg.MinSerial, _ = strconv.ParseUint(m, 10, 64)
	}
	conn, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, ferr := coffer.Fetch(ctx, conn, cfg)
	conn.Close()
	return res, ferr, <-srvErr
}

func fakeServer(c *net.TCPConn, lines []vline, mutated int) error {
	for i, ln := range lines {
		if ln.dir == "s>c" {
			c.Write(ln.raw) // the client may have given up already
			if i == mutated {
				break
			}
			continue
		}
		got := make([]byte, len(ln.raw))
		n, err := io.ReadFull(c, got)
		if err != nil {
			if n == 0 {
				return nil // the client stopped early, as failing clients do
			}
			return fmt.Errorf("line %d: read %d of %d bytes: %v", i, n, len(ln.raw), err)
		}
		if !bytes.Equal(got, ln.raw) {
			return fmt.Errorf("line %d: client sent\n%x\nwant\n%x", i, got, ln.raw)
		}
	}
	c.CloseWrite()
	rest, _ := io.ReadAll(c)
	if len(rest) > 0 {
		return fmt.Errorf("the client sent %d bytes the vector does not have: %x", len(rest), rest[:min(len(rest), 64)])
	}
	return nil
}

// clientClass maps a Fetch error to a vector class.
func clientClass(err error) string {
	var re *coffer.RemoteError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &re) && !re.Sealed:
		return "plain-error"
	case errors.Is(err, coffer.ErrServerAuth):
		return "server-auth"
	case errors.Is(err, coffer.ErrUnknownClient):
		return "unknown-client"
	case errors.Is(err, coffer.ErrRollback):
		return "rollback"
	case errors.Is(err, coffer.ErrProtocol):
		return "protocol"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated"
	case errors.As(err, &re):
		return "remote-error"
	case errors.Is(err, coffer.ErrUnverified) && coffer.Retryable(err):
		// A reply that proves nothing and is not final (a KeyNotFound
		// that does not open or is not for this session). Link, chunk and
		// plain Error failures match ErrUnverified too but have their
		// own classes above. The testkit sees only the public API.
		return "unverified"
	}
	return "other"
}

// ---- the vector shown in docs/protocol.md ----

const (
	protocolDoc     = "../docs/protocol.md"
	docVectorName   = "full-session"
	docVectorMarker = "<!-- vector full-session.txt: generated by go test ./coffer -run Vectors -update -->"
	docWrapHex      = 64
)

// wrapVector renders a vector file for the doc: each value longer than
// docWrapHex characters continues on lines indented by four spaces.
func wrapVector(file []byte) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(strings.TrimSuffix(string(file), "\n"), "\n") {
		line = strings.TrimSuffix(line, "\n")
		k, val, ok := strings.Cut(line, ": ")
		if !ok || len(val) <= docWrapHex {
			b.WriteString(line + "\n")
			continue
		}
		b.WriteString(k + ": " + val[:docWrapHex] + "\n")
		for val = val[docWrapHex:]; val != ""; {
			n := min(len(val), docWrapHex)
			b.WriteString("    " + val[:n] + "\n")
			val = val[n:]
		}
	}
	return b.String()
}

// unwrapVector undoes wrapVector.
func unwrapVector(text string) []byte {
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.HasPrefix(line, " ") && len(out) > 0 {
			out[len(out)-1] += strings.TrimLeft(line, " ")
			continue
		}
		out = append(out, line)
	}
	return []byte(strings.Join(out, "\n") + "\n")
}

// docVectorBlock finds the fenced block after the marker: the text
// before it, its contents and the text after it.
func docVectorBlock(doc string) (before, block, after string, err error) {
	i := strings.Index(doc, docVectorMarker+"\n```text\n")
	if i < 0 {
		return "", "", "", fmt.Errorf("%s has no %q followed by a ```text block", protocolDoc, docVectorMarker)
	}
	start := i + len(docVectorMarker+"\n```text\n")
	end := strings.Index(doc[start:], "```\n")
	if end < 0 {
		return "", "", "", fmt.Errorf("%s: the vector block is not closed", protocolDoc)
	}
	return doc[:start], doc[start : start+end], doc[start+end:], nil
}

// TestVectorsInProtocolDoc checks that the session printed in
// docs/protocol.md §9.1 is byte for byte the vector file (or, with
// -update, rewrites it from the file), so the two cannot drift apart.
func TestVectorsInProtocolDoc(t *testing.T) {
	file, err := os.ReadFile(filepath.Join(vectorDir, docVectorName+".txt"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(protocolDoc)
	if err != nil {
		t.Fatal(err)
	}
	before, block, after, err := docVectorBlock(string(doc))
	if err != nil {
		t.Fatal(err)
	}
	if *updateVectors {
		if err := os.WriteFile(protocolDoc, []byte(before+wrapVector(file)+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got := unwrapVector(block); !bytes.Equal(got, file) {
		t.Errorf("docs/protocol.md §9.1 differs from %s.txt; run go test ./coffer -run Vectors -update", docVectorName)
	}
	if !bytes.Equal(unwrapVector(wrapVector(file)), file) {
		t.Error("unwrapVector(wrapVector(file)) is not the file")
	}
}

// getBodySize is the rule of docs/protocol.md §4.3 for the size of a Get
// body: 16 + 44 without names; with n names, 16 + 50 + the array head
// (1 byte below 24 names, 2 below 256, 3 for 256) + for each name its
// length plus 1 (below 24 bytes) or 2.
func getBodySize(names []string) int {
	if len(names) == 0 {
		return 16 + 44
	}
	size := 16 + 50 + len(cHead(4, uint64(len(names))))
	for _, n := range names {
		size += len(n) + 1
		if len(n) >= 24 {
			size++
		}
	}
	return size
}

// TestGetSize checks the §4.3 size rule against the testkit's encoder,
// and the two facts the doc draws from it: 30 names of 128 bytes fit the
// Get limit and 31 do not, and 256 names of 128 bytes need 33,349 bytes.
func TestGetSize(t *testing.T) {
	limit, _ := frame.TypeGet.Limit()
	k, _ := newGen().newKit("get size", newGen().C)
	k.sealHello()
	k.sealLink(k.S, k.Se.pub)
	for _, n := range []int{0, 1, 23, 24, 30, 31, 255, 256} {
		for _, l := range []int{1, 23, 24, 128} {
			names := make([]string, n)
			for i := range names {
				names[i] = strings.Repeat("n", l)
			}
			if got, want := len(k.get(names))-3, getBodySize(names); got != want {
				t.Errorf("%d names of %d bytes: body %d bytes, rule says %d", n, l, got, want)
			}
		}
	}
	long := func(n int) []string { return slices.Repeat([]string{strings.Repeat("n", 128)}, n) }
	if limit != 4096 || getBodySize(long(30)) > limit || getBodySize(long(31)) <= limit {
		t.Errorf("limit %d; 30 long names: %d bytes, 31: %d", limit, getBodySize(long(30)), getBodySize(long(31)))
	}
	if got := getBodySize(long(256)); got != 33349 {
		t.Errorf("256 long names: %d bytes, want 33349", got)
	}
}
