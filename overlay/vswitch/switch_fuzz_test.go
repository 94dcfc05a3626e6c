package vswitch

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/social"
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
	bf := ipv4Frame(ether.Broadcast, b.mac, b.ipv4, netip.MustParseAddr("255.255.255.255"), "b")
	h := social.SocialHeader{ID: social.BroadcastID{Origin: netrec.PeerHash(b.peer), Seq: 1}, TTL: 2, Budget: 5, Visited: []uint32{7}, Time: w.now.UnixMilli()}
	if err := SignBroadcast(b.key, w.id, &h, bf); err != nil {
		f.Fatal(err)
	}
	sh, _ := h.AppendBinary(nil)
	f.Add(byte(2), sh, bf) // remote broadcast, signed by b
	mf := ipv4Frame(ether.IPv4Multicast(netip.MustParseAddr("224.0.0.251")), w.nodes[2].mac, w.nodes[2].ipv4, netip.MustParseAddr("224.0.0.251"), "m")
	hm := social.SocialHeader{ID: social.BroadcastID{Origin: netrec.PeerHash(w.nodes[2].peer), Seq: 1}, HasGroup: true,
		Group: GroupOf(ether.IPv4Multicast(netip.MustParseAddr("224.0.0.251"))), TTL: 1, Budget: 3, Time: w.now.UnixMilli()}
	if err := SignBroadcast(w.nodes[2].key, w.id, &hm, mf); err != nil {
		f.Fatal(err)
	}
	shm, _ := hm.AppendBinary(nil)
	f.Add(byte(2), shm, mf)                        // multicast by the third member, forwarded by b
	f.Add(byte(2), sh, append(bytes.Clone(bf), 0)) // tampered frame
	g, _ := social.EncodeGroupAnnouncement([]uint64{GroupOf(ether.MAC{1, 0, 0x5e, 0, 0, 0xfb})})
	f.Add(byte(3), []byte{}, g)                                            // group announcement
	f.Add(byte(4), []byte{}, ipv4Frame(a.mac, b.mac, b.ipv4, a.ipv4, "y")) // from a stranger
	_, stranger := testKey(f, 77)
	f.Fuzz(func(t *testing.T, mode byte, header, frame []byte) {
		sw := a.sw
		var outs []Output
		switch mode % 5 {
		case 0:
			outs = sw.HandleLocal(w.now, frame)
		case 1:
			outs = sw.HandleRemote(w.now, b.peer, Message{Kind: MsgFrame, Payload: frame})
		case 2:
			outs = sw.HandleRemote(w.now, b.peer, Message{Kind: MsgBroadcast, Social: header, Payload: frame})
			// Whatever is delivered or forwarded carries its origin's
			// valid signature.
			if len(outs) > 0 {
				h, _, err := social.DecodeSocialHeader(header)
				if err != nil {
					t.Fatalf("undecodable header accepted: %v", err)
				}
				var signer *testNode
				for _, nd := range w.nodes {
					if netrec.PeerHash(nd.peer) == h.ID.Origin {
						signer = nd
					}
				}
				if signer == nil || !VerifyBroadcast(signer.key.GetPublic(), w.id, h, frame) {
					t.Fatal("broadcast without its origin's signature accepted")
				}
			}
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
			case ToUnresolved:
				if sw.isMemberMAC(o.MAC) || !o.MAC.IsLocal() || o.MAC.IsMulticast() || !o.Input || !bytes.Equal(o.Msg.Payload[:6], o.MAC[:]) {
					t.Fatalf("held a frame for %v, a member's, universal or group MAC, or not its destination", o.MAC)
				}
			default:
				t.Fatalf("bad output kind %d", o.Kind)
			}
		}
	})
}
