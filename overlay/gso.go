package overlay

import (
	"encoding/binary"
	"fmt"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/tap/ether"
)

// Limits on TCP super-frames (MsgFrameGSO). A member's super-frame is
// checked against them in constant time before any work is done on it, so
// that segmenting one costs no more than the ~64 KiB of data it carries: a
// super-frame with a tiny segment size or a huge header length, which
// would otherwise make the receiver write tens of thousands of segments,
// is dropped and counted (EngineStats.GSORejected).
const (
	// GSOMinSize is the smallest segment size (TCP MSS) accepted: 536, the
	// default MSS of RFC 9293. The device reader segments a local
	// super-frame with a smaller one itself and sends plain frames.
	GSOMinSize = 536
	// GSOMaxSize is the largest segment size: the largest network MTU.
	GSOMaxSize = netrec.MaxMTU
	// GSOMaxSegments bounds the segments of one super-frame: 64 KiB of
	// payload at GSOMinSize is 123.
	GSOMaxSegments = 128
	// GSOMaxFrame is the longest super-frame: an Ethernet header and a
	// 64 KiB IP packet (the 16-bit IPv4 total length, or an IPv6 payload
	// length plus the fixed header).
	GSOMaxFrame = ether.HeaderLen + ipv6HeaderLen + 65535

	ipv6HeaderLen = 40
	tcpProto      = 6
	// vnetFlagDataValid is VIRTIO_NET_HDR_F_DATA_VALID, which Linux sets
	// on frames whose checksum it already checked.
	vnetFlagDataValid = 2
)

// gsoError says why a super-frame was refused; reason is a short constant
// for counting and rate-limited logging.
type gsoError struct {
	reason string
	detail string
}

func (e *gsoError) Error() string { return e.reason + ": " + e.detail }

func gsoErr(reason, format string, args ...any) error {
	return &gsoError{reason, fmt.Sprintf(format, args...)}
}

// gsoReason is the reason of a checkGSO error ("" for other errors).
func gsoReason(err error) string {
	if g, ok := err.(*gsoError); ok {
		return g.reason
	}
	return ""
}

// checkGSO validates the virtio-net header h of TCP super-frame frame (an
// Ethernet frame, h.IsGSO()) in constant time: GSO type, checksum fields,
// IP and TCP headers, sizes and the segment count; mtu > 0 also bounds each
// segment to the device MTU. Once the headers check out it sets h.HdrLen to the real
// header length (Ethernet, IP and TCP headers), which Linux may overstate,
// as wireguard-go also recomputes it. The "size" reasons are the ones a
// well-formed local super-frame can have (see the device reader).
func checkGSO(frame []byte, h *ether.VnetHdr, mtu int) error {
	typ := h.GSOType &^ ether.VnetGSOECN
	if typ != ether.VnetGSOTCPv4 && typ != ether.VnetGSOTCPv6 {
		return gsoErr("type", "GSO type %#x not supported", h.GSOType)
	}
	if h.Flags&^(ether.VnetNeedsCsum|vnetFlagDataValid) != 0 || h.Flags&ether.VnetNeedsCsum == 0 || h.CsumOffset != 16 {
		return gsoErr("checksum", "flags %#x, checksum offset %d", h.Flags, h.CsumOffset)
	}
	if len(frame) > GSOMaxFrame {
		return gsoErr("length", "%d-byte super-frame, max %d", len(frame), GSOMaxFrame)
	}
	if len(frame) < ether.HeaderLen+20+20 {
		return gsoErr("length", "%d-byte super-frame", len(frame))
	}
	et := binary.BigEndian.Uint16(frame[12:])
	ip := frame[ether.HeaderLen:]
	var ipLen int
	switch {
	case typ == ether.VnetGSOTCPv4 && et == ether.TypeIPv4 && ip[0]>>4 == 4 && ip[9] == tcpProto:
		ipLen = int(ip[0]&15) * 4
	case typ == ether.VnetGSOTCPv6 && et == ether.TypeIPv6 && ip[0]>>4 == 6 && len(ip) >= ipv6HeaderLen && ip[6] == tcpProto:
		ipLen = ipv6HeaderLen
	default:
		return gsoErr("header", "GSO type %#x on EtherType %#04x, IP %#x", h.GSOType, et, ip[0])
	}
	tcpStart := ether.HeaderLen + ipLen
	if ipLen < 20 || int(h.CsumStart) != tcpStart || len(frame) < tcpStart+20 {
		return gsoErr("header", "IP header of %d bytes, checksum start %d", ipLen, h.CsumStart)
	}
	tcpLen := int(frame[tcpStart+12]>>4) * 4
	hdrLen := tcpStart + tcpLen
	if tcpLen < 20 || hdrLen >= len(frame) {
		return gsoErr("header", "TCP header of %d bytes in a %d-byte frame", tcpLen, len(frame))
	}
	h.HdrLen = uint16(hdrLen) // also for "size": the caller may segment it
	size := int(h.GSOSize)
	if size > GSOMaxSize || mtu > 0 && hdrLen-ether.HeaderLen+size > mtu {
		return gsoErr("mtu", "segment size %d (headers %d, MTU %d)", size, hdrLen, mtu)
	}
	if size < GSOMinSize {
		return gsoErr("size", "segment size %d, min %d", size, GSOMinSize)
	}
	if segs := (len(frame) - hdrLen + size - 1) / size; segs > GSOMaxSegments {
		return gsoErr("size", "%d segments, max %d", segs, GSOMaxSegments)
	}
	return nil
}
