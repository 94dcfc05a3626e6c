package overlay

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/kadlan/kadlan/tap/ether"
	"github.com/kadlan/kadlan/tap/taptest"
)

// tcpSuperFrame builds a TCP/IPv4 GSO super-frame from a to b with its
// virtio-net header in front, as a TSO-enabled TAP hands it over.
func tcpSuperFrame(a, b *testNode, payload []byte, mss int) []byte {
	const ipLen, tcpLen = 20, 20
	f := make([]byte, ether.VnetHdrLen+ether.HeaderLen+ipLen+tcpLen, ether.VnetHdrLen+ether.HeaderLen+ipLen+tcpLen+len(payload))
	h := ether.VnetHdr{Flags: ether.VnetNeedsCsum, GSOType: ether.VnetGSOTCPv4, HdrLen: ether.HeaderLen + ipLen + tcpLen,
		GSOSize: uint16(mss), CsumStart: ether.HeaderLen + ipLen, CsumOffset: 16}
	h.Put(f)
	e := f[ether.VnetHdrLen:]
	ether.PutHeader(e, ether.Header{Dst: b.mac, Src: a.mac, Type: ether.TypeIPv4})
	ip := e[ether.HeaderLen:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(ipLen+tcpLen+len(payload)))
	s, d := a.ipv4.As4(), b.ipv4.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	tcp := ip[ipLen:]
	tcp[12], tcp[13] = 5<<4, 0x18
	return append(f, payload...)
}

func TestEngineGSO(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 400) // 6400 bytes
	for _, recvVnet := range []bool{false, true} {
		w := newTestWorld(t, 2, false)
		a, b := w.nodes[0], w.nodes[1]
		hostA, devA := taptest.NewPair(a.mac, a.mac, 65535, 64)
		hostB, devB := taptest.NewPair(b.mac, b.mac, 65535, 64)
		ea := New(devA, nil, a.sw, EngineConfig{VnetHdr: true, TickEvery: time.Hour})
		eb := New(devB, nil, b.sw, EngineConfig{VnetHdr: recvVnet, TickEvery: time.Hour})
		ca, cb := tcpPair(t)
		ea.AddLink(b.peer, ca, true)
		eb.AddLink(a.peer, cb, false)

		super := tcpSuperFrame(a, b, payload, 1448)
		if _, err := hostA.Write(super); err != nil {
			t.Fatal(err)
		}
		if recvVnet {
			got := hostRead(t, hostB, func(f []byte) bool { return len(f) > 1000 })
			if !bytes.Equal(got, super) {
				t.Fatal("super-frame not delivered whole to an offload device")
			}
		} else {
			var data []byte
			for len(data) < len(payload) {
				seg := hostRead(t, hostB, isIPv4)
				if len(seg) > ether.HeaderLen+40+1448 {
					t.Fatalf("segment of %d bytes", len(seg))
				}
				data = append(data, seg[ether.HeaderLen+40:]...)
			}
			if !bytes.Equal(data, payload) {
				t.Fatal("segments do not carry the payload")
			}
		}
		// A plain frame with an empty header crosses too.
		plain := append(make([]byte, ether.VnetHdrLen), ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, "plain")...)
		hostA.Write(plain)
		got := hostRead(t, hostB, func(f []byte) bool { return bytes.HasSuffix(f, []byte("plain")) })
		want := plain[ether.VnetHdrLen:]
		if recvVnet {
			want = plain
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("plain frame: got %x", got)
		}
		sa, sb := ea.Stats(), eb.Stats()
		if sa.GSOSent != 1 || sb.GSOReceived != 1 || (sb.Segmented == 1) == recvVnet || sa.OffloadDrops+sb.OffloadDrops != 0 {
			t.Fatalf("stats %+v %+v", sa, sb)
		}
		ea.Close()
		eb.Close()
	}
}
