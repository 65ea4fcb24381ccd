package main

import (
	"flag"
	"fmt"
	"os"
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

Environment names: db.password -> DB_PASSWORD: upper case, '.' and '-'
become '_', a leading digit gets '_' in front, then --prefix. Two names
that map to one variable are an error. A secret replaces an inherited
variable of the same name.

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

	execWatchFlags // --watch (supervise.go)
}

func (e *env) execFlagSet() (*flag.FlagSet, *execFlags) {
	var x execFlags
	fs := e.newFlagSet("exec", execUsage)
	x.register(fs)
	fs.StringVar(&x.prefix, "prefix", "", "")
	fs.BoolVar(&x.pristine, "pristine", false, "")
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
	var base []string
	if !x.pristine {
		base = os.Environ()
	}
	environ, err := buildEnv(base, x.prefix, sh.values)
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
