package tap

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/kadlan/kadlan/tap/ether"
	"golang.zx2c4.com/wireguard/tun/tuntest"
)

var (
	hostMAC  = ether.MAC{0x02, 0x10, 0, 0, 0, 1}
	peerMAC  = ether.MAC{0x02, 0x10, 0, 0, 0, 2}
	hostV4   = netip.MustParsePrefix("10.7.0.1/24")
	peerV4   = netip.MustParseAddr("10.7.0.2")
	hostV6   = netip.MustParsePrefix("fd07::1/64")
	peerV6   = netip.MustParseAddr("fd07::2")
	testWait = 2 * time.Second
)

func newTestTUN(t *testing.T) (*TUN, *tuntest.ChannelTUN) {
	t.Helper()
	ch := tuntest.NewChannelTUN()
	d, err := NewTUN(ch.TUN(), TUNConfig{MAC: hostMAC, Addrs: []netip.Prefix{hostV4, hostV6}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, ch
}

// readFrame reads one frame from d or fails after testWait.
func readFrame(t *testing.T, d *TUN) []byte {
	t.Helper()
	type res struct {
		f   []byte
		err error
	}
	c := make(chan res, 1)
	go func() {
		buf := make([]byte, 2000)
		n, err := d.Read(buf)
		c <- res{buf[:max(n, 0)], err}
	}()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.f
	case <-time.After(testWait):
		t.Fatal("no frame from the TUN emulation")
		return nil
	}
}

func ipv4Packet(src, dst netip.Addr, payload string) []byte {
	p := make([]byte, 20)
	p[0] = 0x45
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	return append(p, payload...)
}

func ipv6Packet(src, dst netip.Addr, payload string) []byte {
	p := make([]byte, 40)
	p[0] = 0x60
	p[6] = 17
	p[7] = 64
	s, d := src.As16(), dst.As16()
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	return append(p, payload...)
}

func frameOf(dst, src ether.MAC, typ uint16, p []byte) []byte {
	f := make([]byte, ether.HeaderLen, ether.HeaderLen+len(p))
	ether.PutHeader(f, ether.Header{Dst: dst, Src: src, Type: typ})
	return append(f, p...)
}

func TestTUNResolvesIPv4NextHopWithARP(t *testing.T) {
	d, ch := newTestTUN(t)
	pkt := ipv4Packet(hostV4.Addr(), peerV4, "ping")
	ch.Outbound <- pkt
	// The unknown next hop is resolved first.
	f := readFrame(t, d)
	h, _ := ether.ParseHeader(f)
	a, err := ether.ParseARP(f[ether.HeaderLen:])
	if err != nil || h.Dst != ether.Broadcast || h.Src != hostMAC || a.Op != ether.ARPRequest || a.TargetIP != peerV4 || a.SenderIP != hostV4.Addr() {
		t.Fatalf("want ARP request, got %+v %+v %v", h, a, err)
	}
	// The reply releases the held packet with the peer's MAC.
	rep := ether.AppendARPFrame(nil, hostMAC, peerMAC, ether.ARP{Op: ether.ARPReply, SenderMAC: peerMAC, SenderIP: peerV4, TargetMAC: hostMAC, TargetIP: hostV4.Addr()})
	if _, err := d.Write(rep); err != nil {
		t.Fatal(err)
	}
	f = readFrame(t, d)
	if want := frameOf(peerMAC, hostMAC, ether.TypeIPv4, pkt); !bytes.Equal(f, want) {
		t.Fatalf("got %x\nwant %x", f, want)
	}
	// Now known: the next packet goes straight out.
	ch.Outbound <- pkt
	if f := readFrame(t, d); !bytes.Equal(f, frameOf(peerMAC, hostMAC, ether.TypeIPv4, pkt)) {
		t.Fatal("second packet not framed directly")
	}
}

func TestTUNResolvesIPv6NextHopWithNDP(t *testing.T) {
	d, ch := newTestTUN(t)
	pkt := ipv6Packet(hostV6.Addr(), peerV6, "hello")
	ch.Outbound <- pkt
	f := readFrame(t, d)
	n, err := ether.ParseNDP(f[ether.HeaderLen:])
	if err != nil || n.Type != ether.ICMPv6NeighborSol || n.Target != peerV6 || n.Dst != ether.SolicitedNode(peerV6) || n.LLAddr != hostMAC {
		t.Fatalf("want NS, got %+v %v", n, err)
	}
	na := ether.NDP{Type: ether.ICMPv6NeighborAdv, Src: peerV6, Dst: hostV6.Addr(), Target: peerV6, Flags: 0x60, LLAddr: peerMAC}
	d.Write(ether.AppendNDPFrame(nil, hostMAC, peerMAC, na))
	if f := readFrame(t, d); !bytes.Equal(f, frameOf(peerMAC, hostMAC, ether.TypeIPv6, pkt)) {
		t.Fatalf("held IPv6 packet not released: %x", f)
	}
}

func TestTUNAnswersForHostAddresses(t *testing.T) {
	d, _ := newTestTUN(t)
	// Read is already blocked when the request arrives: the answer must
	// still come out.
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 2000)
		n, err := d.Read(buf)
		if err == nil {
			got <- buf[:n]
		}
	}()
	time.Sleep(20 * time.Millisecond)
	req := ether.AppendARPFrame(nil, ether.Broadcast, peerMAC, ether.ARP{Op: ether.ARPRequest, SenderMAC: peerMAC, SenderIP: peerV4, TargetIP: hostV4.Addr()})
	d.Write(req)
	var f []byte
	select {
	case f = <-got:
	case <-time.After(testWait):
		t.Fatal("no ARP reply while Read was blocked")
	}
	a, err := ether.ParseARP(f[ether.HeaderLen:])
	if err != nil || a.Op != ether.ARPReply || a.SenderMAC != hostMAC || a.SenderIP != hostV4.Addr() || a.TargetMAC != peerMAC {
		t.Fatalf("%+v %v", a, err)
	}
	ns := ether.NDP{Type: ether.ICMPv6NeighborSol, Src: peerV6, Dst: ether.SolicitedNode(hostV6.Addr()), Target: hostV6.Addr(), LLAddr: peerMAC}
	d.Write(ether.AppendNDPFrame(nil, ether.IPv6Multicast(ns.Dst), peerMAC, ns))
	f = readFrame(t, d)
	n, err := ether.ParseNDP(f[ether.HeaderLen:])
	if err != nil || n.Type != ether.ICMPv6NeighborAdv || n.Target != hostV6.Addr() || n.LLAddr != hostMAC || n.Dst != peerV6 {
		t.Fatalf("%+v %v", n, err)
	}
	if c := ether.ICMPv6Checksum(n.Src, n.Dst, f[ether.HeaderLen+ether.IPv6HeaderLen:]); c != 0 {
		t.Fatal("bad NA checksum")
	}
	// Requests for other addresses get no answer.
	other := ether.AppendARPFrame(nil, ether.Broadcast, peerMAC, ether.ARP{Op: ether.ARPRequest, SenderMAC: peerMAC, SenderIP: peerV4, TargetIP: netip.MustParseAddr("10.7.0.9")})
	d.Write(other)
	select {
	case f := <-d.frames:
		t.Fatalf("unexpected frame %x", f)
	case <-time.After(50 * time.Millisecond):
	}
}

