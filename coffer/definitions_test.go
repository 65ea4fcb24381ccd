package coffer

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/coffer-project/coffer/frame"
)

// splitFixture is a fixture whose 6 clients are served from two
// definitions: clients 0-2 from "default" (the fixture's snapshot, serial
// 7) and clients 3-5 from "team-a".
func splitFixture(t *testing.T) (*fixture, func(serial uint64) *Snapshot) {
	t.Helper()
	fx := newFixture(t, 6, noLimits)
	teamA := func(serial uint64) *Snapshot {
		ms := &memShards{shards: map[PublicKey]frame.Shard{}}
		sn := &Snapshot{Name: "team-a", Version: Version{Serial: serial, Hash: [32]byte{byte(serial)}}, Clients: map[PublicKey]string{}, Shards: ms}
		for i := 3; i < 6; i++ {
			k := fx.clients[i].Public()
			sn.Clients[k] = fmt.Sprintf("client-%d", i)
			ms.shards[k] = frame.Shard{"gen": {Kind: frame.KindInt, Int: int64(serial)}}
		}
		return sn
	}
	def := &Snapshot{Version: fx.snap.Version, Clients: map[PublicKey]string{}, Shards: fx.shards}
	for i := 0; i < 3; i++ {
		def.Clients[fx.clients[i].Public()] = fmt.Sprintf("client-%d", i)
	}
	fx.srv.Swap(def)
	if _, err := fx.srv.Install(teamA(1)); err != nil {
		t.Fatal(err)
	}
	return fx, teamA
}

// TestInstallDefinitions: a server with two definitions answers each
// client from its own, names the definition in OkGet (absent for
// "default"), and replacing one leaves the other as it was.
func TestInstallDefinitions(t *testing.T) {
	fx, teamA := splitFixture(t)
	check := func(i int, def string, serial uint64) {
		t.Helper()
		r, err := fx.fetch(t, fx.config(i))
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if r.Definition != def || r.Version.Serial != serial {
			t.Fatalf("client %d: got definition %q serial %d, want %q serial %d", i, r.Definition, r.Version.Serial, def, serial)
		}
	}
	check(0, "default", 7)
	check(4, "team-a", 1)

	prev, err := fx.srv.Install(teamA(2))
	if err != nil || prev == nil || prev.Version.Serial != 1 {
		t.Fatalf("Install team-a 2: prev %v, err %v; want the serial 1 snapshot", prev, err)
	}
	<-prev.Released()
	check(4, "team-a", 2)
	check(1, "default", 7)

	got := fx.srv.Installed()
	if len(got) != 2 || got[0].Name != "default" || got[1].Name != "team-a" || got[1].Version.Serial != 2 || got[1].ClientKeys != 3 {
		t.Fatalf("Installed() = %+v", got)
	}

	t.Run("client in two definitions", func(t *testing.T) {
		ms := &memShards{shards: map[PublicKey]frame.Shard{}}
		k := fx.clients[1].Public() // already in "default"
		sn := &Snapshot{Name: "team-b", Version: Version{Serial: 1}, Clients: map[PublicKey]string{k: "thief"}, Shards: ms}
		_, err := fx.srv.Install(sn)
		if !errors.Is(err, ErrClientInTwoDefinitions) || !strings.Contains(err.Error(), `"default"`) || !strings.Contains(err.Error(), `"team-b"`) {
			t.Fatalf("Install of a key served by another definition: %v; want ErrClientInTwoDefinitions naming both", err)
		}
		if n := len(fx.srv.Installed()); n != 2 {
			t.Fatalf("a refused Install changed the installed set: %d definitions", n)
		}
		check(1, "default", 7)
	})

	t.Run("bad name", func(t *testing.T) {
		if _, err := fx.srv.Install(&Snapshot{Name: "Team A", Version: Version{Serial: 1}}); err == nil {
			t.Fatal("Install accepted the name \"Team A\"")
		}
	})

	t.Run("remove", func(t *testing.T) {
		prev := fx.srv.Remove("team-a")
		if prev == nil || prev.Version.Serial != 2 {
			t.Fatalf("Remove returned %v", prev)
		}
		<-prev.Released()
		if _, err := fx.fetch(t, fx.config(4)); !errors.Is(err, ErrUnknownClient) {
			t.Fatalf("client of a removed definition: %v, want ErrUnknownClient", err)
		}
		check(2, "default", 7)
	})
}

