//go:build coffer_keyfile

package main

import (
	"crypto/rand"
	"fmt"
	"time"

	"github.com/coffer-project/coffer/coffer"
)

// sealInProcess parses the definition as the companion does and seals it
// with serial 1 for the server.
func sealInProcess(author *coffer.PrivateKey, server coffer.PublicKey, toml []byte) ([]byte, error) {
	if _, err := coffer.ParseDefinition(toml); err != nil {
		return nil, fmt.Errorf("parsing the generated definition: %w", err)
	}
	env := &coffer.Envelope{
		Author:  author.Public(),
		Server:  server,
		Serial:  1,
		Created: time.Now(),
		TOML:    toml,
	}
	return coffer.SealDefinition(author, server, env, rand.Reader)
}
