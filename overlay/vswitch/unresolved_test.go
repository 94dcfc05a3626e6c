package vswitch

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/kadlan/kadlan/tap/ether"
)

// A unicast frame to a MAC that no known member holds (a member not heard
// of yet) is handed back to be held, not flooded nor dropped, and its MAC
// reported for a lookup, once, bounded; once the member is known, Resolve
// names it and the next frame goes to it directly.
func TestSwitchUnknownMAC(t *testing.T) {
	w := newTestWorld(t, 3, false)
	a, b, c := w.nodes[0], w.nodes[1], w.nodes[2]
	w.connectAll()
	a.sw.RemoveMember(c.peer) // a has not heard of c
	f := ipv4Frame(c.mac, a.mac, a.ipv4, c.ipv4, "first")
	outs := a.sw.HandleLocal(w.now, f)
	if len(outs) != 1 || outs[0].Kind != ToUnresolved || outs[0].MAC != c.mac || !outs[0].Input || !bytes.Equal(outs[0].Msg.Payload, f) {
		t.Fatalf("outputs %+v, want the frame held for %v", outs, c.mac)
	}
	w.run(a, outs)
	if w.msgs != 0 || len(b.local) != 0 || len(c.local) != 0 {
		t.Fatalf("%d messages sent, b got %d, c got %d: the frame was flooded", w.msgs, len(b.local), len(c.local))
	}
	w.send(0, f) // again: held, reported once
	if got := a.sw.TakeUnresolved(); len(got) != 1 || got[0] != (Unresolved{MAC: c.mac}) {
		t.Fatalf("unresolved %v, want c's MAC once", got)
	}
	if got := a.sw.TakeUnresolved(); got != nil {
		t.Fatalf("unresolved %v after taking them", got)
	}
	if ca := a.sw.Counters(); ca.UnicastUnresolved != 2 || ca.DropUnknownDest != 0 || ca.UnicastOut != 0 {
		t.Fatalf("counters %+v: want 2 held, none dropped or sent", ca)
	}
	if _, ok := a.sw.Resolve(w.now, c.mac, 2); ok {
		t.Fatal("resolved a MAC no member holds")
	}

	// Neither a's own MAC nor a universal one is looked up.
	for _, dst := range []ether.MAC{a.mac, {0, 1, 2, 3, 4, 5}} {
		if outs := a.sw.HandleLocal(w.now, ipv4Frame(dst, a.mac, a.ipv4, c.ipv4, "x")); len(outs) != 0 {
			t.Fatalf("%v: outputs %+v, want a drop", dst, outs)
		}
	}
	if got := a.sw.TakeUnresolved(); got != nil {
		t.Fatalf("unresolved %v, want none", got)
	}

	// At most maxUnresolved destinations wait, MACs and addresses alike.
	for i := range 2 * maxUnresolved {
		a.sw.HandleLocal(w.now, ipv4Frame(ether.MAC{2, 0, 0, 0, 1, byte(i)}, a.mac, a.ipv4, c.ipv4, "x"))
		a.sw.HandleLocal(w.now, arpRequestFrame(a.mac, a.ipv4, netip.AddrFrom4([4]byte{10, 9, 1, byte(i)})))
	}
	if got := a.sw.TakeUnresolved(); len(got) != maxUnresolved {
		t.Fatalf("%d unresolved, want the bound %d", len(got), maxUnresolved)
	}

	// The member is found: Resolve names it, and frames go to it.
	a.sw.SetMember(SwitchMember{Peer: c.peer, IPv4: c.ipv4})
	p, ok := a.sw.Resolve(w.now, c.mac, 2)
	if !ok || p != c.peer {
		t.Fatalf("Resolve = %s, %v, want %s", p, ok, c.peer)
	}
	if ca := a.sw.Counters(); ca.UnicastOut != 2 {
		t.Fatalf("UnicastOut %d, want the 2 held frames", ca.UnicastOut)
	}
	if n := a.sw.Neighbours(w.now); len(n) == 0 || n[0] != c.peer {
		t.Fatalf("neighbours %v: the resolved member is not the most recent", n)
	}
	w.reset()
	w.send(0, ipv4Frame(c.mac, a.mac, a.ipv4, c.ipv4, "second"))
	if w.msgs != 1 || len(c.local) != 1 || !bytes.Contains(c.local[0], []byte("second")) {
		t.Fatalf("%d messages, c got %d frames after the member was known", w.msgs, len(c.local))
	}
}

