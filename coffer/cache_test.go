package coffer_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
	"github.com/coffer-project/coffer/frame"
)

const cacheCanary = "canary-7f3a9c-cache-secret"

func cacheTestKeys(t testing.TB) (client, other *coffer.PrivateKey, server coffer.PublicKey) {
	t.Helper()
	var err error
	if client, err = coffer.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if other, err = coffer.GenerateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	s, err := coffer.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return client, other, s.Public()
}

func cacheTestEntry(server coffer.PublicKey) *coffer.CacheEntry {
	return &coffer.CacheEntry{
		Server:     server,
		Version:    coffer.Version{Serial: 42, Hash: [32]byte{1, 2, 3}},
		Definition: "default",
		Fetched:    time.Unix(1700000000, 0),
		Shard: frame.Shard{
			"db.password": {Kind: frame.KindString, Text: []byte(cacheCanary)},
			"port":        {Kind: frame.KindInt, Int: 5432},
			"ratio":       {Kind: frame.KindFloat, Float: math.Inf(-1)},
			"on":          {Kind: frame.KindBool, Bool: true},
			"day":         {Kind: frame.KindLocalDate, Text: []byte("2024-02-29")},
		},
	}
}

func TestCacheRoundTrip(t *testing.T) {
	client, _, server := cacheTestKeys(t)
	for _, tt := range []struct {
		name string
		e    *coffer.CacheEntry
	}{
		{"values", cacheTestEntry(server)},
		{"empty shard", &coffer.CacheEntry{Server: server, Version: coffer.Version{Serial: 1}, Definition: "default", Fetched: time.Unix(5, 0), Shard: frame.Shard{}}},
		{"named definition", &coffer.CacheEntry{Server: server, Version: coffer.Version{Serial: 3}, Definition: "team-a", Fetched: time.Unix(5, 0), Shard: frame.Shard{}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			file, err := coffer.SealCache(client, tt.e, rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(file, []byte(cacheCanary)) {
				t.Fatal("sealed cache contains the plaintext")
			}
			got, err := coffer.OpenCache(client, file)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.e) {
				t.Errorf("got %+v, want %+v", got, tt.e)
			}
		})
	}
}

func TestCacheRefused(t *testing.T) {
	client, other, server := cacheTestKeys(t)
	file, err := coffer.SealCache(client, cacheTestEntry(server), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(file)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name string
		key  *coffer.PrivateKey
		file []byte
	}{
		{"other key", other, file},
		{"magic", client, flip(0)},
		{"nonce", client, flip(len("coffer-cache1\n") + 3)},
		{"box", client, flip(len(file) / 2)},
		{"tag", client, flip(len(file) - 1)},
		{"truncated", client, file[:len(file)-1]},
		{"header only", client, file[:20]},
		{"empty", client, nil},
		{"extended", client, append(bytes.Clone(file), 0)},
		{"too long", client, make([]byte, coffer.MaxCacheBytes+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := coffer.OpenCache(tt.key, tt.file)
			if err == nil {
				t.Fatalf("got %+v, want an error", got)
			}
			if strings.Contains(err.Error(), cacheCanary) {
				t.Errorf("error %q quotes the secret", err)
			}
		})
	}
	t.Run("sentinel", func(t *testing.T) {
		if _, err := coffer.OpenCache(other, file); !errors.Is(err, coffer.ErrCacheOpen) {
			t.Errorf("got %v, want ErrCacheOpen", err)
		}
	})
}

func FuzzOpenCache(f *testing.F) {
	var seed [32]byte
	client, err := coffer.NewPrivateKey(&seed)
	if err != nil {
		f.Fatal(err)
	}
	file, err := coffer.SealCache(client, cacheTestEntry(coffer.PublicKey{9}), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(file)
	f.Add([]byte("coffer-cache1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := coffer.OpenCache(client, data)
		if err != nil {
			if e != nil {
				t.Error("entry returned with an error")
			}
			return
		}
		if _, err := coffer.SealCache(client, e, rand.Reader); err != nil {
			t.Errorf("accepted entry does not seal again: %v", err)
		}
	})
}
