package tap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/kadlan/kadlan/tap/ether"
	"golang.zx2c4.com/wireguard/tun"
)

// TUN emulates an Ethernet port on top of an IP-only TUN device
// (golang.zx2c4.com/wireguard/tun), for systems without TAP. The host
// behind the TUN appears on the virtual Ethernet with the MAC given in
// TUNConfig: TUN synthesizes Ethernet headers for the host's packets,
// resolves next-hop MACs with ARP and neighbour solicitations of its own,
// answers ARP and NDP for the host's addresses, and strips headers from
// frames addressed to the host.
type TUN struct {
	dev tun.Device
	mtu int

	mu      sync.Mutex // guards the fields below
	mac     ether.MAC
	v4      []netip.Prefix
	v6      []netip.Addr
	neigh   map[netip.Addr]ether.MAC
	waiting map[netip.Addr][]byte // one held packet per unresolved next hop

	frames    chan []byte // frames for Read: from the host or synthesized
	pool      sync.Pool
	wbuf      []byte // Write's copy buffer (Writes are not concurrent)
	closed    chan struct{}
	closeOnce sync.Once
	readErr   error // set before frames is closed by the pump
	pumpDone  chan struct{}
}

// TUNConfig configures the Ethernet emulation.
type TUNConfig struct {
	// MAC is the Ethernet address of the host behind the TUN (required,
	// unicast).
	MAC ether.MAC
	// Addrs are the host's addresses (more can be added with AddAddr):
	// ARP and NDP for them are answered, and IPv4 prefixes define the
	// subnet broadcast address.
	Addrs []netip.Prefix
}

const (
	tunOffset     = 16 // room before each packet: Ethernet header (14) and vnet header (10) fit
	maxNeighbours = 1024
	maxWaiting    = 64
	framesDepth   = 128
)

var _ Device = (*TUN)(nil)

// NewTUN wraps dev. It starts a goroutine that reads packets from dev and
// one that drains its events; Close stops them and closes dev.
func NewTUN(dev tun.Device, cfg TUNConfig) (*TUN, error) {
	if cfg.MAC.IsZero() || cfg.MAC.IsMulticast() {
		return nil, fmt.Errorf("tap: TUN emulation needs a unicast MAC, not %v", cfg.MAC)
	}
	mtu, err := dev.MTU()
	if err != nil {
		return nil, fmt.Errorf("tap: TUN MTU: %w", err)
	}
	t := &TUN{dev: dev, mtu: mtu, mac: cfg.MAC, neigh: map[netip.Addr]ether.MAC{}, waiting: map[netip.Addr][]byte{},
		frames: make(chan []byte, framesDepth), closed: make(chan struct{}), pumpDone: make(chan struct{})}
	size := tunOffset + mtu + 64
	t.pool.New = func() any { b := make([]byte, size); return &b }
	for _, p := range cfg.Addrs {
		t.addAddr(p)
	}
	if ev := dev.Events(); ev != nil {
		go func() { // nobody else reads device events; the device closes the channel
			for range ev {
			}
		}()
	}
	go t.pump()
	return t, nil
}

func (t *TUN) addAddr(p netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.Addr().Is4() {
		t.v4 = append(t.v4, p)
	} else {
		t.v6 = append(t.v6, p.Addr())
	}
}

func (t *TUN) removeAddr(p netip.Prefix) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.v4 = slices.DeleteFunc(t.v4, func(q netip.Prefix) bool { return q == p })
	t.v6 = slices.DeleteFunc(t.v6, func(a netip.Addr) bool { return a == p.Addr() })
}

func (t *TUN) getBuf() []byte  { return *(t.pool.Get().(*[]byte)) }
func (t *TUN) putBuf(b []byte) { b = b[:cap(b)]; t.pool.Put(&b) }

// pump moves packets from the TUN device to the frames channel.
func (t *TUN) pump() {
	defer close(t.pumpDone)
	n := max(t.dev.BatchSize(), 1)
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	for i := range bufs {
		bufs[i] = make([]byte, tunOffset+t.mtu+64) // GSO is split into MTU-sized packets by the device
	}
	for {
		cnt, err := t.dev.Read(bufs, sizes, tunOffset)
		for i := range cnt {
			pkt := bufs[i][tunOffset : tunOffset+sizes[i]]
			f := t.frameFor(pkt)
			if f == nil {
				continue
			}
			select {
			case t.frames <- f:
			case <-t.closed:
				t.putBuf(f)
				return
			}
		}
		if err != nil {
			if errors.Is(err, tun.ErrTooManySegments) {
				continue
			}
			t.mu.Lock()
			t.readErr = err
			t.mu.Unlock()
			return
		}
	}
}

