package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/coffer-project/coffer/cmd/internal/flagerr"
	"github.com/coffer-project/coffer/config"
)

// setting is one configuration value that a flag and a COFFER_* variable
// can set over the config file. Precedence: flag > environment > file >
// default (docs/server.md, "Configuration").
type setting struct {
	flag, env, usage string
	set              func(c *config.Server, v string) error
}

// settings lists the overridable values. The rate limits are set in the
// file only: four token buckets of two numbers each make poor flags.
var settings = []setting{
	{"listen", "COFFER_LISTEN", "address to listen on, host:port", func(c *config.Server, v string) error {
		c.Listen = v
		return nil
	}},
	{"key", "COFFER_KEY", "the server's private key file", func(c *config.Server, v string) error {
		c.KeyFile = v
		return nil
	}},
	{"data-dir", "COFFER_DATA_DIR", "the store's data directory", func(c *config.Server, v string) error {
		c.DataDir = v
		return nil
	}},
	{"definition", "COFFER_DEFINITION", "the sealed definition file", func(c *config.Server, v string) error {
		if err := notWithDefinitions(c); err != nil {
			return err
		}
		c.Definition = v
		return nil
	}},
	{"trusted", "COFFER_TRUSTED", "trusted companion public keys, comma-separated", func(c *config.Server, v string) error {
		if err := notWithDefinitions(c); err != nil {
			return err
		}
		c.Trusted = splitList(v)
		return nil
	}},
	{"log-level", "COFFER_LOG_LEVEL", "debug, info, warn or error", func(c *config.Server, v string) error {
		c.Log.Level = v
		return nil
	}},
	{"log-format", "COFFER_LOG_FORMAT", "text or json", func(c *config.Server, v string) error {
		c.Log.Format = v
		return nil
	}},
	{"admin-socket", "COFFER_ADMIN_SOCKET", "the admin socket's path", func(c *config.Server, v string) error {
		c.AdminSocket = v
		return nil
	}},
	{"admin-group", "COFFER_ADMIN_GROUP", "a group allowed on the admin socket", func(c *config.Server, v string) error {
		c.AdminGroup = v
		return nil
	}},
	{"metrics-listen", "COFFER_METRICS_LISTEN", "host:port serving /metrics", func(c *config.Server, v string) error {
		c.MetricsListen = v
		return nil
	}},
	durationSetting("definition-poll", "COFFER_DEFINITION_POLL", "poll interval of a definition URL",
		func(c *config.Server) *time.Duration { return &c.DefinitionPoll }),
	intSetting("max-connections", "COFFER_MAX_CONNECTIONS", "sessions at once",
		func(c *config.Server) *int { return &c.Limits.MaxConnections }),
	intSetting("max-handshakes-per-address", "COFFER_MAX_HANDSHAKES_PER_ADDRESS", "handshakes at once per source address (0: the default, 256)",
		func(c *config.Server) *int { return &c.Limits.MaxHandshakesPerAddress }),
	durationSetting("hello-timeout", "COFFER_HELLO_TIMEOUT", "Hello deadline from accept",
		func(c *config.Server) *time.Duration { return &c.Limits.HelloTimeout }),
	durationSetting("handshake-timeout", "COFFER_HANDSHAKE_TIMEOUT", "Get deadline from accept",
		func(c *config.Server) *time.Duration { return &c.Limits.HandshakeTimeout }),
	durationSetting("session-timeout", "COFFER_SESSION_TIMEOUT", "whole-session deadline from accept",
		func(c *config.Server) *time.Duration { return &c.Limits.SessionTimeout }),
	durationSetting("bye-timeout", "COFFER_BYE_TIMEOUT", "wait for Bye after the shard",
		func(c *config.Server) *time.Duration { return &c.Limits.ByeTimeout }),
	durationSetting("shutdown-timeout", "COFFER_SHUTDOWN_TIMEOUT", "grace for sessions in flight on SIGTERM",
		func(c *config.Server) *time.Duration { return &c.Limits.ShutdownTimeout }),
	intSetting("audit-max-records", "COFFER_AUDIT_MAX_RECORDS", "audit records kept",
		func(c *config.Server) *int { return &c.Audit.MaxRecords }),
	durationSetting("audit-max-age", "COFFER_AUDIT_MAX_AGE", "oldest audit record kept (0s: no age bound)",
		func(c *config.Server) *time.Duration { return &c.Audit.MaxAge }),
}

