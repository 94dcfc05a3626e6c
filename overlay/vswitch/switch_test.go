package vswitch

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/social"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// testNode is one member of a testWorld.
type testNode struct {
	peer  peer.ID
	key   crypto.PrivKey
	sw    *Switch
	mac   ether.MAC
	ipv4  netip.Addr
	ipv6  netip.Addr
	local [][]byte // frames the switch wrote to the device
}

// testWorld wires switches together directly: ToPeer outputs are delivered
// (copied) to the target's HandleRemote until nothing is in flight.
type testWorld struct {
	t     testing.TB
	now   time.Time
	id    netrec.NetworkID
	nodes []*testNode
	by    map[peer.ID]*testNode
	msgs  int // member-to-member messages delivered
}

func newTestWorld(t testing.TB, n int, bridging bool) *testWorld {
	owner, _ := testKey(t, 1)
	w := &testWorld{t: t, now: t0, id: testDef(t, owner, false).ID(), by: map[peer.ID]*testNode{}}
	for i := range n {
		key, p := testKey(t, uint64(100+i)) // the keys of testPeers
		ip := netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i + 1)})
		sw, err := NewSwitch(SwitchConfig{Network: w.id, Self: p, IPv4: ip, AllowBridging: bridging, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		nd := &testNode{peer: p, key: key, sw: sw, mac: netrec.MemberMAC(w.id, p), ipv4: ip, ipv6: netrec.MemberIPv6(w.id, p)}
		w.nodes = append(w.nodes, nd)
		w.by[p] = nd
	}
	for _, a := range w.nodes {
		for _, b := range w.nodes {
			a.sw.SetMember(SwitchMember{Peer: b.peer, IPv4: b.ipv4})
		}
	}
	return w
}

type inFlight struct {
	from, to peer.ID
	m        Message
}

func copyMsg(m Message) Message {
	return Message{Kind: m.Kind, Social: bytes.Clone(m.Social), Payload: bytes.Clone(m.Payload)}
}

// run dispatches the outputs of node at, then everything they cause.
func (w *testWorld) run(at *testNode, outs []Output) {
	var q []inFlight
	collect := func(nd *testNode, outs []Output) {
		for _, o := range outs {
			switch o.Kind {
			case ToLocal:
				nd.local = append(nd.local, bytes.Clone(o.Msg.Payload))
			case ToPeer:
				q = append(q, inFlight{nd.peer, o.Peer, copyMsg(o.Msg)})
			}
		}
	}
	collect(at, outs)
	for len(q) > 0 {
		f := q[0]
		q = q[1:]
		w.msgs++
		to := w.by[f.to]
		collect(to, to.sw.HandleRemote(w.now, f.from, f.m))
	}
}

func (w *testWorld) send(i int, frame []byte) {
	nd := w.nodes[i]
	w.run(nd, nd.sw.HandleLocal(w.now, frame))
}

func (w *testWorld) connectAll() {
	for _, a := range w.nodes {
		for _, b := range w.nodes {
			if a != b {
				w.run(a, a.sw.Connected(b.peer, w.now))
			}
		}
	}
	w.reset()
}

func (w *testWorld) reset() {
	w.msgs = 0
	for _, nd := range w.nodes {
		nd.local = nil
	}
}

func ipv4Frame(dst, src ether.MAC, sip, dip netip.Addr, payload string) []byte {
	f := make([]byte, ether.HeaderLen+20)
	ether.PutHeader(f, ether.Header{Dst: dst, Src: src, Type: ether.TypeIPv4})
	f[14] = 0x45
	s, d := sip.As4(), dip.As4()
	copy(f[26:30], s[:])
	copy(f[30:34], d[:])
	return append(f, payload...)
}

