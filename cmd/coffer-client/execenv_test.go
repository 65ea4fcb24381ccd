package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// TestStartupVar names the variables exec refuses and some it does not.
func TestStartupVar(t *testing.T) {
	tests := []struct {
		name    string
		refused bool
	}{
		{"LD_PRELOAD", true}, {"LD_LIBRARY_PATH", true}, {"LD_AUDIT", true}, {"LD_DEBUG_OUTPUT", true},
		{"DYLD_INSERT_LIBRARIES", true}, {"GCONV_PATH", true}, {"GLIBC_TUNABLES", true},
		{"GETCONF_DIR", true}, {"LOCPATH", true}, {"NLSPATH", true}, {"MALLOC_TRACE", true},
		{"BASH_ENV", true}, {"ENV", true}, {"ZDOTDIR", true}, {"SHELLOPTS", true}, {"BASHOPTS", true},
		{"PS4", true}, {"IFS", true}, {"CDPATH", true}, {"BASH_FUNC_X", true}, {"PATH", true},
		{"PYTHONSTARTUP", true}, {"PYTHONPATH", true}, {"PYTHONHOME", true}, {"PERL5OPT", true},
		{"PERL5LIB", true}, {"PERLLIB", true}, {"RUBYOPT", true}, {"RUBYLIB", true},
		{"NODE_OPTIONS", true}, {"NODE_PATH", true}, {"JAVA_TOOL_OPTIONS", true},
		{"_JAVA_OPTIONS", true}, {"JDK_JAVA_OPTIONS", true},
		{"DB_PASSWORD", false}, {"APP_LD_PRELOAD", false}, {"LD", false}, {"ENVIRONMENT", false},
		{"HOME", false}, {"PATHS", false}, {"MY_PATH", false}, {"TZ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := startupVar(tt.name) != ""; got != tt.refused {
				t.Errorf("startupVar(%s) refused: got %v, want %v", tt.name, got, tt.refused)
			}
		})
	}
}

func TestCheckStartupEnv(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		secrets []string
		allowed []string
		want    string // "" for no error, else a part of the error
	}{
		{"plain names", "", []string{"db.password", "port"}, nil, ""},
		{"ld.preload", "", []string{"ld.preload"}, nil, `secret "ld.preload" would set LD_PRELOAD (the dynamic loader)`},
		{"every offender named", "", []string{"path", "bash-env", "x"}, nil, `secret "bash-env" would set BASH_ENV (a shell's start-up); secret "path" would set PATH`},
		{"allowed by name", "", []string{"ld.preload"}, []string{"LD_PRELOAD"}, ""},
		{"allowing one leaves the other", "", []string{"ld.preload", "ENV"}, []string{"LD_PRELOAD"}, `secret "ENV" would set ENV`},
		{"the allowed name is the variable, not the secret", "", []string{"ld.preload"}, []string{"ld.preload"}, "LD_PRELOAD"},
		{"a prefix makes other names", "APP_", []string{"ld.preload", "path"}, nil, ""},
		{"a prefix can make one", "LD_", []string{"preload"}, nil, `would set LD_PRELOAD`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := frame.Shard{}
			for _, n := range tt.secrets {
				s[n] = str(canary)
			}
			envs, err := envNames(tt.prefix, s)
			if err != nil {
				t.Fatal(err)
			}
			err = checkStartupEnv(envs, tt.allowed)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), canary):
				t.Errorf("the error holds a value: %v", err)
			}
		})
	}
}

// TestExecStartupVariables runs the real binary: a secret that would set
// a start-up variable stops exec with status 1 before CMD starts, unless
// --allow-env names the variable.
func TestExecStartupVariables(t *testing.T) {
	fx := newFixture(t)
	ts := fx.serve(nil, 1)
	ts.swap(1, map[coffer.PublicKey]frame.Shard{fx.client.Public(): {
		"bash.env": str("/nonexistent/" + canary), "db.password": str(canary)}})
	t.Run("refused", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "ran")
		r := fx.run(nil, append(append([]string{"exec"}, fx.base("--server", ts.addr)...), "--", "touch", marker)...)
		r.want(t, exitFailure)
		if _, err := os.Stat(marker); err == nil {
			t.Error("CMD ran with a secret setting BASH_ENV")
		}
		if !bytes.Contains(r.stderr, []byte(`secret "bash.env" would set BASH_ENV`)) || !bytes.Contains(r.stderr, []byte("--allow-env")) {
			t.Errorf("stderr does not name the secret, the variable and the way out:\n%s", r.stderr)
		}
	})
	t.Run("allowed by name", func(t *testing.T) {
		r := fx.run(nil, append(append([]string{"exec", "--allow-env", "BASH_ENV"}, fx.base("--server", ts.addr)...),
			"--", "sh", "-c", `printf '%s' "$BASH_ENV"`)...)
		r.want(t, exitOK)
		if string(r.stdout) != "/nonexistent/"+canary {
			t.Errorf("got %q, want the secret in BASH_ENV", r.stdout)
		}
	})
	t.Run("with a prefix", func(t *testing.T) {
		fx.run(nil, append(append([]string{"exec", "--prefix", "APP_"}, fx.base("--server", ts.addr)...), "--", "true")...).want(t, exitOK)
	})
	t.Run("bad --allow-env", func(t *testing.T) {
		fx.run(nil, append(append([]string{"exec", "--allow-env", "A=B"}, fx.base("--server", ts.addr)...), "--", "true")...).want(t, exitUsage)
	})
}

// FuzzValidEnvName checks the written-out name check against the regexp
// it replaced, which defines the accepted names.
func FuzzValidEnvName(f *testing.F) {
	for _, s := range []string{"", "A", "_", "a1", "1a", "DB_PASSWORD", "A-B", "É", "A B", "a\x00", "_9", "9"} {
		f.Add(s)
	}
	re := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validEnvName(s), re.MatchString(s); got != want {
			t.Errorf("validEnvName(%q) = %v, the regexp says %v", s, got, want)
		}
	})
}
