package overlay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/kadlan/kadlan/tap/taptest"
	"github.com/libp2p/go-libp2p/core/peer"
)

// engineNode is an Engine with the host side of its in-memory device.
type engineNode struct {
	*testNode
	eng  *Engine
	host *taptest.Device // what the "kernel" sees
}

func newEngineWorld(t testing.TB, n int) []*engineNode {
	t.Helper()
	w := newTestWorld(t, n, false)
	var out []*engineNode
	for _, nd := range w.nodes {
		host, dev := taptest.NewPair(nd.mac, nd.mac, 0, 256)
		out = append(out, &engineNode{testNode: nd, host: host,
			eng: New(dev, nil, nd.sw, EngineConfig{Logf: t.Logf, TickEvery: time.Hour})})
	}
	t.Cleanup(func() {
		for _, e := range out {
			e.eng.Close()
		}
	})
	return out
}

// tcpPair returns two ends of a loopback TCP connection.
func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c1, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c1, <-acc
}

func link(t testing.TB, a, b *engineNode) {
	t.Helper()
	ca, cb := tcpPair(t)
	if err := a.eng.AddLink(b.peer, ca, true); err != nil {
		t.Fatal(err)
	}
	if err := b.eng.AddLink(a.peer, cb, false); err != nil {
		t.Fatal(err)
	}
}

// hostRead reads frames from the host side until match accepts one.
func hostRead(t testing.TB, d *taptest.Device, match func([]byte) bool) []byte {
	t.Helper()
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 70000)
		for {
			n, err := d.Read(buf)
			if err != nil {
				close(got)
				return
			}
			if match(buf[:n]) {
				got <- append([]byte(nil), buf[:n]...)
				return
			}
		}
	}()
	select {
	case f, ok := <-got:
		if !ok {
			t.Fatal("device closed")
		}
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("timed out waiting for a frame")
		return nil
	}
}

func isIPv4(f []byte) bool {
	h, err := ether.ParseHeader(f)
	return err == nil && h.Type == ether.TypeIPv4
}

func TestEngineEndToEnd(t *testing.T) {
	before := runtime.NumGoroutine()
	ns := newEngineWorld(t, 3)
	a, b, c := ns[0], ns[1], ns[2]
	link(t, a, b)
	link(t, a, c)
	link(t, b, c)

	// ARP from a's host for b is answered without leaving a.
	a.host.Write(arpRequestFrame(a.mac, a.ipv4, b.ipv4))
	rep := hostRead(t, a.host, func(f []byte) bool { h, _ := ether.ParseHeader(f); return h.Type == ether.TypeARP })
	if arp, _ := ether.ParseARP(rep[ether.HeaderLen:]); arp.SenderMAC != b.mac {
		t.Fatalf("ARP answered with %v", arp.SenderMAC)
	}

	// Unicast a -> b, many frames, in order.
	for i := range 100 {
		f := ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, string(rune('A'+i%26)))
		if _, err := a.host.Write(f); err != nil {
			t.Fatal(err)
		}
		got := hostRead(t, b.host, isIPv4)
		if !bytes.Equal(got, f) {
			t.Fatalf("frame %d differs", i)
		}
	}

	// A broadcast from b reaches a (its unicast contact) and c (linked,
	// hence a social neighbour).
	bc := ipv4Frame(ether.Broadcast, b.mac, b.ipv4, netip.MustParseAddr("10.9.0.255"), "who is there")
	b.host.Write(bc)
	for _, nd := range []*engineNode{a, c} {
		if got := hostRead(t, nd.host, isIPv4); !bytes.Equal(got, bc) {
			t.Fatal("broadcast differs")
		}
	}

	// Revocation: once a removes c, c's frames no longer reach a's host
	// and the link is closed.
	a.eng.Update(func(sw *vswitch.Switch) { sw.RemoveMember(c.peer) })
	if links, _ := a.eng.Links(); len(links) != 1 {
		t.Fatalf("a still has %d links", len(links))
	}
	c.host.Write(ipv4Frame(a.mac, c.mac, c.ipv4, a.ipv4, "revoked"))
	b.host.Write(ipv4Frame(a.mac, b.mac, b.ipv4, a.ipv4, "still here"))
	got := hostRead(t, a.host, isIPv4)
	if !bytes.HasSuffix(got, []byte("still here")) {
		t.Fatalf("a got %q", got[34:])
	}
	if err := a.eng.AddLink(c.peer, nopRWC{}, true); err == nil {
		t.Fatal("link to a non-member accepted")
	}

	for _, n := range ns {
		n.eng.Close()
		n.eng.Close()
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines leaked:\n%s", n-before, buf[:runtime.Stack(buf, true)])
	}
}

