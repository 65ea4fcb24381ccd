package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/frame"
)

const checkUsage = `usage: coffer-client check [flags]

Diagnose this client's setup, one line per step on stdout: the config
file, the key file and its mode, the pinned server key, the state and
cache files, then every server in turn (reachable, proves the pinned key,
knows this client, serves a fresh definition). It fetches the shard to
prove all of that, but prints only counts, never names or values. There
are no retries; --wait is ignored.

` + connectionUsage + `
Exit status:
  0  every server serves this client
  1  only some servers serve this client
  2  usage or configuration error (flags, config file, key file)
  3  no server serves this client (unreachable, busy or stale)
  4  a server failed authentication or does not know this client

Example:
  coffer-client check --server a:9187,b:9187
`

func (e *env) check(args []string) error {
	var c commonFlags
	fs := e.newFlagSet("check", checkUsage)
	c.register(fs)
	if err := fs.Parse(args); err != nil {
		return parseErr(err)
	}
	if fs.NArg() > 0 {
		return usageErr("check takes no arguments")
	}
	st, err := resolve(fs, &c, e.getenv)
	if err != nil {
		return configErr(err)
	}
	out := e.stdout
	if st.config == "" {
		fmt.Fprintf(out, "config:     none (no %s; flags and environment only)\n", config.DefaultClientConfigPath)
	} else {
		fmt.Fprintf(out, "config:     %s\n", st.config)
	}
	fmt.Fprintf(out, "server key: %s (fingerprint %s)\n", st.serverKey, st.serverKey.Fingerprint())
	key, err := coffer.LoadKeyFile(st.keyFile)
	if err != nil {
		fmt.Fprintf(out, "key file:   %s: FAILED\n", st.keyFile)
		for _, addr := range st.servers {
			fmt.Fprintf(out, "server %s: %s\n", addr, e.dialOnly(addr, st.timeout))
		}
		return configErr(fmt.Errorf("key file: %w", err))
	}
	mode := "?"
	if fi, err := os.Stat(st.keyFile); err == nil {
		mode = fmt.Sprintf("%04o", fi.Mode().Perm())
	}
	fmt.Fprintf(out, "key file:   %s: ok (mode %s), client key %s (fingerprint %s)\n",
		st.keyFile, mode, key.Public(), key.Public().Fingerprint())
	s := &session{settings: st, key: key, floor: st.minSerial}
	if st.state != "" {
		if s.seen, err = readState(st.state); err != nil {
			fmt.Fprintf(out, "state:      %v\n", err)
			return err
		}
		var seen []string
		for k, serial := range s.seen {
			if k.server == st.serverKey {
				seen = append(seen, fmt.Sprintf("serial %d (definition %s)", serial, k.def))
			}
		}
		slices.Sort(seen)
		if len(seen) == 0 {
			seen = []string{"no serial"}
		}
		fmt.Fprintf(out, "state:      %s: %s remembered for this server key\n", st.state, strings.Join(seen, ", "))
	}
	if st.cache != "" {
		p := cachePolicy{server: st.serverKey, floorFor: s.floorFor, maxAge: st.maxAge, now: time.Now()}
		if ce, err := readCache(st.cache, key, p); err != nil {
			fmt.Fprintf(out, "cache:      %v\n", err)
		} else {
			fmt.Fprintf(out, "cache:      %s: usable: serial %d, %d values, fetched %s ago\n",
				st.cache, ce.Version.Serial, len(ce.Shard), time.Since(ce.Fetched).Round(time.Second))
		}
	}
	return e.checkServers(s)
}

// checkServers tries every server once and sums up the outcome as the
// exit status.
func (e *env) checkServers(s *session) error {
	f := &fetcher{cfg: coffer.ClientConfig{Key: s.key, Server: s.serverKey, MinSerial: s.floor, MinSerialFor: s.floorFor}, timeout: s.timeout}
	ok, auth := 0, 0
	for _, addr := range s.servers {
		res, err := f.once(context.Background(), addr, time.Time{})
		var re *coffer.RemoteError
		switch {
		case err == nil:
			ok++
			fmt.Fprintf(e.stdout, "server %s: ok: knows this client; definition %s serial %d, %d values\n",
				addr, res.Definition, res.Version.Serial, len(res.Shard))
		case errors.Is(err, coffer.ErrServerAuth), errors.Is(err, coffer.ErrAuth), errors.Is(err, coffer.ErrUnknownClient):
			auth++
			fmt.Fprintf(e.stdout, "server %s: AUTHENTICATION FAILED: %v\n", addr, err)
		case errors.As(err, &re) && !re.Sealed && re.Code == frame.CodeAuth:
			// What a wrong pinned key gets, but unsealed: it may be forged.
			auth++
			fmt.Fprintf(e.stdout, "server %s: AUTHENTICATION FAILED (unauthenticated reply; wrong --server-key, or forged on the path): %v\n", addr, err)
		case errors.Is(err, coffer.ErrRollback):
			fmt.Fprintf(e.stdout, "server %s: STALE: %v\n", addr, err)
		default:
			fmt.Fprintf(e.stdout, "server %s: FAILED: %v\n", addr, err)
		}
	}
	switch {
	case auth > 0:
		return &exitError{code: exitAuth, err: fmt.Errorf("%d of %d servers failed authentication", auth, len(s.servers))}
	case ok == len(s.servers):
		return nil
	case ok == 0:
		return &exitError{code: exitUnreachable, err: errors.New("no server serves this client")}
	}
	return &exitError{code: exitFailure, err: fmt.Errorf("%d of %d servers serve this client", ok, len(s.servers))}
}

// dialOnly reports whether addr accepts a TCP connection.
func (e *env) dialOnly(addr string, timeout time.Duration) string {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "FAILED: " + err.Error()
	}
	c.Close()
	return "reachable (TCP only; no key to authenticate with)"
}
