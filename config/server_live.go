package config

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Live operations: the admin socket, the metrics listener and a definition
// published at a URL (docs/server.md, "Admin socket", "Metrics", "Several
// servers"). These settings are in their own block of Server, set by
// applyLive and checked by validateLive.

// AdminSocketName is the admin socket's file name in the data directory
// when admin_socket is not set.
const AdminSocketName = "admin.sock"

// MaxUnixPathBytes is the longest path a Unix socket can bind on Linux
// (sun_path is 108 bytes with the terminating NUL). The default admin
// socket in a data directory with a longer path is not created (the
// server says so); admin_socket must then name a shorter path.
const MaxUnixPathBytes = 107

// DefaultDefinitionPoll is how often a server polls a definition URL.
const DefaultDefinitionPoll = 30 * time.Second

// Bounds of definition_poll: below a second is a denial of service on the
// origin; above a day a replica may serve a revoked value for too long.
const (
	minDefinitionPoll = time.Second
	maxDefinitionPoll = 24 * time.Hour
)

// ServerLive holds the live-operation settings of Server.
type ServerLive struct {
	AdminSocket    string        // Unix socket path; "" means AdminSocketName in the data directory
	AdminGroup     string        // group name or number allowed on the socket besides root and the server's uid; "" none
	MetricsListen  string        // host:port serving /metrics; "" off; an empty host means 127.0.0.1
	DefinitionPoll time.Duration // poll interval when the definition is a URL
}

// serverLiveFile is the TOML form of ServerLive (top-level keys).
type serverLiveFile struct {
	AdminSocket    *string `toml:"admin_socket"`
	AdminGroup     *string `toml:"admin_group"`
	MetricsListen  *string `toml:"metrics_listen"`
	DefinitionPoll *string `toml:"definition_poll"`
}

var serverLiveKeys = []string{"admin_socket", "admin_group", "metrics_listen", "definition_poll"}

func (f *serverLiveFile) apply(c *ServerLive) error {
	setString(&c.AdminSocket, f.AdminSocket)
	setString(&c.AdminGroup, f.AdminGroup)
	setString(&c.MetricsListen, f.MetricsListen)
	if f.DefinitionPoll != nil {
		d, err := ParseServerDuration("definition_poll", *f.DefinitionPoll)
		if err != nil {
			return err
		}
		c.DefinitionPoll = d
	}
	return nil
}

// AdminSocketPath returns the admin socket's path: admin_socket, or
// AdminSocketName in the data directory.
func (c *Server) AdminSocketPath() string {
	if c.AdminSocket != "" {
		return c.AdminSocket
	}
	return filepath.Join(c.DataDir, AdminSocketName)
}

// MetricsAddr returns the metrics listener's address with an empty host
// made 127.0.0.1, or "" when metrics are off.
func (c *Server) MetricsAddr() string {
	if c.MetricsListen == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(c.MetricsListen)
	if err != nil || host != "" {
		return c.MetricsListen
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// IsLoopbackHost reports whether host is a loopback IP address or
// "localhost".
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// IsDefinitionURL reports whether a definition setting names a URL rather
// than a file.
func IsDefinitionURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://") || strings.Contains(s, "://")
}

// CheckDefinitionURL checks a definition URL: https, or http to a
// loopback host only (a sealed definition is safe to publish, but plain
// HTTP to another host lets anyone on the path hold back new serials);
// no user information, which would be logged, and no fragment.
func CheckDefinitionURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("config: server config: definition %q is not a URL", s)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && IsLoopbackHost(u.Hostname()):
	case u.Scheme == "http":
		return nil, fmt.Errorf("config: server config: definition %q: http:// only for a loopback host; use https://", s)
	default:
		return nil, fmt.Errorf("config: server config: definition %q: scheme %q is not https", s, u.Scheme)
	}
	if u.Host == "" || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("config: server config: definition %q needs a host and no user or fragment", s)
	}
	return u, nil
}

// validateLive checks the live-operation settings.
func (c *Server) validateLive() error {
	if c.AdminSocket != "" && !filepath.IsAbs(c.AdminSocket) {
		return fmt.Errorf("config: server config: admin_socket %q is not an absolute path", c.AdminSocket)
	}
	if len(c.AdminSocket) > MaxUnixPathBytes {
		return fmt.Errorf("config: server config: admin_socket %q is longer than %d bytes", c.AdminSocket, MaxUnixPathBytes)
	}
	if strings.ContainsAny(c.AdminGroup, " \t\n:") {
		return fmt.Errorf("config: server config: admin_group %q is not a group name or number", c.AdminGroup)
	}
	if c.MetricsListen != "" {
		_, port, err := net.SplitHostPort(c.MetricsListen)
		if err != nil || port == "" {
			return fmt.Errorf("config: server config: metrics_listen %q is not host:port (\":9188\" means 127.0.0.1:9188)", c.MetricsListen)
		}
	}
	if c.DefinitionPoll < minDefinitionPoll || c.DefinitionPoll > maxDefinitionPoll {
		return fmt.Errorf("config: server config: definition_poll = %s is not between %s and %s",
			c.DefinitionPoll, minDefinitionPoll, maxDefinitionPoll)
	}
	if IsDefinitionURL(c.Definition) {
		if _, err := CheckDefinitionURL(c.Definition); err != nil {
			return err
		}
	}
	return nil
}
