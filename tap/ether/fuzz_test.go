package ether

import (
	"net/netip"
	"testing"
)

func FuzzParse(f *testing.F) {
	// An ARP request frame.
	f.Add(AppendARPFrame(nil, Broadcast, MAC{2, 1}, ARP{Op: ARPRequest, SenderMAC: MAC{2, 1},
		SenderIP: netip.MustParseAddr("10.0.0.1"), TargetIP: netip.MustParseAddr("10.0.0.2")}))
	// A neighbour solicitation frame with a source link-layer option.
	f.Add(AppendNDPFrame(nil, Broadcast, MAC{2, 1}, NDP{Type: ICMPv6NeighborSol, Src: netip.MustParseAddr("fd00::1"),
		Dst: netip.MustParseAddr("ff02::1:ff00:2"), Target: netip.MustParseAddr("fd00::2"), LLAddr: MAC{2, 1}}))
	f.Add([]byte{})                  // empty
	f.Add(make([]byte, HeaderLen+1)) // header plus one byte
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			return
		}
		p := b[HeaderLen:]
		switch h.Type {
		case TypeARP:
			a, err := ParseARP(p)
			if err != nil {
				return
			}
			// Round trip: rebuilding gives the same ARP payload.
			re := AppendARPFrame(nil, h.Dst, h.Src, a)
			if a2, err := ParseARP(re[HeaderLen:]); err != nil || a2 != a {
				t.Fatalf("ARP round trip: %+v -> %+v %v", a, a2, err)
			}
		case TypeIPv6:
			n, err := ParseNDP(p)
			if err != nil {
				return
			}
			re := AppendNDPFrame(nil, h.Dst, h.Src, n)
			n2, err := ParseNDP(re[HeaderLen:])
			if err != nil || n2 != n {
				t.Fatalf("NDP round trip: %+v -> %+v %v", n, n2, err)
			}
		}
	})
}
