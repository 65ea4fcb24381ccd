//go:build tools

package tools

import (
	_ "github.com/BurntSushi/toml"
	_ "github.com/dgraph-io/badger/v4"
	_ "github.com/fxamacker/cbor/v2"
	_ "golang.org/x/crypto/nacl/box"
)