func TestTUNDeliversFramesForTheHost(t *testing.T) {
	d, ch := newTestTUN(t)
	pkt := ipv4Packet(peerV4, hostV4.Addr(), "data")
	for _, tt := range []struct {
		name    string
		dst     ether.MAC
		deliver bool
	}{
		{"to host MAC", hostMAC, true},
		{"broadcast", ether.Broadcast, true},
		{"multicast", ether.IPv4Multicast(netip.MustParseAddr("224.0.0.251")), true},
		{"to another MAC", ether.MAC{2, 3, 4, 5, 6, 7}, false},
	} {
		orig := frameOf(tt.dst, peerMAC, ether.TypeIPv4, pkt)
		f := bytes.Clone(orig)
		werr := make(chan error, 1)
		go func() { _, err := d.Write(f); werr <- err }() // the channel TUN blocks until read
		select {
		case got := <-ch.Inbound:
			if !tt.deliver || !bytes.Equal(got, pkt) {
				t.Fatalf("%s: host got %x", tt.name, got)
			}
		case <-time.After(50 * time.Millisecond):
			if tt.deliver {
				t.Fatalf("%s: not delivered", tt.name)
			}
		}
		if err := <-werr; err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f, orig) {
			t.Fatalf("%s: Write modified the caller's frame", tt.name)
		}
	}
	// The source was learned: a reply needs no ARP.
	ch.Outbound <- ipv4Packet(hostV4.Addr(), peerV4, "reply")
	f := readFrame(t, d)
	if h, _ := ether.ParseHeader(f); h.Dst != peerMAC || h.Type != ether.TypeIPv4 {
		t.Fatalf("reply header %+v", h)
	}
	if _, err := d.Write([]byte{1, 2}); err == nil {
		t.Fatal("short frame accepted")
	}
}

func TestTUNGroupAddresses(t *testing.T) {
	d, ch := newTestTUN(t)
	for _, tt := range []struct {
		pkt []byte
		dst ether.MAC
	}{
		{ipv4Packet(hostV4.Addr(), netip.MustParseAddr("255.255.255.255"), "b"), ether.Broadcast},
		{ipv4Packet(hostV4.Addr(), netip.MustParseAddr("10.7.0.255"), "b"), ether.Broadcast},
		{ipv4Packet(hostV4.Addr(), netip.MustParseAddr("224.0.0.251"), "m"), ether.MAC{1, 0, 0x5e, 0, 0, 0xfb}},
		{ipv6Packet(hostV6.Addr(), netip.MustParseAddr("ff02::fb"), "m"), ether.MAC{0x33, 0x33, 0, 0, 0, 0xfb}},
	} {
		ch.Outbound <- tt.pkt
		f := readFrame(t, d)
		if h, _ := ether.ParseHeader(f); h.Dst != tt.dst || !bytes.Equal(f[ether.HeaderLen:], tt.pkt) {
			t.Fatalf("got dst %v, want %v", h.Dst, tt.dst)
		}
	}
}

func TestTUNClose(t *testing.T) {
	d, _ := newTestTUN(t)
	errc := make(chan error, 1)
	go func() { _, err := d.Read(make([]byte, 100)); errc <- err }()
	time.Sleep(20 * time.Millisecond)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if _, err := d.Write(frameOf(hostMAC, peerMAC, ether.TypeIPv4, ipv4Packet(peerV4, hostV4.Addr(), ""))); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal("second close:", err)
	}
}
