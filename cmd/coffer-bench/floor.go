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

// The scalar multiplications the server does in one coffer/2 session
// (docs/protocol.md §3; the client-server static key K(S,C) is
// precomputed when a definition loads): three variable-base ones, K(S,Ce),
// K(Se,Ce) and K(Se,C), which nothing makes cheaper than a ladder, and one
// fixed-base one, the ephemeral Se, which precomputed tables make about
// 2.5x cheaper. The floor counts each at its cheapest known cost. It
// leaves out the session's ML-KEM-768 encapsulation (about 90 us more per
// session in BenchmarkServerSession: docs/benchmarks.md), which TLS 1.3
// with X25519MLKEM768 pays as well.
const (
	laddersPerSession   = 3
	fixedBasePerSession = 1
)

// measureX25519 returns the cost of one X25519 scalar multiplication
// with a cached *ecdh.PrivateKey (the server's hot path), in thread CPU
// time, for each of rounds rounds of at least d.
func measureX25519(rounds int, d time.Duration) ([]time.Duration, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	peer, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	pub := peer.PublicKey()
	return measureCPU(rounds, d, func() error {
		_, err := priv.ECDH(pub)
		return err
	})
}

// measureFixedBase returns the cost of one fixed-base multiplication,
// clamp(k)·B on edwards25519 mapped to its Montgomery u (what coffer does
// for Se), in thread CPU time, for each of rounds rounds of at least d.
func measureFixedBase(rounds int, d time.Duration) ([]time.Duration, error) {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return nil, err
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

// measureCPU returns the thread CPU time of one call of op in each of
// rounds rounds of at least d.
func measureCPU(rounds int, d time.Duration, op func() error) ([]time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var per []time.Duration
	for range max(rounds, 1) {
		n := 0
		start := threadCPU()
		for threadCPU()-start < d {
			for range 32 {
				if err := op(); err != nil {
					return nil, err
				}
			}
			n += 32
		}
		per = append(per, (threadCPU()-start)/time.Duration(n))
	}
	return per, nil
}

// floorTimer times the floor's scalar multiplications at the start of a
// run and again at its end, and reports the median of all rounds, so one
// busy moment on a shared machine does not set the floor.
type floorTimer struct {
	ladder, fixedBase []time.Duration
}

func (ft *floorTimer) measure() error {
	x, err := measureX25519(5, 100*time.Millisecond)
	if err != nil {
		return err
	}
	fb, err := measureFixedBase(5, 100*time.Millisecond)
	if err != nil {
		return err
	}
	ft.ladder, ft.fixedBase = append(ft.ladder, x...), append(ft.fixedBase, fb...)
	return nil
}

func medianDuration(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	d = slices.Clone(d)
	slices.Sort(d)
	return d[len(d)/2]
}