// renamed maps the spellings that shipped to the names that replaced
// them, so that the three programs, their config files and variables
// share one word for each thing (docs/server.md, "Configuration"). The
// old spelling still works, with a one-line warning.
var renamed = map[string]string{
	"--data":          "--data-dir", // config data_dir, COFFER_DATA_DIR
	"COFFER_KEY_FILE": "COFFER_KEY", // as coffer-client and coffer-companion
}

// deprecated prints the one-line warning for an old spelling.
func deprecated(old string) {
	fmt.Fprintf(os.Stderr, "coffer-server: warning: %s is deprecated; use %s\n", old, renamed[old])
}

// withRenamedEnv returns getenv that also reads the old names of renamed
// variables, warning once for each it uses.
func withRenamedEnv(getenv func(string) string) func(string) string {
	return func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		for old, now := range renamed {
			if now == name && getenv(old) != "" {
				deprecated(old)
				return getenv(old)
			}
		}
		return ""
	}
}

func intSetting(name, env, usage string, field func(*config.Server) *int) setting {
	return setting{name, env, usage, func(c *config.Server, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%s = %q is not an integer", name, v)
		}
		*field(c) = n
		return nil
	}}
}

func durationSetting(name, env, usage string, field func(*config.Server) *time.Duration) setting {
	return setting{name, env, usage, func(c *config.Server, v string) error {
		d, err := config.ParseServerDuration(name, strings.TrimSpace(v))
		if err != nil {
			return withHint(err, flagerr.DurationHints("--"+name, v)...)
		}
		*field(c) = d
		return nil
	}}
}

// splitList splits a list of keys given as one string, separated by
// commas or white space.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
}

// configFlags registers --config and every setting's flag on fs and
// returns a function that builds the configuration once fs has parsed.
func configFlags(fs *flag.FlagSet) func(getenv func(string) string) (*config.Server, error) {
	configPath := fs.String("config", "", "config file (default "+config.DefaultServerConfigPath+")")
	var flags []flagValue
	trustedByFlag := false
	for i := range settings {
		s := &settings[i]
		fs.Func(s.flag, s.usage, func(v string) error {
			if s.flag == "trusted" {
				// --trusted repeats: the first one replaces the file's
				// list, the rest add to it.
				if trustedByFlag {
					flags = append(flags, flagValue{&setting{flag: "trusted", set: appendTrusted}, v})
					return nil
				}
				trustedByFlag = true
			}
			flags = append(flags, flagValue{s, v})
			return nil
		})
		if s.flag == "data-dir" {
			fs.Func("data", "deprecated spelling of --data-dir", func(v string) error {
				deprecated("--data")
				flags = append(flags, flagValue{s, v})
				return nil
			})
		}
	}
	return func(getenv func(string) string) (*config.Server, error) {
		c, err := buildConfig(*configPath, flags, getenv)
		return c, asUsage(fs.Name(), err)
	}
}

// flagValue is one setting given by flag, in the order given.
type flagValue struct {
	s *setting
	v string
}

