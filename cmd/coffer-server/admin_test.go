package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
)

// statusJSON runs status --json and decodes it.
func (f *fixture) statusJSON(t *testing.T) *statusReport {
	t.Helper()
	out, errOut, code := f.run(t, nil, append([]string{"status", "--json"}, f.Args()...)...)
	if code != 0 {
		t.Fatalf("status --json: exit %d, stderr:\n%s", code, errOut)
	}
	var r statusReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("status --json: %v in\n%s", err, out)
	}
	return &r
}

// TestAdminSocketCommands: on a running server, status, reload, inspect
// and audit answer through the admin socket; reload waits for the
// outcome and exits 1 with the reason when the definition is refused;
// once the server stops, the commands read the store.
func TestAdminSocketCommands(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	p := f.start(t)
	sock := filepath.Join(f.DataDir, "admin.sock")
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v, mode %v; want a socket with mode 0600", err, fi.Mode())
	}
	if _, err := p.fetch("web"); err != nil {
		t.Fatal(err)
	}

	out, errOut, code := f.run(t, nil, append([]string{"status"}, f.Args()...)...)
	if code != 0 || !strings.Contains(out, "server:      running, pid") || !strings.Contains(out, "serving:     serial 1, hash ") {
		t.Errorf("status: exit %d, got\n%s%s", code, out, errOut)
	}
	t.Logf("status:\n%s", out)
	r := f.statusJSON(t)
	if !r.Running || r.Serial != 1 || r.Sessions["ok"] != 1 || r.ClientKeys != 1 || r.LastLoad == nil || !r.LastLoad.Changed {
		t.Errorf("status --json: got %+v, want running, serial 1, 1 ok session, 1 client key, a first load", r)
	}

	reload := func(wantCode int, want string) {
		t.Helper()
		out, errOut, code := f.run(t, nil, append([]string{"reload"}, f.Args()...)...)
		if code != wantCode || !strings.Contains(out+errOut, want) {
			t.Errorf("reload: exit %d, got\n%s%s\nwant exit %d and %q", code, out, errOut, wantCode, want)
		}
	}
	reload(0, "already current: serving serial 1")
	f.next(t, "two", 0)
	reload(0, "loaded: serving serial 2")
	got, err := p.fetch("web")
	if err != nil || wantShard(got, "two") != nil {
		t.Fatalf("after reload: %v, %v; want definition two", err, wantShard(got, "two"))
	}
	// Refused: an older serial, then garbage. Serial 2 stays served.
	f.Write(t, f.Seal(t, f.Author, 1, [32]byte{}, f.defTOML("old", 0)))
	reload(1, "definition refused: coffer: definition serial 1 is not above the current serial 2")
	f.Write(t, []byte("not a sealed definition\n"))
	reload(1, "coffer-server: error: definition refused: ")
	if r := f.statusJSON(t); r.Serial != 2 || r.LastLoad == nil || r.LastLoad.Accepted {
		t.Errorf("after refused reloads: got serial %d, last load %+v; want 2 and a refusal", r.Serial, r.LastLoad)
	}

	out, _, code = f.run(t, nil, append([]string{"audit", "--json", "--limit", "0"}, f.Args()...)...)
	if code != 0 || strings.Count(out, `"outcome":"ok"`) != 2 {
		t.Errorf("audit on a running server: exit %d, got\n%s\nwant 2 ok records", code, out)
	}
	out, _, code = f.run(t, nil, append([]string{"inspect"}, f.Args()...)...)
	if code != 0 || !strings.Contains(out, "serial:     2") || !strings.Contains(out, `"canary"`) {
		t.Errorf("inspect on a running server: exit %d, got\n%s", code, out)
	}

	p.stop()
	out, _, code = f.run(t, nil, append([]string{"status"}, f.Args()...)...)
	if code != 0 || !strings.Contains(out, "server:      not running") || !strings.Contains(out, "serial 2") {
		t.Errorf("status of a stopped server: exit %d, got\n%s", code, out)
	}
	if _, err := os.Lstat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("admin socket after a clean stop: %v, want removed", err)
	}
	reload(1, "no coffer-server is running")
}

