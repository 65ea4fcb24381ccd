package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/frame"
)

func TestServeFetch(t *testing.T) {
	f := newFixture(t, "web", "db")
	f.next(t, "one", 0)
	p := f.start(t)
	for _, c := range []string{"web", "db"} {
		r, err := p.fetch(c)
		if err != nil {
			t.Fatalf("fetch %s: %v", c, err)
		}
		if err := wantShard(r, "one"); err != nil {
			t.Error(err)
		}
		if r.Version.Serial != 1 || r.Version.Hash != f.Last {
			t.Errorf("got version %d %x, want 1 %x", r.Version.Serial, r.Version.Hash[:8], f.Last[:8])
		}
	}
	_, err := fetchFrom(p.Addr, f.Server.Public(), genKey(t))
	if !errors.Is(err, coffer.ErrUnknownClient) {
		t.Errorf("unknown client: got %v, want ErrUnknownClient", err)
	}
	p.stop()
	if _, err := os.Stat(filepath.Join(f.DataDir, pidFileName)); !os.IsNotExist(err) {
		t.Errorf("lock file left after a clean stop: %v", err)
	}

	// A restart serves the stored definition, also without the file.
	os.Remove(f.DefPath)
	p = f.start(t)
	r, err := p.fetch("web")
	if err != nil {
		t.Fatal(err)
	}
	if err := wantShard(r, "one"); err != nil {
		t.Error(err)
	}
	p.Logs.Wait(t, 0, `no sealed definition file`)

	// The audit holds the sessions, without values; inspect lists names.
	p.stop()
	out, _, code := f.run(t, nil, append([]string{"audit", "--json", "--limit", "0"}, f.Args()...)...)
	if code != 0 || strings.Count(out, `"outcome":"ok"`) != 3 || !strings.Contains(out, `"outcome":"unknown-client"`) {
		t.Errorf("audit: exit %d, got\n%s\nwant 3 ok records and an unknown-client", code, out)
	}
	out, _, code = f.run(t, nil, append([]string{"inspect"}, f.Args()...)...)
	if code != 0 || !strings.Contains(out, "serial:     1") || !strings.Contains(out, `"canary"`) {
		t.Errorf("inspect: exit %d, got\n%s", code, out)
	}
}

// TestNothingToServe: no definition and an empty store serve
// Error{unavailable}; a SIGHUP after the file appears loads it.
func TestNothingToServe(t *testing.T) {
	f := newFixture(t, "web")
	p := f.start(t)
	p.Logs.Wait(t, 0, `nothing to serve`)
	_, err := p.fetch("web")
	var re *coffer.RemoteError
	if !errors.As(err, &re) || re.Code != frame.CodeUnavailable {
		t.Fatalf("got %v, want Error{unavailable}", err)
	}
	f.next(t, "one", 0)
	n := p.Logs.Count()
	p.Signal(syscall.SIGHUP)
	p.WaitNotify("RELOADING=1")
	p.Logs.Wait(t, n, `msg="serving definition" serial=1`)
	r, err := p.fetch("web")
	if err != nil {
		t.Fatal(err)
	}
	if err := wantShard(r, "one"); err != nil {
		t.Error(err)
	}
	p.stop()
}

