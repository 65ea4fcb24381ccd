package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/e2e"
	"github.com/coffer-project/coffer/coffer"
)

// TestExecWatchRealServer runs exec --watch --out against the real
// coffer-server, publishing each new definition as an operator does
// (a new sealed file, then SIGHUP), and measures the time from the
// SIGHUP to the program's report of its own SIGHUP, at
// --watch-interval 200ms (the server allows 10 sessions per client per
// second by default).
func TestExecWatchRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("builds coffer-server")
	}
	bin := buildServer(t)
	f := e2e.NewFixture(t, "", "app")
	client := f.Clients["app"]
	def := func(v string) []byte {
		return fmt.Appendf(nil, "[clients]\napp = %q\n\n[app]\napi-key = %q\ncanary = %q\n", client.Public(), v, canary)
	}
	f.Next(t, def("first"))
	srv := e2e.Launch(t, append(append([]string{bin, "serve"}, f.Args()...), "--listen", "127.0.0.1:0"), e2e.Options{Env: environ()})
	srv.WaitListening()

	fx := &fixture{t: t, dir: f.Dir, client: client, keyFile: filepath.Join(f.Dir, "client.key"), server: f.Server,
		config: filepath.Join(f.Dir, "client.toml")}
	if err := coffer.WriteKeyFile(fx.keyFile, client); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.config, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(f.Dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	p := fx.execWatch(out, srv.Addr, "--out", out, "--watch-interval", "200ms")
	_, at := p.Logs.Wait(t, 0, `^child: start pid \d+ api-key first$`)
	var reload, signalled []time.Duration
	for i := range 7 {
		v := "value-" + strconv.Itoa(i)
		f.Next(t, def(v))
		n := srv.Logs.Count()
		start := time.Now()
		srv.Signal(syscall.SIGHUP)
		srv.Logs.Wait(t, n, `msg="serving definition" serial=`+strconv.FormatUint(f.LastSeal, 10)+`\b`)
		reload = append(reload, time.Since(start))
		_, at = p.Logs.Wait(t, at, `^child: hangup file `+v+`$`)
		signalled = append(signalled, time.Since(start))
	}
	slices.Sort(reload)
	slices.Sort(signalled)
	t.Logf("real coffer-server, %d reloads: SIGHUP to serving: median %s; SIGHUP to the program's SIGHUP at --watch-interval 200ms: min %s, median %s, max %s",
		len(reload), reload[len(reload)/2], signalled[0], signalled[len(signalled)/2], signalled[len(signalled)-1])
	p.Signal(syscall.SIGTERM)
	wantExit(t, p, 7)
}
