package main

import (
	"flag"
	"os"
	"slices"
)

const getUsage = `usage: coffer-client get [flags] [NAME...]

Fetch this client's secrets (all of them, or the NAMEs) and print them on
stdout, or write them to files. Nothing is written unless the whole shard
arrived and was verified.

Output options:
  --format F      env (default): export NAME='value' lines for sh
                  dotenv: NAME="value" lines (\n \r \\ \" \$ escapes)
                  json: one object of typed values
                  toml: a flat TOML document of typed values
                  raw: exactly one value's bytes, no newline added
  --prefix P      prefix of the environment variable names (env, dotenv)
  --out PATH      without --format: PATH is a directory; write one file per
                  value, named by the secret name, holding exactly its text.
                  With --format: write one file in that format.
                  Files are written privately, then renamed into place.
  --mode MODE     mode of the files written (default 0600; other bits refused)
  --owner USER    owner of the files written (name or uid)
  --group GROUP   group of the files written (name or gid)

` + watchUsage + `
Environment names: db.password -> DB_PASSWORD: upper case, '.' and '-'
become '_', a leading digit gets '_' in front, then --prefix. Two names
that map to one variable are an error.

` + commonUsage + `
Examples:
  eval "$(coffer-client get)"
  PGPASSWORD="$(coffer-client get --format raw db.password)" psql ...
  coffer-client get --format json > /dev/shm/app.json
  coffer-client get --out /run/app --group app --mode 0640 --wait 60s
  coffer-client get --out /run/app --watch --on-change 'systemctl reload app'
`

// outputPlan is where and how get writes the shard, checked before any
// connection is made.
type outputPlan struct {
	format string // "" for a directory
	prefix string
	path   string // "" is stdout
	spec   fileSpec
}

type getFlags struct {
	commonFlags
	format, prefix, out, mode, owner, group string

	watchFlags // --watch (watch.go)
}

func (e *env) getFlagSet() (*flag.FlagSet, *getFlags) {
	var g getFlags
	fs := e.newFlagSet("get", getUsage)
	g.register(fs)
	fs.StringVar(&g.format, "format", "", "")
	fs.StringVar(&g.prefix, "prefix", "", "")
	fs.StringVar(&g.out, "out", "", "")
	fs.StringVar(&g.mode, "mode", "", "")
	fs.StringVar(&g.owner, "owner", "", "")
	fs.StringVar(&g.group, "group", "", "")
	g.registerWatch(fs)
	return fs, &g
}

func (e *env) get(args []string) error {
	fs, g := e.getFlagSet()
	args, err := parseInterleaved(fs, args)
	if err != nil {
		return parseErr(err)
	}
	names, err := checkNameArgs(args)
	if err != nil {
		return err
	}
	plan, err := g.plan(fs, names)
	if err != nil {
		return err
	}
	if err := g.checkSet(fs); err != nil {
		return err
	}
	if g.watch && plan.path == "" {
		return usageErr("--watch needs --out: a file or directory to keep up to date")
	}
	s, err := e.open(fs, &g.commonFlags)
	if err != nil {
		return err
	}
	if g.watch {
		if g.interval, err = g.resolveInterval(fs, s, e.getenv); err != nil {
			return err
		}
	}
	sh, err := e.fetchShard(s, names)
	if err != nil {
		return err
	}
	if err := plan.write(sh, e); err != nil {
		return err
	}
	if err := e.commit(s, sh); err != nil || !g.watch {
		return err
	}
	return e.watchGet(g, s, names, plan, sh)
}

// plan checks the output options against each other and the file system.
func (g *getFlags) plan(fs *flag.FlagSet, names []string) (*outputPlan, error) {
	p := &outputPlan{format: g.format, prefix: g.prefix, path: g.out, spec: privateFile}
	if p.format == "" && p.path == "" {
		p.format = formatEnv
	}
	if p.format != "" && !slices.Contains(formats, p.format) {
		return nil, usageErr("unknown --format %q: want env, dotenv, json, toml or raw", p.format)
	}
	if p.format == formatRaw && len(names) != 1 {
		return nil, usageErr("--format raw writes exactly one value: give exactly one NAME")
	}
	if err := checkPrefix(p.prefix); err != nil {
		return nil, usageErr("%v", err)
	}
	if p.prefix != "" && p.format != formatEnv && p.format != formatDotenv {
		return nil, usageErr("--prefix applies to --format env and dotenv only")
	}
	if p.path == "" {
		if g.mode != "" || g.owner != "" || g.group != "" {
			return nil, usageErr("--mode, --owner and --group apply to --out only")
		}
		return p, nil
	}
	fi, err := os.Stat(p.path)
	switch {
	case p.format == "" && err != nil:
		return nil, usageErr("--out %s: %v (a directory must exist; give --format to write one file)", p.path, bareErr(err))
	case p.format == "" && !fi.IsDir():
		return nil, usageErr("--out %s is not a directory (give --format to write one file)", p.path)
	case p.format != "" && err == nil && fi.IsDir():
		return nil, usageErr("--out %s is a directory: leave out --format to write one file per value", p.path)
	}
	if g.mode != "" {
		if p.spec.mode, err = parseMode(g.mode); err != nil {
			return nil, usageErr("%v", err)
		}
	}
	if p.spec.uid, p.spec.gid, err = lookupOwner(g.owner, g.group); err != nil {
		return nil, usageErr("%v", err)
	}
	return p, nil
}

// write renders the shard and writes it to stdout, a file or a directory.
func (p *outputPlan) write(sh *shard, e *env) error {
	if p.format == "" {
		return writeDir(p.path, sh.values, p.spec)
	}
	var envs map[string]string
	if p.format == formatEnv || p.format == formatDotenv {
		var err error
		if envs, err = envNames(p.prefix, sh.values); err != nil {
			return err
		}
	}
	out, err := render(p.format, sh.values, envs)
	if err != nil {
		return err
	}
	defer clear(out)
	if p.path != "" {
		return writeFileAtomic(p.path, out, p.spec)
	}
	_, err = e.stdout.Write(out)
	return err
}
