package main

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// TestExecSelect runs the real binary: exec passes only the NAMEs given
// (all by default) and --env VAR=name maps a secret to a variable of the
// caller's choosing, so CMD gets exactly the variables it reads; the
// start-up variable refusal applies to mapped names too.
func TestExecSelect(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	ts.swap(1, map[coffer.PublicKey]frame.Shard{fx.client.Public(): {
		"db.password": str("pw-" + canary), "api-key": str("ak"), "port": {Kind: frame.KindInt, Int: 5432}}})
	envOf := func(t *testing.T, args ...string) []string {
		t.Helper()
		r := fx.run(nil, append(append(append([]string{"exec", "--pristine"}, fx.base("--server", ts.addr)...), args...), "env")...)
		r.want(t, exitOK)
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(r.stdout)), "\n") {
			if name, _, _ := strings.Cut(l, "="); name != "PWD" && name != "SHLVL" && name != "_" {
				got = append(got, l)
			}
		}
		slices.Sort(got)
		return got
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"all by default", []string{"--"}, []string{"API_KEY=ak", "DB_PASSWORD=pw-" + canary, "PORT=5432"}},
		{"named", []string{"db.password", "port", "--"}, []string{"DB_PASSWORD=pw-" + canary, "PORT=5432"}},
		{"mapped only", []string{"--env", "PGPASSWORD=db.password", "--"}, []string{"PGPASSWORD=pw-" + canary}},
		{"named and mapped", []string{"--env", "PGPASSWORD=db.password", "port", "--"}, []string{"PGPASSWORD=pw-" + canary, "PORT=5432"}},
		{"mapped with a prefix", []string{"--prefix", "APP_", "--env", "PGPASSWORD=db.password", "api-key", "--"},
			[]string{"APP_API_KEY=ak", "PGPASSWORD=pw-" + canary}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := envOf(t, tt.args...); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("mapped start-up variable refused", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "ran")
		r := fx.run(nil, append(append([]string{"exec", "--env", "LD_PRELOAD=api-key"}, fx.base("--server", ts.addr)...), "--", "touch", marker)...)
		r.want(t, exitFailure)
		if _, err := os.Stat(marker); err == nil {
			t.Error("CMD ran with a secret setting LD_PRELOAD")
		}
		if !bytes.Contains(r.stderr, []byte(`secret "api-key" would set LD_PRELOAD`)) {
			t.Errorf("stderr:\n%s", r.stderr)
		}
	})
	t.Run("missing name", func(t *testing.T) {
		fx.run(nil, append(append([]string{"exec"}, fx.base("--server", ts.addr)...), "nope", "--", "true")...).want(t, exitFailure)
	})
	for _, bad := range []string{"PGPASSWORD", "=db.password", "PG PASS=db.password", "PGPASSWORD=a/b"} {
		t.Run("bad --env "+bad, func(t *testing.T) {
			fx.run(nil, append(append([]string{"exec", "--env", bad}, fx.base("--server", ts.addr)...), "--", "true")...).want(t, exitUsage)
		})
	}
	t.Run("one variable twice", func(t *testing.T) {
		fx.run(nil, append(append([]string{"exec", "--env", "A=port", "--env", "A=api-key"}, fx.base("--server", ts.addr)...), "--", "true")...).want(t, exitUsage)
	})
}

func TestExecPlan(t *testing.T) {
	s := frame.Shard{"db.password": str("x"), "api-key": str("y"), "port": str("z")}
	tests := []struct {
		name   string
		prefix string
		names  []string
		mapped envMap
		want   map[string]string
		err    bool
	}{
		{"all", "", nil, envMap{}, map[string]string{"DB_PASSWORD": "db.password", "API_KEY": "api-key", "PORT": "port"}, false},
		{"all with prefix", "A_", nil, envMap{}, map[string]string{"A_DB_PASSWORD": "db.password", "A_API_KEY": "api-key", "A_PORT": "port"}, false},
		{"named", "", []string{"port"}, envMap{}, map[string]string{"PORT": "port"}, false},
		{"mapped", "", nil, envMap{"PGPASSWORD": "db.password"}, map[string]string{"PGPASSWORD": "db.password"}, false},
		{"one secret, two variables", "", nil, envMap{"A": "port", "B": "port"}, map[string]string{"A": "port", "B": "port"}, false},
		{"mapped over a derived name", "", []string{"port"}, envMap{"PORT": "api-key"}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := execPlan(tt.prefix, tt.names, tt.mapped, s)
			if (err != nil) != tt.err {
				t.Fatalf("got error %v, want error %v", err, tt.err)
			}
			if err == nil && !mapsEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// FuzzEnvMap: --env accepts only VAR=name with a portable variable name
// and a valid secret name, and keeps exactly what it accepted.
func FuzzEnvMap(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		m := envMap{}
		if err := m.Set(s); err != nil {
			if len(m) != 0 {
				t.Errorf("refused %q but kept %v", s, m)
			}
			return
		}
		v, n, _ := strings.Cut(s, "=")
		if len(m) != 1 || m[v] != n || !validEnvName(v) || frame.ValidName(n) != nil {
			t.Errorf("accepted %q as %v", s, m)
		}
	})
}