// frameFor turns an IP packet from the host into an Ethernet frame in a
// pooled buffer, or, when the next hop's MAC is unknown, holds the packet
// and returns a resolution request instead (or nil).
func (t *TUN) frameFor(pkt []byte) []byte {
	if len(pkt) < 1 {
		return nil
	}
	var dst netip.Addr
	var typ uint16
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return nil
		}
		dst, typ = netip.AddrFrom4([4]byte(pkt[16:20])), ether.TypeIPv4
	case 6:
		if len(pkt) < 40 {
			return nil
		}
		dst, typ = netip.AddrFrom16([16]byte(pkt[24:40])), ether.TypeIPv6
	default:
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	dmac, ok := t.dstMAC(dst)
	if !ok {
		if len(t.waiting) < maxWaiting || t.waiting[dst] != nil {
			t.waiting[dst] = append(t.waiting[dst][:0], pkt...)
		}
		return t.solicit(dst)
	}
	return t.wrap(dmac, typ, pkt)
}

func (t *TUN) wrap(dmac ether.MAC, typ uint16, pkt []byte) []byte {
	f := t.getBuf()
	if len(f) < ether.HeaderLen+len(pkt) {
		f = make([]byte, ether.HeaderLen+len(pkt))
	}
	ether.PutHeader(f, ether.Header{Dst: dmac, Src: t.mac, Type: typ})
	n := copy(f[ether.HeaderLen:], pkt)
	return f[:ether.HeaderLen+n]
}

// dstMAC maps a destination address to its Ethernet address; t.mu held.
func (t *TUN) dstMAC(dst netip.Addr) (ether.MAC, bool) {
	switch {
	case dst.Is4() && dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return ether.Broadcast, true
	case dst.IsMulticast() && dst.Is4():
		return ether.IPv4Multicast(dst), true
	case dst.IsMulticast():
		return ether.IPv6Multicast(dst), true
	}
	if dst.Is4() {
		for _, p := range t.v4 {
			if p.Bits() < 31 && p.Contains(dst) && dst == lastAddr(p) {
				return ether.Broadcast, true
			}
		}
	}
	m, ok := t.neigh[dst]
	return m, ok
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(a[:]) | uint32(0xffffffff)>>p.Bits()
	binary.BigEndian.PutUint32(a[:], v)
	return netip.AddrFrom4(a)
}

// solicit builds an ARP request or neighbour solicitation for dst; t.mu held.
func (t *TUN) solicit(dst netip.Addr) []byte {
	f := t.getBuf()[:0]
	if dst.Is4() {
		var src netip.Addr
		for _, p := range t.v4 {
			if p.Contains(dst) || !src.IsValid() {
				src = p.Addr()
			}
		}
		if !src.IsValid() {
			t.putBuf(f)
			return nil
		}
		return ether.AppendARPFrame(f, ether.Broadcast, t.mac, ether.ARP{Op: ether.ARPRequest, SenderMAC: t.mac, SenderIP: src, TargetIP: dst})
	}
	src := ether.LinkLocal(t.mac)
	if len(t.v6) > 0 && !dst.IsLinkLocalUnicast() {
		src = t.v6[0]
	}
	sn := ether.SolicitedNode(dst)
	return ether.AppendNDPFrame(f, ether.IPv6Multicast(sn), t.mac, ether.NDP{Type: ether.ICMPv6NeighborSol, Src: src, Dst: sn, Target: dst, LLAddr: t.mac})
}

// Read implements Device.
func (t *TUN) Read(buf []byte) (int, error) {
	select {
	case <-t.closed:
		return 0, net.ErrClosed
	default:
	}
	select {
	case f, ok := <-t.frames:
		if !ok {
			return 0, net.ErrClosed
		}
		n := copy(buf, f)
		if n < len(f) {
			n = len(f)
		}
		t.putBuf(f)
		return n, nil
	case <-t.closed:
		return 0, net.ErrClosed
	case <-t.pumpDone:
		t.mu.Lock()
		err := t.readErr
		t.mu.Unlock()
		if err == nil || errors.Is(err, os.ErrClosed) {
			err = net.ErrClosed
		}
		return 0, fmt.Errorf("tap: read TUN: %w", err)
	}
}

// offer queues a synthesized frame for Read without blocking (dropping it
// when Read is far behind, as a busy NIC would).
func (t *TUN) offer(f []byte) {
	select {
	case t.frames <- f:
	default:
		t.putBuf(f)
	}
}

