package dht

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func circuitsVia(n *Node, p peer.ID) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range n.Host.Peerstore().Addrs(p) {
		if isCircuit(a) && relayOf(a) == n.ID().String() {
			out = append(out, a)
		}
	}
	return out
}

// TestRelayVouchesForReservations: a relay names a node that holds a
// reservation on it by the circuit addresses through itself, without the
// node's identify push (client.Reserve advertises nothing, as a push
// dropped by the relay's per-/24 limit), so a third node's DHT lookup finds
// the node and reaches it through the relay; a reservation the relay's
// limits refused, and a node that went away, lose the addresses.
func TestRelayVouchesForReservations(t *testing.T) {
	relay := relayNode(t)
	member := clientNode(t)
	if err := reserve(member.Host, relay); err != nil {
		t.Fatalf("reservation: %v", err)
	}
	if got := circuitsVia(relay, member.ID()); len(got) == 0 {
		t.Fatalf("after the reservation the relay holds %v for the member: no circuit address through itself", relay.Host.Peerstore().Addrs(member.ID()))
	}
	if got := relay.RelayStatus().Serving; got != 1 {
		t.Fatalf("relay status says it serves %d peers, want 1", got)
	}

	other := clientNode(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := other.Host.Connect(ctx, peer.AddrInfo{ID: relay.ID(), Addrs: relay.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the relay in the other node's routing table", func() bool { return other.inRoutingTable(relay.ID()) })
	found, err := other.lookup(ctx, member.ID())
	if err != nil || len(found) == 0 {
		t.Fatalf("lookup of the member: %v, %v", found, err)
	}
	if err := other.Host.Connect(ctx, peer.AddrInfo{ID: member.ID(), Addrs: found}); err != nil {
		t.Fatalf("dialling the member at %v: %v", found, err)
	}

	// Over the per-IP share: the ACL allowed it, the relay's limits
	// refused it; its addresses go within a check.
	var refused peer.ID
	for i := 0; i < 5 && refused == ""; i++ {
		faker := newStranger(t)
		faker.SetStreamHandler(NodeProtocol, handleNodeProtocol)
		if err := reserve(faker, relay); err != nil {
			refused = faker.ID()
		}
	}
	if refused == "" {
		t.Fatal("no reservation was refused: the test needs one over the per-IP share")
	}
	waitFor(t, "the refused peer's circuit addresses removed", func() bool { return len(circuitsVia(relay, refused)) == 0 })

	member.Close()
	waitFor(t, "the closed member's circuit addresses removed", func() bool { return len(circuitsVia(relay, member.ID())) == 0 })
	if n := relay.vouch.count(); n > 4 {
		t.Fatalf("the relay vouches for %d peers, want at most the 4 holding reservations", n)
	}
}
