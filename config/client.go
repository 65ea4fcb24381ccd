package config

import (
	"bytes"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultClientConfigPath is where coffer-client looks for its config
// file when --config is not given. An absent default file is not an error.
const DefaultClientConfigPath = "/etc/coffer/client.toml"

// maxClientConfigBytes bounds the client config file; a real one is a
// few hundred bytes, and a runaway file should not be parsed at boot.
const maxClientConfigBytes = 64 << 10

// maxClientServers bounds the server list, so a typo'd generator cannot
// make one client try thousands of addresses.
const maxClientServers = 64

// Client is the coffer-client configuration file (docs/client.md,
// "Configuration"). It holds addresses, the pinned server public key in
// its text form, file paths and durations; never a private key. Zero
// fields are unset: the caller applies its defaults and its own
// precedence (flags, then COFFER_* variables, then this file).
type Client struct {
	Servers   []string      // host or host:port; the caller adds the default port
	ServerKey string        // pinned server public key, cofferpk1...; checked by the caller
	KeyFile   string        // path of this client's private key file
	Timeout   time.Duration // per connection attempt
	Wait      time.Duration // total deadline for retries
	State     string        // path of the state file (highest serial seen)
	Cache     string        // path of the sealed cache file
	MaxAge    time.Duration // oldest cache that may be used

	// WatchInterval is [watch] interval: how often watch mode and the
	// agent check the served serial; 0 is unset.
	WatchInterval time.Duration
	// Agent is the [agent] table of `coffer-client agent`.
	Agent ClientAgent
}

// ClientAgent is the [agent] table (docs/client.md, "Agent: systemd
// credentials"): where the agent listens, and which units may read
// which secrets.
type ClientAgent struct {
	Socket string // path of the AF_UNIX socket
	// Allow maps a unit name glob (path.Match syntax, "app.service",
	// "worker@*.service") to the secret names a matching unit may read.
	Allow map[string][]string
}

// clientFile is the TOML form. Durations are strings ("5s", "1m30s"),
// because BurntSushi/toml would read a bare integer as nanoseconds.
type clientFile struct {
	Servers   []string `toml:"servers"`
	ServerKey string   `toml:"server_key"`
	KeyFile   string   `toml:"key_file"`
	Timeout   string   `toml:"timeout"`
	Wait      string   `toml:"wait"`
	State     string   `toml:"state"`
	Cache     string   `toml:"cache"`
	MaxAge    string   `toml:"max_age"`

	Watch struct {
		Interval string `toml:"interval"`
	} `toml:"watch"`
	Agent struct {
		Socket string              `toml:"socket"`
		Allow  map[string][]string `toml:"allow"`
	} `toml:"agent"`
}

// ParseClient parses a client config file. Unknown keys, empty server
// addresses, bad or negative durations and a server key that does not
// look like a public key are errors. The file holds no secrets, so the
// errors may quote it.
func ParseClient(data []byte) (*Client, error) {
	if len(data) > maxClientConfigBytes {
		return nil, fmt.Errorf("config: client config of %d bytes exceeds limit %d", len(data), maxClientConfigBytes)
	}
	var f clientFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		return nil, fmt.Errorf("config: client config: %w", err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("config: client config: unknown key %q", und[0].String())
	}
	c := &Client{Servers: f.Servers, ServerKey: f.ServerKey, KeyFile: f.KeyFile, State: f.State, Cache: f.Cache}
	if err := checkServers(c.Servers); err != nil {
		return nil, err
	}
	if c.ServerKey != "" && isSecretKeyText(c.ServerKey) {
		return nil, fmt.Errorf("config: client config: server_key is a secret key (not printed); remove it, treat it as exposed, and pin the server's public key (cofferpk1...)")
	}
	if c.ServerKey != "" && !strings.HasPrefix(c.ServerKey, "cofferpk1") {
		return nil, fmt.Errorf("config: client config: server_key must be a cofferpk1... public key")
	}
	durations := []struct {
		name string
		text string
		dst  *time.Duration
	}{
		{"timeout", f.Timeout, &c.Timeout},
		{"wait", f.Wait, &c.Wait},
		{"max_age", f.MaxAge, &c.MaxAge},
		{"watch.interval", f.Watch.Interval, &c.WatchInterval},
	}
	for _, d := range durations {
		if *d.dst, err = parseDuration(d.name, d.text); err != nil {
			return nil, err
		}
	}
	c.Agent = ClientAgent{Socket: f.Agent.Socket, Allow: f.Agent.Allow}
	if err := c.Agent.check(); err != nil {
		return nil, err
	}
	return c, nil
}

// Limits of the [agent] table, so a generated allow-list cannot make
// every connection walk thousands of globs.
const (
	maxAgentRules        = 1024
	maxAgentNamesPerRule = 1024
	maxAgentNameBytes    = 255 // a credential name (systemd) and a secret name both fit
)

// check validates the [agent] table: an absolute socket path, unit globs
// that path.Match accepts and that hold only unit-name characters, and
// secret names without '/' or spaces. Secret names are checked fully
// (frame.ValidName) by the agent itself.
func (a *ClientAgent) check() error {
	if a.Socket != "" && !strings.HasPrefix(a.Socket, "/") {
		return fmt.Errorf("config: client config: agent.socket %q must be an absolute path", a.Socket)
	}
	if len(a.Allow) > maxAgentRules {
		return fmt.Errorf("config: client config: agent.allow has %d units, limit %d", len(a.Allow), maxAgentRules)
	}
	for glob, names := range a.Allow {
		if glob == "" || strings.ContainsAny(glob, "/ \t\r\n") {
			return fmt.Errorf("config: client config: agent.allow: bad unit pattern %q", glob)
		}
		if _, err := path.Match(glob, ""); err != nil {
			return fmt.Errorf("config: client config: agent.allow: bad unit pattern %q", glob)
		}
		if len(names) > maxAgentNamesPerRule {
			return fmt.Errorf("config: client config: agent.allow %q: %d names, limit %d", glob, len(names), maxAgentNamesPerRule)
		}
		for _, n := range names {
			if n == "" || len(n) > maxAgentNameBytes || strings.ContainsAny(n, "/ \t\r\n") {
				return fmt.Errorf("config: client config: agent.allow %q: bad secret name %q", glob, n)
			}
		}
	}
	return nil
}

func checkServers(servers []string) error {
	if len(servers) > maxClientServers {
		return fmt.Errorf("config: client config: %d servers exceed limit %d", len(servers), maxClientServers)
	}
	for _, s := range servers {
		if strings.TrimSpace(s) == "" || strings.ContainsAny(s, " \t\r\n,") {
			return fmt.Errorf("config: client config: bad server address %q", s)
		}
	}
	return nil
}

// parseDuration parses an optional duration; "" is unset (zero).
func parseDuration(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("config: client config: %s = %q is not a duration like \"5s\" or \"1m\"", name, s)
	}
	return d, nil
}
