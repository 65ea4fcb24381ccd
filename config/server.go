package config

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultServerConfigPath is where coffer-server looks for its config
// file when --config is not given. An absent default file is not an error.
const DefaultServerConfigPath = "/etc/coffer/server.toml"

// DefaultServerPort is coffer's TCP port.
const DefaultServerPort = "9187"

// DefaultServerListen is the listen address when none is configured. It is
// the loopback address, so a fresh install is not reachable from the
// network until the operator says so (listen = ":9187"); socket activation
// ignores it.
const DefaultServerListen = "127.0.0.1:" + DefaultServerPort

// maxServerConfigBytes bounds the server config file; a real one is a few
// kilobytes even with many trusted keys.
const maxServerConfigBytes = 256 << 10

// maxServerTrusted bounds the trusted author keys, so a generated file
// cannot make every definition load try thousands of keys.
const maxServerTrusted = 64

// Server is the coffer-server configuration (docs/server.md,
// "Configuration"). It holds addresses, key file paths, public keys in
// their text form, limits and durations; never a private key. ParseServer
// starts from DefaultServer, so every field is set.
type Server struct {
	Listen     string   // host:port; "" never after parsing
	KeyFile    string   // path of the server's private key file
	DataDir    string   // the store's directory, created 0700
	Definition string   // path of the sealed definition to load
	Trusted    []string // authors' signing public keys, cofferauthorpk1...; checked by the caller
	// Definitions lists several definitions ([[definitions]], server_defs.go);
	// when set, Definition and Trusted are not read from the file.
	Definitions []ServerDefinition
	Limits      ServerLimits
	Audit       ServerAudit
	Log         ServerLog
	ServerLive  // admin socket, metrics, definition URL (server_live.go)
}

// ServerLimits bounds what clients can make the server spend
// (docs/server.md, "Limits"). They map onto coffer.Server's fields.
type ServerLimits struct {
	MaxConnections          int           // sessions in progress at once; more wait in the kernel backlog
	MaxHandshakesPerAddress int           // sessions in their handshake per source address; 0 means coffer's default (256)
	HelloTimeout            time.Duration // Hello must arrive this long after accept
	HandshakeTimeout        time.Duration // Get must arrive this long after accept
	SessionTimeout          time.Duration // a whole session, from accept
	ByeTimeout              time.Duration // wait for Bye after the last OkGet; 0 means close at once
	ShutdownTimeout         time.Duration // how long SIGTERM waits for sessions in flight

	FailedAuthPerAddress     ServerRate // failed authentications per source address
	UnknownClients           ServerRate // valid proofs from unknown keys, all addresses together
	UnknownClientsPerAddress ServerRate // the same per source address
	PerClient                ServerRate // sessions per client key (spent when the Get opens)
}

// ServerRate is a token bucket: Rate events per second on average, Burst
// at once. A zero Rate turns the limit off.
type ServerRate struct {
	Rate  float64
	Burst int
}

// ServerAudit is the retention of the fetch audit in the store.
type ServerAudit struct {
	MaxRecords int           // keep at most this many records (at least 1: the audit is always bounded)
	MaxAge     time.Duration // drop records older than this; 0 means no age limit
}

// ServerLog configures the daemon's log on stderr.
type ServerLog struct {
	Level  string // debug, info, warn or error
	Format string // text or json
}

// DefaultServer returns the defaults of every setting. Paths are the ones
// the systemd unit in examples/systemd uses.
func DefaultServer() *Server {
	return &Server{
		Listen:     DefaultServerListen,
		KeyFile:    "/etc/coffer/server.key",
		DataDir:    "/var/lib/coffer",
		Definition: "/etc/coffer/secrets.sealed",
		// The limits are coffer.Server's defaults (docs/protocol.md §7).
		Limits: ServerLimits{
			MaxConnections:           1024,
			MaxHandshakesPerAddress:  256,
			HelloTimeout:             5 * time.Second,
			HandshakeTimeout:         10 * time.Second,
			SessionTimeout:           30 * time.Second,
			ByeTimeout:               0,
			ShutdownTimeout:          10 * time.Second,
			FailedAuthPerAddress:     ServerRate{Rate: 10, Burst: 50},
			UnknownClients:           ServerRate{Rate: 100, Burst: 100},
			UnknownClientsPerAddress: ServerRate{Rate: 10, Burst: 20},
			PerClient:                ServerRate{Rate: 10, Burst: 20},
		},
		Audit:      ServerAudit{MaxRecords: 100000, MaxAge: 90 * 24 * time.Hour},
		Log:        ServerLog{Level: "info", Format: "text"},
		ServerLive: ServerLive{DefinitionPoll: DefaultDefinitionPoll},
	}
}

