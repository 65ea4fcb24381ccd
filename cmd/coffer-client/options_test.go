package main

import (
	"bytes"
	"crypto/rand"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
)

func TestWithPort(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a", "a:9187"},
		{"a:1", "a:1"},
		{"10.0.0.1", "10.0.0.1:9187"},
		{"[::1]", "[::1]:9187"},
		{"[::1]:5", "[::1]:5"},
		{"::1", "[::1]:9187"},
		{"fe80::1%eth0", "[fe80::1%eth0]:9187"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := withPort(tt.in); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want []string
		fmt  string
	}{
		{"flags first", []string{"--format", "json", "a", "b"}, []string{"a", "b"}, "json"},
		{"flags between", []string{"a", "--format", "json", "b"}, []string{"a", "b"}, "json"},
		{"flags last", []string{"a", "b", "--format=json"}, []string{"a", "b"}, "json"},
		{"dash dash", []string{"a", "--", "--format", "b"}, []string{"a", "--format", "b"}, ""},
		{"none", nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			format := fs.String("format", "", "")
			got, err := parseInterleaved(fs, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) || *format != tt.fmt {
				t.Errorf("got %q, format %q; want %q, format %q", got, *format, tt.want, tt.fmt)
			}
		})
	}
}

func TestResolvePrecedence(t *testing.T) {
	k1, _ := coffer.GenerateKey(rand.Reader)
	k2, _ := coffer.GenerateKey(rand.Reader)
	k3, _ := coffer.GenerateKey(rand.Reader)
	cfg := filepath.Join(t.TempDir(), "client.toml")
	os.WriteFile(cfg, []byte(`servers = ["file"]
server_key = "`+k1.Public().String()+`"
key_file = "/file.key"
timeout = "3s"
wait = "30s"
max_age = "1h"
state = "/file.state"
`), 0o644)
	tests := []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, s *settings)
	}{
		{"file", nil, nil, func(t *testing.T, s *settings) {
			if !slices.Equal(s.servers, []string{"file:9187"}) || s.serverKey != k1.Public() || s.keyFile != "/file.key" ||
				s.timeout != 3*time.Second || s.wait != 30*time.Second || s.maxAge != time.Hour || s.state != "/file.state" || s.cache != "" {
				t.Errorf("got %+v", s)
			}
		}},
		{"env over file", nil, map[string]string{"COFFER_SERVER": "e1, e2:1", "COFFER_SERVER_KEY": k2.Public().String(),
			"COFFER_WAIT": "1m", "COFFER_MIN_SERIAL": "7", "COFFER_CACHE": "/env.cache"}, func(t *testing.T, s *settings) {
			if !slices.Equal(s.servers, []string{"e1:9187", "e2:1"}) || s.serverKey != k2.Public() || s.wait != time.Minute ||
				s.minSerial != 7 || s.cache != "/env.cache" || s.keyFile != "/file.key" {
				t.Errorf("got %+v", s)
			}
		}},
		{"flags over env", []string{"--server", "f1", "--server", "f2,f3", "--server-key", k3.Public().String(),
			"--wait", "0s", "--min-serial", "9", "--key", "/flag.key"},
			map[string]string{"COFFER_SERVER": "e1", "COFFER_SERVER_KEY": k2.Public().String(), "COFFER_WAIT": "1m", "COFFER_MIN_SERIAL": "7"},
			func(t *testing.T, s *settings) {
				if !slices.Equal(s.servers, []string{"f1:9187", "f2:9187", "f3:9187"}) || s.serverKey != k3.Public() ||
					s.wait != 0 || s.minSerial != 9 || s.keyFile != "/flag.key" {
					t.Errorf("got %+v", s)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			var c commonFlags
			c.register(fs)
			if err := fs.Parse(append([]string{"--config", cfg}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			s, err := resolve(fs, &c, func(k string) string { return tt.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
	t.Run("defaults", func(t *testing.T) {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		var c commonFlags
		c.register(fs)
		empty := filepath.Join(t.TempDir(), "empty.toml")
		os.WriteFile(empty, nil, 0o644)
		fs.Parse([]string{"--config", empty, "--server", "h", "--server-key", k1.Public().String()})
		s, err := resolve(fs, &c, func(string) string { return "" })
		if err != nil {
			t.Fatal(err)
		}
		if s.keyFile != defaultKeyFile || s.timeout != defaultTimeout || s.wait != 0 || s.maxAge != defaultMaxAge {
			t.Errorf("got %+v", s)
		}
	})
	t.Run("bad env", func(t *testing.T) {
		for k, v := range map[string]string{"COFFER_WAIT": "soon", "COFFER_MIN_SERIAL": "-1", "COFFER_SERVER": "a,,b", "COFFER_SERVER_KEY": "x"} {
			fs := flag.NewFlagSet("t", flag.ContinueOnError)
			var c commonFlags
			c.register(fs)
			fs.Parse([]string{"--config", cfg})
			if _, err := resolve(fs, &c, func(n string) string {
				if n == k {
					return v
				}
				return ""
			}); err == nil {
				t.Errorf("%s=%q: got no error", k, v)
			}
		}
	})
}

func TestParseState(t *testing.T) {
	k1, _ := coffer.GenerateKey(rand.Reader)
	k2, _ := coffer.GenerateKey(rand.Reader)
	def := func(k *coffer.PrivateKey) stateKey { return stateKey{k.Public(), "default"} }
	teamA := stateKey{k1.Public(), "team-a"}
	st := state{def(k1): 3, def(k2): 1 << 63, teamA: 2}
	got, err := parseState(st.encode())
	if err != nil || len(got) != 3 || got[def(k1)] != 3 || got[def(k2)] != 1<<63 || got[teamA] != 2 {
		t.Errorf("round trip: got %v, %v", got, err)
	}
	if !strings.Contains(string(st.encode()), k1.Public().String()+" 2 team-a\n") {
		t.Errorf("a named definition's line: %q", st.encode())
	}
	for name, in := range map[string]string{
		"fields":          k1.Public().String() + "\n",
		"serial":          k1.Public().String() + " x\n",
		"negative":        k1.Public().String() + " -1\n",
		"key":             "cofferpk1abc 1\n",
		"duplicate":       k1.Public().String() + " 1\n" + k1.Public().String() + " 2\n",
		"duplicate named": k1.Public().String() + " 1 team-a\n" + k1.Public().String() + " 2 team-a\n",
		"default named":   k1.Public().String() + " 1 default\n",
		"bad name":        k1.Public().String() + " 1 Team\n",
		"four fields":     k1.Public().String() + " 1 team-a x\n",
		"too long":        strings.Repeat("#", maxStateBytes+1),
	} {
		if _, err := parseState([]byte(in)); err == nil {
			t.Errorf("%s: got no error", name)
		}
	}
}

func FuzzParseState(f *testing.F) {
	k, _ := coffer.GenerateKey(rand.Reader)
	f.Add(state{{k.Public(), "default"}: 5, {k.Public(), "team-a"}: 7}.encode())
	f.Add([]byte("# x\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := parseState(data)
		if err != nil {
			return
		}
		again, err := parseState(st.encode())
		if err != nil || len(again) != len(st) {
			t.Fatalf("re-encoded state does not parse back: %v", err)
		}
		for k, v := range st {
			if again[k] != v {
				t.Errorf("serial changed on re-encoding")
			}
		}
	})
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]os.FileMode{"0600": 0o600, "600": 0o600, "0640": 0o640, "0400": 0o400, "0770": 0o770} {
		if got, err := parseMode(in); err != nil || got != want {
			t.Errorf("parseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"0644", "0601", "0060", "01600", "abc", "", "0o600", "8"} {
		if _, err := parseMode(bad); err == nil {
			t.Errorf("parseMode(%q): got no error", bad)
		}
	}
}

// TestExampleCommandLines parses every coffer-client command line in
// examples/ with the real flag sets, so the examples stay valid.
func TestExampleCommandLines(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "examples", "systemd", "app-*.service"))
	files = append(files, filepath.Join("..", "..", "examples", "startup.sh"))
	re := regexp.MustCompile(`coffer-client ((?:[^\n"$)]|\\\n)+)`)
	found := 0
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") || !strings.Contains(line, "coffer-client ") {
				continue
			}
			m := re.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			args := strings.Fields(strings.ReplaceAll(m[1], "\\", ""))
			if args[0] != "get" && args[0] != "exec" && args[0] != "check" {
				continue
			}
			found++
			e := &env{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: &bytes.Buffer{}}
			switch args[0] {
			case "get":
				fs, _ := e.getFlagSet()
				_, err = parseInterleaved(fs, args[1:])
			case "exec":
				fs, _ := e.execFlagSet()
				err = fs.Parse(args[1:])
			}
			if err != nil {
				t.Errorf("%s: %q: %v", path, m[1], err)
			}
		}
	}
	if found < 3 {
		t.Errorf("found %d coffer-client command lines in examples/, want at least 3", found)
	}
}

// TestDefaultStatePath names every row of where the remembered serial
// lives when --state is not given (docs/client.md, "Freshness").
func TestDefaultStatePath(t *testing.T) {
	k, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	server := k.Public()
	file := "state-" + server.Fingerprint()
	tests := []struct {
		name string
		env  map[string]string
		euid int
		want string // "" wants an error
	}{
		{"root", map[string]string{"HOME": "/root"}, 0, "/var/lib/coffer-client/" + file},
		{"root without HOME", nil, 0, "/var/lib/coffer-client/" + file},
		{"user", map[string]string{"HOME": "/home/u"}, 1000, "/home/u/.local/state/coffer-client/" + file},
		{"XDG_STATE_HOME first", map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "/x"}, 1000, "/x/coffer-client/" + file},
		{"XDG_STATE_HOME for root too", map[string]string{"XDG_STATE_HOME": "/x"}, 0, "/x/coffer-client/" + file},
		{"relative XDG_STATE_HOME ignored", map[string]string{"HOME": "/home/u", "XDG_STATE_HOME": "x"}, 1000, "/home/u/.local/state/coffer-client/" + file},
		{"user without HOME", nil, 1000, ""},
		{"user with a relative HOME", map[string]string{"HOME": "home"}, 1000, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := defaultStatePath(func(k string) string { return tt.env[k] }, tt.euid, server)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), "--state none") {
					t.Errorf("got %q, %v; want an error naming --state none", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestServerAddressUsage: an address that is not host[:port] is a usage
// error (status 2) that names the expected form, not a lookup failure
// (status 3) that a boot script would retry.
func TestServerAddressUsage(t *testing.T) {
	fx := newFixture(t)
	for _, addr := range []string{"http://127.0.0.1:9187", "127.0.0.1:9187/", "127.0.0.1:99999", "127.0.0.1:x", "a b"} {
		t.Run(addr, func(t *testing.T) {
			r := fx.run(nil, append([]string{"get"}, fx.base("--server", addr)...)...)
			r.want(t, exitUsage)
			if !bytes.Contains(r.stderr, []byte("host:port")) {
				t.Errorf("stderr does not name the form host:port:\n%s", r.stderr)
			}
			t.Logf("%s", r.stderr)
		})
	}
	t.Run("env", func(t *testing.T) {
		r := fx.run([]string{"COFFER_SERVER=https://a.example"}, append([]string{"get"}, fx.base()...)...)
		r.want(t, exitUsage)
	})
}

func TestCheckServerAddr(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"127.0.0.1:9187", true}, {"host", true}, {"[::1]:1", true}, {"::1", true}, {"a.example:65535", true},
		{"http://a:1", false}, {"a:1/x", false}, {"a:0", false}, {"a:65536", false}, {"a:", false},
		{":9187", false}, {"a b:1", false}, {"user@a:1", false}, {"a:1?x", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if err := checkServerAddr(tt.in); (err == nil) != tt.ok {
				t.Errorf("got %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
