package overlay

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/kadlan/kadlan/tap/taptest"
)

// gsoVariant is tcpSuperFrame (with its virtio-net header) changed by mod.
func gsoVariant(a, b *testNode, payload []byte, mss int, mod func(h *ether.VnetHdr, f []byte)) []byte {
	w := tcpSuperFrame(a, b, payload, mss)
	h, _ := ether.ParseVnetHdr(w)
	if mod != nil {
		mod(&h, w[ether.VnetHdrLen:])
	}
	h.Put(w)
	return w
}

// bombs are super-frames a member must not be able to make a receiver
// work on: issue 10's segmentation bomb and its relatives.
func bombs(a, b *testNode) map[string][]byte {
	pl := bytes.Repeat([]byte{'b'}, 65000)
	return map[string][]byte{
		"gso 1, header 65000": gsoVariant(a, b, pl, 1, func(h *ether.VnetHdr, _ []byte) { h.HdrLen = 65000 }),
		"gso 535":             gsoVariant(a, b, pl, 535, nil),
		"gso above MaxMTU":    gsoVariant(a, b, pl, GSOMaxSize+1, nil),
		"checksum offset":     gsoVariant(a, b, pl, 1448, func(h *ether.VnetHdr, _ []byte) { h.CsumOffset = 10 }),
		"no checksum flag":    gsoVariant(a, b, pl, 1448, func(h *ether.VnetHdr, _ []byte) { h.Flags = 0 }),
		"UDP GSO":             gsoVariant(a, b, pl, 1448, func(h *ether.VnetHdr, _ []byte) { h.GSOType = ether.VnetGSOUDPL4 }),
		"IPv6 type on IPv4":   gsoVariant(a, b, pl, 1448, func(h *ether.VnetHdr, _ []byte) { h.GSOType = ether.VnetGSOTCPv6 }),
		"checksum start":      gsoVariant(a, b, pl, 1448, func(h *ether.VnetHdr, _ []byte) { h.CsumStart += 4 }),
		"TCP header 16 bytes": gsoVariant(a, b, pl, 1448, func(_ *ether.VnetHdr, f []byte) { f[ether.HeaderLen+20+12] = 4 << 4 }),
		"IP options lie":      gsoVariant(a, b, pl, 1448, func(_ *ether.VnetHdr, f []byte) { f[ether.HeaderLen] = 0x4f }),
		"not TCP":             gsoVariant(a, b, pl, 1448, func(_ *ether.VnetHdr, f []byte) { f[ether.HeaderLen+9] = 17 }),
		"longer than 64 KiB":  gsoVariant(a, b, bytes.Repeat([]byte{'b'}, 65600), 1448, nil),
		"headers only":        gsoVariant(a, b, nil, 1448, nil),
	}
}

// Issue 10, item 5: a member's segmentation bomb (and every malformed
// super-frame) is dropped and counted before any segment is written; a
// valid super-frame right behind it still arrives whole or segmented, even
// with an overstated header length (which Linux can produce).
func TestEngineGSOBomb(t *testing.T) {
	for _, recvVnet := range []bool{false, true} {
		t.Run(fmt.Sprint("vnet=", recvVnet), func(t *testing.T) {
			w := newTestWorld(t, 2, false)
			a, b := w.nodes[0], w.nodes[1]
			hostB, devB := taptest.NewPair(b.mac, b.mac, 65535, 64)
			var lines atomic.Int64
			eb := New(devB, nil, b.sw, EngineConfig{VnetHdr: recvVnet, TickEvery: time.Hour,
				Logf: func(f string, args ...any) { lines.Add(1); t.Logf(f, args...) }})
			defer eb.Close()
			attacker, cb := tcpPair(t)
			defer attacker.Close()
			if err := eb.AddLink(a.peer, cb, false); err != nil {
				t.Fatal(err)
			}
			bs := bombs(a, b)
			var stream []byte
			for range 3 {
				for _, f := range bs {
					var err error
					if stream, err = vswitch.AppendMessage(stream, vswitch.Message{Kind: vswitch.MsgFrameGSO, Payload: f}); err != nil {
						t.Fatal(err)
					}
				}
			}
			payload := bytes.Repeat([]byte("0123456789abcdef"), 400)
			valid := gsoVariant(a, b, payload, 1448, func(h *ether.VnetHdr, _ []byte) { h.HdrLen = 65000 })
			stream, _ = vswitch.AppendMessage(stream, vswitch.Message{Kind: vswitch.MsgFrameGSO, Payload: valid})
			start := time.Now()
			if _, err := attacker.Write(stream); err != nil {
				t.Fatal(err)
			}
			// The first thing on the device is the valid super-frame:
			// nothing of the bombs before it was written.
			if recvVnet {
				got := hostRead(t, hostB, func([]byte) bool { return true })
				h, _ := ether.ParseVnetHdr(got)
				if !bytes.Equal(got[ether.VnetHdrLen:], valid[ether.VnetHdrLen:]) || h.HdrLen != ether.HeaderLen+40 {
					t.Fatalf("device got %d bytes, header length %d", len(got), h.HdrLen)
				}
			} else {
				var data []byte
				for len(data) < len(payload) {
					seg := hostRead(t, hostB, func([]byte) bool { return true })
					if len(seg) > ether.HeaderLen+40+1448 || binary.BigEndian.Uint16(seg[12:]) != ether.TypeIPv4 {
						t.Fatalf("segment of %d bytes: a bomb was segmented", len(seg))
					}
					data = append(data, seg[ether.HeaderLen+40:]...)
				}
				if !bytes.Equal(data, payload) {
					t.Fatal("valid super-frame with an overstated header length segmented wrongly")
				}
			}
			t.Logf("%d bad super-frames (%d KiB) and a good one handled in %v", 3*len(bs), len(stream)>>10, time.Since(start))
			st := eb.Stats()
			if st.GSORejected != uint64(3*len(bs)) || st.GSOReceived != 1 || st.OffloadDrops != 0 {
				t.Fatalf("%+v", st)
			}
			if st.Segmented != map[bool]uint64{false: 1, true: 0}[recvVnet] {
				t.Fatalf("%+v", st)
			}
			// One log line per reason, not one per message or segment.
			if n := lines.Load(); n == 0 || n > 8 {
				t.Fatalf("%d log lines for %d bad super-frames", n, 3*len(bs))
			}
		})
	}
}