type nopRWC struct{}

func (nopRWC) Read([]byte) (int, error)    { select {} }
func (nopRWC) Write(b []byte) (int, error) { return len(b), nil }
func (nopRWC) Close() error                { return nil }

// pipeTransport dials by handing the other end of a TCP pair to the
// target engine, as a node's stream handler would after reading the hello.
type pipeTransport struct {
	t      testing.TB
	mu     sync.Mutex
	dials  int
	hellos [][]byte
	to     map[peer.ID]*Engine
	from   peer.ID
}

func (tr *pipeTransport) DialLink(ctx context.Context, p peer.ID, hello []byte) (io.ReadWriteCloser, error) {
	tr.mu.Lock()
	tr.dials++
	tr.hellos = append(tr.hellos, hello)
	tr.mu.Unlock()
	ca, cb := tcpPair(tr.t)
	if err := tr.to[p].AddLink(tr.from, cb, false); err != nil {
		ca.Close()
		cb.Close()
		return nil, err
	}
	return ca, nil
}

// The engine dials a member by itself when the switch sends to it without
// a link (once per interval), writes its hello through the Transport,
// reports the link, and records then flow over it.
func TestEngineDialsAndRecords(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	recs := make(chan []byte, 1)
	linked := make(chan peer.ID, 4)
	hostA, devA := taptest.NewPair(a.mac, a.mac, 0, 16)
	_, devB := taptest.NewPair(b.mac, b.mac, 0, 16)
	tr := &pipeTransport{t: t, to: map[peer.ID]*Engine{}, from: a.peer}
	ea := New(devA, tr, a.sw, EngineConfig{
		Hello:  func() ([]byte, error) { return []byte("hello from a"), nil },
		OnLink: func(p peer.ID, _ io.ReadWriteCloser, outbound bool) { linked <- p },
	})
	eb := New(devB, nil, b.sw, EngineConfig{OnRecord: func(_ peer.ID, r []byte) { recs <- r }})
	tr.to[b.peer] = eb
	defer ea.Close()
	defer eb.Close()
	hostA.Write(ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, "x"))
	select {
	case p := <-linked:
		if p != b.peer {
			t.Fatal(p)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no link dialled")
	}
	tr.mu.Lock()
	dials, hello := tr.dials, string(tr.hellos[0])
	tr.mu.Unlock()
	if dials != 1 || hello != "hello from a" {
		t.Fatalf("%d dials, hello %q", dials, hello)
	}
	// Linked: Connect does not dial again.
	ea.Connect(b.peer)
	if !ea.Send(b.peer, vswitch.Message{Kind: vswitch.MsgRecord, Payload: []byte{1, 3, 5}}) {
		t.Fatal("Send failed")
	}
	select {
	case r := <-recs:
		if !bytes.Equal(r, []byte{1, 3, 5}) {
			t.Fatal(r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("record not received")
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if tr.dials != 1 {
		t.Fatalf("%d dials for one member", tr.dials)
	}
}

// A transport that fails is not hammered: one dial per member per interval.
func TestEngineDialBackoff(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	hostA, devA := taptest.NewPair(a.mac, a.mac, 0, 16)
	tr := &failTransport{}
	ea := New(devA, tr, a.sw, EngineConfig{Hello: func() ([]byte, error) { return nil, nil }, TickEvery: time.Hour})
	defer ea.Close()
	for i := range 50 {
		hostA.Write(ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, fmt.Sprint(i)))
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, dropped := ea.Links(); dropped == 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("frames not counted")
		}
		time.Sleep(time.Millisecond)
	}
	// The first frame started one dial; wait until it has failed and
	// finished.
	dialling := func() bool {
		ea.mu.Lock()
		defer ea.mu.Unlock()
		return ea.dialing[b.peer]
	}
	for tr.n.Load() != 1 || dialling() {
		if time.Now().After(deadline) {
			t.Fatalf("%d dials, want 1", tr.n.Load())
		}
		time.Sleep(time.Millisecond)
	}
	ea.Connect(b.peer)
	for i := range 10 {
		hostA.Write(ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, fmt.Sprint(i)))
	}
	for {
		if _, dropped := ea.Links(); dropped == 60 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("frames not counted")
		}
		time.Sleep(time.Millisecond)
	}
	// A dial started since would be running (dialing) or done (counted).
	running := dialling()
	if n := tr.n.Load(); n != 1 || running {
		t.Fatalf("%d dials (one running: %v) within the interval, want 1", n, running)
	}
}

