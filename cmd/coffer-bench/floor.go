package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"runtime"
	"slices"
	"syscall"
	"time"

	"filippo.io/edwards25519"
)

// rusageThread is RUSAGE_THREAD (Linux): the calling thread's CPU time.
const rusageThread = 1

// threadCPU returns the calling OS thread's user+system CPU time. Timing
// in CPU time rather than wall time keeps other processes on this shared
// machine out of the figure.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// The scalar multiplications the server does in one coffer/1 session
// (docs/protocol.md §3; the client-server static key K(S,C) is
// precomputed when a definition loads): three variable-base ones, K(S,Ce),
// K(Se,Ce) and K(Se,C), which nothing makes cheaper than a ladder, and one
// fixed-base one, the ephemeral Se, which precomputed tables make about
// 2.5x cheaper. The floor counts each at its cheapest known cost.
const (
	laddersPerSession   = 3
	fixedBasePerSession = 1
)

// measureX25519 returns the median cost of one X25519 scalar
// multiplication with a cached *ecdh.PrivateKey (the server's hot path),
// in thread CPU time, over rounds rounds of at least d each.
func measureX25519(rounds int, d time.Duration) (time.Duration, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return 0, err
	}
	peer, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return 0, err
	}
	pub := peer.PublicKey()
	return measureCPU(rounds, d, func() error {
		_, err := priv.ECDH(pub)
		return err
	})
}

// measureFixedBase returns the median cost of one fixed-base
// multiplication, clamp(k)·B on edwards25519 mapped to its Montgomery u
// (what coffer does for Se), in thread CPU time.
func measureFixedBase(rounds int, d time.Duration) (time.Duration, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return 0, err
	}
	return measureCPU(rounds, d, func() error {
		s, err := edwards25519.NewScalar().SetBytesWithClamping(k[:])
		if err != nil {
			return err
		}
		new(edwards25519.Point).ScalarBaseMult(s).BytesMontgomery()
		return nil
	})
}

// measureCPU returns the median thread CPU time of one call of op over
// rounds rounds of at least d each.
func measureCPU(rounds int, d time.Duration, op func() error) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var per []time.Duration
	for range max(rounds, 1) {
		n := 0
		start := threadCPU()
		for threadCPU()-start < d {
			for range 32 {
				if err := op(); err != nil {
					return 0, err
				}
			}
			n += 32
		}
		per = append(per, (threadCPU()-start)/time.Duration(n))
	}
	slices.Sort(per)
	return per[len(per)/2], nil
}
