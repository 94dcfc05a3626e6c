package overlay

import (
	"bytes"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/kadlan/kadlan/tap/taptest"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fakeClock is an engine clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// The first frames to a member without a link are held while the engine
// dials it and delivered once the link is up, in order: the first ping to
// a never-contacted member is delayed by the dial, not lost.
func TestEngineHoldsFramesUntilLinked(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	hostA, devA := taptest.NewPair(a.mac, a.mac, 0, 16)
	hostB, devB := taptest.NewPair(b.mac, b.mac, 0, 16)
	tr := &pipeTransport{t: t, to: map[peer.ID]*Engine{}, from: a.peer}
	ea := New(devA, tr, a.sw, EngineConfig{Hello: func() ([]byte, error) { return nil, nil }, LinkIdle: time.Minute})
	eb := New(devB, nil, b.sw, EngineConfig{})
	tr.to[b.peer] = eb
	defer ea.Close()
	defer eb.Close()
	for i := range 5 {
		hostA.Write(ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, fmt.Sprintf("frame-%d", i)))
	}
	for i := range 5 {
		want := []byte(fmt.Sprintf("frame-%d", i))
		hostRead(t, hostB, func(f []byte) bool { return isIPv4(f) && bytes.Contains(f, want) })
	}
	st := ea.Stats()
	if st.PendingHeld == 0 || st.PendingDropped != 0 {
		t.Fatalf("held %d, dropped %d: want the frames held and none lost", st.PendingHeld, st.PendingDropped)
	}
}

// Frames held for a member no link comes to are bounded and expire.
func TestEnginePendingBounded(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	hostA, devA := taptest.NewPair(a.mac, a.mac, 0, 16)
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	ea := New(devA, &failTransport{}, a.sw, EngineConfig{Hello: func() ([]byte, error) { return nil, nil }, LinkIdle: time.Minute,
		Now: clock.Now, TickEvery: 5 * time.Millisecond})
	defer ea.Close()
	for i := range 100 {
		hostA.Write(ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, fmt.Sprint(i)))
	}
	waitUntil(t, "frames counted", func() bool { st := ea.Stats(); return st.PendingHeld+st.PendingDropped == 100 })
	if st := ea.Stats(); st.PendingHeld != pendingFrames {
		t.Fatalf("held %d frames for one member, bound %d", st.PendingHeld, pendingFrames)
	}
	clock.Add(pendingMaxAge + time.Second)
	waitUntil(t, "held frames expired", func() bool { return ea.Stats().PendingDropped == 100 })
}

// idleWorld starts n engines; the first runs with cfg (its ticker every
// 5 ms, closing idle links), the others keep their links. t's cleanup
// closes them.
func idleWorld(t *testing.T, n int, cfg EngineConfig) []*engineNode {
	w := newTestWorld(t, n, false)
	var nodes []*engineNode
	for i, nd := range w.nodes {
		host, dev := taptest.NewPair(nd.mac, nd.mac, 0, 256)
		c := EngineConfig{Logf: t.Logf, TickEvery: time.Hour, Now: cfg.Now} // one clock: broadcasts carry their origin's time
		if i == 0 {
			c = cfg
			c.Logf, c.TickEvery = t.Logf, 5*time.Millisecond
		}
		nodes = append(nodes, &engineNode{testNode: nd, host: host, eng: New(dev, nil, nd.sw, c)})
	}
	t.Cleanup(func() {
		for _, e := range nodes {
			e.eng.Close()
		}
	})
	return nodes
}

// A link whose member is no longer a social neighbour is closed after the
// idle time, down to MinLinks; a member still talked to keeps its link.
func TestEngineClosesIdleLinks(t *testing.T) {
	const n = 6
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	nodes := idleWorld(t, n, EngineConfig{Now: clock.Now, LinkIdle: 30 * time.Second, MinLinks: 2})
	a := nodes[0]
	for _, b := range nodes[1:] {
		link(t, a, b)
	}
	links := func() int { ls, _ := a.eng.Links(); return len(ls) }
	if links() != n-1 {
		t.Fatalf("%d links, want %d", links(), n-1)
	}
	// The social neighbour age of the test switches is the default
	// (600 s): past it, only a member a talks to stays fresh. a talks to
	// one member just before that age and the clock then passes it: had
	// the clock passed it first, the 5 ms ticker could close that link
	// before a's frame reached the switch (seen under load).
	clock.Add(599 * time.Second)
	talk := nodes[3]
	a.host.Write(ipv4Frame(talk.mac, a.mac, a.ipv4, talk.ipv4, "still talking"))
	hostRead(t, talk.host, func(f []byte) bool { return isIPv4(f) && bytes.Contains(f, []byte("still talking")) })
	if links() != n-1 {
		t.Fatalf("%d links before the neighbour age passed, want %d", links(), n-1)
	}
	clock.Add(2 * time.Second)
	waitUntil(t, "idle links closed", func() bool { return links() == 2 })
	ls, _ := a.eng.Links()
	kept := false
	for _, l := range ls {
		kept = kept || l.Peer == talk.peer
	}
	if !kept {
		t.Fatalf("the link to the member a talks to was closed: %v", ls)
	}
	if st := a.eng.Stats(); st.IdleClosed != n-3 {
		t.Fatalf("closed %d idle links, want %d", st.IdleClosed, n-3)
	}
}

