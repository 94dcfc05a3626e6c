// Package netrectest has deterministic keys and network definitions for
// tests of the packages above netrec.
package netrectest

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// T0 is the tests' "now".
var T0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// Key returns a deterministic Ed25519 key and its address for seed.
func Key(t testing.TB, seed uint64) (crypto.PrivKey, peer.ID) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	seedBytes := make([]byte, 64)
	for i := range seedBytes {
		seedBytes[i] = byte(r.Uint32())
	}
	priv, _, err := crypto.GenerateEd25519Key(bytes.NewReader(seedBytes))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, id
}

// Def returns a network "lan party" on 10.9.0.0/24 owned by owner.
func Def(t testing.TB, owner crypto.PrivKey, private bool) *netrec.Definition {
	t.Helper()
	d, err := netrec.NewDefinition(owner, "lan party", private, netip.MustParsePrefix("10.9.0.0/24"), 0, netrec.BroadcastParams{}, T0)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Peers returns n deterministic addresses (seeds 100, 101, ...).
func Peers(t testing.TB, n int) []peer.ID {
	out := make([]peer.ID, n)
	for i := range out {
		_, out[i] = Key(t, uint64(100+i))
	}
	return out
}

// PeerKey returns the key of an address made by Peers.
func PeerKey(t testing.TB, p peer.ID) crypto.PrivKey {
	for i := range 1000 {
		if k, id := Key(t, uint64(100+i)); id == p {
			return k
		}
	}
	t.Fatal("unknown test peer")
	return nil
}
