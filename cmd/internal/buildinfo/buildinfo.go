// Package buildinfo prints the version line the three programs share for
// `version` and `-version`: module version, VCS revision and Go version,
// from the build info.
package buildinfo

import "runtime/debug"

// Version returns "PROG VERSION [REVISION] [(modified)] GOVERSION".
func Version(prog string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return prog + " (unknown version)"
	}
	v := prog + " " + bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += " (modified)"
			}
		}
	}
	return v + " " + bi.GoVersion
}

// IsFlag reports whether arg asks for the version: -version or --version.
func IsFlag(arg string) bool { return arg == "-version" || arg == "--version" }
