package coffer_test

import (
	"crypto/rand"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/coffer-project/coffer/coffer"
)

// TestParseDefinitionShared: shared values reach each including client's
// shard, and the definition says which groups exist and who includes them.
func TestParseDefinitionShared(t *testing.T) {
	web, worker := kfKey(t, 0x21).Public(), kfKey(t, 0x22).Public()
	src := fmt.Sprintf(`[clients]
web = %q
worker = %q
[shared.db]
password = %q
[web]
include = ["db"]
port = 1
[worker]
include = ["db"]
`, web, worker, defCanary)
	def, err := coffer.ParseDefinition([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	defer def.Clear()
	for _, c := range def.Clients {
		if got := string(c.Values["password"].Text); got != defCanary {
			t.Errorf("client %s: got password %q", c.Name, got)
		}
		if !slices.Equal(c.Include, []string{"db"}) {
			t.Errorf("client %s: got include %q", c.Name, c.Include)
		}
	}
	if len(def.Clients[0].Values) != 2 || len(def.Clients[1].Values) != 1 {
		t.Errorf("got %d and %d values, want 2 and 1", len(def.Clients[0].Values), len(def.Clients[1].Values))
	}
	if len(def.Shared) != 1 || def.Shared[0].Name != "db" || !slices.Equal(def.Shared[0].Names, []string{"password"}) {
		t.Errorf("got shared %+v", def.Shared)
	}
}

// TestOpenDefinitionShared: the server opens a sealed definition with a
// [shared] group and every including client's shard holds the values.
func TestOpenDefinitionShared(t *testing.T) {
	author, err := coffer.GenerateAuthorKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	server := kfKey(t, 0x23)
	sk, err := server.SealingKey()
	if err != nil {
		t.Fatal(err)
	}
	src := fmt.Sprintf("[clients]\na = %q\nb = %q\n[shared.g]\nx = %q\n[a]\ninclude = [\"g\"]\n[b]\ninclude = [\"g\"]\ny = 1\n",
		kfKey(t, 0x24).Public(), kfKey(t, 0x25).Public(), defCanary)
	file, err := coffer.SealDefinition(author, sk, &coffer.Envelope{Serial: 1, TOML: []byte(src), Created: time.Unix(0, 0)}, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	def, _, err := coffer.OpenDefinition(server, []coffer.AuthorPublicKey{author.Public()}, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer def.Clear()
	for i, want := range []int{1, 2} {
		c := def.Clients[i]
		if len(c.Values) != want || string(c.Values["x"].Text) != defCanary {
			t.Errorf("client %s: got %d values, x = %q; want %d values with the shared x", c.Name, len(c.Values), c.Values["x"].Text, want)
		}
	}
}
