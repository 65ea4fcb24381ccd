// Package hardening holds the adversarial tests of coffer-server (issue 7): hostile bytes, replays, floods, crashes and bad files, run against the real binaries.
package hardening
