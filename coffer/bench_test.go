package coffer

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"

	"github.com/coffer-project/coffer/frame"
)

func benchShard() frame.Shard {
	return frame.Shard{
		"db_password": str("correct horse battery staple"),
		"api_token":   str("tok_0123456789abcdef0123456789abcdef"),
		"port":        {Kind: frame.KindInt, Int: 5432},
	}
}

// BenchmarkHandshake runs whole sessions, both sides in this process:
// the client's 5 ladders and the server's 4 per op.
func BenchmarkHandshake(b *testing.B) {
	b.Run("tcp", func(b *testing.B) {
		fx := newFixture(b, 1, noLimits)
		fx.shards.shards[fx.clients[0].Public()] = benchShard()
		cfg := fx.config(0)
		before := fx.srv.ladders.Load()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := fx.fetch(b, cfg); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		fx.close(b)
		b.ReportMetric(float64(fx.srv.ladders.Load()-before)/float64(b.N), "server-ladders/op")
	})
	b.Run("pipe", func(b *testing.B) {
		rs := newReplayServer(b, benchShard())
		cfg := &ClientConfig{Key: rs.client, Server: rs.srv.Key.Public()}
		before := rs.srv.ladders.Load()
		b.ReportAllocs()
		for b.Loop() {
			cc, sc := net.Pipe()
			done := make(chan struct{})
			go func() { rs.srv.ServeConn(sc); close(done) }()
			if _, err := Fetch(context.Background(), cc, cfg); err != nil {
				b.Fatal(err)
			}
			<-done
			cc.Close()
		}
		b.ReportMetric(float64(rs.srv.ladders.Load()-before)/float64(b.N), "server-ladders/op")
	})
}

// BenchmarkServerSession measures the server's side of a session. The
// client is precomputed: the server's randomness repeats per session, so
// a recorded Hello, Get and Bye replay and the client spends no CPU on
// cryptography. "pipe" is the session alone; "tcp" adds accepting a
// loopback connection (and closes the server, so it runs last).
func BenchmarkServerSession(b *testing.B) {
	rs := newReplayServer(b, benchShard())
	hello, get, bye := rs.clientFrames[0].Raw, rs.clientFrames[1].Raw, rs.clientFrames[2].Raw
	replies := len(rs.serverStream)
	// drive plays the recorded client on c.
	drive := func(b *testing.B, c net.Conn, buf []byte) {
		if _, err := c.Write(hello); err != nil {
			b.Fatal(err)
		}
		link := len(rs.serverFrames[0].Raw)
		if _, err := io.ReadFull(c, buf[:link]); err != nil {
			b.Fatal(err)
		}
		c.Write(get)
		if _, err := io.ReadFull(c, buf[link:replies]); err != nil {
			b.Fatal(err)
		}
		c.Write(bye)
		if n, _ := io.ReadFull(c, buf[:1]); n != 0 {
			b.Fatal("server sent more than the recorded session")
		}
	}
	check := func(b *testing.B, buf []byte) {
		if !bytes.Equal(buf[:replies], rs.serverStream) {
			b.Fatal("server replies differ from the recorded session")
		}
	}
	b.Run("pipe", func(b *testing.B) {
		buf := make([]byte, replies+1)
		before := rs.srv.ladders.Load()
		b.ReportAllocs()
		for b.Loop() {
			rs.rand.reset()
			c, s := net.Pipe()
			done := make(chan struct{})
			go func() { rs.srv.ServeConn(s); close(done) }()
			drive(b, c, buf)
			<-done
			c.Close()
		}
		check(b, buf)
		b.ReportMetric(float64(rs.srv.ladders.Load()-before)/float64(b.N), "ladders/op")
	})
	b.Run("tcp", func(b *testing.B) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- rs.srv.Serve(l) }()
		defer func() {
			rs.srv.Close()
			<-served
		}()
		buf := make([]byte, replies+1)
		before := rs.srv.ladders.Load()
		b.ReportAllocs()
		for b.Loop() {
			rs.rand.reset()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			drive(b, c, buf)
			c.Close()
		}
		check(b, buf)
		b.ReportMetric(float64(rs.srv.ladders.Load()-before)/float64(b.N), "ladders/op")
	})
}