// TestReloadUnderLoad: clients fetch continuously while SIGHUP installs
// newer definitions; every fetch sees one whole definition, and serials
// never go back.
func TestReloadUnderLoad(t *testing.T) {
	f := newFixture(t, "web", "db")
	f.next(t, "gen1", 0)
	p := f.start(t)
	tags := map[uint64]string{1: "gen1"}
	var tagsMu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var fetches atomic.Int64
	errs := make(chan error, 8)
	for _, c := range []string{"web", "db", "web", "db"} {
		wg.Go(func() {
			var last uint64
			for ctx.Err() == nil {
				r, err := p.fetch(c)
				if err != nil {
					errs <- err
					return
				}
				tagsMu.Lock()
				tag := tags[r.Version.Serial]
				tagsMu.Unlock()
				if err := wantShard(r, tag); err != nil {
					errs <- err
					return
				}
				if r.Version.Serial < last {
					errs <- errors.New("serial went back")
					return
				}
				last = r.Version.Serial
				fetches.Add(1)
			}
		})
	}
	for serial := uint64(2); serial <= 4; serial++ {
		tag := "gen" + string(rune('0'+serial))
		tagsMu.Lock()
		tags[serial] = tag
		tagsMu.Unlock()
		f.next(t, tag, 200)
		n := p.Logs.Count()
		p.Signal(syscall.SIGHUP)
		p.Logs.Wait(t, n, `msg="serving definition" serial=`+string(rune('0'+serial)))
	}
	// Let each worker see the last definition at least once more.
	for start := fetches.Load(); fetches.Load() < start+8; {
		select {
		case err := <-errs:
			t.Fatal(err)
		default:
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	r, err := p.fetch("web")
	if err != nil {
		t.Fatal(err)
	}
	if err := wantShard(r, "gen4"); err != nil || r.Version.Serial != 4 {
		t.Errorf("after the reloads: serial %d, %v", r.Version.Serial, err)
	}
	p.Logs.Wait(t, 0, `previous generation dropped`)
	p.stop()
}

// TestRefusedDefinitions: an older, an untrusted, a forked and a garbage
// definition are refused with a logged reason, and the current one keeps
// being served. (The companion refuses to seal broken TOML, so the TOML
// errors' canary checks live in config and coffer.)
func TestRefusedDefinitions(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	older, err := os.ReadFile(f.DefPath)
	if err != nil {
		t.Fatal(err)
	}
	f.next(t, "two", 0)
	current := mustRead(t, f.DefPath)
	p := f.start(t)
	cases := []struct {
		name   string
		sealed []byte
	}{
		{"older", older},
		{"untrusted author", f.Seal(t, f.Stranger, 3, f.Last, f.defTOML("evil", 0))},
		{"wrong previous hash", f.Seal(t, f.Author, 3, [32]byte{1}, f.defTOML("fork", 0))},
		{"garbage", []byte("coffer-def\x00" + canary)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f.Write(t, tc.sealed)
			n := p.Logs.Count()
			p.Signal(syscall.SIGHUP)
			line, _ := p.Logs.Wait(t, n, `reload: sealed definition refused`)
			if !strings.Contains(line, "reason=") {
				t.Errorf("refusal without a reason: %s", line)
			}
			p.WaitReady()
			r, err := p.fetch("web")
			if err != nil {
				t.Fatal(err)
			}
			if err := wantShard(r, "two"); err != nil || r.Version.Serial != 2 {
				t.Errorf("after refusing: serial %d, %v", r.Version.Serial, err)
			}
		})
	}
	// The same file again is a no-op.
	f.Write(t, current)
	n := p.Logs.Count()
	p.Signal(syscall.SIGHUP)
	p.Logs.Wait(t, n, `already current`)
	p.stop()
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKill9DuringLoad kills the server in the middle of importing a big
// definition; the restarted server opens the store and serves the old or
// the new definition whole, then the new one.
func TestKill9DuringLoad(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "old", 0)
	p := f.start(t)
	f.next(t, "new", 3000)
	n := p.Logs.Count()
	p.Signal(syscall.SIGHUP)
	p.Logs.Wait(t, n, `msg="importing definition"`)
	p.Cmd.Process.Kill()
	<-p.Done()

	// Without the file the store alone decides: old or new, whole.
	if err := os.Rename(f.DefPath, f.DefPath+".new"); err != nil {
		t.Fatal(err)
	}
	p = f.start(t)
	r, err := p.fetch("web")
	if err != nil {
		t.Fatal(err)
	}
	tag := map[uint64]string{1: "old", 2: "new"}[r.Version.Serial]
	if err := wantShard(r, tag); err != nil {
		t.Errorf("after kill -9: %v", err)
	}
	p.stop()

	// With the file back, the new definition is loaded at start.
	if err := os.Rename(f.DefPath+".new", f.DefPath); err != nil {
		t.Fatal(err)
	}
	p = f.start(t)
	r, err = p.fetch("web")
	if err != nil {
		t.Fatal(err)
	}
	if err := wantShard(r, "new"); err != nil || r.Version.Serial != 2 {
		t.Errorf("after restart with the file: serial %d, %v", r.Version.Serial, err)
	}
	p.stop()
}

// TestSocketActivation passes a bound listener as fd 3 with LISTEN_FDS and
// LISTEN_PID set to the server's own pid by a shell that then execs it.
func TestSocketActivation(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := l.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // the duplicate in lf stays open and listening
	wrap := []string{"/bin/sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"`}
	p := f.launch(t, wrap, []*os.File{lf}, append(f.Args(), "--listen", "127.0.0.1:1")...)
	lf.Close()
	p.Addr = addr
	msg := p.WaitReady()
	if !strings.Contains(msg, "STATUS=serving serial 1") {
		t.Errorf("got notification %q, want a STATUS with the serial", msg)
	}
	p.Logs.Wait(t, 0, `listening \(socket activation\)" addr=`+addr)
	r, err := p.fetch("web")
	if err != nil {
		t.Fatal(err)
	}
	if err := wantShard(r, "one"); err != nil {
		t.Error(err)
	}
	p.stop()
}

// TestInheritedListenFDs: LISTEN_FDS meant for another process (wrong
// LISTEN_PID) is ignored and --listen is used.
func TestInheritedListenFDs(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "1")
	p := f.start(t)
	if _, err := p.fetch("web"); err != nil {
		t.Fatal(err)
	}
	p.stop()
}

// A zero rate in the config turns a limit off; coffer.Limit's own zero
// would mean its default, so limit must not pass it through.
func TestLimitMapping(t *testing.T) {
	tests := []struct {
		name string
		in   config.ServerRate
		want coffer.Limit
	}{
		{"zero rate is off", config.ServerRate{}, coffer.Limit{Rate: -1}},
		{"zero rate with a burst is off", config.ServerRate{Burst: 5}, coffer.Limit{Rate: -1}},
		{"rate and burst kept", config.ServerRate{Rate: 0.5, Burst: 3}, coffer.Limit{Rate: 0.5, Burst: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := limit(tt.in); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestSignalsDuringStartup: signals that come while the server imports
// its definition at start-up wait for it. A SIGHUP must not kill it (its
// default action); SIGTERM stops it cleanly, the store closed.
func TestSignalsDuringStartup(t *testing.T) {
	t.Run("SIGHUP", func(t *testing.T) {
		f := newFixture(t, "web")
		f.next(t, "one", 3000)
		p := f.launch(t, nil, nil, append(f.Args(), "--listen", "127.0.0.1:0")...)
		p.Logs.Wait(t, 0, `msg="importing definition"`)
		p.Signal(syscall.SIGHUP)
		p.WaitReady()
		p.WaitListening()
		p.WaitNotify("RELOADING=1") // acted on once running
		r, err := p.fetch("web")
		if err != nil {
			t.Fatal(err)
		}
		if err := wantShard(r, "one"); err != nil {
			t.Error(err)
		}
		p.stop()
	})
	t.Run("SIGTERM", func(t *testing.T) {
		f := newFixture(t, "web")
		f.next(t, "one", 3000)
		p := f.launch(t, nil, nil, append(f.Args(), "--listen", "127.0.0.1:0")...)
		p.Logs.Wait(t, 0, `msg="importing definition"`)
		p.Signal(syscall.SIGTERM)
		<-p.Done()
		if p.Err() != nil {
			t.Fatalf("server exited with %v, want a clean exit; log:\n%s", p.Err(), p.Logs.All())
		}
		// The store was closed cleanly: the next start serves it.
		p = f.start(t)
		r, err := p.fetch("web")
		if err != nil {
			t.Fatal(err)
		}
		if err := wantShard(r, "one"); err != nil {
			t.Error(err)
		}
		p.stop()
	})
}

// TestListenNoKeepAlive: connections accepted on the --listen socket have
// no TCP keep-alive (listen's comment says why), as the kernel reports
// for the server's side.
func TestListenNoKeepAlive(t *testing.T) {
	ls, err := listen("127.0.0.1:0", func(string) string { return "" }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer ls[0].Close()
	c, err := net.Dial("tcp", ls[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, err := ls[0].Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	raw, err := s.(*net.TCPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	on, serr := -1, error(nil)
	if err := raw.Control(func(fd uintptr) {
		on, serr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	}); err != nil || serr != nil {
		t.Fatalf("getsockopt: %v, %v", err, serr)
	}
	if on != 0 {
		t.Errorf("SO_KEEPALIVE = %d on an accepted connection, want 0", on)
	}
}

// BenchmarkAccept is the server's side of one connection on the --listen
// socket, its accept and its close; the client's dial and close are
// outside the timer.
func BenchmarkAccept(b *testing.B) {
	ls, err := listen("127.0.0.1:0", func(string) string { return "" }, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer ls[0].Close()
	addr := ls[0].Addr().String()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		s, err := ls[0].Accept()
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
}
