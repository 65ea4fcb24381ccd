package main

import (
	"fmt"

	"bytes"
	"github.com/coffer-project/coffer/coffer"
	"strings"
	"testing"
)

// TestSealChainsFromOutput runs the README's seal command again after an
// edit: with -o naming an existing sealed file and no --previous, the new
// file must chain from it (serial up, its hash as previous), never write
// serial 1 over serial 2.
func TestSealChainsFromOutput(t *testing.T) {
	s := newSetup(t)
	companion(t, s.dir, s.env, "seal", "-o", "prod.sealed", "secrets.toml").want(t, 0, "serial 1")
	ed := writeEditor(t, s, `echo 'added = "x"' >> "$1"`)
	companion(t, s.dir, append(s.env, "EDITOR="+ed), "edit", "prod.sealed").want(t, 0, "serial 2")
	v2 := s.read(t, "prod.sealed")

	companion(t, s.dir, s.env, "seal", "-o", "prod.sealed", "secrets.toml").want(t, 0, "serial 3", "-o prod.sealed exists: chaining from it")
	r := companion(t, s.dir, s.env, "inspect", "prod.sealed")
	if !strings.Contains(r.stdout, "serial:   3") || !strings.Contains(r.stdout, "previous: "+hexHash(v2)) {
		t.Errorf("reseal over serial 2 gave:\n%s", r.stdout)
	}

	t.Run("armored stays armored", func(t *testing.T) {
		companion(t, s.dir, s.env, "seal", "--armor", "-o", "a.sealed", "secrets.toml").want(t, 0, "serial 1")
		companion(t, s.dir, s.env, "seal", "-o", "a.sealed", "secrets.toml").want(t, 0, "serial 2")
		if !bytes.HasPrefix(s.read(t, "a.sealed"), []byte("-----BEGIN")) {
			t.Error("resealing over an armored file wrote binary")
		}
	})
	t.Run("new chain on request", func(t *testing.T) {
		companion(t, s.dir, s.env, "seal", "--new-chain", "-o", "fresh.sealed", "secrets.toml").want(t, 0, "serial 1")
		companion(t, s.dir, s.env, "seal", "--new-chain", "-o", "fresh.sealed", "secrets.toml").want(t, 0, "serial 1", "warning: --new-chain")
	})
	before := s.read(t, "prod.sealed")
	tests := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"another author's file", []string{"COFFER_KEY=other.key", "COFFER_SERVER_KEY=" + s.server},
			[]string{"seal", "-o", "prod.sealed", "secrets.toml"}, []string{"prod.sealed", "another author key", "--new-chain"}},
		{"not a sealed file", s.env, []string{"seal", "-o", "secrets.toml", "secrets.toml"}, []string{"secrets.toml", "--new-chain"}},
	}
	companion(t, s.dir, nil, "keygen", "--author", "-o", "other.key").want(t, 0)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := tc.args[2]
			old := s.read(t, target)
			companion(t, s.dir, tc.env, tc.args...).want(t, 1, tc.want...)
			if !bytes.Equal(s.read(t, target), old) {
				t.Errorf("%s changed", target)
			}
		})
	}
	if !bytes.Equal(s.read(t, "prod.sealed"), before) {
		t.Error("prod.sealed changed")
	}
	t.Run("another author's file with --serial", func(t *testing.T) {
		r := companion(t, s.dir, []string{"COFFER_KEY=other.key", "COFFER_SERVER_KEY=" + s.server}, "seal", "--serial", "4", "-o", "prod.sealed", "secrets.toml")
		r.want(t, 0, "serial 4")
	})
	companion(t, s.dir, s.env, "seal", "--new-chain", "--force", "--serial", "3", "-o", "x", "secrets.toml").want(t, 2, "exclude")
}

// hexHash is the hash inspect prints for a binary sealed file.
func hexHash(bin []byte) string { return fmt.Sprintf("%x", coffer.SealedHash(bin)) }

// TestSealDefinitionName (issue 19): seal --definition signs the name
// into the file; a chain keeps its name through seal, edit and set;
// --definition that disagrees with the chain's file is refused and
// writes nothing; inspect and diff print the name; a bad name is a usage
// error.
func TestSealDefinitionName(t *testing.T) {
	s := newSetup(t)
	companion(t, s.dir, s.env, "seal", "--definition", "team-a", "-o", "a.sealed", "secrets.toml").want(t, 0, "serial 1 of definition team-a")
	companion(t, s.dir, s.env, "seal", "-o", "a.sealed", "secrets.toml").want(t, 0, "serial 2 of definition team-a")
	ed := writeEditor(t, s, `echo 'added = "x"' >> "$1"`)
	companion(t, s.dir, append(s.env, "EDITOR="+ed), "edit", "a.sealed").want(t, 0, "serial 3 of definition team-a")
	companionIn(t, s, "v\n", "set", "--client", "web", "a.sealed", "password").want(t, 0, "serial 4 of definition team-a")
	r := companion(t, s.dir, s.env, "inspect", "a.sealed")
	if !strings.Contains(r.stdout, "definition: team-a") || !strings.Contains(r.stdout, "serial:   4") {
		t.Errorf("inspect of a team-a file:\n%s", r.stdout)
	}

	before := s.read(t, "a.sealed")
	companion(t, s.dir, s.env, "seal", "--definition", "team-b", "-o", "a.sealed", "secrets.toml").want(t, 1, "sealed for definition team-a", "nothing was written")
	if !bytes.Equal(before, s.read(t, "a.sealed")) {
		t.Error("a refused --definition changed the file")
	}
	companion(t, s.dir, s.env, "seal", "--definition", "Team B", "-o", "b.sealed", "secrets.toml").want(t, 2, "not a definition name")

	companion(t, s.dir, s.env, "seal", "-o", "d.sealed", "secrets.toml").want(t, 0, "serial 1 of definition default")
	r = companion(t, s.dir, s.env, "diff", "d.sealed", "a.sealed")
	if !strings.Contains(r.stdout, "definition changed: default -> team-a") {
		t.Errorf("diff across definitions:\n%s", r.stdout)
	}
}
