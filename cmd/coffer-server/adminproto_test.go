package main

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseAdminRequest(t *testing.T) {
	since := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name, line string
		want       adminRequest
		err        string
	}{
		{"status", `{"cmd":"status"}`, adminRequest{Cmd: adminStatus}, ""},
		{"reload", `{"cmd":"reload"}`, adminRequest{Cmd: adminReload}, ""},
		{"inspect", ` {"cmd":"inspect"} `, adminRequest{Cmd: adminInspect}, ""},
		{"audit", `{"cmd":"audit","since":"2026-01-02T03:04:05Z","limit":5,"follow":true}`,
			adminRequest{Cmd: adminAudit, Since: since, Limit: 5, Follow: true}, ""},
		{"audit limit at the bound", `{"cmd":"audit","limit":10000000}`, adminRequest{Cmd: adminAudit, Limit: maxAdminAuditLimit}, ""},
		{"audit limit past the bound", `{"cmd":"audit","limit":10000001}`, adminRequest{}, "limit out of range"},
		{"negative limit", `{"cmd":"audit","limit":-1}`, adminRequest{}, "limit out of range"},
		{"follow on status", `{"cmd":"status","follow":true}`, adminRequest{}, "for audit only"},
		{"unknown command", `{"cmd":"stop"}`, adminRequest{}, "unknown command"},
		{"no command", `{}`, adminRequest{}, "unknown command"},
		{"unknown field", `{"cmd":"status","x":1}`, adminRequest{}, "not one JSON object"},
		{"array", `["status"]`, adminRequest{}, "not one JSON object"},
		{"trailing", `{"cmd":"status"}x`, adminRequest{}, "data after the request"},
		{"two objects", `{"cmd":"status"}{"cmd":"reload"}`, adminRequest{}, "data after the request"},
		{"at the size bound", `{"cmd":"status"}` + strings.Repeat(" ", maxAdminRequestBytes-16), adminRequest{Cmd: adminStatus}, ""},
		{"one past the size bound", `{"cmd":"status"}` + strings.Repeat(" ", maxAdminRequestBytes-15), adminRequest{}, "longer than 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseAdminRequest([]byte(tt.line))
			if tt.err != "" {
				if !errors.Is(err, errAdminRequest) || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("got %v, want errAdminRequest containing %q", err, tt.err)
				}
				return
			}
			if err != nil || got.Cmd != tt.want.Cmd || !got.Since.Equal(tt.want.Since) || got.Limit != tt.want.Limit || got.Follow != tt.want.Follow {
				t.Errorf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzAdminRequest: no input panics; a refused one is errAdminRequest and
// its text never quotes the input; an accepted one is a known command.
func FuzzAdminRequest(f *testing.F) {
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := parseAdminRequest(line)
		if err != nil {
			if !errors.Is(err, errAdminRequest) {
				t.Fatalf("error %v is not errAdminRequest", err)
			}
			if r != (adminRequest{}) {
				t.Fatalf("a refused request returned %+v", r)
			}
			if len(line) >= 8 && strings.Contains(err.Error(), string(line)) {
				t.Fatalf("error %q quotes the input", err)
			}
			return
		}
		switch r.Cmd {
		case adminStatus, adminReload, adminInspect, adminAudit:
		default:
			t.Fatalf("accepted unknown command %q", r.Cmd)
		}
		if r.Limit < 0 || r.Limit > maxAdminAuditLimit {
			t.Fatalf("accepted limit %d", r.Limit)
		}
	})
}

func TestPeerPolicy(t *testing.T) {
	groups := func(uid uint32) []uint32 {
		if uid == 1002 {
			return []uint32{10, 500}
		}
		return nil
	}
	tests := []struct {
		name     string
		p        peerPolicy
		uid, gid uint32
		want     bool
	}{
		{"root", peerPolicy{self: 999}, 0, 0, true},
		{"the server's uid", peerPolicy{self: 999}, 999, 999, true},
		{"another uid, no group", peerPolicy{self: 999}, 1000, 500, false},
		{"primary gid is the admin group", peerPolicy{self: 999, group: 500, hasGroup: true}, 1001, 500, true},
		{"supplementary admin group", peerPolicy{self: 999, group: 500, hasGroup: true, groupsOf: groups}, 1002, 1002, true},
		{"not in the admin group", peerPolicy{self: 999, group: 500, hasGroup: true, groupsOf: groups}, 1003, 1003, false},
		{"group 0 not configured", peerPolicy{self: 999}, 1004, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.allowed(tt.uid, tt.gid); got != tt.want {
				t.Errorf("allowed(%d, %d) = %v, want %v", tt.uid, tt.gid, got, tt.want)
			}
		})
	}
}

func TestDecideRoute(t *testing.T) {
	absent := errNoAdmin
	denied := errors.New("admin socket: permission denied")
	tests := []struct {
		name       string
		dialed     bool
		dialErr    error
		serverRuns bool
		want       adminRoute
	}{
		{"socket answers", true, nil, true, routeSocket},
		{"no socket, no server", false, absent, false, routeStore},
		{"no socket, server runs (older server or other path)", false, absent, true, routeRefused},
		{"permission denied, server runs", false, denied, true, routeRefused},
		{"permission denied, no server", false, denied, false, routeRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := decideRoute(tt.dialed, tt.dialErr, tt.serverRuns); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestListenAdmin: the socket appears 0600; a stale socket is replaced; a
// file that is not a socket, or a socket a live server answers on, is
// left alone with an error.
func TestListenAdmin(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "a.sock")
	l, err := listenAdmin(path, peerPolicy{self: uint32(os.Getuid())})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode: %v, %v; want 0600", fi.Mode(), err)
	}
	if _, err := listenAdmin(path, peerPolicy{}); err == nil || !strings.Contains(err.Error(), "another server answers on it") {
		t.Errorf("second server on a live socket: got %v", err)
	}
	l.Close() // SetUnlinkOnClose(false): the file stays, as after a crash
	l2, err := listenAdmin(path, peerPolicy{})
	if err != nil {
		t.Fatalf("stale socket: %v, want it replaced", err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dialing the replaced socket: %v", err)
	}
	c.Close()
	l2.Close()
	plain := filepath.Join(dir, "file")
	os.WriteFile(plain, []byte("keep"), 0o644)
	if _, err := listenAdmin(plain, peerPolicy{}); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("regular file: got %v", err)
	}
	if b, _ := os.ReadFile(plain); string(b) != "keep" {
		t.Errorf("regular file changed to %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("directory holds %d entries, want 2 (no temporary directory left)", len(ents))
	}
}
