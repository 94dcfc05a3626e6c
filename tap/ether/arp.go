package ether

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// ARP operations.
const (
	ARPRequest uint16 = 1
	ARPReply   uint16 = 2
)

// arpLen is the length of an Ethernet/IPv4 ARP payload.
const arpLen = 28

// ARP is an Ethernet/IPv4 ARP packet.
type ARP struct {
	Op                   uint16
	SenderMAC, TargetMAC MAC
	SenderIP, TargetIP   netip.Addr // IPv4
}

// ParseARP parses an Ethernet/IPv4 ARP payload (the bytes after the
// Ethernet header). Other hardware or protocol types are an error.
func ParseARP(p []byte) (ARP, error) {
	var a ARP
	if len(p) < arpLen {
		return a, ErrShort
	}
	if binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != TypeIPv4 || p[4] != 6 || p[5] != 4 {
		return a, fmt.Errorf("ether: ARP not Ethernet/IPv4")
	}
	a.Op = binary.BigEndian.Uint16(p[6:8])
	copy(a.SenderMAC[:], p[8:14])
	a.SenderIP = netip.AddrFrom4([4]byte(p[14:18]))
	copy(a.TargetMAC[:], p[18:24])
	a.TargetIP = netip.AddrFrom4([4]byte(p[24:28]))
	return a, nil
}

// AppendARPFrame appends a whole Ethernet frame carrying a to b, from src to
// dst, and returns the extended slice. Non-IPv4 addresses are written as
// 0.0.0.0.
func AppendARPFrame(b []byte, dst, src MAC, a ARP) []byte {
	n := len(b)
	b = append(b, make([]byte, HeaderLen+arpLen)...)
	f := b[n:]
	PutHeader(f, Header{Dst: dst, Src: src, Type: TypeARP})
	p := f[HeaderLen:]
	binary.BigEndian.PutUint16(p[0:2], 1)
	binary.BigEndian.PutUint16(p[2:4], TypeIPv4)
	p[4], p[5] = 6, 4
	binary.BigEndian.PutUint16(p[6:8], a.Op)
	copy(p[8:14], a.SenderMAC[:])
	put4(p[14:18], a.SenderIP)
	copy(p[18:24], a.TargetMAC[:])
	put4(p[24:28], a.TargetIP)
	return b
}

func put4(b []byte, ip netip.Addr) {
	if ip.Is4() {
		a := ip.As4()
		copy(b, a[:])
	}
}
