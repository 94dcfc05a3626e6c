package ether

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// IPv6 and ICMPv6 constants for neighbour discovery.
const (
	IPv6HeaderLen      = 40
	ProtoICMPv6        = 58
	ICMPv6NeighborSol  = 135
	ICMPv6NeighborAdv  = 136
	ndpOptSourceLLAddr = 1
	ndpOptTargetLLAddr = 2
)

// ErrNotNDP is returned by ParseNDP for IPv6 packets that are not neighbour
// solicitations or advertisements.
var ErrNotNDP = errors.New("ether: not a neighbour solicitation or advertisement")

// NDP is an IPv6 neighbour solicitation or advertisement.
type NDP struct {
	Type     uint8 // ICMPv6NeighborSol or ICMPv6NeighborAdv
	Src, Dst netip.Addr
	Target   netip.Addr
	Flags    uint8 // NA flags: 0x80 router, 0x40 solicited, 0x20 override
	// LLAddr is the source (NS) or target (NA) link-layer address option,
	// zero when absent.
	LLAddr MAC
}

// ParseNDP parses an IPv6 packet (the bytes after the Ethernet header) that
// carries an NS or NA. It checks the hop limit of 255 required by RFC 4861
// but not the checksum.
func ParseNDP(p []byte) (NDP, error) {
	var n NDP
	if len(p) < IPv6HeaderLen+24 {
		return n, ErrShort
	}
	if p[0]>>4 != 6 || p[6] != ProtoICMPv6 {
		return n, ErrNotNDP
	}
	plen := int(binary.BigEndian.Uint16(p[4:6]))
	if plen < 24 || IPv6HeaderLen+plen > len(p) {
		return n, ErrShort
	}
	if p[7] != 255 {
		return n, errors.New("ether: NDP hop limit not 255")
	}
	icmp := p[IPv6HeaderLen : IPv6HeaderLen+plen]
	if icmp[0] != ICMPv6NeighborSol && icmp[0] != ICMPv6NeighborAdv || icmp[1] != 0 {
		return n, ErrNotNDP
	}
	n.Type = icmp[0]
	n.Src = netip.AddrFrom16([16]byte(p[8:24]))
	n.Dst = netip.AddrFrom16([16]byte(p[24:40]))
	n.Flags = icmp[4]
	n.Target = netip.AddrFrom16([16]byte(icmp[8:24]))
	opts := icmp[24:]
	for len(opts) >= 2 {
		l := int(opts[1]) * 8
		if l == 0 || l > len(opts) {
			return n, errors.New("ether: bad NDP option length")
		}
		if (opts[0] == ndpOptSourceLLAddr || opts[0] == ndpOptTargetLLAddr) && l >= 8 {
			copy(n.LLAddr[:], opts[2:8])
		}
		opts = opts[l:]
	}
	return n, nil
}

// AppendNDPFrame appends a whole Ethernet frame carrying n (with a link-layer
// address option when n.LLAddr is not zero) from src to dst and returns the
// extended slice. The ICMPv6 checksum is computed.
func AppendNDPFrame(b []byte, dst, src MAC, n NDP) []byte {
	icmpLen := 24
	if !n.LLAddr.IsZero() {
		icmpLen += 8
	}
	off := len(b)
	b = append(b, make([]byte, HeaderLen+IPv6HeaderLen+icmpLen)...)
	f := b[off:]
	PutHeader(f, Header{Dst: dst, Src: src, Type: TypeIPv6})
	ip := f[HeaderLen:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(icmpLen))
	ip[6] = ProtoICMPv6
	ip[7] = 255
	s, d := n.Src.As16(), n.Dst.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	icmp := ip[IPv6HeaderLen:]
	icmp[0] = n.Type
	icmp[4] = n.Flags
	t := n.Target.As16()
	copy(icmp[8:24], t[:])
	if !n.LLAddr.IsZero() {
		icmp[24] = ndpOptTargetLLAddr
		if n.Type == ICMPv6NeighborSol {
			icmp[24] = ndpOptSourceLLAddr
		}
		icmp[25] = 1
		copy(icmp[26:32], n.LLAddr[:])
	}
	binary.BigEndian.PutUint16(icmp[2:4], ICMPv6Checksum(n.Src, n.Dst, icmp))
	return b
}

// ICMPv6Checksum computes the ICMPv6 checksum of msg (whose checksum field
// must be zero) with the IPv6 pseudo-header of src and dst.
func ICMPv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	s, d := src.As16(), dst.As16()
	sum = add16(sum, s[:])
	sum = add16(sum, d[:])
	sum += uint32(len(msg))
	sum += ProtoICMPv6
	sum = add16(sum, msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func add16(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}