func TestSwitchAnswersARPLocally(t *testing.T) {
	w := newTestWorld(t, 3, false)
	a, b := w.nodes[0], w.nodes[1]
	req := ether.AppendARPFrame(nil, ether.Broadcast, a.mac, ether.ARP{Op: ether.ARPRequest, SenderMAC: a.mac, SenderIP: a.ipv4, TargetIP: b.ipv4})
	w.send(0, req)
	if w.msgs != 0 || len(a.local) != 1 {
		t.Fatalf("%d messages sent, %d local frames; want 0 and 1", w.msgs, len(a.local))
	}
	h, _ := ether.ParseHeader(a.local[0])
	rep, err := ether.ParseARP(a.local[0][ether.HeaderLen:])
	if err != nil || h.Dst != a.mac || h.Src != b.mac || rep.Op != ether.ARPReply ||
		rep.SenderMAC != b.mac || rep.SenderIP != b.ipv4 || rep.TargetMAC != a.mac || rep.TargetIP != a.ipv4 {
		t.Fatalf("bad reply %+v %+v %v", h, rep, err)
	}
	if c := a.sw.Counters(); c.ARPAnswered != 1 {
		t.Fatalf("%+v", c)
	}
	// A probe for our own address is swallowed.
	a.local = nil
	probe := ether.AppendARPFrame(nil, ether.Broadcast, a.mac, ether.ARP{Op: ether.ARPRequest, SenderMAC: a.mac, SenderIP: netip.IPv4Unspecified(), TargetIP: a.ipv4})
	w.send(0, probe)
	if w.msgs != 0 || len(a.local) != 0 || a.sw.Counters().DropOwnDAD != 1 {
		t.Fatal("own probe not swallowed")
	}
}

func TestSwitchAnswersNDPLocally(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	for _, target := range []netip.Addr{b.ipv6, ether.LinkLocal(b.mac)} {
		a.local = nil
		ns := ether.NDP{Type: ether.ICMPv6NeighborSol, Src: a.ipv6, Dst: ether.SolicitedNode(target), Target: target, LLAddr: a.mac}
		w.send(0, ether.AppendNDPFrame(nil, ether.IPv6Multicast(ns.Dst), a.mac, ns))
		if w.msgs != 0 || len(a.local) != 1 {
			t.Fatalf("%v: %d messages, %d local", target, w.msgs, len(a.local))
		}
		f := a.local[0]
		h, _ := ether.ParseHeader(f)
		na, err := ether.ParseNDP(f[ether.HeaderLen:])
		if err != nil || h.Src != b.mac || h.Dst != a.mac || na.Type != ether.ICMPv6NeighborAdv ||
			na.Target != target || na.Src != target || na.Dst != a.ipv6 || na.LLAddr != b.mac || na.Flags != 0x60 {
			t.Fatalf("bad NA %+v %v", na, err)
		}
		if c := ether.ICMPv6Checksum(na.Src, na.Dst, f[ether.HeaderLen+ether.IPv6HeaderLen:]); c != 0 {
			t.Fatal("NA checksum does not verify")
		}
	}
	// DAD for our own address: swallowed, so the kernel's DAD succeeds.
	a.local = nil
	dad := ether.NDP{Type: ether.ICMPv6NeighborSol, Src: netip.IPv6Unspecified(), Dst: ether.SolicitedNode(a.ipv6), Target: a.ipv6}
	w.send(0, ether.AppendNDPFrame(nil, ether.IPv6Multicast(dad.Dst), a.mac, dad))
	if w.msgs != 0 || len(a.local) != 0 || a.sw.Counters().DropOwnDAD != 1 {
		t.Fatal("own DAD not swallowed")
	}
}

