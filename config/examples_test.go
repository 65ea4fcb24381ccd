package config_test

import (
	"os"
	"testing"

	"github.com/coffer-project/coffer/config"
)

// TestExampleDefinition parses examples/secrets.toml, which the docs and
// README point newcomers to.
func TestExampleDefinition(t *testing.T) {
	src, err := os.ReadFile("../examples/secrets.toml")
	if err != nil {
		t.Fatal(err)
	}
	def, err := config.ParseDefinition(src)
	if err != nil {
		t.Fatalf("examples/secrets.toml: %v", err)
	}
	if len(def.Clients) != 2 || len(def.Clients[1].Keys) != 2 {
		t.Fatalf("got %d clients, want web and a worker on two machines", len(def.Clients))
	}
	web := def.Clients[0].Values
	if v := web["tls.key"]; v.Kind != config.KindString || len(v.Text) < 60 || v.Text[len(v.Text)-1] != '\n' {
		t.Errorf("tls.key: got kind %d, %d bytes; want a multi-line string", v.Kind, len(v.Text))
	}
	if v := def.Clients[1].Values["nightly_run"]; v.Kind != config.KindLocalTime || string(v.Text) != "02:30:00" {
		t.Errorf("nightly_run: got %+v, want local time 02:30:00", v)
	}
}
