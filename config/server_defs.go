package config

import (
	"github.com/coffer-project/coffer/frame"
)

// Several sealed definitions per server (issue 19, docs/server.md,
// "Several definitions"). The config lists them as [[definitions]] tables,
// each with its own name, file or URL and trusted authors, so a team's
// author key can be trusted for its own definition and no other. The old
// top-level definition + trusted form is one definition named
// DefaultDefinitionName.

// DefaultDefinitionName names the single definition of the top-level
// definition + trusted form.
const DefaultDefinitionName = "default"

// maxServerDefinitions bounds the [[definitions]] tables.
const maxServerDefinitions = 256

// ServerDefinition is one sealed definition the server loads.
type ServerDefinition struct {
	Name    string   // unique in the config; frame.ValidDefinitionName
	Path    string   // file path or https:// URL of the sealed file
	Trusted []string // the authors' signing public keys for this definition only
}

// serverDefinitionFile is the TOML form of one [[definitions]] table.
type serverDefinitionFile struct {
	Name    *string  `toml:"name"`
	Path    *string  `toml:"path"`
	Trusted []string `toml:"trusted"`
}

var serverDefinitionKeys = []string{"definitions", "definitions.name", "definitions.path", "definitions.trusted"}

// applyDefinitions sets c.Definitions from the file's [[definitions]]
// tables. The tables and the top-level definition or trusted keys are
// two spellings of the same setting: a file may use one or the other.
func (f *serverFile) applyDefinitions(c *Server) error {
	if f.Definitions == nil {
		return nil
	}
	if f.Definition != nil || f.Trusted != nil {
		return invalidServer("[[definitions]] and the top-level definition or trusted keys are two forms of the same setting; use one")
	}
	if len(f.Definitions) == 0 {
		return invalidServer("definitions is empty")
	}
	c.Definitions = make([]ServerDefinition, 0, len(f.Definitions))
	for i, d := range f.Definitions {
		if d.Name == nil || d.Path == nil {
			return invalidServer("definitions entry %d needs both name and path", i+1)
		}
		c.Definitions = append(c.Definitions, ServerDefinition{Name: *d.Name, Path: *d.Path, Trusted: d.Trusted})
	}
	return nil
}

// DefinitionList returns the definitions the server loads: the
// [[definitions]] tables, or the top-level definition and trusted keys as
// one definition named DefaultDefinitionName.
func (c *Server) DefinitionList() []ServerDefinition {
	if len(c.Definitions) > 0 {
		return c.Definitions
	}
	return []ServerDefinition{{Name: DefaultDefinitionName, Path: c.Definition, Trusted: c.Trusted}}
}

// validateDefinitions checks the [[definitions]] tables: a bounded count,
// unique plain names and paths, and plausible trusted keys for each.
func (c *Server) validateDefinitions() error {
	if len(c.Definitions) > maxServerDefinitions {
		return invalidServer("%d definitions exceed limit %d", len(c.Definitions), maxServerDefinitions)
	}
	names, paths := map[string]bool{}, map[string]string{}
	for i, d := range c.Definitions {
		if !frame.ValidDefinitionName(d.Name) {
			return invalidServer("definitions entry %d: name %q is not 1 to 64 of a-z, 0-9, '_' and '-' starting with a letter or digit", i+1, d.Name)
		}
		if names[d.Name] {
			return invalidServer("definition name %q is given twice", d.Name)
		}
		names[d.Name] = true
		if d.Path == "" {
			return invalidServer("definition %q: path is empty", d.Name)
		}
		if other, ok := paths[d.Path]; ok {
			return invalidServer("definitions %q and %q have the same path %q", other, d.Name, d.Path)
		}
		paths[d.Path] = d.Name
		if len(d.Trusted) == 0 {
			return invalidServer("definition %q: trusted is empty; give the public key of the author allowed to sign it", d.Name)
		}
		if len(d.Trusted) > maxServerTrusted {
			return invalidServer("definition %q: %d trusted keys exceed limit %d", d.Name, len(d.Trusted), maxServerTrusted)
		}
		for j, k := range d.Trusted {
			if err := checkTrusted(k); err != nil {
				return invalidServer("definition %q: trusted key %d %w", d.Name, j+1, err)
			}
		}
	}
	return nil
}

// SingleDefinition folds a config that lists exactly one definition
// into the Definition and Trusted fields, which the commands that name
// one definition (check, status of a stopped server) read. With several,
// those fields stay empty and the commands use DefinitionList.
func (c *Server) SingleDefinition() error {
	if len(c.Definitions) == 1 {
		c.Definition, c.Trusted = c.Definitions[0].Path, c.Definitions[0].Trusted
	}
	return nil
}
