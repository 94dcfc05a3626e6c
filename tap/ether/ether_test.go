package ether

import (
	"net/netip"
	"testing"
)

func TestMACStringParse(t *testing.T) {
	m := MAC{0x02, 0xab, 0, 1, 0xfe, 0x10}
	if m.String() != "02:ab:00:01:fe:10" {
		t.Fatal(m.String())
	}
	got, err := ParseMAC("02-ab-00-01-fe-10")
	if err != nil || got != m {
		t.Fatal(got, err)
	}
	for _, bad := range []string{"", "02:ab:00:01:fe", "02:ab:00:01:fe:1g", "02ab00:01:fe:10:"} {
		if _, err := ParseMAC(bad); err == nil {
			t.Errorf("ParseMAC(%q) accepted", bad)
		}
	}
	if !Broadcast.IsMulticast() || !Broadcast.IsBroadcast() || m.IsMulticast() || !m.IsLocal() {
		t.Fatal("bit predicates wrong")
	}
}

func TestMulticastMACs(t *testing.T) {
	if got := IPv4Multicast(netip.MustParseAddr("224.0.0.251")); got != (MAC{1, 0, 0x5e, 0, 0, 0xfb}) {
		t.Fatal(got)
	}
	if got := IPv4Multicast(netip.MustParseAddr("239.255.255.250")); got != (MAC{1, 0, 0x5e, 0x7f, 0xff, 0xfa}) {
		t.Fatal(got)
	}
	sn := SolicitedNode(netip.MustParseAddr("fd01::1234:5678"))
	if sn != netip.MustParseAddr("ff02::1:ff34:5678") {
		t.Fatal(sn)
	}
	if got := IPv6Multicast(sn); got != (MAC{0x33, 0x33, 0xff, 0x34, 0x56, 0x78}) {
		t.Fatal(got)
	}
	if got := LinkLocal(MAC{0x02, 0x11, 0x22, 0x33, 0x44, 0x55}); got != netip.MustParseAddr("fe80::11:22ff:fe33:4455") {
		t.Fatal(got)
	}
}

func TestARPRoundTrip(t *testing.T) {
	a := ARP{Op: ARPReply, SenderMAC: MAC{2, 1, 2, 3, 4, 5}, TargetMAC: MAC{2, 9, 9, 9, 9, 9},
		SenderIP: netip.MustParseAddr("10.1.2.3"), TargetIP: netip.MustParseAddr("10.1.2.4")}
	f := AppendARPFrame([]byte{0xaa}, a.TargetMAC, a.SenderMAC, a)[1:]
	h, err := ParseHeader(f)
	if err != nil || h.Type != TypeARP || h.Dst != a.TargetMAC || h.Src != a.SenderMAC {
		t.Fatal(h, err)
	}
	got, err := ParseARP(f[HeaderLen:])
	if err != nil || got != a {
		t.Fatalf("got %+v %v", got, err)
	}
	bad := append([]byte(nil), f[HeaderLen:]...)
	bad[1] = 6 // hardware type 6
	if _, err := ParseARP(bad); err == nil {
		t.Fatal("non-Ethernet ARP accepted")
	}
	if _, err := ParseARP(f[HeaderLen : HeaderLen+27]); err == nil {
		t.Fatal("short ARP accepted")
	}
}

func TestNDPRoundTripAndChecksum(t *testing.T) {
	for _, n := range []NDP{
		{Type: ICMPv6NeighborSol, Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("ff02::1:ff00:2"),
			Target: netip.MustParseAddr("fd00::2"), LLAddr: MAC{2, 0, 0, 0, 0, 1}},
		{Type: ICMPv6NeighborAdv, Src: netip.MustParseAddr("fd00::2"), Dst: netip.MustParseAddr("fd00::1"),
			Target: netip.MustParseAddr("fd00::2"), Flags: 0x60, LLAddr: MAC{2, 0, 0, 0, 0, 2}},
		{Type: ICMPv6NeighborSol, Src: netip.IPv6Unspecified(), Dst: netip.MustParseAddr("ff02::1:ff00:2"),
			Target: netip.MustParseAddr("fd00::2")},
	} {
		f := AppendNDPFrame(nil, Broadcast, MAC{2}, n)
		got, err := ParseNDP(f[HeaderLen:])
		if err != nil || got != n {
			t.Fatalf("got %+v %v, want %+v", got, err, n)
		}
		// Verifying a packet including its checksum yields zero.
		icmp := f[HeaderLen+IPv6HeaderLen:]
		if c := ICMPv6Checksum(n.Src, n.Dst, icmp); c != 0 {
			t.Fatalf("checksum does not verify: %#x", c)
		}
	}
}

// A known-good NS captured from Linux (fe80::1 asking for fe80::2).
func TestICMPv6ChecksumKnownVector(t *testing.T) {
	n := NDP{Type: ICMPv6NeighborSol, Src: netip.MustParseAddr("fe80::1"), Dst: netip.MustParseAddr("ff02::1:ff00:2"),
		Target: netip.MustParseAddr("fe80::2"), LLAddr: MAC{0x52, 0x54, 0, 0x12, 0x34, 0x56}}
	f := AppendNDPFrame(nil, Broadcast, MAC{2}, n)
	icmp := f[HeaderLen+IPv6HeaderLen:]
	got := uint16(icmp[2])<<8 | uint16(icmp[3])
	// Recompute independently: sum over pseudo header and message by hand.
	var sum uint32
	words := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	s, d := n.Src.As16(), n.Dst.As16()
	words(s[:])
	words(d[:])
	sum += uint32(len(icmp)) + 58
	cp := append([]byte(nil), icmp...)
	cp[2], cp[3] = 0, 0
	words(cp)
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	if want := ^uint16(sum); got != want {
		t.Fatalf("checksum %#x, want %#x", got, want)
	}
}

func TestParseNDPRejects(t *testing.T) {
	n := NDP{Type: ICMPv6NeighborSol, Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"), Target: netip.MustParseAddr("fd00::2")}
	good := AppendNDPFrame(nil, Broadcast, MAC{2}, n)[HeaderLen:]
	tests := []struct {
		name string
		mut  func(p []byte) []byte
	}{
		{"hop limit", func(p []byte) []byte { p[7] = 64; return p }},
		{"not icmpv6", func(p []byte) []byte { p[6] = 17; return p }},
		{"echo request", func(p []byte) []byte { p[40] = 128; return p }},
		{"payload length beyond packet", func(p []byte) []byte { p[5] = 200; return p }},
		{"truncated", func(p []byte) []byte { return p[:50] }},
		{"zero option length", func(p []byte) []byte {
			p = append(p, 1, 0, 0, 0, 0, 0, 0, 0)
			p[5] += 8
			return p
		}},
	}
	for _, tt := range tests {
		p := tt.mut(append([]byte(nil), good...))
		if _, err := ParseNDP(p); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}
