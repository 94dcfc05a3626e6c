package dht

import (
	"net"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// The addresses of interfaces IgnoreInterface names (kadlan's own
// virtual LANs) are not advertised: a peer dialling one would reach the
// node through the network the link is for. Loopback stands in for such
// an interface here.
func TestAddrFilterDropsIgnoredInterfaces(t *testing.T) {
	lo := ""
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagLoopback != 0 {
			lo = ifc.Name
		}
	}
	if lo == "" {
		t.Skip("no loopback interface")
	}
	in := []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/4242"), ma.StringCast("/ip4/192.0.2.1/tcp/4242")}
	if got := addrFilter(true, nil)(in); len(got) != 2 {
		t.Fatalf("without ignored interfaces: %v", got)
	}
	got := addrFilter(true, func(name string) bool { return name == lo })(in)
	if len(got) != 1 || !got[0].Equal(in[1]) {
		t.Fatalf("with %s ignored: %v, want only %v", lo, got, in[1])
	}
}
