package netrec

import (
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func testPeers(t testing.TB, n int) []peer.ID {
	out := make([]peer.ID, n)
	for i := range out {
		_, out[i] = testKey(t, uint64(100+i))
	}
	return out
}

func TestDerivedAddresses(t *testing.T) {
	owner, _ := testKey(t, 1)
	id := testDef(t, owner, false).ID()
	id2 := testDef(t, owner, false).ID()
	peers := testPeers(t, 50)
	macs := map[string]bool{}
	ips := map[netip.Addr]bool{}
	pfx := IPv6Prefix(id)
	if !netip.MustParsePrefix("fd00::/8").Contains(pfx.Addr()) || pfx.Bits() != 64 {
		t.Fatalf("prefix %v not a ULA /64", pfx)
	}
	for _, p := range peers {
		m := MemberMAC(id, p)
		if m.IsMulticast() || !m.IsLocal() {
			t.Fatalf("MAC %v must be unicast and locally administered", m)
		}
		if m != MemberMAC(id, p) {
			t.Fatal("MAC not deterministic")
		}
		if m == MemberMAC(id2, p) {
			t.Fatal("MAC does not depend on network")
		}
		macs[m.String()] = true
		a := MemberIPv6(id, p)
		if !pfx.Contains(a) || a != MemberIPv6(id, p) {
			t.Fatalf("IPv6 %v not in %v or not deterministic", a, pfx)
		}
		ips[a] = true
	}
	if len(macs) != len(peers) || len(ips) != len(peers) {
		t.Fatal("derived addresses collide")
	}
}

func TestIPv4CandidatesStayInPool(t *testing.T) {
	owner, _ := testKey(t, 1)
	id := testDef(t, owner, false).ID()
	for _, pool := range []string{"10.0.0.0/30", "10.1.2.0/24", "172.16.0.0/12", "10.0.0.0/8"} {
		p := netip.MustParsePrefix(pool)
		first := p.Addr()
		last := ipv4At(p, ipv4Hosts(p)) // broadcast
		for _, m := range testPeers(t, 20) {
			for a := range 5 {
				c := IPv4Candidate(p, id, m, a)
				if !p.Contains(c) || c == first || c == last {
					t.Fatalf("pool %v: candidate %v is not a usable host", pool, c)
				}
			}
		}
	}
}

// Members apply ChooseIPv4 in rounds to each other's latest claims, as they
// would on hearing announcements; the assignment must settle without
// conflicts and respect fixed (certificate) addresses.
func TestChooseIPv4Converges(t *testing.T) {
	owner, _ := testKey(t, 1)
	id := testDef(t, owner, false).ID()
	pool := netip.MustParsePrefix("10.5.0.0/27") // 30 hosts: collisions are certain
	peers := testPeers(t, 25)
	fixed := IPv4Claim{Member: peers[0], Addr: IPv4Candidate(pool, id, peers[1], 0), Fixed: true}
	claims := map[peer.ID]netip.Addr{}
	for round := 0; ; round++ {
		if round > 50 {
			t.Fatal("no convergence after 50 rounds")
		}
		var cl []IPv4Claim
		cl = append(cl, fixed)
		for p, a := range claims {
			cl = append(cl, IPv4Claim{Member: p, Addr: a})
		}
		changed := false
		for _, p := range peers[1:] {
			a, ok := ChooseIPv4(pool, id, p, cl)
			if !ok {
				t.Fatal("pool exhausted")
			}
			if claims[p] != a {
				claims[p], changed = a, true
			}
		}
		if !changed {
			break
		}
	}
	seen := map[netip.Addr]peer.ID{fixed.Addr: fixed.Member}
	for p, a := range claims {
		if q, dup := seen[a]; dup {
			t.Fatalf("%v claimed by %s and %s", a, p, q)
		}
		seen[a] = p
	}
}

func TestChooseIPv4Exhausted(t *testing.T) {
	owner, _ := testKey(t, 1)
	id := testDef(t, owner, false).ID()
	pool := netip.MustParsePrefix("10.5.0.0/30") // 2 hosts
	peers := testPeers(t, 3)
	cl := []IPv4Claim{{peers[0], netip.MustParseAddr("10.5.0.1"), true}, {peers[1], netip.MustParseAddr("10.5.0.2"), true}}
	if a, ok := ChooseIPv4(pool, id, peers[2], cl); ok {
		t.Fatalf("got %v from an exhausted pool", a)
	}
	if a, ok := ChooseIPv4(pool, id, peers[2], cl[:1]); !ok || a != netip.MustParseAddr("10.5.0.2") {
		t.Fatalf("got %v %v, want the one free address", a, ok)
	}
}