// serverFile is the TOML form. Absent keys are nil and keep the default.
// Durations are strings ("5s") because BurntSushi/toml would read a bare
// integer as nanoseconds; integers are int64 because a negative number
// into an unsigned field wraps in toml v1.6.0.
type serverFile struct {
	Listen      *string                `toml:"listen"`
	KeyFile     *string                `toml:"key_file"`
	DataDir     *string                `toml:"data_dir"`
	Definition  *string                `toml:"definition"`
	Trusted     []string               `toml:"trusted"`
	Definitions []serverDefinitionFile `toml:"definitions"`
	serverLiveFile
	Limits struct {
		MaxConnections           *int64    `toml:"max_connections"`
		MaxHandshakesPerAddress  *int64    `toml:"max_handshakes_per_address"`
		HelloTimeout             *string   `toml:"hello_timeout"`
		HandshakeTimeout         *string   `toml:"handshake_timeout"`
		SessionTimeout           *string   `toml:"session_timeout"`
		ByeTimeout               *string   `toml:"bye_timeout"`
		ShutdownTimeout          *string   `toml:"shutdown_timeout"`
		FailedAuthPerAddress     *rateFile `toml:"failed_auth_per_address"`
		UnknownClients           *rateFile `toml:"unknown_clients"`
		UnknownClientsPerAddress *rateFile `toml:"unknown_clients_per_address"`
		PerClient                *rateFile `toml:"per_client"`
	} `toml:"limits"`
	Audit struct {
		MaxRecords *int64  `toml:"max_records"`
		MaxAge     *string `toml:"max_age"`
	} `toml:"audit"`
	Log struct {
		Level  *string `toml:"level"`
		Format *string `toml:"format"`
	} `toml:"log"`
}

// rateFile is a rate limit's TOML form, an inline table such as
// { rate = 10, burst = 50 }. Both keys are required.
type rateFile struct {
	Rate  *float64 `toml:"rate"`
	Burst *int64   `toml:"burst"`
}

// serverKeys lists every key of the file exactly as it must be spelled.
// BurntSushi/toml matches struct fields case-insensitively and does not
// report the mismatch, so ParseServer checks the spelling itself.
var serverKeys = map[string]bool{
	"listen": true, "key_file": true, "data_dir": true, "definition": true, "trusted": true,
	"limits": true, "limits.max_connections": true, "limits.max_handshakes_per_address": true,
	"limits.hello_timeout": true, "limits.handshake_timeout": true, "limits.session_timeout": true,
	"limits.bye_timeout": true, "limits.shutdown_timeout": true,
	"limits.failed_auth_per_address": true, "limits.failed_auth_per_address.rate": true,
	"limits.failed_auth_per_address.burst": true,
	"limits.unknown_clients":               true, "limits.unknown_clients.rate": true, "limits.unknown_clients.burst": true,
	"limits.unknown_clients_per_address": true, "limits.unknown_clients_per_address.rate": true,
	"limits.unknown_clients_per_address.burst": true,
	"limits.per_client":                        true, "limits.per_client.rate": true, "limits.per_client.burst": true,
	"audit": true, "audit.max_records": true, "audit.max_age": true,
	"log": true, "log.level": true, "log.format": true,
}

