package coffer

import (
	"errors"
	"testing"
	"time"
)

func (fx *sealedFixture) fixedTime() time.Time { return time.Unix(1_700_000_000, 0) }

// TestSealedName: a definition's name is sealed, signed and opened with
// the rest. The default one is sealed without a name (its files are
// byte for byte what they were before names existed); a name that is not
// a definition name is refused at sealing and at opening; and a name
// changed after signing fails the signature, so a file sealed for one
// definition cannot be passed off as another's.
func TestSealedName(t *testing.T) {
	fx := newSealedFixture(t)
	for _, tc := range []struct{ name, want string }{{"", "default"}, {"default", "default"}, {"team-a", "team-a"}} {
		file := fx.seal(t, Envelope{Serial: 1, Name: tc.name})
		def, _, err := OpenDefinition(fx.server, fx.trusted(), file, nil)
		if err != nil {
			t.Fatalf("name %q: %v", tc.name, err)
		}
		def.Clear()
		if def.Name != tc.want {
			t.Errorf("sealed with name %q, opened as %q, want %q", tc.name, def.Name, tc.want)
		}
		env, err := OpenEnvelope(fx.author, file)
		if err != nil || env.Name != tc.want {
			t.Errorf("OpenEnvelope of name %q: %v, %q", tc.name, err, env.Name)
		}
	}
	var signed [2][]byte
	for i, name := range []string{"", "default"} {
		env := &Envelope{Serial: 1, Name: name, TOML: fx.toml(""), Created: fx.fixedTime()}
		if err := env.fill(fx.author.Public(), fx.sealing.X25519); err != nil {
			t.Fatal(err)
		}
		var err error
		if signed[i], err = signedPayload(fx.author, env); err != nil {
			t.Fatal(err)
		}
	}
	if string(signed[0]) != string(signed[1]) {
		t.Error(`a payload sealed with the name "default" differs from one sealed without a name`)
	}

	for _, bad := range []string{"Team", "-a", "a b", string(make([]byte, 65))} {
		if _, err := SealDefinition(fx.author, fx.sealing, &Envelope{Serial: 1, Name: bad, TOML: fx.toml("")}, nil); err == nil {
			t.Errorf("sealed with the name %q", bad)
		}
	}
	for _, bad := range []string{"default", "Team", "x/y"} {
		file := sealRaw(t, fx.author, fx.author.Public(), fx.sealing, fx.body(t, func(b *envelopeBody) { b.Name = bad }))
		if _, _, err := OpenDefinition(fx.server, fx.trusted(), file, nil); !errors.Is(err, ErrMalformedDefinition) {
			t.Errorf("opened a file named %q: %v, want ErrMalformedDefinition", bad, err)
		}
	}

	// The signature covers the name: a body signed as team-a and sent
	// as team-b does not verify.
	signedA := fx.body(t, func(b *envelopeBody) { b.Name = "team-a" })
	asB := fx.body(t, func(b *envelopeBody) { b.Name = "team-b" })
	pt := append(fx.author.sign(signedMessage(signedA)), asB...)
	file := sealPT(t, fx.author, fx.author.Public(), fx.sealing, pt)
	if _, _, err := OpenDefinition(fx.server, fx.trusted(), file, nil); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a renamed file: %v, want ErrBadSignature", err)
	}
}
