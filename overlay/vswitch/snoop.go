package vswitch

import (
	"encoding/binary"
	"net/netip"

	"github.com/kadlan/kadlan/tap/ether"
)

// Multicast snooping: the local host reports its multicast groups with
// IGMP (IPv4) and MLD (IPv6). The switch reads those reports to join and
// leave groups itself (so that its announcements bring the group's traffic
// here) and does not spread them over the network: on kadlan's virtual
// Ethernet there is no multicast router to hear them.

// groupChange is one join or leave parsed from a report.
type groupChange struct {
	mac  ether.MAC
	join bool
}

// parseReport parses an IGMP or MLD membership report or leave in frame
// (Ethernet header h already parsed). ok is false for anything else.
// Changes are appended to dst.
func parseReport(dst []groupChange, h ether.Header, frame []byte) ([]groupChange, bool) {
	p := frame[ether.HeaderLen:]
	switch h.Type {
	case ether.TypeIPv4:
		if len(p) < 20 || p[0]>>4 != 4 || p[9] != 2 { // protocol 2: IGMP
			return dst, false
		}
		ihl := int(p[0]&15) * 4
		total := int(binary.BigEndian.Uint16(p[2:4]))
		if ihl < 20 || total < ihl || total > len(p) {
			return dst, false
		}
		return parseIGMP(dst, p[ihl:total])
	case ether.TypeIPv6:
		icmp, ok := icmpv6Payload(p)
		if !ok {
			return dst, false
		}
		return parseMLD(dst, icmp)
	}
	return dst, false
}

func v4Group(b []byte) (ether.MAC, bool) {
	a := netip.AddrFrom4([4]byte(b))
	return ether.IPv4Multicast(a), a.IsMulticast()
}

func v6Group(b []byte) (ether.MAC, bool) {
	a := netip.AddrFrom16([16]byte(b))
	return ether.IPv6Multicast(a), a.IsMulticast()
}

func parseIGMP(dst []groupChange, m []byte) ([]groupChange, bool) {
	if len(m) < 8 {
		return dst, false
	}
	switch m[0] {
	case 0x12, 0x16, 0x17: // v1 report, v2 report, v2 leave
		mac, ok := v4Group(m[4:8])
		if !ok {
			return dst, false
		}
		return append(dst, groupChange{mac, m[0] != 0x17}), true
	case 0x22: // v3 report
		n := int(binary.BigEndian.Uint16(m[6:8]))
		return parseRecords(dst, m[8:], n, 4, v4Group)
	}
	return dst, false
}

func parseMLD(dst []groupChange, m []byte) ([]groupChange, bool) {
	if len(m) < 8 {
		return dst, false
	}
	switch m[0] {
	case 131, 132: // MLDv1 report, done
		if len(m) < 24 {
			return dst, false
		}
		mac, ok := v6Group(m[8:24])
		if !ok {
			return dst, false
		}
		return append(dst, groupChange{mac, m[0] == 131}), true
	case 143: // MLDv2 report
		n := int(binary.BigEndian.Uint16(m[6:8]))
		return parseRecords(dst, m[8:], n, 16, v6Group)
	}
	return dst, false
}

// parseRecords reads n IGMPv3/MLDv2 group records with addresses of alen
// bytes. A record of type MODE_IS_EXCLUDE or CHANGE_TO_EXCLUDE (2, 4), or
// an include-type record with sources, is a join; CHANGE_TO_INCLUDE with
// no sources (3) is a leave.
func parseRecords(dst []groupChange, b []byte, n, alen int, group func([]byte) (ether.MAC, bool)) ([]groupChange, bool) {
	for range n {
		if len(b) < 4+alen {
			return dst, false
		}
		typ, aux, nsrc := b[0], int(b[1]), int(binary.BigEndian.Uint16(b[2:4]))
		size := 4 + alen + nsrc*alen + aux*4
		if len(b) < size {
			return dst, false
		}
		mac, ok := group(b[4 : 4+alen])
		if ok {
			switch {
			case typ == 2 || typ == 4 || (typ == 1 || typ == 5) && nsrc > 0:
				dst = append(dst, groupChange{mac, true})
			case typ == 3 && nsrc == 0:
				dst = append(dst, groupChange{mac, false})
			}
		}
		b = b[size:]
	}
	return dst, true
}

// icmpv6Payload skips IPv6 extension headers (MLD comes after a hop-by-hop
// header) and returns the ICMPv6 message.
func icmpv6Payload(p []byte) ([]byte, bool) {
	if len(p) < ether.IPv6HeaderLen || p[0]>>4 != 6 {
		return nil, false
	}
	plen := int(binary.BigEndian.Uint16(p[4:6]))
	if ether.IPv6HeaderLen+plen > len(p) {
		return nil, false
	}
	next, b := p[6], p[ether.IPv6HeaderLen:ether.IPv6HeaderLen+plen]
	for range 4 {
		switch next {
		case ether.ProtoICMPv6:
			return b, true
		case 0, 60: // hop-by-hop, destination options
			if len(b) < 8 {
				return nil, false
			}
			l := (int(b[1]) + 1) * 8
			if l > len(b) {
				return nil, false
			}
			next, b = b[0], b[l:]
		default:
			return nil, false
		}
	}
	return nil, false
}
