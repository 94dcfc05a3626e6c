package dht

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/kadlan/kadlan/overlay/relaychoice"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRelayNeighboursNearestFirst: the node offers AutoRelay its public
// DHT neighbours nearest its own key first, the order of
// relaychoice.Choose (which the simulator also runs), checked here against
// a brute-force XOR ordering of the routing table.
func TestRelayNeighboursNearestFirst(t *testing.T) {
	nodes := newTestNodes(t, 6)
	for _, nd := range nodes[1:] {
		connect(t, nd.Host, nodes[0])
	}
	self := nodes[0]
	waitFor(t, "a full routing table", func() bool { return self.DHT.RoutingTable().Size() == len(nodes)-1 })
	var got []peer.ID
	for _, ai := range self.relayNeighbours() {
		got = append(got, ai.ID)
		if len(ai.Addrs) == 0 {
			t.Errorf("%s offered without a direct address", ai.ID)
		}
	}
	want := self.DHT.RoutingTable().ListPeers()
	me := KademliaKey(self.ID())
	xor := func(p peer.ID) []byte {
		k := KademliaKey(p)
		for i := range k {
			k[i] ^= me[i]
		}
		return k[:]
	}
	slices.SortFunc(want, func(a, b peer.ID) int { return bytes.Compare(xor(a), xor(b)) })
	if !slices.Equal(got, want) {
		t.Fatalf("relay neighbours %v, want nearest first %v", got, want)
	}
	var sent []peer.ID
	for ai := range relayCandidates(context.Background(), self, relaychoice.Count) {
		sent = append(sent, ai.ID)
	}
	if !slices.Equal(sent, want[:relaychoice.Count]) {
		t.Errorf("relay candidates %v, want the %d nearest %v", sent, relaychoice.Count, want[:relaychoice.Count])
	}
}
