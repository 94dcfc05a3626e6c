package overlay

import (
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
	t0      = netrectest.T0
	testKey = netrectest.Key
	testDef = netrectest.Def
)

// The switch's test world, as vswitch's tests have it (test helpers
// cannot cross packages), for the engine's tests.

// testNode is one member of a testWorld.
type testNode struct {
	peer peer.ID
	key  crypto.PrivKey
	sw   *vswitch.Switch
	mac  ether.MAC
	ipv4 netip.Addr
	ipv6 netip.Addr
}

// testWorld is a set of member switches that know each other; the engine's
// tests drive them through engines.
type testWorld struct {
	t     testing.TB
	now   time.Time
	id    netrec.NetworkID
	nodes []*testNode
	by    map[peer.ID]*testNode
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

func bcastFrame(nd *testNode, text string) []byte {
	return ipv4Frame(ether.Broadcast, nd.mac, nd.ipv4, netip.MustParseAddr("255.255.255.255"), text)
}
