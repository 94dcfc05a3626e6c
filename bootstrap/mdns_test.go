package bootstrap

import (
	"net"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestMDNSAddrs(t *testing.T) {
	self, err := peer.Decode(idA)
	if err != nil {
		t.Fatal(err)
	}
	listen := []ma.Multiaddr{
		ma.StringCast("/ip4/0.0.0.0/tcp/4242"),
		ma.StringCast("/ip4/0.0.0.0/tcp/4242/ws"),
		ma.StringCast("/ip4/0.0.0.0/udp/4242/quic-v1"),
		ma.StringCast("/ip6/::/tcp/4242"),
		ma.StringCast("/ip4/10.77.0.5/tcp/4243"), // on a kadlan device, not served
		ma.StringCast("/p2p-circuit"),
	}
	// The LAN interface's addresses; 10.77.0.5 (a TAP's) is not among them.
	ips := []net.IP{net.ParseIP("192.168.50.2"), net.ParseIP("fd00::2")}
	got := mdnsAddrs(listen, ips, self)
	want := []string{
		"/ip4/192.168.50.2/tcp/4242/p2p/" + idA,
		"/ip4/192.168.50.2/udp/4242/quic-v1/p2p/" + idA,
		"/ip6/fd00::2/tcp/4242/p2p/" + idA,
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("announced %v\nwant      %v", got, want)
	}
}

func TestParseMDNSEntry(t *testing.T) {
	ok := []string{"dnsaddr=/ip4/192.168.50.2/tcp/4242/p2p/" + idA, "dnsaddr=/ip4/192.168.50.2/udp/4242/quic-v1/p2p/" + idA, "junk", "dnsaddr=/not/a/multiaddr"}
	ai, err := parseMDNSEntry(ok)
	if err != nil || ai.ID.String() != idA || len(ai.Addrs) != 2 {
		t.Fatalf("parse: %v %v", ai, err)
	}
	if _, err := parseMDNSEntry([]string{"dnsaddr=/ip4/1.2.3.4/tcp/1/p2p/" + idA, "dnsaddr=/ip4/1.2.3.4/tcp/1/p2p/" + idB}); err == nil {
		t.Fatal("an entry naming two peers was accepted")
	}
	if _, err := parseMDNSEntry([]string{"hello"}); err == nil {
		t.Fatal("an entry without an address was accepted")
	}
	var many []string
	for i := 0; i < 100; i++ {
		many = append(many, "dnsaddr=/ip4/192.168.50.2/tcp/"+string(rune('0'+i%10))+"/p2p/"+idA)
	}
	if ai, err := parseMDNSEntry(many); err != nil || len(ai.Addrs) > mdnsMaxAddrs {
		t.Fatalf("100 addresses: kept %d (bound %d), %v", len(ai.Addrs), mdnsMaxAddrs, err)
	}
}

func TestLANInterfacesSkipsIgnored(t *testing.T) {
	ifs, ips, err := lanInterfaces(func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 0 || len(ips) != 0 {
		t.Fatalf("every interface ignored, yet mDNS would use %v %v", ifs, ips)
	}
}

// FuzzParseMDNSEntry: TXT records come from anyone on the LAN.
func FuzzParseMDNSEntry(f *testing.F) {
	f.Add("dnsaddr=/ip4/192.168.50.2/tcp/4242/p2p/"+idA, "dnsaddr=/ip6/::1/udp/1/quic-v1/p2p/"+idB)
	f.Add("dnsaddr=", "x")
	f.Fuzz(func(t *testing.T, a, b string) {
		ai, err := parseMDNSEntry([]string{a, b})
		if err == nil && (ai.ID == "" || len(ai.Addrs) == 0 || len(ai.Addrs) > mdnsMaxAddrs) {
			t.Fatalf("accepted %v", ai)
		}
	})
}
