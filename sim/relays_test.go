package sim

import (
	"crypto/sha256"
	"slices"
	"testing"

	"github.com/kadlan/kadlan/overlay/relaychoice"
)

// TestRelaysAreRelayChoice: the simulator's relays for a node are what the
// node's own rule (relaychoice.Choose, which dht's relayNeighbours calls)
// picks when it is handed every node as a candidate, and the node's relay
// count is the simulator's default.
func TestRelaysAreRelayChoice(t *testing.T) {
	if d := sha256.Sum256([]byte("x")); KeyOf([]byte("x")).Bytes() != d {
		t.Fatal("Key.Bytes is not the SHA-256 digest")
	}
	c := Defaults()
	if c.Relays != relaychoice.Count {
		t.Errorf("default relays %d, the node keeps %d", c.Relays, relaychoice.Count)
	}
	n := NewNet(3000, 20, 5)
	nat := natOf(n, c)
	all := make([]relaychoice.Candidate[int32], n.N())
	for i := range all {
		all[i] = relaychoice.Candidate[int32]{ID: int32(i), Key: n.Space.Keys[i].Bytes(), Usable: nat[i] == natPublic}
	}
	checked := 0
	for b := int32(0); b < int32(n.N()) && checked < 200; b++ {
		if nat[b] == natPublic {
			continue
		}
		checked++
		got := relaysOf(n, nat, b, c.Relays)
		want := relaychoice.Choose(n.Space.Keys[b].Bytes(), all, c.Relays)
		if len(got) != relaychoice.Count || !slices.Equal(got, want) {
			t.Fatalf("node %d: sim relays %v, relaychoice.Choose %v", b, got, want)
		}
	}
	if checked == 0 {
		t.Fatal("no NATed node")
	}
}