// adminRaw sends raw bytes on the admin socket and returns the first
// response line.
func adminRaw(t *testing.T, sock string, req []byte) string {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(req, []byte("\n")) {
		c.(*net.UnixConn).CloseWrite() // the server sees the end of the request
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", req, err)
	}
	return line
}

// TestAdminSocketGarbage: a peer that sends garbage, an unknown command
// or too much gets one error line, and nothing changes.
func TestAdminSocketGarbage(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	p := f.start(t)
	defer p.stop()
	sock := filepath.Join(f.DataDir, "admin.sock")
	for _, tt := range []struct{ name, req, want string }{
		{"not json", "nonsense\n", "admin: bad request: not one JSON object"},
		{"unknown command", `{"cmd":"shutdown"}` + "\n", "admin: bad request: unknown command"},
		{"unknown field", `{"cmd":"status","force":true}` + "\n", "admin: bad request: not one JSON object"},
		{"two requests", `{"cmd":"reload"}{"cmd":"reload"}` + "\n", "admin: bad request: data after the request"},
		{"too long", strings.Repeat("x", 5000), "admin: bad request: longer than 1024 bytes"},
		{"no newline then close", `{"cmd":`, "admin: bad request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var resp adminResponse
			line := adminRaw(t, sock, []byte(tt.req))
			if err := json.Unmarshal([]byte(line), &resp); err != nil || !strings.Contains(resp.Error, tt.want) {
				t.Errorf("got %q, want an error containing %q", line, tt.want)
			}
		})
	}
	if r := f.statusJSON(t); r.Serial != 1 || r.LastLoad == nil || !r.LastLoad.Changed {
		t.Errorf("after garbage: got serial %d, last load %+v; want serial 1 from the start-up load", r.Serial, r.LastLoad)
	}
}

// TestAuditFollow: audit --follow prints the stored records, then each
// new session's record as the running server writes it.
func TestAuditFollow(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	p := f.start(t)
	defer p.stop()
	if _, err := p.fetch("web"); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(serverBin, append([]string{"audit", "--follow", "--json"}, f.Args()...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	lines := make(chan auditLine)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var l auditLine
			if json.Unmarshal(sc.Bytes(), &l) == nil {
				lines <- l
			}
		}
	}()
	next := func() auditLine {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("audit --follow ended")
			}
			return l
		case <-time.After(20 * time.Second):
			t.Fatal("no audit line within 20s")
		}
		return auditLine{}
	}
	if l := next(); l.Outcome != "ok" || l.Name != "web" {
		t.Errorf("stored record: got %+v, want web ok", l)
	}
	// The follower is subscribed once the stored record is out; a fetch
	// now must appear as it is written.
	if _, err := fetchFrom(p.Addr, f.Server.Public(), genKey(t)); !errors.Is(err, coffer.ErrUnknownClient) {
		t.Fatalf("unknown client: %v", err)
	}
	if l := next(); l.Outcome != "unknown-client" {
		t.Errorf("followed record: got %+v, want unknown-client", l)
	}
	if _, err := p.fetch("web"); err != nil {
		t.Fatal(err)
	}
	if l := next(); l.Outcome != "ok" || l.Name != "web" {
		t.Errorf("followed record: got %+v, want web ok", l)
	}
}

