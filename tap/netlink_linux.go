package tap

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/kadlan/kadlan/tap/ether"
	"golang.org/x/sys/unix"
)

// Minimal rtnetlink client: just enough to set a link's MTU, MAC and
// up/down state and to add addresses, without shelling out to ip(8). Each
// request opens its own socket in the calling thread's network namespace.

var nlSeq atomic.Uint32

func nlAttr(b []byte, typ uint16, data []byte) []byte {
	l := 4 + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32bytes(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// nlRequest sends one request (type typ, the given flags plus
// NLM_F_REQUEST|NLM_F_ACK, payload body) and waits for its acknowledgement.
func nlRequest(typ uint16, flags uint16, body []byte) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	seq := nlSeq.Add(1)
	msg := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	msg = append(msg, body...)
	binary.NativeEndian.PutUint32(msg[0:4], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:6], typ)
	binary.NativeEndian.PutUint16(msg[6:8], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:12], seq)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink send: %w", err)
	}
	buf := make([]byte, 8192)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		b := buf[:n]
		for len(b) >= unix.NLMSG_HDRLEN {
			l := int(binary.NativeEndian.Uint32(b[0:4]))
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return fmt.Errorf("netlink: malformed reply")
			}
			mtyp := binary.NativeEndian.Uint16(b[4:6])
			mseq := binary.NativeEndian.Uint32(b[8:12])
			if mseq == seq && mtyp == unix.NLMSG_ERROR {
				if l < unix.NLMSG_HDRLEN+4 {
					return fmt.Errorf("netlink: short error reply")
				}
				if code := int32(binary.NativeEndian.Uint32(b[unix.NLMSG_HDRLEN:])); code != 0 {
					return unix.Errno(-code)
				}
				return nil
			}
			b = b[(l+3)&^3:]
		}
	}
}

// ifinfomsg builds the fixed part of an RTM_NEWLINK request.
func ifinfomsg(index int, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:8], uint32(int32(index)))
	binary.NativeEndian.PutUint32(b[8:12], flags)
	binary.NativeEndian.PutUint32(b[12:16], change)
	return b
}

func linkSetMTU(index, mtu int) error {
	b := nlAttr(ifinfomsg(index, 0, 0), unix.IFLA_MTU, u32bytes(uint32(mtu)))
	if err := nlRequest(unix.RTM_NEWLINK, 0, b); err != nil {
		return fmt.Errorf("tap: set MTU %d: %w", mtu, err)
	}
	return nil
}

func linkSetMAC(index int, mac ether.MAC) error {
	b := nlAttr(ifinfomsg(index, 0, 0), unix.IFLA_ADDRESS, mac[:])
	if err := nlRequest(unix.RTM_NEWLINK, 0, b); err != nil {
		return fmt.Errorf("tap: set MAC %v: %w", mac, err)
	}
	return nil
}

func linkSetUp(index int, up bool) error {
	var flags uint32
	if up {
		flags = unix.IFF_UP
	}
	if err := nlRequest(unix.RTM_NEWLINK, 0, ifinfomsg(index, flags, unix.IFF_UP)); err != nil {
		return fmt.Errorf("tap: set up=%v: %w", up, err)
	}
	return nil
}

// ifAddrMsg starts an RTM_NEWADDR/RTM_DELADDR body for p on interface
// index: the ifaddrmsg header (family, prefix length, index). It returns p's
// address unmapped and the message.
func ifAddrMsg(index int, p netip.Prefix) (netip.Addr, []byte) {
	a := p.Addr().Unmap()
	fam := byte(unix.AF_INET6)
	if a.Is4() {
		fam = unix.AF_INET
	}
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0] = fam
	b[1] = byte(p.Bits())
	binary.NativeEndian.PutUint32(b[4:8], uint32(index))
	return a, b
}

// addrDel removes p from the interface.
func addrDel(index int, p netip.Prefix) error {
	a, b := ifAddrMsg(index, p)
	b = nlAttr(b, unix.IFA_LOCAL, a.AsSlice())
	if err := nlRequest(unix.RTM_DELADDR, 0, b); err != nil {
		return fmt.Errorf("tap: remove address %v: %w", p, err)
	}
	return nil
}

// addrAdd adds p to the interface; IPv4 gets its subnet broadcast address
// (which `ip addr add` without brd would leave unset), IPv6 skips DAD.
func addrAdd(index int, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("tap: add address: invalid prefix")
	}
	a, b := ifAddrMsg(index, p)
	raw := a.AsSlice()
	b = nlAttr(b, unix.IFA_LOCAL, raw)
	b = nlAttr(b, unix.IFA_ADDRESS, raw)
	if a.Is4() {
		v := binary.BigEndian.Uint32(raw)
		mask := uint32(0xffffffff) >> p.Bits()
		if p.Bits() >= 31 {
			mask = 0
		}
		b = nlAttr(b, unix.IFA_BROADCAST, binary.BigEndian.AppendUint32(nil, v|mask))
	} else {
		b = nlAttr(b, unix.IFA_FLAGS, u32bytes(unix.IFA_F_NODAD))
	}
	if err := nlRequest(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_REPLACE, b); err != nil {
		return fmt.Errorf("tap: add address %v: %w", p, err)
	}
	return nil
}

// ifIndex returns the index of the interface name via SIOCGIFINDEX.
func ifIndex(name string) (int, error) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, err
	}
	return int(int32(ifr.Uint32())), nil
}
