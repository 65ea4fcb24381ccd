package coffer_test

import (
	"fmt"
	"slices"
	"testing"

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