func TestSwitchUnicast(t *testing.T) {
	w := newTestWorld(t, 3, false)
	a, b, c := w.nodes[0], w.nodes[1], w.nodes[2]
	f := ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, "hello")
	w.send(0, f)
	if w.msgs != 1 || len(b.local) != 1 || !bytes.Equal(b.local[0], f) || len(c.local) != 0 || len(a.local) != 0 {
		t.Fatalf("msgs %d, b got %d, c got %d", w.msgs, len(b.local), len(c.local))
	}
	if ca, cb := a.sw.Counters(), b.sw.Counters(); ca.UnicastOut != 1 || cb.UnicastDelivered != 1 {
		t.Fatalf("%+v %+v", ca, cb)
	}
	// Unicast makes a and b social neighbours of each other.
	if n := a.sw.Social().Neighbours(w.now); len(n) != 1 || n[0] != b.peer {
		t.Fatalf("neighbours of a: %v", n)
	}
	// Unknown universal destination MAC (no member's: theirs are locally
	// administered): dropped, nothing sent (TestSwitchUnknownMAC has the
	// locally administered ones).
	w.reset()
	w.send(0, ipv4Frame(ether.MAC{0, 9, 9, 9, 9, 9}, a.mac, a.ipv4, b.ipv4, "x"))
	if w.msgs != 0 || a.sw.Counters().DropUnknownDest != 1 || a.sw.TakeUnresolved() != nil {
		t.Fatal("unknown destination not dropped")
	}
	// Local frame with a foreign source MAC: dropped.
	w.send(0, ipv4Frame(b.mac, ether.MAC{2, 1, 1, 1, 1, 1}, a.ipv4, b.ipv4, "x"))
	if w.msgs != 0 || a.sw.Counters().DropLocalSource != 1 {
		t.Fatal("foreign local source not dropped")
	}
	// Short frame.
	w.send(0, []byte{1, 2, 3})
	if a.sw.Counters().DropMalformed != 1 {
		t.Fatal("short frame not counted")
	}
}

func TestSwitchDropsNonMembersAndSpoofing(t *testing.T) {
	w := newTestWorld(t, 3, false)
	a, b, c := w.nodes[0], w.nodes[1], w.nodes[2]
	_, stranger := testKey(t, 999)
	good := ipv4Frame(a.mac, b.mac, b.ipv4, a.ipv4, "hi")
	tests := []struct {
		name  string
		from  peer.ID
		m     Message
		count func(Counters) uint64
	}{
		{"non-member", stranger, Message{Kind: MsgFrame, Payload: good}, func(c Counters) uint64 { return c.DropNotMember }},
		{"source MAC of another member", c.peer, Message{Kind: MsgFrame, Payload: good}, func(c Counters) uint64 { return c.DropSpoofed }},
		{"source IPv4 of another member", c.peer, Message{Kind: MsgFrame, Payload: ipv4Frame(a.mac, c.mac, b.ipv4, a.ipv4, "x")}, func(c Counters) uint64 { return c.DropSpoofed }},
		{"ARP claiming another member's IP", c.peer, Message{Kind: MsgFrame, Payload: ether.AppendARPFrame(nil, a.mac, c.mac,
			ether.ARP{Op: ether.ARPReply, SenderMAC: c.mac, SenderIP: b.ipv4, TargetMAC: a.mac, TargetIP: a.ipv4})}, func(c Counters) uint64 { return c.DropSpoofed }},
		{"source MAC of the receiver", c.peer, Message{Kind: MsgFrame, Payload: ipv4Frame(a.mac, a.mac, c.ipv4, a.ipv4, "x")}, func(c Counters) uint64 { return c.DropSpoofed }},
		{"unicast for another member", c.peer, Message{Kind: MsgFrame, Payload: ipv4Frame(b.mac, c.mac, c.ipv4, b.ipv4, "x")}, func(c Counters) uint64 { return c.DropNotForUs }},
		{"multicast frame as unicast kind", c.peer, Message{Kind: MsgFrame, Payload: ipv4Frame(ether.Broadcast, c.mac, c.ipv4, b.ipv4, "x")}, func(c Counters) uint64 { return c.DropMalformed }},
		{"truncated frame", c.peer, Message{Kind: MsgFrame, Payload: []byte{1}}, func(c Counters) uint64 { return c.DropMalformed }},
	}
	for _, tt := range tests {
		before := tt.count(a.sw.Counters())
		outs := a.sw.HandleRemote(w.now, tt.from, tt.m)
		if len(outs) != 0 {
			t.Errorf("%s: delivered %d outputs", tt.name, len(outs))
		}
		if tt.count(a.sw.Counters()) != before+1 {
			t.Errorf("%s: not counted: %+v", tt.name, a.sw.Counters())
		}
	}
	// The genuine frame is delivered; after RemoveMember (revocation) it is not.
	if outs := a.sw.HandleRemote(w.now, b.peer, Message{Kind: MsgFrame, Payload: good}); len(outs) != 1 || outs[0].Kind != ToLocal {
		t.Fatal("genuine frame not delivered")
	}
	a.sw.RemoveMember(b.peer)
	if outs := a.sw.HandleRemote(w.now, b.peer, Message{Kind: MsgFrame, Payload: good}); len(outs) != 0 {
		t.Fatal("frame of removed member delivered")
	}
	// Nor is anything sent to it, and ARP for its address is no longer answered.
	w.reset()
	w.send(0, ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, "x"))
	if w.msgs != 0 {
		t.Fatal("frame sent to removed member")
	}
}

