package bootstrap

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Peers added at runtime (an invite token's) become candidates, are
// saved in the peer cache (0600) for the next start, and ask for a round.
func TestAddPeers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "peers.json")
	ida, _ := peer.Decode(idA)
	idb, _ := peer.Decode(idB)
	b := New(Config{Self: idb, CachePath: p})
	a := ma.StringCast("/ip4/192.0.0.130/tcp/4242")
	b.AddPeers([]peer.AddrInfo{{ID: ida, Addrs: []ma.Multiaddr{a}}, {ID: idb, Addrs: []ma.Multiaddr{a}}})
	if c := b.Candidates(); len(c) != 1 || c[0].ID != ida {
		t.Fatalf("candidates %v", c)
	}
	select {
	case <-b.kick:
	default:
		t.Fatal("AddPeers did not ask for a round")
	}
	st, err := os.Stat(p)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v", st, err)
	}
	if c := New(Config{Self: idb, CachePath: p}).Candidates(); len(c) != 1 || c[0].ID != ida {
		t.Fatalf("after a restart: %v", c)
	}
}
