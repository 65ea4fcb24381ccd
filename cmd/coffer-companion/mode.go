package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
)

// sealedMode is the mode of a new sealed file. A sealed file is safe to
// publish (only the server and its author can open it), and the server,
// a DynamicUser in the shipped unit, must be able to read it
// (docs/files.md, "Sealed files on disk").
const sealedMode os.FileMode = 0o644

// modeFlag is --mode: an octal mode for a written sealed file.
type modeFlag struct {
	mode os.FileMode
	set  bool
}

func (m *modeFlag) register(fs *flag.FlagSet) { fs.Var(m, "mode", "") }

func (m *modeFlag) String() string { return fmt.Sprintf("%04o", uint32(m.mode)) }

func (m *modeFlag) Set(s string) error {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil || v > 0o777 {
		return errors.New("--mode wants an octal mode such as 0644")
	}
	if v&0o400 == 0 {
		return errors.New("--mode must leave the owner read permission (0400)")
	}
	m.mode, m.set = os.FileMode(v), true
	return nil
}

// forTarget is the mode to write path with: --mode if given, else the
// mode of the regular file already there, else sealedMode.
func (m *modeFlag) forTarget(path string) os.FileMode {
	if m.set {
		return m.mode
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
		return fi.Mode().Perm()
	}
	return sealedMode
}
