package ether

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// VnetHdrLen is the length of struct virtio_net_hdr, which a Linux TAP
// opened with IFF_VNET_HDR puts before every frame.
const VnetHdrLen = 10

// virtio_net_hdr flags and GSO types (include/uapi/linux/virtio_net.h).
const (
	VnetNeedsCsum  = 1
	VnetGSONone    = 0
	VnetGSOTCPv4   = 1
	VnetGSOUDP     = 3
	VnetGSOTCPv6   = 4
	VnetGSOUDPL4   = 5
	VnetGSOECN     = 0x80
	tcpFlagsOffset = 13
	tcpFlagFIN     = 0x01
	tcpFlagPSH     = 0x08
	tcpFlagCWR     = 0x80
	protoTCP       = 6
	ipv4HeaderMin  = 20
)

// VnetHdr is a virtio-net header. For a TAP, CsumStart and HdrLen count
// from the start of the Ethernet frame. Fields are little-endian on the
// wire (the kernel uses the host's order; kadlan runs on little-endian
// hosts only when offload is on).
type VnetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// ParseVnetHdr reads the header at the start of b.
func ParseVnetHdr(b []byte) (VnetHdr, error) {
	if len(b) < VnetHdrLen {
		return VnetHdr{}, ErrShort
	}
	return VnetHdr{Flags: b[0], GSOType: b[1], HdrLen: binary.LittleEndian.Uint16(b[2:]),
		GSOSize: binary.LittleEndian.Uint16(b[4:]), CsumStart: binary.LittleEndian.Uint16(b[6:]),
		CsumOffset: binary.LittleEndian.Uint16(b[8:])}, nil
}

// Put writes h into the first VnetHdrLen bytes of b.
func (h VnetHdr) Put(b []byte) {
	b[0], b[1] = h.Flags, h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
}

// IsGSO reports whether the frame is a GSO super-frame.
func (h VnetHdr) IsGSO() bool { return h.GSOType&^VnetGSOECN != VnetGSONone }

func csum(b []byte, initial uint64) uint16 {
	ac := initial
	for len(b) >= 8 {
		ac += uint64(binary.BigEndian.Uint32(b)) + uint64(binary.BigEndian.Uint32(b[4:]))
		b = b[8:]
	}
	for len(b) >= 2 {
		ac += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		ac += uint64(b[0]) << 8
	}
	for ac>>16 != 0 {
		ac = ac&0xffff + ac>>16
	}
	return uint16(ac)
}

// ErrOffload is wrapped by errors about frames whose offload header does
// not fit them.
var ErrOffload = errors.New("ether: bad offload header")

// FinishChecksum completes a frame the kernel left for the device to
// checksum (VnetNeedsCsum): the ones'-complement sum from CsumStart to the
// end, seeded with the partial (pseudo-header) sum already at
// CsumStart+CsumOffset, is stored there. Other frames are left alone.
func FinishChecksum(frame []byte, h VnetHdr) error {
	if h.Flags&VnetNeedsCsum == 0 {
		return nil
	}
	start, at := int(h.CsumStart), int(h.CsumStart)+int(h.CsumOffset)
	if start >= len(frame) || at+2 > len(frame) || at < start {
		return fmt.Errorf("%w: checksum at %d+%d in a %d-byte frame", ErrOffload, start, h.CsumOffset, len(frame))
	}
	initial := binary.BigEndian.Uint16(frame[at:])
	frame[at], frame[at+1] = 0, 0
	binary.BigEndian.PutUint16(frame[at:], ^csum(frame[start:], uint64(initial)))
	return nil
}