// TestSwitchAnswersAskedOnceKnown: the host's ARP request or neighbour
// solicitation for an address no known member holds is answered as soon
// as a member holding it is added (AnswerAsked), not only the host's next
// request a second later; an old request, or one for an address still
// unknown, is not.
func TestSwitchAnswersAskedOnceKnown(t *testing.T) {
	w := newTestWorld(t, 3, false)
	a, b, c := w.nodes[0], w.nodes[1], w.nodes[2]
	w.connectAll()
	bm, _ := a.sw.Member(b.peer)
	cm, _ := a.sw.Member(c.peer)
	a.sw.RemoveMember(b.peer)
	a.sw.RemoveMember(c.peer)
	for _, o := range a.sw.HandleLocal(w.now, arpRequestFrame(a.mac, a.ipv4, b.ipv4)) {
		if o.Kind == ToLocal {
			t.Fatal("answered a request for an address nobody known holds")
		}
	}
	ns := ether.NDP{Type: ether.ICMPv6NeighborSol, Src: a.ipv6, Dst: ether.SolicitedNode(c.ipv6), Target: c.ipv6, LLAddr: a.mac}
	a.sw.HandleLocal(w.now, ether.AppendNDPFrame(nil, ether.IPv6Multicast(ns.Dst), a.mac, ns))
	if outs := a.sw.AnswerAsked(w.now); len(outs) != 0 {
		t.Fatalf("answers %+v before any member holds the addresses", outs)
	}
	a.sw.SetMember(bm)
	outs := a.sw.AnswerAsked(w.now.Add(time.Second))
	if len(outs) != 1 || outs[0].Kind != ToLocal {
		t.Fatalf("outputs %+v, want one ARP reply to the host", outs)
	}
	h, _ := ether.ParseHeader(outs[0].Msg.Payload)
	rep, err := ether.ParseARP(outs[0].Msg.Payload[ether.HeaderLen:])
	if err != nil || h.Dst != a.mac || rep.Op != ether.ARPReply || rep.SenderMAC != b.mac || rep.SenderIP != b.ipv4 || rep.TargetMAC != a.mac || rep.TargetIP != a.ipv4 {
		t.Fatalf("bad reply %+v %+v %v", h, rep, err)
	}
	if outs := a.sw.AnswerAsked(w.now.Add(time.Second)); len(outs) != 0 {
		t.Fatalf("answered twice: %+v", outs)
	}
	// c becomes known after the host gave up asking: no answer.
	a.sw.SetMember(cm)
	if outs := a.sw.AnswerAsked(w.now.Add(askedFor + time.Second)); len(outs) != 0 {
		t.Fatalf("answered a request %v old: %+v", askedFor+time.Second, outs)
	}
	// Within the time, the solicitation is answered with an advertisement.
	a.sw.RemoveMember(c.peer)
	a.sw.HandleLocal(w.now, ether.AppendNDPFrame(nil, ether.IPv6Multicast(ns.Dst), a.mac, ns))
	a.sw.SetMember(cm)
	outs = a.sw.AnswerAsked(w.now)
	if len(outs) != 1 {
		t.Fatalf("outputs %+v, want one advertisement", outs)
	}
	na, err := ether.ParseNDP(outs[0].Msg.Payload[ether.HeaderLen:])
	if err != nil || na.Type != ether.ICMPv6NeighborAdv || na.Target != c.ipv6 || na.LLAddr != c.mac || na.Dst != a.ipv6 {
		t.Fatalf("bad advertisement %+v %v", na, err)
	}
}
