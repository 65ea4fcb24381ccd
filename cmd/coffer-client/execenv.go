package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/coffer-project/coffer/frame"
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
	plan := make(map[string]string, len(envs))
	for n, v := range envs {
		plan[v] = n
	}
	return checkStartupPlan(plan, allowed)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// validEnvName reports whether s is what --allow-env accepts: a
// portable variable name, [A-Za-z_][A-Za-z0-9_]*. It is written out
// rather than a regexp compiled at start-up, which every run of the
// client paid for (docs/benchmarks.md, "Cold start").
func validEnvName(s string) bool {
	if s == "" || '0' <= s[0] && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// allowList is the repeatable --allow-env flag.
type allowList []string

func (l *allowList) String() string { return strings.Join(*l, ",") }

func (l *allowList) Set(s string) error {
	if !validEnvName(s) {
		return fmt.Errorf("not an environment variable name: %q", s)
	}
	*l = append(*l, s)
	return nil
}

// envMap is the repeatable --env VAR=name flag: variable to secret name.
// A variable is mapped once; a secret may feed several variables.
type envMap map[string]string

func (m envMap) String() string {
	var parts []string
	for _, v := range sortedKeys(m) {
		parts = append(parts, v+"="+m[v])
	}
	return strings.Join(parts, ",")
}

func (m envMap) Set(s string) error {
	v, name, ok := strings.Cut(s, "=")
	switch {
	case !ok:
		return fmt.Errorf("want VAR=name, such as PGPASSWORD=db.password")
	case !validEnvName(v):
		return fmt.Errorf("not an environment variable name: %q", v)
	case frame.ValidName(name) != nil:
		return fmt.Errorf("not a secret name: %q", name)
	case m[v] != "":
		return fmt.Errorf("%s is mapped twice", v)
	}
	m[v] = name
	return nil
}

// execPlan returns the variables exec sets, each to the secret it holds:
// each --env variable, and the environment name (with prefix) of each
// NAME that no --env maps; every secret of s under its environment name
// when neither is given. Two secrets for one variable are an error. It
// is a pure function of its inputs.
func execPlan(prefix string, names []string, mapped envMap, s frame.Shard) (map[string]string, error) {
	if len(names) == 0 && len(mapped) == 0 {
		names = sortedNames(s)
	}
	plan := make(map[string]string, len(names)+len(mapped))
	for v, n := range mapped {
		plan[v] = n
	}
	mappedName := map[string]bool{}
	for _, n := range mapped {
		mappedName[n] = true
	}
	for _, n := range names {
		if mappedName[n] {
			continue
		}
		v := envName(prefix, n)
		if prev, ok := plan[v]; ok && prev != n {
			return nil, fmt.Errorf("secrets %q and %q both map to the environment variable %s", prev, n, v)
		}
		plan[v] = n
	}
	return plan, nil
}

// checkStartupPlan is checkStartupEnv for a plan (variable to secret).
func checkStartupPlan(plan map[string]string, allowed []string) error {
	var bad []string
	for _, v := range sortedKeys(plan) {
		if what := startupVar(v); what != "" && !slices.Contains(allowed, v) {
			bad = append(bad, fmt.Sprintf("secret %q would set %s (%s)", plan[v], v, what))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return &exitError{code: exitFailure,
		err: fmt.Errorf("refusing to start CMD: %s", strings.Join(bad, "; ")),
		hints: []string{"a secret must not choose the code CMD loads; if this one is meant to, allow it by name with --allow-env NAME",
			"or set --prefix, or map the secret to another variable with --env VAR=name"}}
}
