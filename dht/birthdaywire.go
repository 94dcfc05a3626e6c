package dht

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// The birthday punch's messages, on a stream over the relayed connection.
// Every message is a frame: type (1 byte), body length (1 byte), body. The
// length of each type's body is fixed; anything else is refused.
//
//	hello  16-byte nonce, NAT class (0 unknown, 1 eim, 2 symmetric),
//	       external IPv4 address (4 bytes, zero if unknown), UDP port
//	       (2 bytes, zero if unknown)
//	ready  (empty) the symmetric side has opened its mappings
//	hit    UDP port (2 bytes) on the symmetric side's NAT that a probe hit
//	end    reason (1 byte, bdayReason)
const (
	msgHello uint8 = 1
	msgReady uint8 = 2
	msgHit   uint8 = 3
	msgEnd   uint8 = 4
)

var msgBodyLen = map[uint8]int{msgHello: 23, msgReady: 0, msgHit: 2, msgEnd: 1}

const maxMsgLen = 2 + 23

type bdayMsg struct {
	Type   uint8
	Nonce  [16]byte
	Class  natClass
	Addr   netip.AddrPort // hello: external address; the zero value if unknown
	Port   uint16         // hit
	Reason bdayReason     // end
}

var errBadMsg = errors.New("birthday: malformed message")

// parseMsg decodes one whole frame.
func parseMsg(b []byte) (bdayMsg, error) {
	if len(b) < 2 {
		return bdayMsg{}, errBadMsg
	}
	want, ok := msgBodyLen[b[0]]
	if !ok || int(b[1]) != want || len(b) != 2+want {
		return bdayMsg{}, errBadMsg
	}
	m := bdayMsg{Type: b[0]}
	body := b[2:]
	switch m.Type {
	case msgHello:
		copy(m.Nonce[:], body[:16])
		m.Class = natClass(body[16])
		if m.Class > natSymmetric {
			return bdayMsg{}, errBadMsg
		}
		ip := netip.AddrFrom4([4]byte(body[17:21]))
		port := binary.BigEndian.Uint16(body[21:23])
		if ip.IsUnspecified() {
			if port != 0 {
				return bdayMsg{}, errBadMsg
			}
		} else {
			m.Addr = netip.AddrPortFrom(ip, port)
		}
	case msgHit:
		m.Port = binary.BigEndian.Uint16(body)
		if m.Port < bdayMinPort {
			return bdayMsg{}, errBadMsg
		}
	case msgEnd:
		m.Reason = bdayReason(body[0])
		if m.Reason >= reasonCount {
			return bdayMsg{}, errBadMsg
		}
	}
	return m, nil
}

// encode is the frame of m (m must be valid).
func (m bdayMsg) encode() []byte {
	b := []byte{m.Type, byte(msgBodyLen[m.Type])}
	switch m.Type {
	case msgHello:
		b = append(b, m.Nonce[:]...)
		b = append(b, byte(m.Class))
		ip := [4]byte{}
		var port uint16
		if m.Addr.IsValid() && m.Addr.Addr().Is4() {
			ip = m.Addr.Addr().As4()
			port = m.Addr.Port()
		}
		b = append(b, ip[:]...)
		b = binary.BigEndian.AppendUint16(b, port)
	case msgHit:
		b = binary.BigEndian.AppendUint16(b, m.Port)
	case msgEnd:
		b = append(b, byte(m.Reason))
	}
	return b
}

// readMsg reads one frame from r.
func readMsg(r io.Reader) (bdayMsg, error) {
	var buf [maxMsgLen]byte
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return bdayMsg{}, err
	}
	n := int(buf[1])
	if n > maxMsgLen-2 {
		return bdayMsg{}, errBadMsg
	}
	if _, err := io.ReadFull(r, buf[2:2+n]); err != nil {
		return bdayMsg{}, err
	}
	return parseMsg(buf[:2+n])
}

// Probes: UDP packets between the NATs. The first byte is 0, so that a
// QUIC stack receiving one (the EIM side's QUIC socket, or the winning
// socket once QUIC owns it) sees a non-QUIC packet and drops it.
var probeMagic = [5]byte{0, 'K', 'L', 'B', 'D'}

const probeLen = 5 + 16 + 2

// makeProbe is a probe carrying nonce and the destination port it was
// sent to (so the receiver learns its NAT's external port).
func makeProbe(nonce [16]byte, port uint16) []byte {
	b := make([]byte, 0, probeLen)
	b = append(b, probeMagic[:]...)
	b = append(b, nonce[:]...)
	return binary.BigEndian.AppendUint16(b, port)
}

// parseProbe returns the destination port of a probe with nonce.
func parseProbe(b []byte, nonce [16]byte) (uint16, bool) {
	if len(b) != probeLen || [5]byte(b[:5]) != probeMagic || [16]byte(b[5:21]) != nonce {
		return 0, false
	}
	p := binary.BigEndian.Uint16(b[21:])
	return p, p >= bdayMinPort
}

// bdayReason is how a birthday punch ended.
type bdayReason uint8

const (
	reasonDirect        bdayReason = iota // a direct QUIC connection over the punched ports
	reasonBothSymmetric                   // both sides map per destination: no punch can work
	reasonNoSymmetric                     // neither side is symmetric: DCUtR's job
	reasonUnknownNAT                      // a side does not know its NAT's mapping yet
	reasonNoAddr                          // the EIM side knows no external UDP address
	reasonNoHit                           // every probe missed
	reasonDialFailed                      // a probe hit, the QUIC dial failed
	reasonBusy                            // the other side is punching with someone else
	reasonFailed                          // anything else (a socket, a stream, the deadline)
	reasonCount
)

func (r bdayReason) String() string {
	switch r {
	case reasonDirect:
		return "direct over QUIC through the punched ports"
	case reasonBothSymmetric:
		return "both sides behind symmetric NATs: stays relayed"
	case reasonNoSymmetric:
		return "no side behind a symmetric NAT (DCUtR's case)"
	case reasonUnknownNAT:
		return "a side's NAT mapping is not known yet"
	case reasonNoAddr:
		return "the endpoint-independent side knows no external UDP address"
	case reasonNoHit:
		return fmt.Sprintf("no probe hit (%d ports x %d probes)", bdaySockets, bdayMaxProbes)
	case reasonDialFailed:
		return "a probe hit but the QUIC dial failed"
	case reasonBusy:
		return "the other side was busy"
	case reasonFailed:
		return "failed"
	}
	return fmt.Sprintf("reason %d", uint8(r))
}
