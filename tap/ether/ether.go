// Package ether parses and builds the few Ethernet, ARP and IPv6 neighbour
// discovery packets that kadlan answers locally. It allocates only when asked
// to build a packet into a nil buffer, and never panics on short input.
package ether

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
)

// MAC is a 48-bit Ethernet address. Being an array, it is comparable and can
// key a map.
type MAC [6]byte

// Broadcast is ff:ff:ff:ff:ff:ff.
var Broadcast = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// String formats m as six colon-separated lowercase hex bytes.
func (m MAC) String() string {
	const hexd = "0123456789abcdef"
	b := make([]byte, 0, 17)
	for i, x := range m {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexd[x>>4], hexd[x&15])
	}
	return string(b)
}

// IsBroadcast reports whether m is ff:ff:ff:ff:ff:ff.
func (m MAC) IsBroadcast() bool { return m == Broadcast }

// IsMulticast reports whether the group bit is set (this includes broadcast).
func (m MAC) IsMulticast() bool { return m[0]&1 == 1 }

// IsLocal reports whether the locally-administered bit is set.
func (m MAC) IsLocal() bool { return m[0]&2 == 2 }

// IsZero reports whether m is 00:00:00:00:00:00.
func (m MAC) IsZero() bool { return m == MAC{} }

// ParseMAC parses the form printed by String (colons or dashes).
func ParseMAC(s string) (MAC, error) {
	var m MAC
	if len(s) != 17 {
		return m, fmt.Errorf("ether: bad MAC %q", s)
	}
	for i := range 6 {
		if i > 0 && s[3*i-1] != ':' && s[3*i-1] != '-' {
			return m, fmt.Errorf("ether: bad MAC %q", s)
		}
		if _, err := hex.Decode(m[i:i+1], []byte(s[3*i:3*i+2])); err != nil {
			return m, fmt.Errorf("ether: bad MAC %q", s)
		}
	}
	return m, nil
}

// EtherTypes used by kadlan.
const (
	TypeIPv4 uint16 = 0x0800
	TypeARP  uint16 = 0x0806
	TypeVLAN uint16 = 0x8100
	TypeIPv6 uint16 = 0x86dd
)

// HeaderLen is the length of an untagged Ethernet header.
const HeaderLen = 14

// ErrShort is returned for input too short for the header it should hold.
var ErrShort = errors.New("ether: packet too short")

// Header is the untagged Ethernet header of a frame.
type Header struct {
	Dst, Src MAC
	Type     uint16
}

// ParseHeader reads the Ethernet header at the start of frame.
func ParseHeader(frame []byte) (Header, error) {
	var h Header
	if len(frame) < HeaderLen {
		return h, ErrShort
	}
	copy(h.Dst[:], frame[0:6])
	copy(h.Src[:], frame[6:12])
	h.Type = binary.BigEndian.Uint16(frame[12:14])
	return h, nil
}

// PutHeader writes h into the first HeaderLen bytes of b.
func PutHeader(b []byte, h Header) {
	copy(b[0:6], h.Dst[:])
	copy(b[6:12], h.Src[:])
	binary.BigEndian.PutUint16(b[12:14], h.Type)
}

// IPv4Multicast returns the Ethernet group address for an IPv4 multicast
// address (01:00:5e + low 23 bits).
func IPv4Multicast(ip netip.Addr) MAC {
	a := ip.As4()
	return MAC{0x01, 0x00, 0x5e, a[1] & 0x7f, a[2], a[3]}
}

// IPv6Multicast returns the Ethernet group address for an IPv6 multicast
// address (33:33 + low 32 bits).
func IPv6Multicast(ip netip.Addr) MAC {
	a := ip.As16()
	return MAC{0x33, 0x33, a[12], a[13], a[14], a[15]}
}

// SolicitedNode returns the solicited-node multicast address ff02::1:ffXX:XXXX
// of ip.
func SolicitedNode(ip netip.Addr) netip.Addr {
	a := ip.As16()
	return netip.AddrFrom16([16]byte{0xff, 0x02, 10: 0, 11: 1, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]})
}

// LinkLocal returns the EUI-64 link-local IPv6 address (fe80::/64) that a
// kernel derives from mac by default.
func LinkLocal(mac MAC) netip.Addr {
	var a [16]byte
	a[0], a[1] = 0xfe, 0x80
	a[8] = mac[0] ^ 2
	a[9], a[10] = mac[1], mac[2]
	a[11], a[12] = 0xff, 0xfe
	a[13], a[14], a[15] = mac[3], mac[4], mac[5]
	return netip.AddrFrom16(a)
}
