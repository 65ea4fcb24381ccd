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
	b.Run("pipe", func(b *testing.B) {
		rs, drive := newServerBench(b)
		before := rs.srv.ladders.Load()
		b.ReportAllocs()
		for b.Loop() {
			rs.rand.reset()
			c, s := net.Pipe()
			done := make(chan struct{})
			go func() { rs.srv.ServeConn(s); close(done) }()
			drive(c)
			<-done
			c.Close()
		}
		b.ReportMetric(float64(rs.srv.ladders.Load()-before)/float64(b.N), "ladders/op")
	})
	b.Run("tcp", func(b *testing.B) {
		rs, drive := newServerBench(b)
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
		before := rs.srv.ladders.Load()
		b.ReportAllocs()
		for b.Loop() {
			rs.rand.reset()
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			drive(c)
			c.Close()
		}
		b.ReportMetric(float64(rs.srv.ladders.Load()-before)/float64(b.N), "ladders/op")
	})
}

// newServerBench returns a replay server and a function that plays its
// recorded client on a connection and checks the server's replies.
func newServerBench(b *testing.B) (*replayServer, func(net.Conn)) {
	rs := newReplayServer(b, benchShard())
	hello, get, bye := rs.clientFrames[0].Raw, rs.clientFrames[1].Raw, rs.clientFrames[2].Raw
	link, replies := len(rs.serverFrames[0].Raw), len(rs.serverStream)
	buf := make([]byte, replies+1)
	drive := func(c net.Conn) {
		if _, err := c.Write(hello); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf[:link]); err != nil {
			b.Fatal(err)
		}
		c.Write(get)
		if _, err := io.ReadFull(c, buf[link:replies]); err != nil {
			b.Fatal(err)
		}
		c.Write(bye)
		if n, _ := io.ReadFull(c, buf[replies:]); n != 0 {
			b.Fatal("server sent more than the recorded session")
		}
		if !bytes.Equal(buf[:replies], rs.serverStream) {
			b.Fatal("server replies differ from the recorded session")
		}
	}
	return rs, drive
}

// BenchmarkLadder is one K(a,B) through crypto/ecdh and HSalsa20, the
// unit the session costs are counted in.
func BenchmarkLadder(b *testing.B) {
	k, p := testKey(b, 1), testKey(b, 2).Public()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := k.boxKey(&p); err != nil {
			b.Fatal(err)
		}
	}
}
