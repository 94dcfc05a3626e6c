package overlay

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap/taptest"
	"github.com/libp2p/go-libp2p/core/peer"
)

// stalledConn is a link stream whose writes block until it is closed (a
// stream whose peer does not read yet, or a connection being replaced).
type stalledConn struct {
	once    sync.Once
	closed  chan struct{}
	writing chan struct{} // closed when the first Write starts
	wonce   sync.Once
}

func newStalledConn() *stalledConn {
	return &stalledConn{closed: make(chan struct{}), writing: make(chan struct{})}
}

func (s *stalledConn) Read([]byte) (int, error) { <-s.closed; return 0, net.ErrClosed }
func (s *stalledConn) Write([]byte) (int, error) {
	s.wonce.Do(func() { close(s.writing) })
	<-s.closed
	return 0, net.ErrClosed
}
func (s *stalledConn) Close() error { s.once.Do(func() { close(s.closed) }); return nil }

// A link replaced while frames wait in its queue (both ends dialled at
// once and the other stream won, or a reconnect) hands them to its
// successor: the first frames to a member are not lost to the race.
func TestEngineReplacedLinkKeepsQueue(t *testing.T) {
	ns := newEngineWorld(t, 2)
	a, b := ns[0], ns[1]
	selfOpens := a.peer < b.peer // which of a's streams wins
	old := newStalledConn()
	defer old.Close()
	if err := a.eng.AddLink(b.peer, old, !selfOpens); err != nil {
		t.Fatal(err)
	}
	ls, _ := a.eng.Links() // what connecting queued (AddLink dispatches it)
	connected := ls[0].Queue.Pushed
	frame := func(i int) []byte { return ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, fmt.Sprintf("queued-%d", i)) }
	a.host.Write(frame(0)) // taken by the writer, stuck in the old stream, or queued
	<-old.writing
	for i := 1; i <= 3; i++ {
		a.host.Write(frame(i))
	}
	waitUntil(t, "frames queued on the old link", func() bool {
		ls, _ := a.eng.Links()
		return len(ls) == 1 && ls[0].Queue.Pushed == connected+4 && ls[0].Queued > 0
	})
	ca, cb := tcpPair(t)
	if err := b.eng.AddLink(a.peer, cb, !selfOpens); err != nil {
		t.Fatal(err)
	}
	if err := a.eng.AddLink(b.peer, ca, selfOpens); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		want := []byte(fmt.Sprintf("queued-%d", i))
		got := hostRead(t, b.host, isIPv4)
		if i == 1 && bytes.Contains(got, []byte("queued-0")) {
			got = hostRead(t, b.host, isIPv4) // the writer took only what connecting queued
		}
		if !bytes.Contains(got, want) {
			t.Fatalf("frame %d: got %q, want the frames queued on the replaced link, in order", i, got)
		}
	}
}

// Frames the other end wrote on a link before it learned that the link
// was replaced (both ends dialled at once: each side writes on the stream
// it has until the winner arrives) are still read and delivered: the
// replaced link stops sending and drains what was sent to it.
func TestEngineReplacedLinkDrains(t *testing.T) {
	ns := newEngineWorld(t, 2)
	a, b := ns[0], ns[1]
	selfOpens := b.peer < a.peer // whether b's own stream wins
	loserB, loserA := tcpPair(t)
	defer loserA.Close()
	if err := b.eng.AddLink(a.peer, loserB, !selfOpens); err != nil {
		t.Fatal(err)
	}
	winB, winA := tcpPair(t)
	defer winA.Close()
	if err := b.eng.AddLink(a.peer, winB, selfOpens); err != nil {
		t.Fatal(err)
	}
	// a, not yet aware, still sends on the losing stream, then closes it.
	f := ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, "in flight")
	m, err := vswitch.AppendMessage(nil, vswitch.Message{Kind: vswitch.MsgFrame, Payload: f})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := loserA.Write(m); err != nil {
		t.Fatal(err)
	}
	loserA.(*net.TCPConn).CloseWrite()
	if got := hostRead(t, b.host, isIPv4); !bytes.Equal(got, f) {
		t.Fatalf("got %q, want the frame sent on the replaced link", got)
	}
	if ls, _ := b.eng.Links(); len(ls) != 1 || ls[0].Stream != winB {
		t.Fatalf("links %+v, want the winning stream only", ls)
	}
}

// Redial replaces a link this node dialled with a new one (how the node
// moves a link off a relay once a direct path exists) and frames keep
// flowing; a link the other end dialled, or none, is not redialled.
func TestEngineRedialReplacesOwnLink(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	linked := make(chan bool, 4)
	hostA, devA := taptest.NewPair(a.mac, a.mac, 0, 16)
	hostB, devB := taptest.NewPair(b.mac, b.mac, 0, 16)
	tr := &pipeTransport{t: t, to: map[peer.ID]*Engine{}, from: a.peer}
	ea := New(devA, tr, a.sw, EngineConfig{
		Hello:  func() ([]byte, error) { return []byte("hello"), nil },
		OnLink: func(_ peer.ID, _ io.ReadWriteCloser, outbound bool) { linked <- outbound },
	})
	eb := New(devB, nil, b.sw, EngineConfig{})
	tr.to[b.peer] = eb
	defer ea.Close()
	defer eb.Close()
	if ea.Redial(b.peer) {
		t.Fatal("Redial without a link started a dial")
	}
	hostA.Write(ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, "first"))
	if got := hostRead(t, hostB, isIPv4); !bytes.Contains(got, []byte("first")) {
		t.Fatalf("b got %q", got)
	}
	<-linked
	if eb.Redial(a.peer) {
		t.Fatal("b redialled a link a dialled")
	}
	if !ea.Redial(b.peer) {
		t.Fatal("Redial of a's own link did not start a dial")
	}
	select {
	case <-linked:
	case <-time.After(5 * time.Second):
		t.Fatal("no new link after Redial")
	}
	tr.mu.Lock()
	dials := tr.dials
	tr.mu.Unlock()
	if dials != 2 {
		t.Fatalf("%d dials, want 2", dials)
	}
	if ls, _ := ea.Links(); len(ls) != 1 {
		t.Fatalf("%d links after Redial, want the one that replaced the other", len(ls))
	}
	hostA.Write(ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, "second"))
	if got := hostRead(t, hostB, isIPv4); !bytes.Contains(got, []byte("second")) {
		t.Fatalf("b got %q after the redial", got)
	}
}