// TestAdminPeerRefused: a peer that is neither root, the server's uid nor
// in admin_group is refused by the SO_PEERCRED check, even when the
// socket's mode would let it connect. It needs root, to run the client
// as another user.
func TestAdminPeerRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another uid; TestPeerPolicy covers the decision")
	}
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	open, err := os.MkdirTemp("", "coffer-admin-open")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(open)
	os.Chmod(open, 0o755)
	sock := filepath.Join(open, "a.sock")
	p := f.start(t, "--admin-socket", sock)
	defer func() { p.stop() }()
	os.Chmod(sock, 0o666) // the mistake the credential check must catch
	bin := filepath.Join(open, "coffer-server")
	data, err := os.ReadFile(serverBin)
	if err == nil {
		err = os.WriteFile(bin, data, 0o755)
	}
	conf := filepath.Join(open, "server.toml")
	if err == nil {
		err = os.WriteFile(conf, []byte(testConf), 0o644)
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "status", "--config", conf, "--admin-socket", sock, "--data-dir", f.DataDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "server: admin: permission denied") {
		t.Errorf("status as uid 65534: %v, got\n%s\nwant a refusal", err, out)
	}
	p.Logs.Wait(t, 0, `admin socket: peer refused.*uid=65534`)
	// Root still gets its answer.
	if out, _, code := f.run(t, nil, append([]string{"status", "--admin-socket", sock}, f.Args()...)...); code != 0 || !strings.Contains(out, "running") {
		t.Errorf("status as root: exit %d\n%s", code, out)
	}
	p.stop()

	// With admin_group, the socket is 0660 and the group's, and a member
	// is answered.
	p = f.start(t, "--admin-socket", sock, "--admin-group", "65534")
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Perm() != 0o660 || fi.Sys().(*syscall.Stat_t).Gid != 65534 {
		t.Fatalf("admin socket with admin_group: %v, mode %v; want 0660 and group 65534", err, fi.Mode())
	}
	cmd = exec.Command(bin, "status", "--config", conf, "--admin-socket", sock, "--data-dir", f.DataDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "server:      running") {
		t.Errorf("status as a member of admin_group: %v\n%s", err, out)
	}
}

// TestUnitReloadWaits: the example unit reloads with 'coffer-server
// reload' on the data directory it serves, not with a bare signal.
func TestUnitReloadWaits(t *testing.T) {
	unit, err := os.ReadFile("../../examples/systemd/coffer-server.service")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(unit), "\\\n", " ")
	var start, reload string
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
			start = v
		}
		if v, ok := strings.CutPrefix(line, "ExecReload="); ok {
			reload = v
		}
	}
	if !strings.Contains(reload, "coffer-server reload ") || strings.Contains(reload, "kill") {
		t.Errorf("ExecReload=%s, want coffer-server reload", reload)
	}
	for _, flag := range []string{"--data-dir %S/coffer", "--config /etc/coffer/server.toml"} {
		if !strings.Contains(start, flag) || !strings.Contains(reload, flag) {
			t.Errorf("ExecStart=%s and ExecReload=%s must both pass %s", start, reload, flag)
		}
	}
}

// TestAuditFollowersLeave: a follower that closes its connection frees
// its slot at once, not at the next record: after more followers than
// the bound have come and gone with no new record, one more is served.
func TestAuditFollowersLeave(t *testing.T) {
	f := newFixture(t, "web")
	f.next(t, "one", 0)
	p := f.start(t)
	defer p.stop()
	if _, err := p.fetch("web"); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(f.DataDir, "admin.sock")
	follow := []byte(`{"cmd":"audit","follow":true}` + "\n")
	for i := range 2 * maxAuditFollowers {
		deadline := time.Now().Add(10 * time.Second)
		for {
			line := adminRaw(t, sock, follow) // reads the stored record, then closes
			if strings.Contains(line, `"record"`) {
				break
			}
			if !strings.Contains(line, "too many audit followers") || time.Now().After(deadline) {
				t.Fatalf("follower %d: got %q, want the stored record once earlier followers have left", i, line)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestStatusStopped: status of a stopped server says so, also when the
// store cannot be read (here: no key file) or does not exist.
func TestStatusStopped(t *testing.T) {
	f := newFixture(t, "web")
	out, _, code := f.run(t, nil, append([]string{"status"}, f.Args()...)...)
	if code != 0 || !strings.Contains(out, "server:      not running") || !strings.Contains(out, "store:       no store") {
		t.Errorf("status without a store: exit %d\n%s", code, out)
	}
	os.MkdirAll(f.DataDir, 0o700)
	os.Remove(f.KeyFile)
	out, _, code = f.run(t, nil, append([]string{"status"}, f.Args()...)...)
	if code != 0 || !strings.Contains(out, "server:      not running") || !strings.Contains(out, "store:       not readable: loading the server key") {
		t.Errorf("status without a key file: exit %d\n%s", code, out)
	}
}
