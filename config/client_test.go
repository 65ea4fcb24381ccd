package config_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coffer-project/coffer/config"
)

func TestParseClient(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want config.Client
	}{
		{"empty", "", config.Client{}},
		{"all", `
servers = ["a:9187", "b"]
server_key = "cofferpk1abc"
key_file = "/k"
timeout = "2s"
wait = "1m"
state = "/s"
cache = "/c"
max_age = "24h"
`, config.Client{
			Servers: []string{"a:9187", "b"}, ServerKey: "cofferpk1abc", KeyFile: "/k",
			Timeout: 2 * time.Second, Wait: time.Minute, State: "/s", Cache: "/c", MaxAge: 24 * time.Hour,
		}},
		{"zero duration", `wait = "0s"`, config.Client{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := config.ParseClient([]byte(tt.in))
			if err != nil {
				t.Fatalf("ParseClient: %v", err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

func TestParseClientErrors(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"unknown key", `server = "a"`, `unknown key "server"`},
		{"unknown table key", "[x]\ny = 1", `unknown key`},
		{"int duration", `timeout = 5`, "client config"},
		{"bad duration", `wait = "soon"`, `wait = "soon"`},
		{"negative duration", `max_age = "-1h"`, "max_age"},
		{"empty server", `servers = [""]`, "bad server address"},
		{"comma server", `servers = ["a,b"]`, "bad server address"},
		{"bad server key", `server_key = "cofferauthorpk1xyz"`, "server_key must be a cofferpk1"},
		{"secret server key", `server_key = "coffersk1secret"`, "server_key is a secret key (not printed)"},
		{"author secret server key", `server_key = "COFFERAUTHORSK1secret"`, "server_key is a secret key (not printed)"},
		{"syntax", `servers = [`, "client config"},
		{"duplicate", "wait = \"1s\"\nwait = \"2s\"", "client config"},
		{"too many servers", "servers = [" + strings.Repeat(`"a",`, 65) + "]", "exceed limit"},
		{"too long", "# " + strings.Repeat("x", 70000), "exceeds limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.ParseClient([]byte(tt.in))
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
			if strings.Contains(strings.ToLower(err.Error()), "sk1secret") {
				t.Errorf("error %q quotes a private key", err)
			}
		})
	}
}

func TestExampleClientConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "examples", "client.toml"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.ParseClient(data)
	if err != nil {
		t.Fatalf("examples/client.toml: %v", err)
	}
	if len(c.Servers) == 0 || c.ServerKey == "" || c.KeyFile == "" || c.Wait == 0 || c.Cache == "" || c.MaxAge == 0 {
		t.Errorf("examples/client.toml leaves keys unset: %+v", c)
	}
}

func FuzzParseClient(f *testing.F) {
	if data, err := os.ReadFile(filepath.Join("..", "examples", "client.toml")); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`servers = ["a"]` + "\n" + `wait = "1s"`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.ParseClient(data)
		if err != nil {
			return
		}
		if c.Timeout < 0 || c.Wait < 0 || c.MaxAge < 0 {
			t.Errorf("negative duration accepted: %+v", c)
		}
		for _, s := range c.Servers {
			if s == "" {
				t.Error("empty server accepted")
			}
		}
	})
}
