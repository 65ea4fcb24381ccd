package coffer_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

// mapShards is the smallest Shards: shards in a map. A real server reads
// them from its store (package shard).
type mapShards map[coffer.PublicKey]frame.Shard

// Shard encodes a fresh copy each time: the server zeroes what it gets.
func (m mapShards) Shard(client coffer.PublicKey, names []string) ([]byte, error) {
	sh := maps.Clone(m[client])
	if len(names) > 0 {
		maps.DeleteFunc(sh, func(n string, _ frame.Value) bool { return !slices.Contains(names, n) })
	}
	return frame.EncodeShard(sh)
}

// snapshot is a definition of one client, "web-1", with two values.
func snapshot(client coffer.PublicKey) *coffer.Snapshot {
	return &coffer.Snapshot{
		Version: coffer.Version{Serial: 1},
		Clients: map[coffer.PublicKey]string{client: "web-1"},
		Shards: mapShards{client: {
			"db_password": {Kind: frame.KindString, Text: []byte("correct horse battery staple")},
			"db_port":     {Kind: frame.KindInt, Int: 5432},
		}},
	}
}

func ExampleServer_Serve() {
	serverKey, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		fmt.Println(err)
		return
	}
	clientKey, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		fmt.Println(err)
		return
	}
	srv := &coffer.Server{Key: serverKey}
	srv.Swap(snapshot(clientKey.Public()))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	// A client holding clientKey and pinning serverKey.Public() can now
	// fetch from l.Addr() (see ExampleFetch).

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Println(err)
	}
	fmt.Println(<-served)
	// Output: coffer: server closed
}

func ExampleFetch() {
	addr, serverPub, clientKey, stop := startServer()
	defer stop()

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := coffer.Fetch(ctx, conn, &coffer.ClientConfig{
		Key:    clientKey,
		Server: serverPub,
		Names:  []string{"db_password"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	v := res.Shard["db_password"]
	fmt.Printf("serial %d, %d value, a %s: ", res.Version.Serial, len(res.Shard), v.Kind)
	os.Stdout.Write(append(v.AppendText(nil), '\n')) // the output edge
	clear(v.Text)
	// Output: serial 1, 1 value, a string: correct horse battery staple
}

// startServer serves snapshot on 127.0.0.1, as ExampleServer_Serve
// shows, and returns what a client needs and a function that stops it.
func startServer() (addr string, server coffer.PublicKey, client *coffer.PrivateKey, stop func()) {
	serverKey, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	if client, err = coffer.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	srv := &coffer.Server{Key: serverKey}
	srv.Swap(snapshot(client.Public()))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(l)
	return l.Addr().String(), serverKey.Public(), client, func() { srv.Close() }
}
