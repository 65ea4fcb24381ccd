package config_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coffer-project/coffer/config"
)

func TestParseServerDefaults(t *testing.T) {
	got, err := config.ParseServer(nil)
	if err != nil {
		t.Fatalf("ParseServer(empty): %v", err)
	}
	if want := config.DefaultServer(); !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want the defaults %+v", got, want)
	}
	if got.Listen != "127.0.0.1:9187" {
		t.Errorf("default listen %q, want 127.0.0.1:9187", got.Listen)
	}
}

func TestParseServerValues(t *testing.T) {
	src := `
listen = ":9999"
key_file = "/k"
data_dir = "/d"
definition = "/s.sealed"
trusted = ["cofferauthorpk1aaa", "cofferauthorpk1bbb"]
[limits]
max_connections = 7
max_handshakes_per_address = 2
hello_timeout = "1s"
handshake_timeout = "2s"
session_timeout = "1m"
bye_timeout = "3s"
shutdown_timeout = "250ms"
failed_auth_per_address = { rate = 0.5, burst = 3 }
unknown_clients = { rate = 0, burst = 0 }
[limits.unknown_clients_per_address]
rate = 4
burst = 8
[limits.per_client]
rate = 1
burst = 1
[audit]
max_records = 5
max_age = "1h"
[log]
level = "debug"
format = "json"
`
	got, err := config.ParseServer([]byte(src))
	if err != nil {
		t.Fatalf("ParseServer: %v", err)
	}
	want := &config.Server{
		Listen: ":9999", KeyFile: "/k", DataDir: "/d", Definition: "/s.sealed",
		Trusted: []string{"cofferauthorpk1aaa", "cofferauthorpk1bbb"},
		Limits: config.ServerLimits{MaxConnections: 7, MaxHandshakesPerAddress: 2,
			HelloTimeout: time.Second, HandshakeTimeout: 2 * time.Second, SessionTimeout: time.Minute,
			ByeTimeout: 3 * time.Second, ShutdownTimeout: 250 * time.Millisecond,
			FailedAuthPerAddress:     config.ServerRate{Rate: 0.5, Burst: 3},
			UnknownClients:           config.ServerRate{},
			UnknownClientsPerAddress: config.ServerRate{Rate: 4, Burst: 8},
			PerClient:                config.ServerRate{Rate: 1, Burst: 1}},
		Audit:      config.ServerAudit{MaxRecords: 5, MaxAge: time.Hour},
		Log:        config.ServerLog{Level: "debug", Format: "json"},
		ServerLive: config.ServerLive{DefinitionPoll: config.DefaultDefinitionPoll},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseServerErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown key", `lisen = "x"`, `unknown key "lisen"`},
		{"unknown table key", "[limits]\nmax_conns = 3", `unknown key "limits.max_conns"`},
		{"wrong case", `Listen = ":1"`, `unknown key "Listen"`},
		{"wrong case nested", "[log]\nLevel = \"info\"", `unknown key "log.Level"`},
		{"negative int", "[limits]\nmax_connections = -1", "out of range"},
		{"zero connections", "[limits]\nmax_connections = 0", "at least 1"},
		{"bare integer duration", "[limits]\nhandshake_timeout = 5", "handshake_timeout"},
		{"bad duration", "[limits]\nsession_timeout = \"soon\"", `session_timeout = "soon"`},
		{"negative duration", "[audit]\nmax_age = \"-1h\"", "max_age"},
		{"zero timeout", "[limits]\nshutdown_timeout = \"0s\"", "must be positive"},
		{"rate without burst", "[limits]\nper_client = { rate = 1 }", "needs both rate and burst"},
		{"negative rate", "[limits]\nper_client = { rate = -1, burst = 1 }", "per_client.rate"},
		{"nan rate", "[limits]\nper_client = { rate = nan, burst = 1 }", "per_client.rate"},
		{"zero burst", "[limits]\nper_client = { rate = 1, burst = 0 }", "burst must be at least 1"},
		{"unknown rate key", "[limits]\nper_client = { rate = 1, burst = 1, window = 2 }", "per_client.window"},
		{"zero audit records", "[audit]\nmax_records = 0", "at least 1"},
		{"bad level", "[log]\nlevel = \"loud\"", "log.level"},
		{"bad format", "[log]\nformat = \"xml\"", "log.format"},
		{"empty listen", `listen = ""`, "listen is empty"},
		{"bad trusted", `trusted = ["xyz"]`, "trusted key 1 is not an author's public key (not printed)"},
		{"secret key trusted", `trusted = ["cofferauthorpk1abc", "coffersk1xyz"]`, "trusted key 2 is a secret key (not printed)"},
		{"author secret key trusted", `trusted = ["COFFERAUTHORSK1xyz"]`, "trusted key 1 is a secret key (not printed)"},
		{"x25519 key trusted", `trusted = ["cofferpk1xyz"]`, "is an X25519 key"},
		{"wrong type", `listen = 9187`, "listen"},
		{"syntax", `listen = `, "config: server config"},
		{"duplicate", "listen = \"a\"\nlisten = \"b\"", "already been defined"},
		{"too big", strings.Repeat("#", 300<<10), "exceeds limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.ParseServer([]byte(tt.src))
			if err == nil {
				t.Fatalf("ParseServer(%q) = nil error, want one containing %q", tt.src, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "config: ") {
				t.Errorf("got error %q, want one starting config: and containing %q", err, tt.want)
			}
			if strings.Contains(strings.ToLower(err.Error()), "sk1xyz") {
				t.Errorf("error %q prints a secret key", err)
			}
		})
	}
}

func FuzzParseServer(f *testing.F) {
	f.Add([]byte(`listen = ":1"` + "\n[limits]\nmax_connections = 3"))
	f.Add([]byte("[log]\nlevel = \"debug\""))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.ParseServer(data)
		if err != nil {
			if c != nil {
				t.Fatalf("got a config and an error %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted config fails Validate: %v", err)
		}
	})
}
