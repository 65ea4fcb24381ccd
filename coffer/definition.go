package coffer

import (
	"fmt"
	"time"

	"github.com/coffer-project/coffer/config"
	"github.com/coffer-project/coffer/frame"
)

// DefinitionClient is one client name of a definition: the machines that share it
// (one public key each) and the values they may fetch.
type DefinitionClient struct {
	Name    string
	Keys    []PublicKey
	Values  frame.Shard // its own values and those of the groups it includes
	Include []string    // the [shared] groups it includes (docs/definition.md, "Shared values")
}

// SharedGroup names one [shared.NAME] table and its value names; the
// values themselves are in each including client's Values.
type SharedGroup = config.SharedGroup

// Definition is a parsed and checked secrets definition. ParseDefinition
// fills Clients; OpenDefinition also fills the fields from the sealed
// envelope.
type Definition struct {
	Clients []DefinitionClient // sorted by Name
	Shared  []SharedGroup      // sorted by Name

	Author  AuthorPublicKey // the author key that signed it
	Created time.Time       // informational; never used for ordering
	Forced  bool            // sealed with --force: the previous hash was not checked
	// Name is the signed definition name (Envelope.Name), set by
	// OpenDefinition: DefaultDefinitionName for a file sealed without
	// one. A server loads a file only as the definition of that name.
	Name string
}

// Clear zeroes every value's text. The caller calls it once the values are
// stored; Go cannot promise erasure, but the bytes need not linger.
func (d *Definition) Clear() {
	for _, c := range d.Clients {
		for n, v := range c.Values {
			clear(v.Text)
			delete(c.Values, n)
		}
	}
}

// ParseDefinition parses a TOML definition with config.ParseDefinition and
// checks what config cannot: every public key (format, checksum, low-order
// and non-canonical points), no key used twice, secret names by the
// protocol's rules, and each encoded shard within frame.MaxShardBytes.
// Errors name the line and the client, never a value.
func ParseDefinition(src []byte) (*Definition, error) {
	cd, err := config.ParseDefinition(src)
	if err != nil {
		return nil, err
	}
	defer cd.Clear()
	def := &Definition{Clients: make([]DefinitionClient, 0, len(cd.Clients)), Shared: cd.Shared}
	owner := make(map[PublicKey]string)
	for i := range cd.Clients {
		c, err := convertClient(src, &cd.Clients[i], owner)
		def.Clients = append(def.Clients, c) // on error too, so that Clear reaches its values
		if err != nil {
			def.Clear()
			return nil, err
		}
	}
	return def, nil
}

// convertClient parses the keys and converts the values of one client.
// owner maps each key seen so far to its client name.
func convertClient(src []byte, cc *config.DefinitionClient, owner map[PublicKey]string) (DefinitionClient, error) {
	c := DefinitionClient{Name: cc.Name, Keys: make([]PublicKey, 0, len(cc.Keys)), Include: cc.Include}
	keyErr := func(i int, err error) error {
		line := config.Line(src, "clients", cc.Name)
		return fmt.Errorf("coffer: definition: line %d: client %q, key %d: %w", line, cc.Name, i+1, err)
	}
	for i, text := range cc.Keys {
		k, err := ParsePublicKey(text)
		if err != nil {
			return c, keyErr(i, err)
		}
		if other, dup := owner[k]; dup {
			if other == cc.Name {
				return c, keyErr(i, fmt.Errorf("key %s is listed twice", k))
			}
			return c, keyErr(i, fmt.Errorf("key %s is also listed for client %q", k, other))
		}
		owner[k] = cc.Name
		c.Keys = append(c.Keys, k)
	}
	for n, v := range cc.Values {
		if err := frame.ValidName(n); err != nil {
			return c, fmt.Errorf("coffer: definition: client %q: %w", cc.Name, err)
		}
		if v.Kind == frame.KindInvalid || v.Kind > frame.KindLocalTime {
			return c, fmt.Errorf("coffer: definition: client %q, value %q: unknown value kind", cc.Name, n)
		}
	}
	// config parses into the protocol's own values: the map is c's now,
	// not copied (a copy was a tenth of opening a definition).
	c.Values, cc.Values = cc.Values, nil
	if shardBound(c.Values) <= frame.MaxShardBytes {
		return c, nil
	}
	enc, err := frame.EncodeShard(c.Values)
	if err != nil {
		return c, fmt.Errorf("coffer: definition: client %q: %w", cc.Name, err)
	}
	size := len(enc)
	clear(enc)
	if size > frame.MaxShardBytes {
		line := config.Line(src, cc.Name)
		return c, fmt.Errorf("coffer: definition: line %d: client %q: shard of %d bytes exceeds the limit of %d", line, cc.Name, size, frame.MaxShardBytes)
	}
	return c, nil
}

// Parts of shardBound: the longest CBOR head (a type byte and an 8-byte
// length), and the most any value adds to its text: a head, or for the
// tagged kinds the map {t: kind, v: text} with a kind name of at most 16
// bytes and, for a non-finite float, a text of at most 8 bytes that is
// not in Value.Text (frame.Value.MarshalCBOR).
const (
	cborMaxHead   = 9
	valueMaxExtra = 1 + 2 + cborMaxHead + 16 + 2 + cborMaxHead + 8
)

// shardBound returns at least the size frame.EncodeShard gives s, without
// encoding it: encoding every shard of a large definition only to measure
// it was a tenth of a load (docs/server.md, "Load time"). Only a shard
// whose bound passes the limit is encoded and measured exactly.
func shardBound(s frame.Shard) int {
	n := cborMaxHead
	for name, v := range s {
		n += cborMaxHead + len(name) + valueMaxExtra + len(v.Text)
	}
	return n
}

// checkKeys refuses a client key equal to the server's key: a definition
// must not make the server a client. (An author's Ed25519 key cannot be a
// client key: the two kinds never parse as each other.)
func (d *Definition) checkKeys(server PublicKey) error {
	for _, c := range d.Clients {
		for i, k := range c.Keys {
			if k == server {
				return fmt.Errorf("%w: client %q, key %d is the server's key", ErrMalformedDefinition, c.Name, i+1)
			}
		}
	}
	return nil
}
