package overlay

import (
	"net/netip"
	"testing"

	"github.com/kadlan/kadlan/tap/ether"
)

// FuzzSwitch feeds arbitrary frames and messages to a switch: it must never
// panic, never deliver a frame from a non-member, and send only to members.
func FuzzSwitch(f *testing.F) {
	w := newTestWorld(f, 3, true)
	a, b := w.nodes[0], w.nodes[1]
	f.Add(byte(0), []byte{}, arpRequestFrame(a.mac, a.ipv4, b.ipv4)) // local ARP request
	f.Add(byte(0), []byte{}, ether.AppendNDPFrame(nil, ether.IPv6Multicast(ether.SolicitedNode(b.ipv6)), a.mac,
		ether.NDP{Type: ether.ICMPv6NeighborSol, Src: a.ipv6, Dst: ether.SolicitedNode(b.ipv6), Target: b.ipv6})) // local NS
	f.Add(byte(1), []byte{}, ipv4Frame(a.mac, b.mac, b.ipv4, a.ipv4, "x")) // remote unicast
	h := SocialHeader{ID: BroadcastID{Origin: PeerHash(b.peer), Seq: 1}, TTL: 2, Budget: 5, Visited: []uint32{7}}
	sh, _ := h.AppendBinary(nil)
	f.Add(byte(2), sh, ipv4Frame(ether.Broadcast, b.mac, b.ipv4, netip.MustParseAddr("255.255.255.255"), "b")) // remote broadcast
	g, _ := EncodeGroupAnnouncement([]uint64{GroupOf(ether.MAC{1, 0, 0x5e, 0, 0, 0xfb})})
	f.Add(byte(3), []byte{}, g)                                            // group announcement
	f.Add(byte(4), []byte{}, ipv4Frame(a.mac, b.mac, b.ipv4, a.ipv4, "y")) // from a stranger
	_, stranger := testKey(f, 77)
	f.Fuzz(func(t *testing.T, mode byte, social, frame []byte) {
		sw := a.sw
		var outs []Output
		switch mode % 5 {
		case 0:
			outs = sw.HandleLocal(w.now, frame)
		case 1:
			outs = sw.HandleRemote(w.now, b.peer, Message{Kind: MsgFrame, Payload: frame})
		case 2:
			outs = sw.HandleRemote(w.now, b.peer, Message{Kind: MsgBroadcast, Social: social, Payload: frame})
		case 3:
			outs = sw.HandleRemote(w.now, b.peer, Message{Kind: MsgGroups, Payload: frame})
		case 4:
			before := sw.Counters().DropNotMember
			outs = sw.HandleRemote(w.now, stranger, Message{Kind: MsgFrame, Payload: frame})
			if len(outs) != 0 || sw.Counters().DropNotMember != before+1 {
				t.Fatal("frame of a non-member not dropped and counted")
			}
		}
		for _, o := range outs {
			switch o.Kind {
			case ToLocal:
				if len(o.Msg.Payload) < ether.HeaderLen {
					t.Fatal("short frame delivered")
				}
			case ToPeer:
				if _, ok := sw.Member(o.Peer); !ok {
					t.Fatalf("sent to non-member %s", o.Peer)
				}
				if _, err := AppendMessage(nil, o.Msg); err != nil {
					t.Fatalf("output does not encode: %v", err)
				}
			default:
				t.Fatalf("bad output kind %d", o.Kind)
			}
		}
	})
}