// TestInstallWave: a wave of sessions of both definitions runs while one
// definition is replaced again and again. Every answer is one whole
// version of the client's own definition, and the other definition's
// answers never change.
func TestInstallWave(t *testing.T) {
	fx, teamA := splitFixture(t)
	const rounds, perRound = 8, 24
	var wg sync.WaitGroup
	errs := make(chan error, rounds*perRound)
	for r := range rounds {
		for j := range perRound {
			i := j % 6
			wg.Go(func() {
				res, err := fx.fetch(t, fx.config(i))
				switch {
				case err != nil:
					errs <- fmt.Errorf("client %d: %w", i, err)
				case i < 3 && (res.Definition != "default" || res.Version.Serial != 7 || string(res.Shard["token"].Text) != fmt.Sprintf("secret-%d", i)):
					errs <- fmt.Errorf("client %d: got %q serial %d", i, res.Definition, res.Version.Serial)
				case i >= 3 && (res.Definition != "team-a" || res.Shard["gen"].Int != int64(res.Version.Serial)):
					errs <- fmt.Errorf("client %d: got %q serial %d with gen %d", i, res.Definition, res.Version.Serial, res.Shard["gen"].Int)
				}
			})
		}
		if _, err := fx.srv.Install(teamA(uint64(2 + r))); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestMinSerialPerDefinition: the client's floor is looked up by the
// definition the answer names, so a serial remembered for one definition
// never refuses another's lower serial, and a lower serial of the same
// definition is refused as a rollback.
func TestMinSerialPerDefinition(t *testing.T) {
	fx, _ := splitFixture(t)
	floors := map[string]uint64{"default": 7, "team-a": 5}
	var asked []string
	cfg := func(i int) *ClientConfig {
		c := fx.config(i)
		c.MinSerialFor = func(def string) uint64 { asked = append(asked, def); return floors[def] }
		return c
	}
	if r, err := fx.fetch(t, cfg(0)); err != nil || r.Version.Serial != 7 {
		t.Fatalf("default at its floor: %v, %v", r, err)
	}
	if _, err := fx.fetch(t, cfg(3)); !errors.Is(err, ErrRollback) {
		t.Fatalf("team-a serial 1 under a floor of 5: %v, want ErrRollback", err)
	}
	if strings.Join(asked, ",") != "default,team-a" {
		t.Fatalf("MinSerialFor asked for %q, want default then team-a", asked)
	}
}

// TestPrecomputeFrom: a reload's snapshot copies K(S,C) of the keys the
// installed one holds and computes the others; the table is the one a
// full computation gives, every client is served from it, and a
// released snapshot is never read (its table is zeroed).
func TestPrecomputeFrom(t *testing.T) {
	fx := newFixture(t, 4, noLimits)
	key := func(i int) PublicKey { return fx.clients[i].Public() }
	names := func(is ...int) map[PublicKey]string {
		m := map[PublicKey]string{}
		for _, i := range is {
			m[key(i)] = fmt.Sprintf("client-%d", i)
		}
		return m
	}
	old := &Snapshot{Version: Version{Serial: 8}, Clients: names(0, 1, 2), Shards: fx.shards}
	fx.srv.Swap(old)
	next := &Snapshot{Version: Version{Serial: 9}, Clients: names(1, 2, 3), Shards: fx.shards}
	next.PrecomputeFrom(fx.key, old)
	want := &Snapshot{Clients: names(1, 2, 3)}
	want.Precompute(fx.key)
	for k, e := range want.table {
		if got := next.table[k]; got == nil || got.ss != e.ss || got.name != e.name {
			t.Fatalf("entry of %s differs from a full computation", k.Fingerprint())
		}
	}
	if prev := fx.srv.Swap(next); prev == nil {
		t.Fatal("no previous snapshot")
	} else {
		<-prev.Released()
	}
	for _, i := range []int{1, 2, 3} {
		if r, err := fx.fetch(t, fx.config(i)); err != nil || r.Version.Serial != 9 {
			t.Fatalf("client %d after the reload: %v, %v", i, r, err)
		}
	}
	// old is released now and its table zeroed: a snapshot computed
	// from it must not copy zeros.
	third := &Snapshot{Clients: names(1, 2)}
	third.PrecomputeFrom(fx.key, old)
	for k, e := range third.table {
		if e.ss != want.table[k].ss {
			t.Fatal("PrecomputeFrom read a released snapshot's zeroed table")
		}
	}
}

// BenchmarkPrecomputeFrom: the K(S,C) table of a 2,000-client reload
// that keeps every key, computed (full) or copied from the installed
// snapshot (from).
func BenchmarkPrecomputeFrom(b *testing.B) {
	fx := newFixture(b, 1, noLimits)
	clients := map[PublicKey]string{}
	for i := range 2000 {
		k, err := GenerateKey(rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		clients[k.Public()] = fmt.Sprint(i)
	}
	old := &Snapshot{Version: Version{Serial: 8}, Clients: clients, Shards: fx.shards}
	fx.srv.Swap(old)
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			(&Snapshot{Clients: clients}).Precompute(fx.key)
		}
	})
	b.Run("from", func(b *testing.B) {
		for b.Loop() {
			(&Snapshot{Clients: clients}).PrecomputeFrom(fx.key, old)
		}
	})
}
