package main

import (
	"strings"

	"github.com/coffer-project/coffer/coffer"
)

// checkKept verifies at start the kept sealed file of the served
// definition, the source of every rebuild, so that damage to it is found
// now rather than on the day the store needs rebuilding. A damaged or
// missing kept file is replaced by the file at the definition path when
// that file is the same definition (same hash); otherwise the error is
// logged loudly at every start, and inspect shows it.
func (l *loader) checkKept() {
	err := l.st.CheckKept()
	if err == nil {
		return
	}
	v, _, _ := l.st.Current()
	if file, ferr := coffer.ReadSealedFile(l.path); ferr == nil && coffer.SealedHash(file) == v.Hash {
		if kerr := l.st.Keep(file); kerr == nil {
			l.log.Warn("the kept sealed file was damaged or missing; kept the definition file again",
				"reason", err, "path", l.path, "serial", v.Serial)
			return
		}
	}
	l.log.Error("THE KEPT SEALED FILE IS DAMAGED OR MISSING: a damaged store cannot be rebuilt until the definition is put back",
		"reason", err, "serial", v.Serial, "hash", hashPrefix(v.Hash),
		"fix", "put the sealed definition of this serial at "+l.path+" and run 'coffer-server reload', or seal a newer one")
}

// keptStatus is inspect's line for the kept file's state.
func keptStatus(s string) string {
	if s == "ok" {
		return "ok (the rebuild source matches the served definition)"
	}
	return strings.ToUpper(s) + ": a damaged store cannot be rebuilt; put the sealed definition of the served serial at the definition path and restart or reload the server"
}
