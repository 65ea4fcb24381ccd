package hardening_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// TestClientAgainstHostileServer runs the real coffer-client get and
// exec against servers that send garbage, replay a recorded session,
// refuse, close or say nothing: the client must exit non-zero, print
// nothing on stdout and exec nothing.
func TestClientAgainstHostileServer(t *testing.T) {
	f := newFixture(t, relaxedLimits, "web")
	f.next(t, "one")
	p := f.start(t)
	good := recordSession(t, p, "web")
	p.Stop()
	keyFile := filepath.Join(f.Dir, "web.key")
	if err := coffer.WriteKeyFile(keyFile, f.Clients["web"]); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(f.Dir, "client.toml")
	os.WriteFile(conf, nil, 0o644)
	authErr, _ := frame.New(frame.TypeError, []byte{0xa1, 0x64, 'c', 'o', 'd', 'e', 0x03})
	cases := []struct {
		name  string
		reply func(c net.Conn)
	}{
		{"random bytes", func(c net.Conn) { frame.Read(c); c.Write(randBytes(3000)) }},
		{"close at once", func(c net.Conn) {}},
		{"recorded link and okget", func(c net.Conn) {
			frame.Read(c)
			c.Write(append(append([]byte{}, good.server[0]...), good.server[1]...))
			frame.Read(c)
		}},
		{"okget instead of link", func(c net.Conn) { frame.Read(c); c.Write(good.server[1]) }},
		{"huge frame header", func(c net.Conn) { frame.Read(c); c.Write(hdr(0xffff, frame.TypeOkGet)); c.Write(randBytes(100)) }},
		{"plain Error{auth}", func(c net.Conn) { frame.Read(c); c.Write(authErr.Raw) }},
		{"silence", func(c net.Conn) { frame.Read(c); c.Read(make([]byte, 1)) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() {
						defer c.Close()
						tc.reply(c)
					}()
				}
			}()
			marker := filepath.Join(t.TempDir(), "ran")
			common := []string{"--config", conf, "--server", ln.Addr().String(), "--server-key", f.Server.Public().String(),
				"--key", keyFile, "--timeout", "2s"}
			for _, args := range [][]string{
				append([]string{"get"}, common...),
				append(append([]string{"exec"}, common...), "--", "/bin/touch", marker),
			} {
				stdout, stderr, code := run(t, clientBin, []string{"COFFER_SERVER=", "COFFER_KEY=", "COFFER_CONFIG="}, args...)
				if code == 0 || stdout != "" {
					t.Errorf("%s: exit %d, stdout %q; want a failure and no output", args[0], code, stdout)
				}
				if _, err := os.Stat(marker); err == nil {
					t.Errorf("exec ran its command after a failed fetch")
				}
				t.Logf("%s: exit %d: %s", args[0], code, firstLine(stderr))
			}
		})
	}
}
