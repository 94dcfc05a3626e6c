package overlay

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/netrec/netrectest"
	"github.com/kadlan/kadlan/overlay/social"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

var (
	t0          = netrectest.T0
	testKey     = netrectest.Key
	testDef     = netrectest.Def
	testPeers   = netrectest.Peers
	testPeerKey = netrectest.PeerKey
)

// The switch's test world, as vswitch's tests have it (test helpers
// cannot cross packages), for the engine's tests.

// testNode is one member of a testWorld.
type testNode struct {
	peer  peer.ID
	key   crypto.PrivKey
	sw    *vswitch.Switch
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
		sw, err := vswitch.NewSwitch(vswitch.SwitchConfig{Network: w.id, Self: p, IPv4: ip, AllowBridging: bridging, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		nd := &testNode{peer: p, key: key, sw: sw, mac: netrec.MemberMAC(w.id, p), ipv4: ip, ipv6: netrec.MemberIPv6(w.id, p)}
		w.nodes = append(w.nodes, nd)
		w.by[p] = nd
	}
	for _, a := range w.nodes {
		for _, b := range w.nodes {
			a.sw.SetMember(vswitch.SwitchMember{Peer: b.peer, IPv4: b.ipv4})
		}
	}
	return w
}

type inFlight struct {
	from, to peer.ID
	m        vswitch.Message
}

func copyMsg(m vswitch.Message) vswitch.Message {
	return vswitch.Message{Kind: m.Kind, Social: bytes.Clone(m.Social), Payload: bytes.Clone(m.Payload)}
}

// run dispatches the outputs of node at, then everything they cause.
func (w *testWorld) run(at *testNode, outs []vswitch.Output) {
	var q []inFlight
	collect := func(nd *testNode, outs []vswitch.Output) {
		for _, o := range outs {
			switch o.Kind {
			case vswitch.ToLocal:
				nd.local = append(nd.local, bytes.Clone(o.Msg.Payload))
			case vswitch.ToPeer:
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

func arpRequestFrame(mac ether.MAC, ip, target netip.Addr) []byte {
	return ether.AppendARPFrame(nil, ether.Broadcast, mac, ether.ARP{Op: ether.ARPRequest, SenderMAC: mac, SenderIP: ip, TargetIP: target})
}

// signedAt is a copy of broadcast id originated by key at t.
func (w *testWorld) signedAt(key crypto.PrivKey, id social.BroadcastID, t time.Time, frame []byte) vswitch.Message {
	w.t.Helper()
	h := social.SocialHeader{ID: id, TTL: 3, Budget: 10, Time: t.UnixMilli()}
	if err := vswitch.SignBroadcast(key, w.id, &h, frame); err != nil {
		w.t.Fatal(err)
	}
	sh, err := h.AppendBinary(nil)
	if err != nil {
		w.t.Fatal(err)
	}
	return vswitch.Message{Kind: vswitch.MsgBroadcast, Social: sh, Payload: frame}
}

func delivered(outs []vswitch.Output) bool {
	for _, o := range outs {
		if o.Kind == vswitch.ToLocal {
			return true
		}
	}
	return false
}

func bcastFrame(nd *testNode, text string) []byte {
	return ipv4Frame(ether.Broadcast, nd.mac, nd.ipv4, netip.MustParseAddr("255.255.255.255"), text)
}
