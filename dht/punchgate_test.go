package dht

import (
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// TestPunchGate: the main peerstore hides a peer's public, non-circuit
// addresses if it advertises a circuit, except within punchWindow of a
// punch's start; its LAN addresses and circuits, and every address of a
// peer without circuits, stay.
func TestPunchGate(t *testing.T) {
	now := time.Unix(1000, 0)
	g := newPunchGate()
	g.now = func() time.Time { return now }
	ps, err := newGatedPeerstore(g)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	if _, ok := peerstore.GetCertifiedAddrBook(ps); !ok {
		t.Fatal("the gated peerstore lost the certified address book (identify's signed records)")
	}
	natted, public := peer.ID("natted"), peer.ID("public")
	relay := ma.StringCast("/ip4/192.0.0.130/tcp/4242/p2p/12D3KooWSR1mLU4EqPRhA3BrxkakSNn3j4BNTuotJBs3eVGzmYYa/p2p-circuit")
	mapped := ma.StringCast("/ip4/192.0.0.137/tcp/4242")
	mappedQUIC := ma.StringCast("/ip4/192.0.0.137/udp/4242/quic-v1")
	lan := ma.StringCast("/ip4/192.168.4.10/tcp/4242")
	ps.AddAddrs(natted, []ma.Multiaddr{relay, mapped, mappedQUIC, lan}, peerstore.PermanentAddrTTL)
	ps.AddAddrs(public, []ma.Multiaddr{mapped, lan}, peerstore.PermanentAddrTTL)
	has := func(p peer.ID, a ma.Multiaddr) bool {
		return slices.ContainsFunc(ps.Addrs(p), func(b ma.Multiaddr) bool { return b.Equal(a) })
	}
	cases := []struct {
		p    peer.ID
		a    ma.Multiaddr
		want bool
	}{
		{natted, mapped, false},
		{natted, mappedQUIC, false},
		{natted, lan, true},
		{natted, relay, true},
		{public, mapped, true},
		{public, lan, true},
	}
	for _, c := range cases {
		if got := has(c.p, c.a); got != c.want {
			t.Errorf("Addrs(%s) has %s: %v, want %v", c.p, c.a, got, c.want)
		}
	}
	g.opened(natted)
	now = now.Add(punchWindow - time.Millisecond)
	if !has(natted, mapped) {
		t.Fatal("a punch's address hidden within its window")
	}
	now = now.Add(2 * time.Millisecond)
	if has(natted, mapped) {
		t.Fatal("a NAT mapping visible after the punch's window")
	}

	// A birthday dial's window lets out the one address its probe hit.
	hit := ma.StringCast("/ip4/192.0.0.137/udp/41960/quic-v1")
	ps.AddAddrs(natted, []ma.Multiaddr{hit}, peerstore.TempAddrTTL)
	g.openedFor(natted, hit)
	if !has(natted, hit) || has(natted, mappedQUIC) || has(natted, mapped) || !has(natted, relay) || !has(natted, lan) {
		t.Fatalf("birthday window: Addrs = %v, want the hit, the circuit and the LAN address only", ps.Addrs(natted))
	}
	// In a DCUtR round's window, a symmetric NAT's mappings (more than
	// mappingPorts ports on one IP and transport) stay hidden; a group
	// within the bound passes.
	sym := peer.ID("symmetric")
	var symUDP []ma.Multiaddr
	for _, port := range []string{"3000", "9557", "52027"} {
		symUDP = append(symUDP, ma.StringCast("/ip4/192.0.0.136/udp/"+port+"/quic-v1"))
	}
	symTCP := []ma.Multiaddr{ma.StringCast("/ip4/192.0.0.136/tcp/4242"), ma.StringCast("/ip4/192.0.0.136/tcp/443")}
	ps.AddAddrs(sym, append(append([]ma.Multiaddr{relay}, symUDP...), symTCP...), peerstore.PermanentAddrTTL)
	g.opened(sym)
	for _, a := range symUDP {
		if has(sym, a) {
			t.Errorf("DCUtR window: symmetric mapping %s visible", a)
		}
	}
	for _, a := range symTCP {
		if !has(sym, a) {
			t.Errorf("DCUtR window: %s (two TCP ports on one IP) hidden", a)
		}
	}
	for i := 0; i < 2*punchGateMax; i++ {
		g.opened(peer.ID(string(rune(i))))
	}
	if n := len(g.open); n > punchGateMax {
		t.Fatalf("%d windows kept, bound %d", n, punchGateMax)
	}
}
