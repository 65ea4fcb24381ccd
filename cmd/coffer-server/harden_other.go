//go:build !linux

package main

// harden does nothing off Linux, where coffer-server is not supported as
// a service; docs/server.md says to disable core dumps with the service
// manager there.
func harden() error { return nil }

// monotonicUsec is 0 off Linux; systemd does not run there.
func monotonicUsec() int64 { return 0 }