// Links that others dialled and that carry no unicast frames (their
// seeds) are kept up to MaxIdleInbound once older than LinkIdle, the
// newest first; one that carries frames stays whatever its age.
func TestEngineShedsIdleInboundLinks(t *testing.T) {
	const n = 7
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	nodes := idleWorld(t, n, EngineConfig{Now: clock.Now, LinkIdle: 30 * time.Second, MinLinks: 1, MaxIdleInbound: 2})
	a := nodes[0]
	for _, b := range nodes[1:] {
		link(t, b, a) // b dials a
		clock.Add(time.Second)
	}
	links := func() map[peer.ID]bool {
		ls, _ := a.eng.Links()
		out := map[peer.ID]bool{}
		for _, l := range ls {
			out[l.Peer] = true
		}
		return out
	}
	if got := len(links()); got != n-1 {
		t.Fatalf("%d links, want %d", got, n-1)
	}
	// Past LinkIdle, but every member is still a fresh social neighbour
	// (the test switches' neighbour age is 600 s from the link's start):
	// the oldest link carries frames; then only it stays fresh.
	clock.Add(590 * time.Second)
	talk := nodes[1]
	a.host.Write(ipv4Frame(talk.mac, a.mac, a.ipv4, talk.ipv4, "still talking"))
	hostRead(t, talk.host, func(f []byte) bool { return isIPv4(f) && bytes.Contains(f, []byte("still talking")) })
	if got := len(links()); got != n-1 {
		t.Fatalf("%d links while all are fresh neighbours, want %d", got, n-1)
	}
	clock.Add(20 * time.Second)
	waitUntil(t, "idle inbound links closed", func() bool { return len(links()) == 3 })
	got := links()
	for _, want := range []*engineNode{talk, nodes[n-2], nodes[n-1]} {
		if !got[want.peer] {
			t.Fatalf("links %v: the link from %s (talking or among the newest two) was closed", got, want.peer)
		}
	}
	if st := a.eng.Stats(); st.IdleClosed != n-4 {
		t.Fatalf("closed %d idle links, want %d", st.IdleClosed, n-4)
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// An ARP request for an address no known member holds is handed to
// OnUnresolved (links on demand look the member up), once per second per
// address.
func TestEngineReportsUnresolved(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a := w.nodes[0]
	hostA, devA := taptest.NewPair(a.mac, a.mac, 0, 16)
	asked := make(chan netip.Addr, 16)
	ea := New(devA, nil, a.sw, EngineConfig{OnUnresolved: func(u vswitch.Unresolved) { asked <- u.IP }})
	defer ea.Close()
	unknown := netip.MustParseAddr("10.0.0.99")
	for range 3 {
		hostA.Write(arpRequestFrame(a.mac, a.ipv4, unknown))
	}
	select {
	case ip := <-asked:
		if ip != unknown {
			t.Fatalf("asked for %v, want %v", ip, unknown)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnUnresolved not called")
	}
	// A known member's address is answered, not looked up.
	hostA.Write(arpRequestFrame(a.mac, a.ipv4, w.nodes[1].ipv4))
	hostRead(t, hostA, func(f []byte) bool { h, err := ether.ParseHeader(f); return err == nil && h.Type == ether.TypeARP })
	select {
	case ip := <-asked:
		t.Fatalf("asked again for %v within a second", ip)
	default:
	}
}

// A member that sends no unicast frames keeps MinLinks links, and its
// broadcasts still reach them once the social neighbour age has passed
// (the seeds are made neighbours again).
func TestEngineQuietBroadcastReachesSeeds(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	nodes := idleWorld(t, 3, EngineConfig{Now: clock.Now, LinkIdle: 30 * time.Second, MinLinks: 2})
	a := nodes[0]
	for _, b := range nodes[1:] {
		link(t, a, b)
	}
	clock.Add(700 * time.Second) // past the neighbour age (600 s): nobody is fresh
	waitUntil(t, "seeds made neighbours again", func() bool {
		a.eng.mu.Lock()
		defer a.eng.mu.Unlock()
		return len(a.eng.sw.Neighbours(clock.Now())) == 2
	})
	a.host.Write(bcastFrame(a.testNode, "anyone on a quiet network"))
	for _, b := range nodes[1:] {
		hostRead(t, b.host, func(f []byte) bool { return bytes.Contains(f, []byte("anyone on a quiet network")) })
	}
	if ls, _ := a.eng.Links(); len(ls) != 2 {
		t.Fatalf("%d links, want the 2 seeds", len(ls))
	}
}

// A unicast frame to a MAC no known member holds is held, not flooded,
// and the MAC handed to OnUnresolved (once per second); once the member is
// added (Update) the engine dials it and the held frames arrive, in order.
// Without OnUnresolved (nobody looks up), such a frame is dropped.
func TestEngineHoldsFramesForUnknownMAC(t *testing.T) {
	w := newTestWorld(t, 3, false)
	a, b, c := w.nodes[0], w.nodes[1], w.nodes[2]
	a.sw.RemoveMember(c.peer) // a has not heard of c
	hostA, devA := taptest.NewPair(a.mac, a.mac, 0, 16)
	hostB, devB := taptest.NewPair(b.mac, b.mac, 0, 16)
	hostC, devC := taptest.NewPair(c.mac, c.mac, 0, 16)
	tr := &pipeTransport{t: t, to: map[peer.ID]*Engine{}, from: a.peer}
	asked := make(chan vswitch.Unresolved, 16)
	ea := New(devA, tr, a.sw, EngineConfig{Hello: func() ([]byte, error) { return nil, nil }, LinkIdle: time.Minute,
		OnUnresolved: func(u vswitch.Unresolved) { asked <- u }})
	eb := New(devB, nil, b.sw, EngineConfig{})
	ec := New(devC, nil, c.sw, EngineConfig{})
	tr.to[b.peer], tr.to[c.peer] = eb, ec
	defer ea.Close()
	defer eb.Close()
	defer ec.Close()
	link(t, &engineNode{testNode: a, host: hostA, eng: ea}, &engineNode{testNode: b, host: hostB, eng: eb})
	for i := range 3 {
		hostA.Write(ipv4Frame(c.mac, a.mac, a.ipv4, c.ipv4, fmt.Sprintf("frame-%d", i)))
	}
	select {
	case u := <-asked:
		if u != (vswitch.Unresolved{MAC: c.mac}) {
			t.Fatalf("asked for %+v, want c's MAC", u)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("OnUnresolved not called for the unknown MAC")
	}
	waitUntil(t, "frames held", func() bool { return ea.Stats().PendingHeld == 3 })
	if n := len(asked); n != 0 {
		t.Fatalf("asked %d more times within a second", n)
	}
	tr.mu.Lock()
	dials := tr.dials
	tr.mu.Unlock()
	if dials != 0 {
		t.Fatalf("%d dials before the member was known", dials)
	}
	ea.Update(func(sw *vswitch.Switch) { sw.SetMember(vswitch.SwitchMember{Peer: c.peer, IPv4: c.ipv4}) })
	for i := range 3 {
		want := []byte(fmt.Sprintf("frame-%d", i))
		hostRead(t, hostC, func(f []byte) bool { return isIPv4(f) && bytes.Contains(f, want) })
	}
	if st := ea.Stats(); st.PendingDropped != 0 {
		t.Fatalf("dropped %d held frames", st.PendingDropped)
	}
	if c := ea.Counters(); c.UnicastUnresolved != 3 || c.UnicastOut != 3 || c.DropUnknownDest != 0 {
		t.Fatalf("counters %+v: want 3 held, then sent", c)
	}
	// Nothing went to b, the one member a had a link to: a frame sent to
	// it now arrives after anything sent before (one stream) and alone.
	hostA.Write(ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, "marker"))
	hostRead(t, hostB, func(f []byte) bool { return isIPv4(f) && bytes.Contains(f, []byte("marker")) })
	if cb := eb.Counters(); cb.UnicastDelivered != 1 || cb.DropNotForUs != 0 || cb.BroadcastDelivered != 0 {
		t.Fatalf("b's counters %+v: the frames for c reached b", cb)
	}

	// Nobody to look the member up: dropped at once, not held.
	w2 := newTestWorld(t, 2, false)
	x, y := w2.nodes[0], w2.nodes[1]
	x.sw.RemoveMember(y.peer)
	hostX, devX := taptest.NewPair(x.mac, x.mac, 0, 16)
	ex := New(devX, tr, x.sw, EngineConfig{Hello: func() ([]byte, error) { return nil, nil }})
	defer ex.Close()
	hostX.Write(ipv4Frame(y.mac, x.mac, x.ipv4, y.ipv4, "lost"))
	waitUntil(t, "frame dropped", func() bool { return ex.Stats().PendingDropped == 1 })
	if st := ex.Stats(); st.PendingHeld != 0 {
		t.Fatalf("held %d frames with nobody to look their member up", st.PendingHeld)
	}
}