// buildConfig layers the environment and the flags over the config file
// and validates the result. Every error is a configuration error.
func buildConfig(configPath string, flags []flagValue, getenv func(string) string) (*config.Server, error) {
	c, err := loadConfigFile(configPath, getenv)
	if err != nil {
		return nil, err
	}
	getenv = withRenamedEnv(getenv)
	for i := range settings {
		if v := getenv(settings[i].env); v != "" {
			if err := settings[i].set(c, v); err != nil {
				return nil, fmt.Errorf("%s: %w", settings[i].env, err)
			}
		}
	}
	for _, g := range flags {
		if err := g.s.set(c, g.v); err != nil {
			return nil, fmt.Errorf("--%s: %w", g.s.flag, err)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, withHint(err, "see examples/server.toml and docs/server.md for every setting")
	}
	if err := c.SingleDefinition(); err != nil {
		return nil, err
	}
	return c, nil
}

// notWithDefinitions refuses --definition and --trusted (and their
// environment variables) over a config file that lists [[definitions]]:
// which definition they would change is not said.
func notWithDefinitions(c *config.Server) error {
	if len(c.Definitions) > 0 {
		return errors.New("the config file lists [[definitions]]; set each definition's path and trusted keys there")
	}
	return nil
}

func appendTrusted(c *config.Server, v string) error {
	c.Trusted = append(c.Trusted, splitList(v)...)
	return nil
}

// loadConfigFile reads the config file named by --config or
// COFFER_CONFIG, or the default path if that exists. A missing default
// file gives the defaults; a missing named file is an error.
func loadConfigFile(path string, getenv func(string) string) (*config.Server, error) {
	named := true
	if path == "" {
		path = getenv("COFFER_CONFIG")
	}
	if path == "" {
		path, named = config.DefaultServerConfigPath, false
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !named {
		return config.DefaultServer(), nil
	}
	if err != nil {
		return nil, withHint(fmt.Errorf("reading config: %w", err),
			"pass --config FILE, or set COFFER_CONFIG; examples/server.toml is a documented example")
	}
	c, err := config.ParseServer(data)
	if err != nil {
		return nil, withHint(fmt.Errorf("%s: %w", path, err), "see examples/server.toml for every key")
	}
	return c, nil
}

// configUsage is the options text shared by the commands that read the
// configuration.
const configUsage = `Configuration (flag > COFFER_* variable > config file > default):
  --config FILE              config file (COFFER_CONFIG; default /etc/coffer/server.toml,
                             used only if it exists)
  --listen ADDR              listen address (COFFER_LISTEN; default 127.0.0.1:9187)
  --key FILE                 server key file (COFFER_KEY; default /etc/coffer/server.key)
  --data-dir DIR             data directory (COFFER_DATA_DIR; default /var/lib/coffer);
                             --data and COFFER_KEY_FILE still work, with a warning
  --definition FILE|URL      sealed definition (COFFER_DEFINITION; default /etc/coffer/secrets.sealed);
                             an https:// URL is polled (docs/server.md, "Several servers")
  --definition-poll D        poll interval of a definition URL (default 30s)
  --admin-socket PATH        admin socket (COFFER_ADMIN_SOCKET; default DIR/admin.sock)
  --admin-group GROUP        group allowed on the admin socket besides root and the
                             server's user (COFFER_ADMIN_GROUP; default none)
  --metrics-listen ADDR      serve /metrics on ADDR, ":9188" meaning 127.0.0.1:9188
                             (COFFER_METRICS_LISTEN; default off)
  --trusted KEY              trusted companion public key; repeat for more
                             (COFFER_TRUSTED, comma-separated)
  --log-level LEVEL          debug, info, warn or error (COFFER_LOG_LEVEL; default info)
  --log-format FORMAT        text or json (COFFER_LOG_FORMAT; default text)
  --max-connections N        sessions at once (COFFER_MAX_CONNECTIONS; default 1024)
  --max-handshakes-per-address N
                             handshakes at once per address (default 256)
  --hello-timeout D          Hello deadline from accept (default 5s)
  --handshake-timeout D      Get deadline from accept (default 10s)
  --session-timeout D        whole-session deadline from accept (default 30s)
  --bye-timeout D            wait for Bye after the shard (default 0: close at once)
  --shutdown-timeout D       grace for sessions in flight on SIGTERM (default 10s)
  --audit-max-records N      audit records kept (default 100000)
  --audit-max-age D          oldest audit record kept, 0s for no bound (default 2160h)
Each timeout flag has a variable named like COFFER_HELLO_TIMEOUT. Rate limits are
set in the config file only ([limits] in examples/server.toml).
`
