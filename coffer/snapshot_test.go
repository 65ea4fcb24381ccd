package coffer

import "testing"

// TestPrecompute checks that Swap installs a table Precompute made with
// the server's key as is, and computes a new one for any other key.
func TestPrecompute(t *testing.T) {
	server, other := testKey(t, 1), testKey(t, 2)
	client := testKey(t, 3).Public()
	tests := []struct {
		name  string
		key   *PrivateKey // given to Precompute
		reuse bool
	}{
		{"the server's key", server, true},
		{"another key", other, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sn := &Snapshot{Clients: map[PublicKey]string{client: "web"}}
			sn.Precompute(tt.key)
			before := sn.table[client]
			(&Server{Key: server}).Swap(sn)
			got := sn.table[client]
			if got == nil {
				t.Fatal("got no table entry for the client")
			}
			if reused := got == before; reused != tt.reuse {
				t.Errorf("got table reused %v, want %v", reused, tt.reuse)
			}
			ss, err := server.boxKey(&client)
			if err != nil {
				t.Fatal(err)
			}
			if got.ss != *ss || got.name != "web" {
				t.Errorf("got entry for %q with the wrong key, want K(S,C) of the server's key for %q", got.name, "web")
			}
		})
	}
}
