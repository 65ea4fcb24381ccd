package main

import (
	"flag"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"syscall"

	"github.com/coffer-project/coffer/frame"
)

const execUsage = `usage: coffer-client exec [flags] [NAME...] -- CMD [ARG...]

Fetch this client's secrets (the NAMEs and those --env maps, or all of
them), put them in the environment under their environment names, and
replace coffer-client with CMD (execve), so no parent process keeps the
secrets. CMD is looked up in PATH before anything is fetched. The exit
status is then CMD's own. With --watch (below) coffer-client stays CMD's
parent instead, to signal or restart it when the secrets change.

Options:
  --env VAR=NAME  pass the secret NAME as the variable VAR, exactly (no
                  --prefix), instead of under its environment name;
                  repeatable. With --env or NAMEs, CMD gets only those
  --prefix P      prefix of the environment variable names
  --pristine      start CMD with only the secrets in its environment
  --allow-env NAME
                  let a secret set NAME although it is a start-up variable
                  (repeatable; see below)

Environment names: db.password -> DB_PASSWORD: upper case, '.' and '-'
become '_', a leading digit gets '_' in front, then --prefix. Two names
that map to one variable are an error. A secret replaces an inherited
variable of the same name.

Start-up variables: a secret may not set a variable that makes CMD load
or run other code unless --allow-env names it; otherwise CMD is not
started and the status is 1 (for --env names too). They are LD_* and DYLD_*, GCONV_PATH,
GLIBC_TUNABLES, GETCONF_DIR, LOCPATH, NLSPATH, MALLOC_TRACE; BASH_ENV,
ENV, ZDOTDIR, SHELLOPTS, BASHOPTS, PS4, IFS, CDPATH, BASH_FUNC_*; PATH;
PYTHONSTARTUP, PYTHONPATH, PYTHONHOME, PERL5OPT, PERL5LIB, PERLLIB,
RUBYOPT, RUBYLIB, NODE_OPTIONS, NODE_PATH, JAVA_TOOL_OPTIONS,
_JAVA_OPTIONS, JDK_JAVA_OPTIONS. With --prefix the names change
(APP_LD_PRELOAD is not one).

` + execWatchUsage + `
` + commonUsage + `
Examples:
  coffer-client exec -- /usr/bin/app --listen :8080
  coffer-client exec --watch --out /run/app -- /usr/bin/app --secrets-dir /run/app
  coffer-client exec --watch --restart -- /usr/bin/app
  coffer-client exec --pristine --prefix APP_ --wait 60s -- /usr/bin/app
  coffer-client exec --env PGPASSWORD=db.password -- psql -h db1
`

type execFlags struct {
	commonFlags
	prefix   string
	pristine bool
	allowEnv allowList
	env      envMap
	names    []string // the NAMEs and the names --env maps; none: all

	execWatchFlags // --watch (supervise.go)
}

func (e *env) execFlagSet() (*flag.FlagSet, *execFlags) {
	var x execFlags
	fs := e.newFlagSet("exec", execUsage)
	x.register(fs)
	fs.StringVar(&x.prefix, "prefix", "", "")
	fs.BoolVar(&x.pristine, "pristine", false, "")
	fs.Var(&x.allowEnv, "allow-env", "")
	x.env = envMap{}
	fs.Var(x.env, "env", "")
	x.registerExecWatch(fs)
	return fs, &x
}

func (e *env) exec(args []string) error {
	fs, x := e.execFlagSet()
	names, argv, err := parseExecArgs(fs, args)
	if err != nil {
		return parseErr(err)
	}
	if names, err = checkNameArgs(append(names, mappedNames(x.env)...)); err != nil {
		return err
	}
	x.names = names
	if len(argv) == 0 {
		return usageErr("exec needs a command: coffer-client exec [flags] -- CMD [ARG...]")
	}
	if err := checkPrefix(x.prefix); err != nil {
		return usageErr("%v", err)
	}
	sig, plan, err := x.checkExecWatch(fs, x.prefix)
	if err != nil {
		return err
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return fmt.Errorf("command %q: %w", argv[0], bareErr(err))
	}
	s, err := e.open(fs, &x.commonFlags)
	if err != nil {
		return err
	}
	if x.watch {
		return e.execWatch(fs, x, s, sig, plan, path, argv)
	}
	sh, err := e.fetchShard(s, x.names)
	if err != nil {
		return err
	}
	environ, err := x.childEnv(sh)
	if err != nil {
		return err
	}
	if err := e.commit(s, sh); err != nil {
		return err
	}
	err = syscall.Exec(path, argv, environ)
	return fmt.Errorf("exec %s: %w", path, err)
}

// parseExecArgs splits exec's arguments into the NAMEs and CMD: flags
// and NAMEs up to "--", CMD after it. Without a "--", the first argument
// that is not a flag starts CMD, as before NAMEs existed.
func parseExecArgs(fs *flag.FlagSet, args []string) (names, argv []string, err error) {
	i := slices.Index(args, "--")
	if i < 0 {
		if err := fs.Parse(args); err != nil {
			return nil, nil, err
		}
		return nil, fs.Args(), nil
	}
	names, err = parseInterleaved(fs, args[:i])
	return names, args[i+1:], err
}

// mappedNames returns the secret names --env maps, sorted.
func mappedNames(m envMap) []string {
	var out []string
	for _, v := range sortedKeys(m) {
		out = append(out, m[v])
	}
	return out
}

// positional returns names without those only --env brought in: the
// NAMEs given (names is the NAMEs then the mapped names, deduplicated,
// and a mapped name given as a NAME too gets only its --env variables).
func positional(names []string, m envMap) []string {
	mapped := map[string]bool{}
	for _, n := range m {
		mapped[n] = true
	}
	var out []string
	for _, n := range names {
		if !mapped[n] {
			out = append(out, n)
		}
	}
	return out
}

// buildEnv returns base without the variables plan sets, then one
// VAR=value entry per variable of plan (variable to secret name).
func buildEnv(base []string, plan map[string]string, s frame.Shard) ([]string, error) {
	out := make([]string, 0, len(base)+len(plan))
	for _, kv := range base {
		if name, _, _ := strings.Cut(kv, "="); plan[name] == "" {
			out = append(out, kv)
		}
	}
	for _, v := range sortedKeys(plan) {
		b, err := envText(plan[v], s[plan[v]])
		if err != nil {
			return nil, err
		}
		out = append(out, v+"="+string(b))
		clear(b)
	}
	return out, nil
}
