// Package config parses TOML into typed values: the secrets definition and
// the server and client configs.
//
// Parsers take bytes, not paths, so they can be fuzzed. The package is a
// leaf: it imports neither coffer nor frame, holds key file paths and
// public key text but never keys, and reports errors by line, column and
// key name, never by quoting a value (docs/definition.md).
package config
