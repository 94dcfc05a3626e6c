package dht

import (
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	ma "github.com/multiformats/go-multiaddr"
)

// TestPunchGate: a peer that advertises a circuit is dialled directly on
// its public addresses only within punchWindow of a punch's start; its
// LAN addresses and circuits, and every address of a peer without
// circuits, pass.
func TestPunchGate(t *testing.T) {
	ps, err := pstoremem.NewPeerstore()
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	natted, public := peer.ID("natted"), peer.ID("public")
	relay := "/ip4/192.0.0.130/tcp/4242/p2p/12D3KooWSR1mLU4EqPRhA3BrxkakSNn3j4BNTuotJBs3eVGzmYYa/p2p-circuit"
	mapped := ma.StringCast("/ip4/192.0.0.137/tcp/4242")
	lan := ma.StringCast("/ip4/192.168.4.10/tcp/4242")
	ps.AddAddrs(natted, []ma.Multiaddr{ma.StringCast(relay), mapped, lan}, peerstore.PermanentAddrTTL)
	ps.AddAddrs(public, []ma.Multiaddr{mapped}, peerstore.PermanentAddrTTL)

	now := time.Unix(1000, 0)
	g := newPunchGate()
	g.now = func() time.Time { return now }
	if !g.allow(natted, mapped) {
		t.Fatal("without a peerstore every dial passes")
	}
	g.setPeerstore(ps)
	cases := []struct {
		p    peer.ID
		a    ma.Multiaddr
		want bool
	}{
		{natted, mapped, false},
		{natted, ma.StringCast("/ip4/192.0.0.137/udp/4242/quic-v1"), false},
		{natted, lan, true},
		{natted, ma.StringCast(relay), true},
		{public, mapped, true},
		{peer.ID("unknown"), mapped, true},
	}
	for _, c := range cases {
		if got := g.allow(c.p, c.a); got != c.want {
			t.Errorf("allow(%s, %s) = %v, want %v", c.p, c.a, got, c.want)
		}
	}
	g.opened(natted)
	now = now.Add(punchWindow - time.Millisecond)
	if !g.allow(natted, mapped) {
		t.Fatal("a punch's dial refused within its window")
	}
	now = now.Add(2 * time.Millisecond)
	if g.allow(natted, mapped) {
		t.Fatal("a direct dial passed after the punch's window")
	}
	for i := 0; i < 2*punchGateMax; i++ {
		g.opened(peer.ID(string(rune(i))))
	}
	if n := len(g.open); n > punchGateMax {
		t.Fatalf("%d windows kept, bound %d", n, punchGateMax)
	}
}
