package main

import (
	"flag"
	"fmt"
	"os/exec"
	"strings"
	"syscall"

	"github.com/coffer-project/coffer/frame"
)

const execUsage = `usage: coffer-client exec [flags] -- CMD [ARG...]

Fetch this client's secrets, put them in the environment under their
environment names, and replace coffer-client with CMD (execve), so no
parent process keeps the secrets. CMD is looked up in PATH before anything
is fetched. The exit status is then CMD's own. With --watch (below)
coffer-client stays CMD's parent instead, to signal or restart it when
the secrets change.

Options:
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
started and the status is 1. They are LD_* and DYLD_*, GCONV_PATH,
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
`

type execFlags struct {
	commonFlags
	prefix   string
	pristine bool
	allowEnv allowList

	execWatchFlags // --watch (supervise.go)
}

func (e *env) execFlagSet() (*flag.FlagSet, *execFlags) {
	var x execFlags
	fs := e.newFlagSet("exec", execUsage)
	x.register(fs)
	fs.StringVar(&x.prefix, "prefix", "", "")
	fs.BoolVar(&x.pristine, "pristine", false, "")
	fs.Var(&x.allowEnv, "allow-env", "")
	x.registerExecWatch(fs)
	return fs, &x
}

func (e *env) exec(args []string) error {
	fs, x := e.execFlagSet()
	if err := fs.Parse(args); err != nil {
		return parseErr(err)
	}
	argv := fs.Args()
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
	sh, err := e.fetchShard(s, nil)
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

// buildEnv returns base without the variables the secrets replace, then
// one NAME=value entry per secret.
func buildEnv(base []string, prefix string, s frame.Shard) ([]string, error) {
	envs, err := envNames(prefix, s)
	if err != nil {
		return nil, err
	}
	taken := make(map[string]bool, len(envs))
	for _, e := range envs {
		taken[e] = true
	}
	out := make([]string, 0, len(base)+len(envs))
	for _, kv := range base {
		if name, _, _ := strings.Cut(kv, "="); !taken[name] {
			out = append(out, kv)
		}
	}
	for _, n := range sortedNames(s) {
		b, err := envText(n, s[n])
		if err != nil {
			return nil, err
		}
		out = append(out, envs[n]+"="+string(b))
		clear(b)
	}
	return out, nil
}
