//go:build race

package config_test

// raceEnabled skips the tests that parse definitions at the size limits,
// which take about a minute under the race detector; they run in plain
// `go test`.
const raceEnabled = true
