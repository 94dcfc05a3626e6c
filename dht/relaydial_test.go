package dht

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestProbeWait(t *testing.T) {
	for _, c := range []struct{ rtt, want time.Duration }{
		{0, time.Second},
		{time.Millisecond, 300 * time.Millisecond},
		{80 * time.Millisecond, 320 * time.Millisecond},
		{time.Second, 2 * time.Second},
	} {
		if got := probeWait(c.rtt); got != c.want {
			t.Errorf("probeWait(%v) = %v, want %v", c.rtt, got, c.want)
		}
	}
}

// TestRelayGate: while a Connect runs for a target, circuits to it through
// a relay this node is not connected to are refused until that relay
// answered, circuits through a connected relay pass, and a relay marked
// dead is refused, also as a peer to dial; with no Connect running, nothing
// is gated.
func TestRelayGate(t *testing.T) {
	n := clientNode(t)
	connected := relayNode(t)
	if err := n.Host.Connect(t.Context(), peer.AddrInfo{ID: connected.ID(), Addrs: connected.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	far := clientNode(t).ID() // never connected
	target := clientNode(t).ID()
	via := func(r peer.ID) ma.Multiaddr {
		return ma.StringCast("/ip4/192.0.0.130/tcp/4242/p2p/" + r.String() + "/p2p-circuit")
	}
	gates := n.gates
	if !gates.allow(target, via(far)) {
		t.Fatal("a circuit was refused with no Connect running")
	}
	g, release := gates.open(n, target)
	relays, probe := g.split([]ma.Multiaddr{via(far), via(connected.ID())})
	if len(relays) != 1 || relays[0].ID != far || len(probe) != 1 || probe[0] != connected.ID() {
		t.Fatalf("split: connect first %v, probe %v; want %s and %s", relays, probe, far, connected.ID())
	}
	if gates.allow(target, via(far)) {
		t.Fatal("a circuit through a relay not yet connected passed")
	}
	if !gates.allow(target, via(connected.ID())) {
		t.Fatal("a circuit through a connected relay was refused")
	}
	g.mu.Lock()
	g.ok[far] = true
	g.mu.Unlock()
	if !gates.allow(target, via(far)) {
		t.Fatal("a circuit through a relay that answered was refused")
	}
	gates.markDead(connected.ID())
	if gates.allow(target, via(connected.ID())) {
		t.Fatal("a circuit through a dead relay passed")
	}
	gater := newInboundGater(nil, gates)
	if gater.InterceptPeerDial(connected.ID()) {
		t.Fatal("the gater lets a dead relay be dialled")
	}
	release()
	if !gates.allow(target, via(far)) || len(gates.m) != 0 {
		t.Fatal("the gate outlived its Connect")
	}
}