// ParseServer parses a server config file over the defaults. Unknown or
// misspelt keys, bad durations, out-of-range numbers and unknown log
// levels or formats are errors. The file holds no secrets, so errors may
// quote it.
func ParseServer(data []byte) (*Server, error) {
	if len(data) > maxServerConfigBytes {
		return nil, fmt.Errorf("config: server config of %d bytes exceeds limit %d", len(data), maxServerConfigBytes)
	}
	var f serverFile
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&f)
	if err != nil {
		return nil, fmt.Errorf("config: server config: %w", err)
	}
	for _, k := range md.Keys() {
		if !serverKeys[k.String()] && !slices.Contains(serverLiveKeys, k.String()) && !slices.Contains(serverDefinitionKeys, k.String()) {
			return nil, fmt.Errorf("config: server config: unknown key %q", k.String())
		}
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("config: server config: unknown key %q", und[0].String())
	}
	c := DefaultServer()
	if err := f.apply(c); err != nil {
		return nil, err
	}
	if err := f.serverLiveFile.apply(&c.ServerLive); err != nil {
		return nil, err
	}
	if err := f.applyDefinitions(c); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func (f *serverFile) apply(c *Server) error {
	setString(&c.Listen, f.Listen)
	setString(&c.KeyFile, f.KeyFile)
	setString(&c.DataDir, f.DataDir)
	setString(&c.Definition, f.Definition)
	if f.Trusted != nil {
		c.Trusted = f.Trusted
	}
	setString(&c.Log.Level, f.Log.Level)
	setString(&c.Log.Format, f.Log.Format)
	ints := []setting[int64, int]{
		{"limits.max_connections", f.Limits.MaxConnections, &c.Limits.MaxConnections},
		{"limits.max_handshakes_per_address", f.Limits.MaxHandshakesPerAddress, &c.Limits.MaxHandshakesPerAddress},
		{"audit.max_records", f.Audit.MaxRecords, &c.Audit.MaxRecords},
	}
	if err := applySettings(ints, parseCount); err != nil {
		return err
	}
	durations := []setting[string, time.Duration]{
		{"limits.hello_timeout", f.Limits.HelloTimeout, &c.Limits.HelloTimeout},
		{"limits.handshake_timeout", f.Limits.HandshakeTimeout, &c.Limits.HandshakeTimeout},
		{"limits.session_timeout", f.Limits.SessionTimeout, &c.Limits.SessionTimeout},
		{"limits.bye_timeout", f.Limits.ByeTimeout, &c.Limits.ByeTimeout},
		{"limits.shutdown_timeout", f.Limits.ShutdownTimeout, &c.Limits.ShutdownTimeout},
		{"audit.max_age", f.Audit.MaxAge, &c.Audit.MaxAge},
	}
	if err := applySettings(durations, ParseServerDuration); err != nil {
		return err
	}
	rates := []setting[rateFile, ServerRate]{
		{"limits.failed_auth_per_address", f.Limits.FailedAuthPerAddress, &c.Limits.FailedAuthPerAddress},
		{"limits.unknown_clients", f.Limits.UnknownClients, &c.Limits.UnknownClients},
		{"limits.unknown_clients_per_address", f.Limits.UnknownClientsPerAddress, &c.Limits.UnknownClientsPerAddress},
		{"limits.per_client", f.Limits.PerClient, &c.Limits.PerClient},
	}
	return applySettings(rates, parseRate)
}

// setting is one optional value of the file and the field it sets.
type setting[S, D any] struct {
	name string
	src  *S
	dst  *D
}

// applySettings converts each value the file gives, in order, and stops
// at the first error; a value the file leaves out keeps its default.
func applySettings[S, D any](settings []setting[S, D], parse func(name string, v S) (D, error)) error {
	for _, s := range settings {
		if s.src == nil {
			continue
		}
		v, err := parse(s.name, *s.src)
		if err != nil {
			return err
		}
		*s.dst = v
	}
	return nil
}

// parseCount checks that a count fits an int on every platform.
func parseCount(name string, n int64) (int, error) {
	if n < 0 || n > 1<<31-1 {
		return 0, fmt.Errorf("config: server config: %s = %d is out of range", name, n)
	}
	return int(n), nil
}

// parseRate checks that a rate limit gives both rate and burst.
func parseRate(name string, r rateFile) (ServerRate, error) {
	if r.Rate == nil || r.Burst == nil {
		return ServerRate{}, fmt.Errorf("config: server config: %s needs both rate and burst", name)
	}
	if *r.Burst < 0 || *r.Burst > 1<<31-1 {
		return ServerRate{}, fmt.Errorf("config: server config: %s.burst = %d is out of range", name, *r.Burst)
	}
	return ServerRate{Rate: *r.Rate, Burst: int(*r.Burst)}, nil
}

func setString(dst, src *string) {
	if src != nil {
		*dst = *src
	}
}

// ParseServerDuration parses a duration setting such as "5s" or "1m30s";
// name is the setting's name for the error. Negative durations are errors.
func ParseServerDuration(name, s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("config: server config: %s = %q is not a duration like \"5s\" or \"1m\"", name, s)
	}
	return d, nil
}