// SegmentTCP splits a TCP GSO super-frame (GSOType TCPv4 or TCPv6, IP
// right after an untagged Ethernet header) into frames of at most GSOSize
// payload bytes, each with correct lengths, IPv4 IDs and checksums, TCP
// sequence numbers, flags and checksum, as the NIC would have. Each segment
// is built in scratch (grown as needed) and passed to emit, which must not
// retain it. frame itself is not modified.
func SegmentTCP(frame []byte, h VnetHdr, scratch []byte, emit func(seg []byte) error) ([]byte, error) {
	typ := h.GSOType &^ VnetGSOECN
	if typ != VnetGSOTCPv4 && typ != VnetGSOTCPv6 {
		return scratch, fmt.Errorf("%w: GSO type %d not supported", ErrOffload, h.GSOType)
	}
	hdr, err := ParseHeader(frame)
	if err != nil {
		return scratch, err
	}
	isV6 := typ == VnetGSOTCPv6
	if isV6 != (hdr.Type == TypeIPv6) || !isV6 && hdr.Type != TypeIPv4 {
		return scratch, fmt.Errorf("%w: GSO type %d on EtherType %#04x", ErrOffload, h.GSOType, hdr.Type)
	}
	ipStart, tcpStart, hdrLen := HeaderLen, int(h.CsumStart), int(h.HdrLen)
	minIP := ipv4HeaderMin
	if isV6 {
		minIP = IPv6HeaderLen
	}
	if tcpStart < ipStart+minIP || hdrLen < tcpStart+20 || hdrLen > len(frame) || h.CsumOffset != 16 || h.GSOSize == 0 {
		return scratch, fmt.Errorf("%w: headers %d/%d/%d, segment %d in a %d-byte frame", ErrOffload, ipStart, tcpStart, hdrLen, h.GSOSize, len(frame))
	}
	ip := frame[ipStart:tcpStart]
	if isV6 && ip[0]>>4 != 6 || !isV6 && (ip[0]>>4 != 4 || int(ip[0]&15)*4 != len(ip) || ip[9] != protoTCP) {
		return scratch, fmt.Errorf("%w: IP header does not match", ErrOffload)
	}
	var src, dst []byte
	if isV6 {
		src, dst = ip[8:24], ip[24:40]
	} else {
		src, dst = ip[12:16], ip[16:20]
	}
	seq0 := binary.BigEndian.Uint32(frame[tcpStart+4:])
	if need := hdrLen + int(h.GSOSize); cap(scratch) < need {
		scratch = make([]byte, need)
	}
	for i, off := 0, hdrLen; off < len(frame); i, off = i+1, off+int(h.GSOSize) {
		end := min(off+int(h.GSOSize), len(frame))
		total := hdrLen + end - off
		out := scratch[:total]
		copy(out, frame[:hdrLen])
		copy(out[hdrLen:], frame[off:end])
		oip := out[ipStart:tcpStart]
		if isV6 {
			binary.BigEndian.PutUint16(oip[4:], uint16(total-ipStart-IPv6HeaderLen))
		} else {
			binary.BigEndian.PutUint16(oip[2:], uint16(total-ipStart))
			binary.BigEndian.PutUint16(oip[4:], binary.BigEndian.Uint16(ip[4:])+uint16(i))
			oip[10], oip[11] = 0, 0
			binary.BigEndian.PutUint16(oip[10:], ^csum(oip, 0))
		}
		tcp := out[tcpStart:]
		binary.BigEndian.PutUint32(tcp[4:], seq0+uint32(i)*uint32(h.GSOSize))
		if end != len(frame) {
			tcp[tcpFlagsOffset] &^= tcpFlagFIN | tcpFlagPSH
		}
		if i > 0 {
			tcp[tcpFlagsOffset] &^= tcpFlagCWR
		}
		tcp[16], tcp[17] = 0, 0
		var pseudo uint64
		for j := 0; j+1 < len(src); j += 2 {
			pseudo += uint64(binary.BigEndian.Uint16(src[j:])) + uint64(binary.BigEndian.Uint16(dst[j:]))
		}
		pseudo += protoTCP + uint64(len(tcp))
		binary.BigEndian.PutUint16(tcp[16:], ^csum(tcp, pseudo))
		if err := emit(out); err != nil {
			return scratch, err
		}
	}
	return scratch, nil
}
