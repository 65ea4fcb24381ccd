//go:build !coffer_keyfile

package main

import (
	"errors"

	"github.com/coffer-project/coffer/coffer"
)

// Until coffer.SealDefinition lands (issue 3).
var errNoKeyfile = errors.New("coffer.SealDefinition is not there yet: use -companion")

func sealInProcess(author *coffer.PrivateKey, server coffer.PublicKey, toml []byte) ([]byte, error) {
	return nil, errNoKeyfile
}
