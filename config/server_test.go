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
trusted = ["cofferpk1aaa", "cofferpk1bbb"]
[limits]
max_connections = 7
handshake_timeout = "2s"
session_timeout = "1m"
auth_failures_per_minute = 0
auth_failure_burst = 3
shutdown_timeout = "250ms"
[audit]
max_records = 0
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
		Trusted: []string{"cofferpk1aaa", "cofferpk1bbb"},
		Limits: config.ServerLimits{MaxConnections: 7, HandshakeTimeout: 2 * time.Second,
			SessionTimeout: time.Minute, AuthFailuresPerMinute: 0, AuthFailureBurst: 3,
			ShutdownTimeout: 250 * time.Millisecond},
		Audit: config.ServerAudit{MaxRecords: 0, MaxAge: time.Hour},
		Log:   config.ServerLog{Level: "debug", Format: "json"},
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
		{"bad level", "[log]\nlevel = \"loud\"", "log.level"},
		{"bad format", "[log]\nformat = \"xml\"", "log.format"},
		{"empty listen", `listen = ""`, "listen is empty"},
		{"bad trusted", `trusted = ["coffersk1xyz"]`, "not a cofferpk1"},
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
