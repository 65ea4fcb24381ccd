package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
)

// Defaults (docs/client.md, "Configuration").
const (
	defaultPort    = "9187"
	defaultKeyFile = "/etc/coffer/client.key"
	defaultTimeout = 5 * time.Second
	defaultMaxAge  = 24 * time.Hour
)

// settings is the resolved configuration of one run: flags, then
// COFFER_* variables, then the config file, then the defaults.
type settings struct {
	config    string   // the config file read, or "" when none was
	servers   []string // host:port
	serverKey coffer.PublicKey
	keyFile   string
	timeout   time.Duration
	wait      time.Duration
	minSerial uint64
	state     string // "" when turned off with --state none
	// stateDefault: state is the default location, whose directory is
	// created (0700) when missing.
	stateDefault bool
	cache        string
	maxAge       time.Duration

	file *config.Client // the config file's settings, for watch and agent
}

// serverList is a repeatable, comma-separated --server flag.
type serverList []string

func (l *serverList) String() string { return strings.Join(*l, ",") }

func (l *serverList) Set(s string) error {
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a == "" {
			return errors.New("empty server address")
		}
		*l = append(*l, a)
	}
	return nil
}

// commonFlags are the connection flags of every command.
type commonFlags struct {
	config    string
	servers   serverList
	serverKey string
	key       string
	timeout   time.Duration
	wait      time.Duration
	minSerial uint64
	state     string
	cache     string
	maxAge    time.Duration
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "", "")
	fs.Var(&c.servers, "server", "")
	fs.StringVar(&c.serverKey, "server-key", "", "")
	fs.StringVar(&c.key, "key", "", "")
	fs.DurationVar(&c.timeout, "timeout", 0, "")
	fs.DurationVar(&c.wait, "wait", 0, "")
	fs.Uint64Var(&c.minSerial, "min-serial", 0, "")
	fs.StringVar(&c.state, "state", "", "")
	fs.StringVar(&c.cache, "cache", "", "")
	fs.DurationVar(&c.maxAge, "max-age", 0, "")
}

// commonUsage is the usage text of the connection options and the exit
// statuses, shared by get and exec.
const commonUsage = connectionUsage + exitStatusUsage

const connectionUsage = `Connection options (each flag overrides its COFFER_* variable, which
overrides the config file):
  --config FILE     client config file; default /etc/coffer/client.toml,
                    ignored when absent (COFFER_CONFIG)
  --server ADDR     host[:port], default port 9187; comma-separated or
                    repeated; tried in a shuffled order (COFFER_SERVER)
  --server-key KEY  the pinned server public key, cofferpk1...
                    (COFFER_SERVER_KEY)
  --key FILE        this client's private key file; default
                    /etc/coffer/client.key (COFFER_KEY)
  --timeout D       limit of one connection attempt; default 5s
                    (COFFER_TIMEOUT)
  --wait D          keep retrying with backoff for up to D; default 0: try
                    each server once (COFFER_WAIT)
  --min-serial N    refuse a definition older than serial N
                    (COFFER_MIN_SERIAL)
  --state FILE      remember the highest serial seen; refuse a server that
                    serves an older one; default
                    $XDG_STATE_HOME/coffer-client/state-FINGERPRINT, else
                    /var/lib/coffer-client/state-FINGERPRINT for root, else
                    ~/.local/state/coffer-client/state-FINGERPRINT;
                    "none" turns it off (COFFER_STATE)
  --cache FILE      sealed copy of the last good shard, used only when no
                    server answers within --wait (COFFER_CACHE)
  --max-age D       oldest cache that may be used; default 24h
                    (COFFER_MAX_AGE)
`

const exitStatusUsage = `
Exit status:
  0  success
  1  any other failure (a stale server, a missing name, an output error)
  2  usage or configuration error (flags, config file, key file)
  3  no server answered within --wait, and no usable cache
  4  authentication failed: this client's key is unknown to or refused by
     the server; or, at the deadline with no usable cache, some server's
     last answer was an unauthenticated auth refusal (a wrong pinned
     server key looks like this)

Only authenticated answers are final: an unauthenticated one (a plain
Error, a Link that does not open, garbage) moves on to the next server,
the retries within --wait and the cache, and sets status 4, 1 or 3 only
at the end.
`