func TestSwitchBroadcastReachesContacts(t *testing.T) {
	w := newTestWorld(t, 5, false)
	a := w.nodes[0]
	// a talks to 1, 2 and 3 only; nobody talks to 4.
	for _, i := range []int{1, 2, 3} {
		w.send(0, ipv4Frame(w.nodes[i].mac, a.mac, a.ipv4, w.nodes[i].ipv4, "hi"))
	}
	w.reset()
	bc := ipv4Frame(ether.Broadcast, a.mac, a.ipv4, netip.MustParseAddr("255.255.255.255"), "broadcast")
	w.send(0, bc)
	for i, nd := range w.nodes {
		want := 1
		if i == 0 || i == 4 {
			want = 0
		}
		if len(nd.local) != want {
			t.Errorf("node %d got %d copies, want %d", i, len(nd.local), want)
		}
		for _, f := range nd.local {
			if !bytes.Equal(f, bc) {
				t.Errorf("node %d got a modified frame", i)
			}
		}
	}
	if c := a.sw.Counters(); c.BroadcastOrigin != 1 || c.BroadcastSent != 3 {
		t.Fatalf("%+v", c)
	}
}

func TestSwitchBroadcastBoundedInLargeWorld(t *testing.T) {
	const n = 60
	w := newTestWorld(t, n, false)
	w.connectAll()
	budget := w.nodes[0].sw.Social().Params().Budget
	for round := range 5 {
		w.reset()
		src := w.nodes[round]
		bc := ipv4Frame(ether.Broadcast, src.mac, src.ipv4, netip.MustParseAddr("10.9.255.255"), fmt.Sprint(round))
		w.send(round, bc)
		if w.msgs > budget {
			t.Fatalf("broadcast cost %d messages, budget %d", w.msgs, budget)
		}
		reached := 0
		for i, nd := range w.nodes {
			if len(nd.local) > 1 {
				t.Fatalf("node %d got %d copies", i, len(nd.local))
			}
			reached += len(nd.local)
		}
		if len(src.local) != 0 {
			t.Fatal("origin received its own broadcast")
		}
		t.Logf("round %d: reached %d/%d with %d messages", round, reached, n-1, w.msgs)
		if reached < (n-1)/2 {
			t.Fatalf("reached only %d of %d fully connected members", reached, n-1)
		}
	}
}

