package dht

import (
	"net/netip"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// ipN is the i-th address of the lab's public IPv6 prefix 2001:2::/48.
func ipN(i int) netip.Addr {
	return netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 14: byte(i >> 8), 15: byte(i)})
}

// TestReachGuardSentToBounded: the IPs sent to stay bounded however many
// there are, the recent half is always remembered, and an inbound attempt
// from a remembered IP is not a stranger's while a forgotten one's is.
func TestReachGuardSentToBounded(t *testing.T) {
	g := newReachGuard()
	const n = 5 * sentToMax
	for i := 0; i < n; i++ {
		g.sentTo(ipN(i))
		if got := len(g.sent) + len(g.old); got > sentToMax {
			t.Fatalf("after %d IPs the guard holds %d, want <= %d", i+1, got, sentToMax)
		}
	}
	for i := n - sentToMax/2; i < n; i++ {
		if !g.hasSent(ipN(i)) {
			t.Fatalf("%s, one of the last %d IPs sent to, is forgotten", ipN(i), sentToMax/2)
		}
	}
	if g.hasSent(ipN(0)) {
		t.Fatalf("%s, the first of %d IPs, is still remembered", ipN(0), n)
	}
	g.sentTo(ipN(0)) // sent again: remembered again
	if !g.hasSent(ipN(0)) {
		t.Fatal("an IP sent to just now is not remembered")
	}
	recent := ma.StringCast("/ip6/" + ipN(n-1).String() + "/tcp/1")
	forgotten := ma.StringCast("/ip6/" + ipN(1).String() + "/tcp/1")
	g.accepted(recent)
	g.accepted(forgotten)
	if g.strangers[ipN(n-1)] || !g.strangers[ipN(1)] {
		t.Fatalf("strangers = %v: want only %s", g.strangers, ipN(1))
	}
}
