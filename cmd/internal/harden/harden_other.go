//go:build !linux

package harden

// Process does nothing off Linux, where coffer is not supported as a
// service; docs/security.md says to disable core dumps with the service
// manager there.
func Process() error { return nil }