// signedBroadcast returns the encoded header of broadcast id, signed by key
// on w's network, for frame.
func (w *testWorld) signedBroadcast(key crypto.PrivKey, id social.BroadcastID, frame []byte) (social.SocialHeader, []byte) {
	w.t.Helper()
	h := social.SocialHeader{ID: id, TTL: 3, Budget: 10, Time: w.now.UnixMilli()}
	if key != nil {
		if err := SignBroadcast(key, w.id, &h, frame); err != nil {
			w.t.Fatal(err)
		}
	}
	sh, err := h.AppendBinary(nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return h, sh
}

func TestSwitchDropsForgedBroadcast(t *testing.T) {
	w := newTestWorld(t, 3, false)
	a, b, c := w.nodes[0], w.nodes[1], w.nodes[2]
	frame := ipv4Frame(ether.Broadcast, b.mac, b.ipv4, netip.MustParseAddr("255.255.255.255"), "forged")
	// c signs, with its own ID, a frame claiming b's MAC: the signature is
	// good but the source is not c's.
	_, sh := w.signedBroadcast(c.key, social.BroadcastID{Origin: netrec.PeerHash(c.peer), Seq: 1}, frame)
	if outs := a.sw.HandleRemote(w.now, c.peer, Message{Kind: MsgBroadcast, Social: sh, Payload: frame}); len(outs) != 0 {
		t.Fatal("forged broadcast delivered")
	}
	if cn := a.sw.Counters(); cn.DropSpoofed != 1 || cn.DropBadOrigin != 0 {
		t.Fatalf("%+v", cn)
	}
	// c passes the frame off as b's broadcast: b's ID, but c's signature,
	// no signature, or b's signature of another network are all refused.
	bid := social.BroadcastID{Origin: netrec.PeerHash(b.peer), Seq: 1}
	_, byC := w.signedBroadcast(c.key, bid, frame)
	_, unsigned := w.signedBroadcast(nil, bid, frame)
	other := social.SocialHeader{ID: bid, TTL: 3, Budget: 10, Time: w.now.UnixMilli()}
	if err := SignBroadcast(b.key, netrec.NetworkID{1}, &other, frame); err != nil {
		t.Fatal(err)
	}
	elsewhere, _ := other.AppendBinary(nil)
	for i, forged := range [][]byte{byC, unsigned, elsewhere} {
		if outs := a.sw.HandleRemote(w.now, c.peer, Message{Kind: MsgBroadcast, Social: forged, Payload: frame}); len(outs) != 0 {
			t.Fatalf("forgery %d delivered or forwarded: %+v", i, outs)
		}
		if got := a.sw.Counters().DropBadOrigin; got != uint64(i+1) {
			t.Fatalf("forgery %d: drop_bad_origin = %d", i, got)
		}
	}
	if cn := a.sw.Counters(); cn.BroadcastDelivered != 0 || cn.BroadcastDuplicate != 0 {
		t.Fatalf("forgeries reached the social layer: %+v", cn)
	}
	// The same frame signed by b, forwarded by c, is legitimate: the
	// forgeries before did not poison its ID.
	h, sh := w.signedBroadcast(b.key, bid, frame)
	outs := a.sw.HandleRemote(w.now, c.peer, Message{Kind: MsgBroadcast, Social: sh, Payload: frame})
	if len(outs) == 0 || outs[0].Kind != ToLocal {
		t.Fatalf("forwarded broadcast not delivered: %+v", a.sw.Counters())
	}
	// Its duplicate is not delivered again (and costs no verification:
	// the cached digest matches).
	if outs := a.sw.HandleRemote(w.now, b.peer, Message{Kind: MsgBroadcast, Social: sh, Payload: frame}); len(outs) != 0 && outs[0].Kind == ToLocal {
		t.Fatal("duplicate delivered")
	}
	if cn := a.sw.Counters(); cn.BroadcastDuplicate != 1 || cn.DropBadOrigin != 3 {
		t.Fatalf("%+v", cn)
	}
	// A duplicate whose frame was changed on the way, under the genuine
	// signature, is dropped rather than forwarded as a duplicate.
	tampered := bytes.Clone(frame)
	tampered[len(tampered)-1] ^= 1
	if outs := a.sw.HandleRemote(w.now, b.peer, Message{Kind: MsgBroadcast, Social: sh, Payload: tampered}); len(outs) != 0 {
		t.Fatal("tampered duplicate accepted")
	}
	// Fresh ID, tampered before anyone saw it: dropped too.
	h.ID.Seq = 2
	_, sh2 := w.signedBroadcast(b.key, h.ID, frame)
	if outs := a.sw.HandleRemote(w.now, c.peer, Message{Kind: MsgBroadcast, Social: sh2, Payload: tampered}); len(outs) != 0 {
		t.Fatal("tampered broadcast delivered")
	}
	if cn := a.sw.Counters(); cn.DropBadOrigin != 5 || cn.BroadcastDelivered != 1 {
		t.Fatalf("%+v", cn)
	}
}

// A genuine broadcast travels a -> b -> c over two hops (c is not a's
// neighbour) and is delivered at both; forwarders change TTL, budget and
// visited list, which the signature does not cover.
func TestSwitchSignedBroadcastTwoHops(t *testing.T) {
	w := newTestWorld(t, 3, false)
	a, b, c := w.nodes[0], w.nodes[1], w.nodes[2]
	w.run(a, a.sw.Connected(b.peer, w.now))
	w.run(b, b.sw.Connected(c.peer, w.now))
	w.reset()
	if nb := a.sw.Social().Neighbours(w.now); len(nb) != 1 || nb[0] != b.peer {
		t.Fatalf("a's neighbours %v, want only b", nb)
	}
	frame := arpRequestFrame(a.mac, a.ipv4, netip.MustParseAddr("10.9.0.99")) // nobody's: goes out
	w.send(0, frame)
	if len(b.local) != 1 || len(c.local) != 1 || !bytes.Equal(c.local[0], frame) {
		t.Fatalf("b got %d, c got %d copies", len(b.local), len(c.local))
	}
	for _, nd := range w.nodes {
		if cn := nd.sw.Counters(); cn.DropBadOrigin != 0 || cn.DropSpoofed != 0 {
			t.Fatalf("%+v", cn)
		}
	}
	if cn := b.sw.Counters(); cn.BroadcastSent == 0 {
		t.Fatalf("b did not forward: %+v", cn)
	}
}

// A switch without a key refuses to originate (it cannot sign) but still
// checks and delivers other members' broadcasts.
func TestSwitchWithoutKey(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	sw, err := NewSwitch(SwitchConfig{Network: w.id, Self: a.peer, IPv4: a.ipv4})
	if err != nil {
		t.Fatal(err)
	}
	sw.SetMember(SwitchMember{Peer: b.peer, IPv4: b.ipv4})
	sw.Connected(b.peer, w.now)
	if outs := sw.HandleLocal(w.now, arpRequestFrame(a.mac, a.ipv4, netip.MustParseAddr("10.9.0.99"))); len(outs) != 0 || sw.Counters().DropNoKey != 1 {
		t.Fatalf("unsigned broadcast originated: %+v", sw.Counters())
	}
	frame := ipv4Frame(ether.Broadcast, b.mac, b.ipv4, netip.MustParseAddr("255.255.255.255"), "hi")
	_, sh := w.signedBroadcast(b.key, social.BroadcastID{Origin: netrec.PeerHash(b.peer), Seq: 1}, frame)
	if outs := sw.HandleRemote(w.now, b.peer, Message{Kind: MsgBroadcast, Social: sh, Payload: frame}); len(outs) == 0 || outs[0].Kind != ToLocal {
		t.Fatal("signed broadcast not delivered by a keyless switch")
	}
	if _, err := NewSwitch(SwitchConfig{Network: w.id, Self: a.peer, Key: b.key}); err == nil {
		t.Fatal("a key that is not Self's accepted")
	}
}

func TestSwitchMulticastGroups(t *testing.T) {
	w := newTestWorld(t, 4, false)
	w.connectAll() // Connected announces groups: everyone hears everyone's
	a := w.nodes[0]
	mdns := ether.IPv4Multicast(netip.MustParseAddr("224.0.0.251"))
	if subs := a.sw.Social().Subscribers(GroupOf(mdns), w.now); len(subs) != 3 {
		t.Fatalf("mDNS subscribers known to a: %v", subs)
	}
	f := ipv4Frame(mdns, a.mac, a.ipv4, netip.MustParseAddr("224.0.0.251"), "mdns")
	w.send(0, f)
	for i, nd := range w.nodes[1:] {
		if len(nd.local) != 1 {
			t.Errorf("member %d got %d mDNS copies", i+1, len(nd.local))
		}
	}
	// Tick re-announces to neighbours after a third of the group lifetime.
	w.now = w.now.Add(time.Minute)
	outs := a.sw.Tick(w.now)
	if len(outs) != 3 || outs[0].Msg.Kind != MsgGroups {
		t.Fatalf("Tick sent %d outputs", len(outs))
	}
	if outs := a.sw.Tick(w.now.Add(time.Second)); len(outs) != 0 {
		t.Fatal("Tick announced again too soon")
	}
}

func TestSwitchBridging(t *testing.T) {
	w := newTestWorld(t, 3, true)
	a, b, c := w.nodes[0], w.nodes[1], w.nodes[2]
	vm := ether.MAC{2, 0xbb, 0, 0, 0, 1} // a host bridged behind b
	vmIP := netip.MustParseAddr("10.9.9.9")
	w.run(b, []Output{{Kind: ToPeer, Peer: a.peer, Msg: Message{Kind: MsgFrame, Payload: ipv4Frame(a.mac, vm, vmIP, a.ipv4, "from vm")}}})
	if len(a.local) != 1 {
		t.Fatal("bridged frame not delivered")
	}
	w.reset()
	w.send(0, ipv4Frame(vm, a.mac, a.ipv4, vmIP, "to vm"))
	if w.msgs != 1 || len(b.local) != 1 {
		t.Fatalf("reply to the bridged host went astray: %d msgs, b got %d", w.msgs, len(b.local))
	}
	// c may not claim b's derived MAC even with bridging.
	outs := a.sw.HandleRemote(w.now, c.peer, Message{Kind: MsgFrame, Payload: ipv4Frame(a.mac, b.mac, netip.MustParseAddr("10.9.9.10"), a.ipv4, "x")})
	if len(outs) != 0 {
		t.Fatal("member MAC claimed by another member")
	}
	// Learned addresses age out.
	w.now = w.now.Add(6 * time.Minute)
	a.sw.Tick(w.now)
	w.reset()
	w.send(0, ipv4Frame(vm, a.mac, a.ipv4, vmIP, "to vm"))
	if w.msgs != 0 {
		t.Fatal("aged-out bridged address still used")
	}
}

func arpRequestFrame(mac ether.MAC, ip, target netip.Addr) []byte {
	return ether.AppendARPFrame(nil, ether.Broadcast, mac, ether.ARP{Op: ether.ARPRequest, SenderMAC: mac, SenderIP: ip, TargetIP: target})
}

// With bridging, a broadcast from a host bridged behind b, forwarded by c,
// reaches a, which learns the host behind b.
func TestSwitchBridgedBroadcastViaForwarder(t *testing.T) {
	w := newTestWorld(t, 3, true)
	a, b, c := w.nodes[0], w.nodes[1], w.nodes[2]
	vm := ether.MAC{2, 0xbb, 0, 0, 0, 7}
	frame := ipv4Frame(ether.Broadcast, vm, netip.MustParseAddr("10.9.9.7"), netip.MustParseAddr("255.255.255.255"), "dhcp?")
	_, sh := w.signedBroadcast(b.key, social.BroadcastID{Origin: netrec.PeerHash(b.peer), Seq: 1}, frame)
	outs := a.sw.HandleRemote(w.now, c.peer, Message{Kind: MsgBroadcast, Social: sh, Payload: frame})
	if len(outs) == 0 || outs[0].Kind != ToLocal {
		t.Fatalf("bridged broadcast not delivered: %+v", a.sw.Counters())
	}
	w.reset()
	w.send(0, ipv4Frame(vm, a.mac, a.ipv4, netip.MustParseAddr("10.9.9.7"), "offer"))
	if len(b.local) != 1 {
		t.Fatal("reply did not go to the member the host is bridged behind")
	}
	// Without bridging the same copy is refused.
	w2 := newTestWorld(t, 3, false)
	if outs := w2.nodes[0].sw.HandleRemote(w2.now, w2.nodes[2].peer, Message{Kind: MsgBroadcast, Social: sh, Payload: frame}); len(outs) != 0 {
		t.Fatal("foreign source accepted without bridging")
	}
}

// BenchmarkBroadcastSign measures what originating costs on top of
// switching: one digest and one Ed25519 signature per broadcast.
func BenchmarkBroadcastSign(b *testing.B) {
	key, _ := testKey(b, 1)
	frame := bytes.Repeat([]byte{0xab}, 1500)
	h := social.SocialHeader{ID: social.BroadcastID{Origin: 1, Seq: 1}, TTL: 7, Budget: 128}
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if err := SignBroadcast(key, netrec.NetworkID{1}, &h, frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBroadcastVerify measures the check of a first copy; a duplicate
// costs only BenchmarkBroadcastDuplicate.
func BenchmarkBroadcastVerify(b *testing.B) {
	key, _ := testKey(b, 1)
	frame := bytes.Repeat([]byte{0xab}, 1500)
	h := social.SocialHeader{ID: social.BroadcastID{Origin: 1, Seq: 1}, TTL: 7, Budget: 128}
	if err := SignBroadcast(key, netrec.NetworkID{1}, &h, frame); err != nil {
		b.Fatal(err)
	}
	pub := key.GetPublic()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if !VerifyBroadcast(pub, netrec.NetworkID{1}, h, frame) {
			b.Fatal("bad signature")
		}
	}
}

// BenchmarkBroadcastDuplicate is a duplicate copy through HandleRemote:
// its verification is answered from the cache.
func BenchmarkBroadcastDuplicate(b *testing.B) {
	w := newTestWorld(b, 2, false)
	a, o := w.nodes[0], w.nodes[1]
	frame := ipv4Frame(ether.Broadcast, o.mac, o.ipv4, netip.MustParseAddr("255.255.255.255"), string(bytes.Repeat([]byte{1}, 1400)))
	_, sh := w.signedBroadcast(o.key, social.BroadcastID{Origin: netrec.PeerHash(o.peer), Seq: 1}, frame)
	m := Message{Kind: MsgBroadcast, Social: sh, Payload: frame}
	a.sw.HandleRemote(w.now, o.peer, m)
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		a.sw.HandleRemote(w.now, o.peer, m)
	}
	if cn := a.sw.Counters(); cn.DropBadOrigin != 0 || cn.BroadcastDelivered != 1 {
		b.Fatalf("%+v", cn)
	}
}

// TestSwitchFirstSequence: a switch started with FirstSequence numbers its
// first broadcast after it, so a restarted node's broadcasts are not taken
// for ones its members have already seen.
func TestSwitchFirstSequence(t *testing.T) {
	soc, err := social.NewSocial(peer.ID("a"), netrec.PeerHash, social.DefaultSocialParams())
	if err != nil {
		t.Fatal(err)
	}
	soc.SetSequence(1000)
	soc.Touch(peer.ID("b"), time.Unix(1, 0))
	id, sends := soc.Originate(time.Unix(1, 0))
	if id.Seq != 1001 || len(sends) != 1 || sends[0].SocialHeader.ID != id {
		t.Fatalf("first broadcast after SetSequence(1000): %+v %+v", id, sends)
	}
}

// Outputs that carry the caller's own frame say so (Output.Input), and
// synthesized ones do not: a driver relies on it to send a super-frame in
// the frame's place and to write delivered frames outside its lock.
func TestSwitchMarksInputFrames(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	f := ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, "hello")
	outs := a.sw.HandleLocal(w.now, f)
	if len(outs) != 1 || outs[0].Kind != ToPeer || !outs[0].Input || &outs[0].Msg.Payload[0] != &f[0] {
		t.Fatalf("forwarded unicast: %+v", outs)
	}
	outs = b.sw.HandleRemote(w.now, a.peer, Message{Kind: MsgFrame, Payload: f})
	if len(outs) != 1 || outs[0].Kind != ToLocal || !outs[0].Input || &outs[0].Msg.Payload[0] != &f[0] {
		t.Fatalf("delivered unicast: %+v", outs)
	}
	// An ARP answer is made by the switch: not the input.
	outs = a.sw.HandleLocal(w.now, arpRequestFrame(a.mac, a.ipv4, b.ipv4))
	if len(outs) != 1 || outs[0].Kind != ToLocal || outs[0].Input {
		t.Fatalf("ARP answer: %+v", outs)
	}
}
