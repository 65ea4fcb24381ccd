// Package harden keeps a process that holds keys or secrets out of core
// dumps and out of reach of ptrace (docs/security.md). Every coffer
// program calls Process first thing in main.
package harden
