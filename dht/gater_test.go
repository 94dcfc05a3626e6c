package dht

import (
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

type connAddrs struct{ local, remote ma.Multiaddr }

func (c connAddrs) LocalMultiaddr() ma.Multiaddr  { return c.local }
func (c connAddrs) RemoteMultiaddr() ma.Multiaddr { return c.remote }

// Dials to one IP are never rate-limited: a node that roams redials the
// same relays and neighbours many times a minute (libp2p's default refused
// the 17th within a burst).
func TestDialsNotRateLimited(t *testing.T) {
	rm, err := newResourceManager(ConnLimits{})
	if err != nil {
		t.Fatal(err)
	}
	defer rm.Close()
	to := ma.StringCast("/ip4/192.0.0.129/tcp/4242")
	for i := 0; i < 100; i++ {
		s, err := rm.OpenConnection(network.DirOutbound, true, to)
		if err != nil {
			t.Fatalf("dial %d to one IP refused: %v", i+1, err)
		}
		s.Done()
	}
}

// Inbound connections are limited per source IP after a burst; other
// sources and loopback are not affected.
func TestInboundRateLimited(t *testing.T) {
	g := newInboundGater(nil, nil)
	onLink := netip.MustParsePrefix("2001:2:0:9::/64")
	g.onLink = func(ip net.IP) bool { a, _ := netip.AddrFromSlice(ip); return onLink.Contains(a) }
	local := ma.StringCast("/ip4/192.0.0.130/tcp/4242")
	from := func(s string) connAddrs { return connAddrs{local, ma.StringCast(s)} }
	burst := inboundIPv4Limits[0].Burst
	for i := 0; i < burst; i++ {
		if !g.InterceptAccept(from("/ip4/192.0.0.140/tcp/5000")) {
			t.Fatalf("connection %d of a burst of %d refused", i+1, burst)
		}
	}
	if g.InterceptAccept(from("/ip4/192.0.0.140/tcp/5001")) {
		t.Fatalf("connection %d from one IP accepted at once; want the burst of %d to be the limit", burst+1, burst)
	}
	if !g.InterceptAccept(from("/ip4/192.0.0.141/tcp/5000")) {
		t.Fatal("another source refused")
	}
	for i := 0; i < 3*burst; i++ {
		if !g.InterceptAccept(from("/ip4/127.0.0.1/tcp/5000")) {
			t.Fatal("loopback refused")
		}
	}
	// IPv6: per /56.
	for i := 0; i < inboundIPv6Limits[0].Burst; i++ {
		g.InterceptAccept(from("/ip6/2001:2:0:1::1/tcp/5000"))
	}
	if g.InterceptAccept(from("/ip6/2001:2:0:1::2/tcp/5000")) {
		t.Fatal("a second address in the same /56 was not limited")
	}
	if !g.InterceptAccept(from("/ip6/2001:2:0:200::1/tcp/5000")) {
		t.Fatal("another /56 refused")
	}
	for i := 0; i < 3*inboundIPv6Limits[0].Burst; i++ {
		if !g.InterceptAccept(from(fmt.Sprintf("/ip6/2001:2:0:9::%x/tcp/5000", i+1))) {
			t.Fatalf("neighbour %d on an attached subnet refused", i+1)
		}
	}
	if !g.InterceptPeerDial("x") || !g.InterceptAddrDial("x", local) {
		t.Fatal("dials gated")
	}
}
