package hardening_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// A relay sits between a real client (coffer.Fetch) and the real server,
// forwards frame by frame, records both directions and may change one
// frame on its way.

type direction int

const (
	toServer direction = iota
	toClient
)

// mutate may return a replacement for frame i (counted per direction).
type mutate func(dir direction, i int, raw []byte) []byte

// session is the frames of one relayed session, as each side sent them.
type session struct {
	client [][]byte // client -> server, before any mutation
	server [][]byte // server -> client, before any mutation
}

// relayOnce relays one client session to addr, applying m, and returns
// the frames each side sent plus the result of Fetch.
func relayOnce(t testing.TB, addr string, server coffer.PublicKey, key *coffer.PrivateKey, m mutate) (*session, *coffer.Result, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s := &session{}
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		up, err := dialFrom("", addr)
		if err != nil {
			return
		}
		defer up.Close()
		deadline := time.Now().Add(15 * time.Second)
		c.SetDeadline(deadline)
		up.SetDeadline(deadline)
		var inner sync.WaitGroup
		inner.Go(func() { pump(c, up, toServer, &s.client, m); up.(*net.TCPConn).CloseWrite() })
		pump(up, c, toClient, &s.server, m)
		// The server closed (by default right after the last OkGet):
		// close the way to the client too, so that a client waiting for
		// more bytes sees EOF, but keep relaying what the client still
		// sends (its Bye) until it closes.
		c.(*net.TCPConn).CloseWrite()
		inner.Wait()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	res, ferr := coffer.Fetch(ctx, conn, &coffer.ClientConfig{Key: key, Server: server})
	conn.Close()
	wg.Wait()
	return s, res, ferr
}

// pump copies frames from src to dst, recording each as sent and
// forwarding m's replacement. The relay trusts the headers it sees: it
// only ever reads the real client and the real server.
func pump(src, dst net.Conn, dir direction, rec *[][]byte, m mutate) {
	for i := 0; ; i++ {
		var h [frame.HeaderSize]byte
		if _, err := io.ReadFull(src, h[:]); err != nil {
			return
		}
		raw := make([]byte, frame.HeaderSize+(int(h[0])<<8|int(h[1])))
		copy(raw, h[:])
		if _, err := io.ReadFull(src, raw[frame.HeaderSize:]); err != nil {
			return
		}
		*rec = append(*rec, raw)
		out := raw
		if m != nil {
			if r := m(dir, i, raw); r != nil {
				out = r
			}
		}
		if _, err := dst.Write(out); err != nil {
			return
		}
	}
}

// recordSession relays one good session of client through a relay and
// checks that it succeeded.
func recordSession(t testing.TB, p *proc, client string) *session {
	t.Helper()
	s, res, err := relayOnce(t, p.Addr, p.f.Server.Public(), p.f.Clients[client], nil)
	if err != nil {
		t.Fatalf("relayed good session: %v", err)
	}
	if len(res.Shard) == 0 {
		t.Fatal("relayed good session: an empty shard")
	}
	if len(s.client) != 3 || len(s.server) != 2 {
		t.Fatalf("relayed good session: %d client and %d server frames, want Hello, Get, Bye and Link, OkGet", len(s.client), len(s.server))
	}
	return s
}
