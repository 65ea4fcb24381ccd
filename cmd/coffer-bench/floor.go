package main

import (
	"crypto/ecdh"
	"crypto/rand"
	"runtime"
	"slices"
	"syscall"
	"time"
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

// scalarMultsPerSession is the number of X25519 scalar multiplications
// the server does in one coffer/1 session of the reviewed flow
// (/work/shared/design/protocol.md, performance notes): the client-server
// static key is precomputed when a definition loads, so only ephemeral
// ones remain.
const scalarMultsPerSession = 4

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
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var per []time.Duration
	for range max(rounds, 1) {
		n := 0
		start := threadCPU()
		for threadCPU()-start < d {
			for range 32 {
				if _, err := priv.ECDH(pub); err != nil {
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
