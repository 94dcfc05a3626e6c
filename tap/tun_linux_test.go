package tap

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"testing"

	"github.com/kadlan/kadlan/tap/ether"
)

func inetChecksum(b []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// echoRequest builds an IPv4 ICMP echo request with valid checksums.
func echoRequest(src, dst netip.Addr, id uint16) []byte {
	p := make([]byte, 20+8+4)
	p[0], p[8], p[9] = 0x45, 64, 1
	binary.BigEndian.PutUint16(p[2:4], uint16(len(p)))
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	binary.BigEndian.PutUint16(p[10:12], inetChecksum(p[:20]))
	icmp := p[20:]
	icmp[0] = 8
	binary.BigEndian.PutUint16(icmp[4:6], id)
	copy(icmp[8:], "klan")
	binary.BigEndian.PutUint16(icmp[2:4], inetChecksum(icmp))
	return p
}

// A real kernel TUN in a private namespace: a ping written as an Ethernet
// frame reaches the kernel, and its reply comes back framed for the sender.
func TestLinuxTUNEmulation(t *testing.T) {
	inNetns(t, func() error {
		d, err := CreateTUN("kltun0", 1400, TUNConfig{MAC: hostMAC})
		if err != nil {
			return err
		}
		defer d.Close()
		if err := d.AddAddr(netip.MustParsePrefix("10.7.0.1/24")); err != nil {
			return err
		}
		if err := d.SetUp(true); err != nil {
			return err
		}
		if d.MTU() != 1400 || d.Name() != "kltun0" {
			return fmt.Errorf("mtu %d name %s", d.MTU(), d.Name())
		}
		req := frameOf(hostMAC, peerMAC, ether.TypeIPv4, echoRequest(peerV4, netip.MustParseAddr("10.7.0.1"), 77))
		got := make(chan []byte, 1)
		go func() {
			buf := make([]byte, 2000)
			for {
				n, err := d.Read(buf)
				if err != nil {
					return
				}
				f := buf[:n]
				if len(f) >= 14+28 && f[14+9] == 1 && f[14+20] == 0 { // ICMP echo reply
					got <- append([]byte(nil), f...)
					return
				}
			}
		}()
		for range 10 {
			if _, err := d.Write(req); err != nil {
				return err
			}
			select {
			case f := <-got:
				h, _ := ether.ParseHeader(f)
				if h.Dst != peerMAC || h.Src != hostMAC || h.Type != ether.TypeIPv4 {
					return fmt.Errorf("reply header %+v", h)
				}
				if binary.BigEndian.Uint16(f[14+24:]) != 77 {
					return fmt.Errorf("reply for another echo")
				}
				return nil
			case <-time.After(300 * time.Millisecond):
			}
		}
		return fmt.Errorf("no echo reply from the kernel")
	})
}
