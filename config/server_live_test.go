package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coffer-project/coffer/config"
)

// TestParseServerLive: the live-operation keys (admin socket, metrics,
// definition URL and poll) parse, and their defaults derive from the
// other settings.
func TestParseServerLive(t *testing.T) {
	src := `
data_dir = "/var/lib/c"
definition = "https://example.org/prod.sealed"
admin_socket = "/run/coffer/admin.sock"
admin_group = "coffer-admin"
metrics_listen = ":9188"
definition_poll = "10s"
`
	c, err := config.ParseServer([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := config.ServerLive{AdminSocket: "/run/coffer/admin.sock", AdminGroup: "coffer-admin",
		MetricsListen: ":9188", DefinitionPoll: 10 * time.Second}
	if c.ServerLive != want {
		t.Errorf("got %+v, want %+v", c.ServerLive, want)
	}
	if got := c.MetricsAddr(); got != "127.0.0.1:9188" {
		t.Errorf("MetricsAddr: got %q, want 127.0.0.1:9188 (an empty host is loopback)", got)
	}
	if got := c.AdminSocketPath(); got != "/run/coffer/admin.sock" {
		t.Errorf("AdminSocketPath: got %q", got)
	}
	d := config.DefaultServer()
	if got := d.AdminSocketPath(); got != "/var/lib/coffer/admin.sock" {
		t.Errorf("default AdminSocketPath: got %q, want /var/lib/coffer/admin.sock", got)
	}
	if d.MetricsAddr() != "" || d.DefinitionPoll != 30*time.Second {
		t.Errorf("defaults: metrics %q, poll %s; want off and 30s", d.MetricsAddr(), d.DefinitionPoll)
	}
}

func TestParseServerLiveErrors(t *testing.T) {
	tests := []struct{ name, src, want string }{
		{"relative socket", `admin_socket = "admin.sock"`, "not an absolute path"},
		{"long socket", `admin_socket = "/` + strings.Repeat("a", 120) + `"`, "longer than 107 bytes"},
		{"group with colon", `admin_group = "a:b"`, "admin_group"},
		{"metrics without port", `metrics_listen = "127.0.0.1"`, "metrics_listen"},
		{"poll too short", `definition_poll = "10ms"`, "definition_poll"},
		{"poll not a duration", `definition_poll = "often"`, "definition_poll"},
		{"http to another host", `definition = "http://example.org/x.sealed"`, "only for a loopback host"},
		{"ftp", `definition = "ftp://example.org/x.sealed"`, "is not https"},
		{"user in url", `definition = "https://u:p@example.org/x"`, "no user"},
		{"no host", `definition = "https:///x"`, "needs a host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.ParseServer([]byte(tt.src))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	for _, ok := range []string{"http://127.0.0.1:8080/x", "http://[::1]/x", "http://localhost/x", "https://h/x?v=1"} {
		if _, err := config.CheckDefinitionURL(ok); err != nil {
			t.Errorf("CheckDefinitionURL(%q): %v, want accepted", ok, err)
		}
	}
}
