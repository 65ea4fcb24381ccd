package main

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// startupVar reports what the environment variable name makes a program
// load or run, or "" when it is not such a variable. exec refuses to set
// these from secrets (docs/client.md, "exec"): a secret named ld.preload
// would otherwise make the dynamic loader map a library of the
// definition author's choosing into CMD. The list is deliberate, not
// exhaustive: the C library's loader and the variables glibc itself
// clears for setuid programs that load code, the shells' start-up files
// and options, PATH, and the start-up hooks of common interpreters. It
// is a pure function of name.
func startupVar(name string) string {
	for _, p := range []string{"LD_", "DYLD_"} {
		if strings.HasPrefix(name, p) {
			return "the dynamic loader"
		}
	}
	if strings.HasPrefix(name, "BASH_FUNC_") {
		return "a shell's start-up"
	}
	switch name {
	case "GCONV_PATH", "GLIBC_TUNABLES", "GETCONF_DIR", "LOCPATH", "NLSPATH", "MALLOC_TRACE":
		return "the C library's loading of code or files"
	case "BASH_ENV", "ENV", "ZDOTDIR", "SHELLOPTS", "BASHOPTS", "PS4", "IFS", "CDPATH":
		return "a shell's start-up"
	case "PATH":
		return "which programs CMD runs"
	case "PYTHONSTARTUP", "PYTHONPATH", "PYTHONHOME", "PERL5OPT", "PERL5LIB", "PERLLIB",
		"RUBYOPT", "RUBYLIB", "NODE_OPTIONS", "NODE_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS":
		return "an interpreter's start-up"
	}
	return ""
}

// checkStartupEnv refuses secrets whose environment names (envs: secret
// name to variable) are start-up variables not named in allowed. The
// error names the secrets and variables, never a value.
func checkStartupEnv(envs map[string]string, allowed []string) error {
	var bad []string
	for _, n := range sortedKeys(envs) {
		e := envs[n]
		if what := startupVar(e); what != "" && !slices.Contains(allowed, e) {
			bad = append(bad, fmt.Sprintf("secret %q would set %s (%s)", n, e, what))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return &exitError{code: exitFailure,
		err: fmt.Errorf("refusing to start CMD: %s", strings.Join(bad, "; ")),
		hints: []string{"a secret must not choose the code CMD loads; if this one is meant to, allow it by name with --allow-env NAME",
			"or set --prefix, so the secrets' variables get names of their own"}}
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// envNameRE is what --allow-env accepts: a portable variable name.
var envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// allowList is the repeatable --allow-env flag.
type allowList []string

func (l *allowList) String() string { return strings.Join(*l, ",") }

func (l *allowList) Set(s string) error {
	if !envNameRE.MatchString(s) {
		return fmt.Errorf("not an environment variable name: %q", s)
	}
	*l = append(*l, s)
	return nil
}
