//go:build !coffer_keyfile

package main

import (
	"errors"

	"github.com/coffer-project/coffer/coffer"
)

// Until coffer.WriteKeyFile and coffer.SealDefinition land (issue 3).
var errNoKeyfile = errors.New("coffer.WriteKeyFile and coffer.SealDefinition are not there yet")

func writeKeyFile(path string, k *coffer.PrivateKey) error { return errNoKeyfile }

func sealInProcess(author *coffer.PrivateKey, server coffer.PublicKey, toml []byte) ([]byte, error) {
	return nil, errNoKeyfile
}
