package overlay

import (
	"bytes"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/vswitch"
)

// benchFrames returns n encoded 1400-byte unicast messages.
func benchStream(b *testing.B, n, size int) ([]byte, vswitch.Message) {
	m := vswitch.Message{Kind: vswitch.MsgFrame, Payload: bytes.Repeat([]byte{0x5a}, size)}
	var s []byte
	for range n {
		s, _ = vswitch.AppendMessage(s, m)
	}
	return s, m
}

func BenchmarkMessageEncode(b *testing.B) {
	_, m := benchStream(b, 0, 1400)
	buf := make([]byte, 0, 64<<10)
	b.SetBytes(int64(len(m.Payload)))
	b.ReportAllocs()
	for b.Loop() {
		if len(buf)+m.EncodedLen() > cap(buf) {
			buf = buf[:0]
		}
		buf, _ = vswitch.AppendMessage(buf, m)
	}
}

// loopReader serves the same stream forever.
type loopReader struct {
	s   []byte
	off int
}

func (r *loopReader) Read(p []byte) (int, error) {
	n := copy(p, r.s[r.off:])
	r.off = (r.off + n) % len(r.s)
	return n, nil
}

func BenchmarkMessageDecode(b *testing.B) {
	s, m := benchStream(b, 64, 1400)
	r := vswitch.NewReader(&loopReader{s: s}, 256<<10)
	b.SetBytes(int64(len(m.Payload)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Next(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkQueuePushTake(b *testing.B) {
	q := NewQueue(0)
	m := vswitch.Message{Kind: vswitch.MsgFrame, Payload: make([]byte, 1400)}
	var spare []byte
	b.SetBytes(1400)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		q.Push(m)
		if i++; i%64 == 0 {
			spare = q.Take(spare)
		}
	}
}

// BenchmarkSwitchUnicast measures one frame through the sender's switch
// (HandleLocal) and the receiver's (HandleRemote).
func BenchmarkSwitchUnicast(b *testing.B) {
	w := newTestWorld(b, 2, false)
	a, c := w.nodes[0], w.nodes[1]
	f := ipv4Frame(c.mac, a.mac, a.ipv4, c.ipv4, string(make([]byte, 1400-34)))
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	for b.Loop() {
		outs := a.sw.HandleLocal(w.now, f)
		if len(outs) != 1 {
			b.Fatal("no output")
		}
		if outs := c.sw.HandleRemote(w.now, a.peer, outs[0].Msg); len(outs) != 1 {
			b.Fatal("not delivered")
		}
	}
}

func BenchmarkSwitchARPAnswer(b *testing.B) {
	w := newTestWorld(b, 2, false)
	a, c := w.nodes[0], w.nodes[1]
	req := ipv4ARPRequest(a, c.ipv4)
	b.ReportAllocs()
	for b.Loop() {
		if outs := a.sw.HandleLocal(w.now, req); len(outs) != 1 {
			b.Fatal("no answer")
		}
	}
}

func ipv4ARPRequest(from *testNode, target netip.Addr) []byte {
	return arpRequestFrame(from.mac, from.ipv4, target)
}

var _ io.Reader = (*loopReader)(nil)

// BenchmarkEngineThroughput moves 1400-byte frames from one in-memory
// device to another through two Engines joined by a loopback TCP
// connection: the whole overlay data path without libp2p or the kernel.
// Frames dropped by the bounded queue are reported as loss_%.
func BenchmarkEngineThroughput(b *testing.B) {
	ns := newEngineWorld(b, 2)
	x, y := ns[0], ns[1]
	link(b, x, y)
	f := ipv4Frame(y.mac, x.mac, x.ipv4, y.ipv4, string(make([]byte, 1400-34)))
	b.SetBytes(int64(len(f)))
	b.ReportAllocs()
	done := make(chan int)
	go func() {
		buf := make([]byte, 2048)
		got := 0
		for got < b.N {
			n, err := y.host.Read(buf)
			if err != nil || n != len(f) {
				break
			}
			got++
		}
		done <- got
	}()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		x.host.Write(f)
	}
	var got int
	select {
	case got = <-done:
	case <-time.After(500 * time.Millisecond):
		y.host.Close()
		got = <-done
	}
	b.StopTimer()
	elapsed := time.Since(start)
	b.ReportMetric(100*float64(b.N-got)/float64(b.N), "loss_%")
	b.ReportMetric(float64(got)*float64(len(f))*8/1e9/elapsed.Seconds(), "delivered_Gbit/s")
}