// Write implements Device: it answers ARP and NDP for the host's
// addresses, learns neighbours, and hands IP packets addressed to the
// host's MAC (or broadcast/multicast) to the TUN. Other frames are ignored
// as a NIC ignores them.
func (t *TUN) Write(frame []byte) (int, error) {
	select {
	case <-t.closed:
		return 0, net.ErrClosed
	default:
	}
	h, err := ether.ParseHeader(frame)
	if err != nil {
		return 0, fmt.Errorf("tap: TUN write: %w", err)
	}
	if len(frame) > ether.HeaderLen+t.mtu {
		return 0, fmt.Errorf("tap: TUN write: frame of %d bytes exceeds MTU %d", len(frame), t.mtu)
	}
	t.mu.Lock()
	mine := h.Dst == t.mac || h.Dst.IsMulticast()
	t.mu.Unlock()
	if !mine {
		return len(frame), nil
	}
	p := frame[ether.HeaderLen:]
	switch h.Type {
	case ether.TypeARP:
		t.handleARP(h, p)
		return len(frame), nil
	case ether.TypeIPv4:
		if len(p) >= 20 {
			t.learn(netip.AddrFrom4([4]byte(p[12:16])), h.Src)
		}
	case ether.TypeIPv6:
		if n, err := ether.ParseNDP(p); err == nil {
			t.handleNDP(h, n)
			return len(frame), nil
		}
		if len(p) >= 40 {
			t.learn(netip.AddrFrom16([16]byte(p[8:24])), h.Src)
		}
	default:
		return len(frame), nil
	}
	if cap(t.wbuf) < tunOffset+len(p) {
		t.wbuf = make([]byte, tunOffset+t.mtu+64)
	}
	b := t.wbuf[:tunOffset+len(p)]
	copy(b[tunOffset:], p)
	if _, err := t.dev.Write([][]byte{b}, tunOffset); err != nil {
		return 0, fmt.Errorf("tap: TUN write: %w", mapClosed(err))
	}
	return len(frame), nil
}

// learn records that ip is at mac and releases a packet held for it.
func (t *TUN) learn(ip netip.Addr, mac ether.MAC) {
	if !ip.IsValid() || ip.IsUnspecified() || ip.IsMulticast() || mac.IsMulticast() {
		return
	}
	t.mu.Lock()
	if len(t.neigh) >= maxNeighbours && t.neigh[ip] == (ether.MAC{}) {
		clear(t.neigh)
	}
	t.neigh[ip] = mac
	pkt, held := t.waiting[ip]
	delete(t.waiting, ip)
	var f []byte
	if held {
		typ := ether.TypeIPv6
		if ip.Is4() {
			typ = ether.TypeIPv4
		}
		f = t.wrap(mac, typ, pkt)
	}
	t.mu.Unlock()
	if f != nil {
		t.offer(f)
	}
}

func (t *TUN) isMine(ip netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ip == ether.LinkLocal(t.mac) {
		return true
	}
	for _, p := range t.v4 {
		if p.Addr() == ip {
			return true
		}
	}
	return slices.Contains(t.v6, ip)
}

func (t *TUN) handleARP(h ether.Header, p []byte) {
	a, err := ether.ParseARP(p)
	if err != nil {
		return
	}
	if !a.SenderIP.IsUnspecified() {
		t.learn(a.SenderIP, a.SenderMAC)
	}
	if a.Op != ether.ARPRequest || !t.isMine(a.TargetIP) || a.SenderIP == a.TargetIP {
		return
	}
	t.mu.Lock()
	mac := t.mac
	t.mu.Unlock()
	reply := ether.ARP{Op: ether.ARPReply, SenderMAC: mac, SenderIP: a.TargetIP, TargetMAC: a.SenderMAC, TargetIP: a.SenderIP}
	t.offer(ether.AppendARPFrame(t.getBuf()[:0], h.Src, mac, reply))
}

func (t *TUN) handleNDP(h ether.Header, n ether.NDP) {
	switch n.Type {
	case ether.ICMPv6NeighborAdv:
		mac := n.LLAddr
		if mac.IsZero() {
			mac = h.Src
		}
		t.learn(n.Target, mac)
	case ether.ICMPv6NeighborSol:
		if !n.Src.IsUnspecified() {
			mac := n.LLAddr
			if mac.IsZero() {
				mac = h.Src
			}
			t.learn(n.Src, mac)
		}
		if !t.isMine(n.Target) {
			return
		}
		t.mu.Lock()
		mac := t.mac
		t.mu.Unlock()
		na := ether.NDP{Type: ether.ICMPv6NeighborAdv, Src: n.Target, Dst: n.Src, Target: n.Target, Flags: 0x60, LLAddr: mac}
		dst := h.Src
		if n.Src.IsUnspecified() {
			na.Dst, na.Flags = netip.MustParseAddr("ff02::1"), 0x20
			dst = ether.IPv6Multicast(na.Dst)
		}
		t.offer(ether.AppendNDPFrame(t.getBuf()[:0], dst, mac, na))
	}
}

// MTU implements Device.
func (t *TUN) MTU() int { return t.mtu }

// MAC implements Device.
func (t *TUN) MAC() ether.MAC {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mac
}

// Name implements Device.
func (t *TUN) Name() string {
	n, err := t.dev.Name()
	if err != nil {
		return "tun"
	}
	return n
}

// SetMAC changes the emulated Ethernet address.
func (t *TUN) SetMAC(mac ether.MAC) error {
	if mac.IsZero() || mac.IsMulticast() {
		return fmt.Errorf("tap: TUN MAC %v is not unicast", mac)
	}
	t.mu.Lock()
	t.mac = mac
	t.mu.Unlock()
	return nil
}

// Close implements Device: it closes the TUN device and stops the reader.
func (t *TUN) Close() error {
	var err error
	t.closeOnce.Do(func() {
		close(t.closed)
		if e := t.dev.Close(); e != nil {
			err = fmt.Errorf("tap: close TUN: %w", e)
		}
		<-t.pumpDone
	})
	return err
}