// A local super-frame with a segment size members would refuse (the peer
// of a TCP connection announced a tiny MSS) is segmented by the sender
// and crosses as plain frames.
func TestEngineGSOLocalSmallMSS(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	hostA, devA := taptest.NewPair(a.mac, a.mac, 65535, 64)
	hostB, devB := taptest.NewPair(b.mac, b.mac, 65535, 256)
	ea := New(devA, nil, a.sw, EngineConfig{VnetHdr: true, TickEvery: time.Hour})
	eb := New(devB, nil, b.sw, EngineConfig{TickEvery: time.Hour})
	defer ea.Close()
	defer eb.Close()
	ca, cb := tcpPair(t)
	ea.AddLink(b.peer, ca, true)
	eb.AddLink(a.peer, cb, false)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 100)
	if _, err := hostA.Write(tcpSuperFrame(a, b, payload, 200)); err != nil {
		t.Fatal(err)
	}
	var data []byte
	for len(data) < len(payload) {
		seg := hostRead(t, hostB, isIPv4)
		if len(seg) != ether.HeaderLen+40+min(200, len(payload)-len(data)) {
			t.Fatalf("segment of %d bytes", len(seg))
		}
		data = append(data, seg[ether.HeaderLen+40:]...)
	}
	if !bytes.Equal(data, payload) {
		t.Fatal("payload differs")
	}
	if sa, sb := ea.Stats(), eb.Stats(); sa.LocalSegmented != 1 || sa.GSOSent != 0 || sb.GSORejected != 0 {
		t.Fatalf("%+v %+v", sa, sb)
	}
}

// BenchmarkGSOBomb: what refusing issue 10's bomb costs (it cost 0.56 s of
// CPU per 130 KiB before the checks), against segmenting a valid 64 KiB
// super-frame.
func BenchmarkGSOBomb(b *testing.B) {
	w := newTestWorld(b, 2, false)
	x, y := w.nodes[0], w.nodes[1]
	bomb := bombs(x, y)["gso 1, header 65000"]
	b.Run("refuse", func(b *testing.B) {
		for b.Loop() {
			h, _ := ether.ParseVnetHdr(bomb)
			if checkGSO(bomb[ether.VnetHdrLen:], &h, 65535) == nil {
				b.Fatal("bomb accepted")
			}
		}
	})
	valid := tcpSuperFrame(x, y, bytes.Repeat([]byte{1}, 65000), 1448)
	b.Run("segment-valid", func(b *testing.B) {
		var seg []byte
		for b.Loop() {
			h, _ := ether.ParseVnetHdr(valid)
			if err := checkGSO(valid[ether.VnetHdrLen:], &h, 65535); err != nil {
				b.Fatal(err)
			}
			seg, _ = ether.SegmentTCP(valid[ether.VnetHdrLen:], h, seg, func([]byte) error { return nil })
		}
	})
}

func FuzzCheckGSO(f *testing.F) {
	w := newTestWorld(f, 2, false)
	x, y := w.nodes[0], w.nodes[1]
	f.Add(tcpSuperFrame(x, y, bytes.Repeat([]byte{1}, 3000), 1448))
	for _, b := range bombs(x, y) {
		if len(b) < 4096 {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, whole []byte) {
		h, err := ether.ParseVnetHdr(whole)
		if err != nil || !h.IsGSO() {
			return
		}
		frame := whole[ether.VnetHdrLen:]
		if checkGSO(frame, &h, 9000) != nil {
			return
		}
		n := 0
		_, err = ether.SegmentTCP(frame, h, nil, func(seg []byte) error {
			n++
			if len(seg) > int(h.HdrLen)+int(h.GSOSize) || len(seg)-ether.HeaderLen > 9000 {
				t.Fatalf("segment of %d bytes", len(seg))
			}
			return nil
		})
		if err != nil || n == 0 || n > GSOMaxSegments {
			t.Fatalf("accepted super-frame: %d segments, %v", n, err)
		}
	})
}
