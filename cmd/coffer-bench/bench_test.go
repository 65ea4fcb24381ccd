package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// TestQuickRun builds the three programs and coffer-bench, runs a tiny
// benchmark end to end and checks its JSON line. It is skipped while a
// program it needs does not exist yet.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("builds four binaries and runs them; skipped with -short")
	}
	for _, p := range []string{"coffer-server", "coffer-client", "coffer-companion"} {
		if _, err := os.Stat(filepath.Join("..", p)); err != nil {
			t.Skipf("cmd/%s does not exist yet", p)
		}
	}
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(os.PathSeparator),
		"../coffer-server", "../coffer-client", "../coffer-companion", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(filepath.Join(bin, "coffer-bench"),
		"-server", filepath.Join(bin, "coffer-server"),
		"-client", filepath.Join(bin, "coffer-client"),
		"-companion", filepath.Join(bin, "coffer-companion"),
		"-clients", "200", "-secrets", "3", "-duration", "300ms", "-rounds", "1",
		"-conc", "1,4", "-storm-conc", "8", "-cold-starts", "3")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("coffer-bench: %v\nstderr:\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var f figures
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &f); err != nil {
		t.Fatalf("last line is not the JSON figures: %v\n%s", err, stdout.String())
	}
	if got, want := f.Storm["coffer"].Sessions, int64(200); got != want {
		t.Errorf("coffer storm sessions: got %d, want %d", got, want)
	}
	for _, tg := range targets {
		for _, c := range []string{"c1", "c4"} {
			l := f.Load[tg][c]
			if l == nil || l.Sessions == 0 || l.Errors != 0 {
				t.Errorf("%s %s: got %+v, want sessions and no errors", tg, c, l)
			}
		}
	}
	if f.ColdStart.Runs != 3 || f.ColdStart.Errors != 0 {
		t.Errorf("cold start: got %+v, want 3 runs and no errors", f.ColdStart)
	}
	if f.ColdStart.EmptyMedianMs <= 0 || f.ColdStart.EmptyRatio <= 0 {
		t.Errorf("cold start: got %+v, want the empty program's time and the ratio to it", f.ColdStart)
	}
	if len(f.Targets) == 0 || f.X25519Us <= 0 || f.ReadyMs <= 0 {
		t.Errorf("figures incomplete: targets %d, x25519 %v, ready %v", len(f.Targets), f.X25519Us, f.ReadyMs)
	}
}

// mapShards serves encoded shards from memory, for the in-process server.
type mapShards map[coffer.PublicKey][]byte

func (m mapShards) Shard(client coffer.PublicKey, names []string) ([]byte, error) {
	s, ok := m[client]
	if !ok {
		return nil, errors.New("no shard")
	}
	return bytes.Clone(s), nil // the server zeroes what it is given
}

// benchServer starts an in-process coffer.Server on 127.0.0.1 with n
// clients of 10 secrets of 40 bytes, and returns its address and the
// clients' configurations.
func benchServer(b *testing.B, n int) (string, []*coffer.ClientConfig) {
	b.Helper()
	sk, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	opt := &options{secrets: 10, valueSize: 40}
	sn := &coffer.Snapshot{Version: coffer.Version{Serial: 1}, Clients: map[coffer.PublicKey]string{}}
	shards := mapShards{}
	var cfgs []*coffer.ClientConfig
	for i := range n {
		ck, err := coffer.GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		_, enc, err := definition([]coffer.PublicKey{ck.Public()}, opt)
		if err != nil {
			b.Fatal(err)
		}
		sn.Clients[ck.Public()] = clientName(i)
		shards[ck.Public()] = enc[0]
		cfgs = append(cfgs, &coffer.ClientConfig{Key: ck, Server: sk.Public()})
	}
	sn.Shards = shards
	srv := &coffer.Server{Key: sk}
	srv.Swap(sn)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(l) })
	b.Cleanup(func() {
		srv.Close()
		wg.Wait()
	})
	return l.Addr().String(), cfgs
}

// fetchOnce runs one whole session on a new TCP connection.
func fetchOnce(addr string, cfg *coffer.ClientConfig) error {
	ctx, cancel := context.WithTimeout(context.Background(), sessionTimeout)
	defer cancel()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := coffer.Fetch(ctx, conn, cfg)
	if err != nil {
		return err
	}
	if len(res.Shard) != 10 {
		return fmt.Errorf("got %d values, want 10", len(res.Shard))
	}
	return nil
}

// BenchmarkServerSession runs whole coffer/1 sessions, each on a new TCP
// connection to an in-process server, one at a time. Profile it with
// -cpuprofile and look at what hangs under (*Server).serve.
func BenchmarkServerSession(b *testing.B) {
	addr, cfgs := benchServer(b, 1000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := fetchOnce(addr, cfgs[i%len(cfgs)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkServerSessionParallel is BenchmarkServerSession with 8
// sessions in flight per GOMAXPROCS (16 on the 2-core machine, like the
// c16 phase of coffer-bench).
func BenchmarkServerSessionParallel(b *testing.B) {
	addr, cfgs := benchServer(b, 1000)
	b.ReportAllocs()
	b.SetParallelism(8)
	var next sync.Mutex
	i := 0
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			next.Lock()
			cfg := cfgs[i%len(cfgs)]
			i++
			next.Unlock()
			if err := fetchOnce(addr, cfg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkX25519Cached is one X25519 scalar multiplication with a cached
// crypto/ecdh private key: the unit of the protocol floor.
func BenchmarkX25519Cached(b *testing.B) {
	priv, _ := ecdh.X25519().GenerateKey(rand.Reader)
	peer, _ := ecdh.X25519().GenerateKey(rand.Reader)
	pub := peer.PublicKey()
	for b.Loop() {
		if _, err := priv.ECDH(pub); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeShard is the cost of building one 10 x 40 B shard.
func BenchmarkEncodeShard(b *testing.B) {
	sh := frame.Shard{}
	for i := range 10 {
		sh[fmt.Sprintf("secret_%02d", i)] = frame.Value{Kind: frame.KindString, Text: bytes.Repeat([]byte("x"), 40)}
	}
	for b.Loop() {
		if _, err := frame.EncodeShard(sh); err != nil {
			b.Fatal(err)
		}
	}
}
