package config_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coffer-project/coffer/config"
)

// TestExampleAgentConfig parses examples/client-agent.toml, which
// docs/client.md points to for the agent.
func TestExampleAgentConfig(t *testing.T) {
	data, err := os.ReadFile("../examples/client-agent.toml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.ParseClient(data)
	if err != nil {
		t.Fatalf("examples/client-agent.toml: %v", err)
	}
	if c.WatchInterval != time.Minute || c.Agent.Socket != "/run/coffer/credentials.sock" {
		t.Errorf("got interval %s, socket %q", c.WatchInterval, c.Agent.Socket)
	}
	if got := c.Agent.Allow["worker@*.service"]; len(got) != 1 || got[0] != "queue.password" {
		t.Errorf("allow worker@*.service: got %q", got)
	}
}

func TestParseClientAgent(t *testing.T) {
	tests := []struct {
		name, src, err string
	}{
		{"ok", "[agent]\nsocket = \"/run/x.sock\"\n[agent.allow]\n\"a.service\" = [\"x\"]\n", ""},
		{"watch interval", "[watch]\ninterval = \"30s\"\n", ""},
		{"bad watch interval", "[watch]\ninterval = \"soon\"\n", "watch.interval"},
		{"negative watch interval", "[watch]\ninterval = \"-1s\"\n", "watch.interval"},
		{"relative socket", "[agent]\nsocket = \"x.sock\"\n", "absolute path"},
		{"bad glob", "[agent.allow]\n\"a[.service\" = [\"x\"]\n", "bad unit pattern"},
		{"glob with slash", "[agent.allow]\n\"a/b.service\" = [\"x\"]\n", "bad unit pattern"},
		{"empty name", "[agent.allow]\n\"a.service\" = [\"\"]\n", "bad secret name"},
		{"name with slash", "[agent.allow]\n\"a.service\" = [\"a/b\"]\n", "bad secret name"},
		{"unknown agent key", "[agent]\nsockets = \"/x\"\n", "unknown key"},
		{"names not a list", "[agent.allow]\n\"a.service\" = \"x\"\n", "client config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.ParseClient([]byte(tt.src))
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("got %v, want success", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Errorf("got %v, want an error containing %q", err, tt.err)
			}
		})
	}
}
