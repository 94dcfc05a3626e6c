package dht

import (
	"net"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// The addresses of interfaces IgnoreInterface names (kadlan's own
// virtual LANs) are not advertised: a peer dialling one would reach the
// node through the network the link is for. Loopback addresses stay
// (allowLoopback decides them). Every non-loopback interface of the
// machine stands in for a virtual LAN here.
func TestAddrFilterDropsIgnoredInterfaces(t *testing.T) {
	var own ma.Multiaddr
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() && own == nil {
				own = ma.StringCast("/ip4/" + ipn.IP.String() + "/tcp/4242")
			}
		}
	}
	if own == nil {
		t.Skip("no IPv4 address on an interface")
	}
	lo := ma.StringCast("/ip4/127.0.0.1/tcp/4242")
	in := []ma.Multiaddr{lo, own}
	if got := addrFilter(true, nil)(in); len(got) != 2 {
		t.Fatalf("without ignored interfaces: %v", got)
	}
	got := addrFilter(true, func(string) bool { return true })(in)
	if len(got) != 1 || !got[0].Equal(lo) {
		t.Fatalf("every interface ignored: %v, want only %v", got, lo)
	}
}
