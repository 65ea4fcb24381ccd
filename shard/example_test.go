package shard_test

import (
	"crypto/sha256"
	"fmt"
	"log"
	"os"

	"github.com/coffer-project/coffer/shard"
)

func Example() {
	dir, _ := os.MkdirTemp("", "coffer-example")
	defer os.RemoveAll(dir)
	var badgerKey, sealKey [32]byte // from coffer.DeriveStoreKeys
	st, err := shard.Open(dir, &badgerKey, &sealKey, shard.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	fmt.Println("condition:", st.Condition())

	sealed := []byte("the binary sealed definition file")
	v := shard.Version{Serial: 1, Hash: sha256.Sum256(sealed)}
	client := shard.Client{Key: [32]byte{1}, Name: "web-1", Values: map[string][]byte{"DB_PASSWORD": []byte("encoded value")}}
	clients := func(yield func(shard.Client, error) bool) { yield(client, nil) }
	prev, err := st.Import(v, sealed, clients)
	if err != nil {
		log.Fatal(err)
	}
	_ = st.DropGeneration(prev) // once no session reads it; 0 drops nothing

	cur, gen, _ := st.Current()
	values, err := st.Shard(gen, client.Key, nil)
	fmt.Println("serial:", cur.Serial, "values:", len(values), err)
	// Output:
	// condition: first-run
	// serial: 1 values: 1 <nil>
}