// Validate checks the settings that must hold whatever set them (file,
// environment or flags): required paths, positive limits and timeouts,
// known log levels and formats, and plausible trusted keys.
func (c *Server) Validate() error {
	for _, s := range []struct{ name, v string }{
		{"listen", c.Listen}, {"key_file", c.KeyFile}, {"data_dir", c.DataDir}, {"definition", c.Definition},
	} {
		if strings.TrimSpace(s.v) == "" {
			return invalidServer("%s is empty", s.name)
		}
	}
	if len(c.Trusted) > maxServerTrusted {
		return invalidServer("%d trusted keys exceed limit %d", len(c.Trusted), maxServerTrusted)
	}
	for i, k := range c.Trusted {
		if err := checkTrusted(k); err != nil {
			return invalidServer("trusted key %d %w", i+1, err)
		}
	}
	l := c.Limits
	if l.MaxConnections < 1 {
		return invalidServer("limits.max_connections must be at least 1")
	}
	if l.MaxHandshakesPerAddress < 0 {
		return invalidServer("limits.max_handshakes_per_address must not be negative")
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"limits.hello_timeout", l.HelloTimeout}, {"limits.handshake_timeout", l.HandshakeTimeout},
		{"limits.session_timeout", l.SessionTimeout}, {"limits.shutdown_timeout", l.ShutdownTimeout},
	} {
		if d.v <= 0 {
			return invalidServer("%s must be positive", d.name)
		}
	}
	if l.ByeTimeout < 0 {
		return invalidServer("limits.bye_timeout must not be negative")
	}
	for _, r := range []struct {
		name string
		v    ServerRate
	}{
		{"limits.failed_auth_per_address", l.FailedAuthPerAddress}, {"limits.unknown_clients", l.UnknownClients},
		{"limits.unknown_clients_per_address", l.UnknownClientsPerAddress}, {"limits.per_client", l.PerClient},
	} {
		// NaN fails every comparison, so test for the good range.
		if !(r.v.Rate >= 0 && r.v.Rate <= 1e6) {
			return invalidServer("%s.rate = %v is not between 0 and 1e6", r.name, r.v.Rate)
		}
		if r.v.Rate > 0 && r.v.Burst < 1 {
			return invalidServer("%s.burst must be at least 1", r.name)
		}
	}
	if c.Audit.MaxRecords < 1 {
		return invalidServer("audit.max_records must be at least 1")
	}
	if c.Audit.MaxAge < 0 {
		return invalidServer("audit.max_age must not be negative")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return invalidServer("log.level = %q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return invalidServer("log.format = %q is not text or json", c.Log.Format)
	}
	if err := c.validateDefinitions(); err != nil {
		return err
	}
	return c.validateLive()
}

// invalidServer is the error of a setting Validate refuses.
func invalidServer(format string, args ...any) error {
	return fmt.Errorf("config: server config: "+format, args...)
}

// Key text prefixes that checkTrusted tells apart (coffer/keys.go and
// coffer/authorkey.go own the formats; config only names the mistake).
const (
	trustedPrefix   = "cofferauthorpk1"
	x25519Prefix    = "cofferpk1"
	secretPrefixes  = "coffersk1 cofferauthorsk1"
	trustedKeyHint  = "trusted holds authors' signing public keys (cofferauthorpk1..., printed by 'coffer-companion keygen --author' and 'coffer-companion pubkey AUTHOR.key')"
	trustedNotShown = "(not printed)"
)

// checkTrusted names what is wrong with a trusted key's text without
// printing it: a secret key pasted there must not reach a log, and text
// that is not a key may be one of another format.
func checkTrusted(k string) error {
	low := strings.ToLower(strings.TrimSpace(k))
	switch {
	case isSecretKeyText(k):
		return fmt.Errorf("is a secret key %s; remove it, treat it as exposed, and give the public key: %s", trustedNotShown, trustedKeyHint)
	case strings.HasPrefix(low, trustedPrefix):
		return nil
	case strings.HasPrefix(low, x25519Prefix):
		return fmt.Errorf("is an X25519 key (cofferpk1...), a server's or a client's; since sealed format 2 %s", trustedKeyHint)
	}
	return fmt.Errorf("is not an author's public key %s; %s", trustedNotShown, trustedKeyHint)
}

// isSecretKeyText reports whether k starts like the text of a secret key
// of any kind, in any letter case.
func isSecretKeyText(k string) bool {
	low := strings.ToLower(strings.TrimSpace(k))
	for _, p := range strings.Fields(secretPrefixes) {
		if strings.HasPrefix(low, p) {
			return true
		}
	}
	return false
}