// resolve merges the parsed flags with the environment and the config
// file. Every error is a configuration error (exit status 2).
func resolve(fs *flag.FlagSet, c *commonFlags, getenv func(string) string) (*settings, error) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	file, used, err := loadConfigFile(pick(set["config"], c.config, getenv("COFFER_CONFIG"), ""))
	if err != nil {
		return nil, err
	}
	st := &settings{config: used, file: file}
	servers := []string(c.servers)
	if !set["server"] {
		if env := getenv("COFFER_SERVER"); env != "" {
			var l serverList
			if err := l.Set(env); err != nil {
				return nil, fmt.Errorf("COFFER_SERVER: %w", err)
			}
			servers = l
		} else {
			servers = file.Servers
		}
	}
	if len(servers) == 0 {
		return nil, errors.New("no server address: give --server, COFFER_SERVER or servers in the config file")
	}
	for _, s := range servers {
		if err := checkServerAddr(s); err != nil {
			return nil, err
		}
		st.servers = append(st.servers, withPort(s))
	}
	keyText := pick(set["server-key"], c.serverKey, getenv("COFFER_SERVER_KEY"), file.ServerKey)
	if keyText == "" {
		return nil, errors.New("no pinned server key: give --server-key, COFFER_SERVER_KEY or server_key in the config file")
	}
	if st.serverKey, err = coffer.ParsePublicKey(keyText); err != nil {
		return nil, fmt.Errorf("pinned server key: %w", err)
	}
	st.keyFile = orDefault(pick(set["key"], c.key, getenv("COFFER_KEY"), file.KeyFile), defaultKeyFile)
	st.state = pick(set["state"], c.state, getenv("COFFER_STATE"), file.State)
	switch st.state {
	case stateOff:
		st.state = ""
	case "":
		if st.state, err = defaultStatePath(getenv, os.Geteuid(), st.serverKey); err != nil {
			return nil, err
		}
		st.stateDefault = true
	}
	st.cache = pick(set["cache"], c.cache, getenv("COFFER_CACHE"), file.Cache)
	durations := []struct {
		flag, env string
		fromFlag  time.Duration
		fromFile  time.Duration
		def       time.Duration
		dst       *time.Duration
	}{
		{"timeout", "COFFER_TIMEOUT", c.timeout, file.Timeout, defaultTimeout, &st.timeout},
		{"wait", "COFFER_WAIT", c.wait, file.Wait, 0, &st.wait},
		{"max-age", "COFFER_MAX_AGE", c.maxAge, file.MaxAge, defaultMaxAge, &st.maxAge},
	}
	for _, d := range durations {
		if *d.dst, err = pickDuration(set[d.flag], d.fromFlag, d.env, getenv(d.env), d.fromFile, d.def); err != nil {
			return nil, err
		}
	}
	if st.timeout <= 0 {
		return nil, errors.New("--timeout must be positive")
	}
	st.minSerial = c.minSerial
	if env := getenv("COFFER_MIN_SERIAL"); !set["min-serial"] && env != "" {
		if st.minSerial, err = strconv.ParseUint(env, 10, 64); err != nil {
			return nil, fmt.Errorf("COFFER_MIN_SERIAL=%q is not a serial number", env)
		}
	}
	return st, nil
}

// stateOff is the --state value that turns the remembered serial off.
const stateOff = "none"

// defaultStatePath is where the remembered serial lives when --state is
// not given (docs/client.md, "Freshness"): one file per pinned server
// key, under $XDG_STATE_HOME when it is set to an absolute path, else
// /var/lib for root, else ~/.local/state. It is a pure function of its
// inputs; the directory is created only when the state is written.
func defaultStatePath(getenv func(string) string, euid int, server coffer.PublicKey) (string, error) {
	name := filepath.Join("coffer-client", "state-"+server.Fingerprint())
	if x := getenv("XDG_STATE_HOME"); filepath.IsAbs(x) {
		return filepath.Join(x, name), nil
	}
	if euid == 0 {
		return filepath.Join("/var/lib", name), nil
	}
	if h := getenv("HOME"); filepath.IsAbs(h) {
		return filepath.Join(h, ".local", "state", name), nil
	}
	return "", errors.New("no place for the remembered serial: HOME and XDG_STATE_HOME are unset; give --state FILE, or --state none to run without rollback protection")
}

// loadConfigFile reads the config file and returns the path it read;
// "" means the default path, which may be absent.
func loadConfigFile(path string) (*config.Client, string, error) {
	explicit := path != ""
	if !explicit {
		path = config.DefaultClientConfigPath
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return &config.Client{}, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("config file %s: %w", path, bareErr(err))
	}
	c, err := config.ParseClient(data)
	if err != nil {
		return nil, "", fmt.Errorf("config file %s: %w", path, err)
	}
	return c, path, nil
}

// pick returns the flag value if the flag was given, else the environment
// value if not empty, else the config file value.
func pick(flagSet bool, fromFlag, fromEnv, fromFile string) string {
	switch {
	case flagSet:
		return fromFlag
	case fromEnv != "":
		return fromEnv
	}
	return fromFile
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func pickDuration(flagSet bool, fromFlag time.Duration, envName, fromEnv string, fromFile, def time.Duration) (time.Duration, error) {
	switch {
	case flagSet:
		if fromFlag < 0 {
			return 0, fmt.Errorf("negative duration %s", fromFlag)
		}
		return fromFlag, nil
	case fromEnv != "":
		d, err := time.ParseDuration(fromEnv)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%s=%q is not a duration like 5s or 1m", envName, fromEnv)
		}
		return d, nil
	case fromFile != 0:
		return fromFile, nil
	}
	return def, nil
}

// withPort adds the default port to an address without one: "host",
// "10.0.0.1", "[::1]" or a bare IPv6 address.
func withPort(addr string) string {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr
	}
	host := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	return net.JoinHostPort(host, defaultPort)
}

// parseInterleaved parses flags that may come before, between or after
// the positional arguments, as `get NAME --format json` expects; "--"
// ends the flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// checkServerAddr checks that a --server address is host[:port] with a
// port from 1 to 65535, so a URL or a typo is a usage error, not a
// lookup that fails at every retry. The error quotes addr: an address is
// not a secret.
func checkServerAddr(addr string) error {
	bad := func(why string) error {
		return fmt.Errorf("server address %q: %s; want host:port, such as 127.0.0.1:9187 (the port defaults to %s)", addr, why, defaultPort)
	}
	if strings.Contains(addr, "://") {
		return bad("a URL")
	}
	if i := strings.IndexAny(addr, "/?#@ \t"); i >= 0 {
		return bad(fmt.Sprintf("%q is not part of an address", addr[i]))
	}
	host, port, err := net.SplitHostPort(withPort(addr))
	if err != nil {
		return bad("not host:port")
	}
	if host == "" {
		return bad("no host")
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return bad("port " + strconv.Quote(port) + " is not from 1 to 65535")
	}
	return nil
}