type failTransport struct{ n atomic.Int32 }

func (f *failTransport) DialLink(context.Context, peer.ID, []byte) (io.ReadWriteCloser, error) {
	f.n.Add(1)
	return nil, errors.New("unreachable")
}

// Both nodes open a stream at the same time: they keep the same one.
func TestEngineSimultaneousOpen(t *testing.T) {
	ns := newEngineWorld(t, 2)
	a, b := ns[0], ns[1]
	a1, b1 := tcpPair(t) // opened by a
	b2, a2 := tcpPair(t) // opened by b
	errs := []error{
		a.eng.AddLink(b.peer, a1, true), b.eng.AddLink(a.peer, b2, true),
		a.eng.AddLink(b.peer, a2, false), b.eng.AddLink(a.peer, b1, false),
	}
	low := a
	if b.peer < a.peer {
		low = b
	}
	// The first stream on each side is accepted; when the second
	// arrives, the one opened by the smaller address wins on both sides.
	want := []bool{true, true, low == b, low == a}
	for i, err := range errs {
		if want[i] != (err == nil) {
			t.Fatalf("AddLink %d: %v", i, err)
		}
	}
	f := ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, "one link")
	a.host.Write(f)
	if got := hostRead(t, b.host, isIPv4); !bytes.Equal(got, f) {
		t.Fatal("frame lost")
	}
}

// TestEngineTraffic: the link counters count each frame once per side,
// in encoded bytes, and keep what a closed link carried.
func TestEngineTraffic(t *testing.T) {
	ns := newEngineWorld(t, 2)
	a, b := ns[0], ns[1]
	link(t, a, b)
	f := ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, "counted")
	size := uint64(vswitch.Message{Kind: vswitch.MsgFrame, Payload: f}.EncodedLen())
	for range 3 {
		a.host.Write(f)
		hostRead(t, b.host, isIPv4)
	}
	ta, tb := a.eng.Traffic(), b.eng.Traffic()
	if ta.OutMessages < 3 || ta.OutBytes < 3*size || tb.InMessages < 3 || tb.InBytes < 3*size {
		t.Fatalf("after 3 frames of %d bytes a -> b: a %+v, b %+v", size, ta, tb)
	}
	b.eng.RemoveLink(a.peer)
	if got := b.eng.Traffic(); got.InMessages < tb.InMessages || got.InBytes < tb.InBytes {
		t.Fatalf("counts went down when the link closed: %+v then %+v", tb, got)
	}
}
