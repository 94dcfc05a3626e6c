package dht

import (
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name string
		obs  []mapObs
		want natClass
		ext  netip.AddrPort
	}{
		{"none", nil, natUnknown, netip.AddrPort{}},
		{"one observer", []mapObs{{udp: true, localPort: 4242, ext: ap("192.0.0.140:4242")}}, natUnknown, netip.AddrPort{}},
		{"udp agree", []mapObs{
			{udp: true, localPort: 4242, ext: ap("192.0.0.140:4242")},
			{udp: true, localPort: 4242, ext: ap("192.0.0.140:4242")},
		}, natEIM, ap("192.0.0.140:4242")},
		{"udp differ", []mapObs{
			{udp: true, localPort: 4242, ext: ap("192.0.0.140:31000")},
			{udp: true, localPort: 4242, ext: ap("192.0.0.140:52000")},
		}, natSymmetric, ap("192.0.0.140:31000")},
		{"other local port ignored", []mapObs{
			{udp: true, localPort: 4242, ext: ap("192.0.0.140:4242")},
			{udp: true, localPort: 5000, ext: ap("192.0.0.140:9")},
		}, natUnknown, netip.AddrPort{}},
		{"tcp symmetric", []mapObs{
			{localPort: 4242, ext: ap("192.0.0.140:31000")},
			{localPort: 4242, ext: ap("192.0.0.140:52000")},
		}, natSymmetric, ap("192.0.0.140:0")},
		{"tcp eim, udp port guessed", []mapObs{
			{localPort: 4242, ext: ap("192.0.0.140:4242")},
			{localPort: 4242, ext: ap("192.0.0.140:4242")},
		}, natEIM, ap("192.0.0.140:4242")},
		{"tcp eim, one udp observation", []mapObs{
			{localPort: 4242, ext: ap("192.0.0.140:4242")},
			{localPort: 4242, ext: ap("192.0.0.140:4242")},
			{udp: true, localPort: 4242, ext: ap("192.0.0.140:1234")},
		}, natEIM, ap("192.0.0.140:1234")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, ext := classify(tc.obs, 4242, 4242)
			if c != tc.want || (c != natUnknown && ext != tc.ext) {
				t.Fatalf("classify = %v %v, want %v %v", c, ext, tc.want, tc.ext)
			}
		})
	}
}

func TestVerdict(t *testing.T) {
	if _, ok := verdict(natSymmetric, natEIM); !ok {
		t.Fatal("symmetric-EIM refused")
	}
	for _, tc := range []struct {
		a, b natClass
		r    bdayReason
	}{
		{natSymmetric, natSymmetric, reasonBothSymmetric},
		{natSymmetric, natUnknown, reasonUnknownNAT},
		{natEIM, natEIM, reasonNoSymmetric},
	} {
		if r, ok := verdict(tc.a, tc.b); ok || r != tc.r {
			t.Errorf("verdict(%v, %v) = %v %v, want %v", tc.a, tc.b, r, ok, tc.r)
		}
	}
}

// The arithmetic the constants rest on: with 256 mappings in 64512 ports,
// 2048 probes to distinct ports hit with probability > 99.9%.
func TestBirthdayOdds(t *testing.T) {
	const n = 65536 - bdayMinPort
	miss := 1.0
	for j := 0; j < bdayMaxProbes; j++ {
		miss *= 1 - float64(bdaySockets)/float64(n-j)
	}
	if miss > 0.001 {
		t.Fatalf("miss probability %.5f", miss)
	}
	t.Logf("P(hit) = %.5f with %d sockets, %d probes; mean probes to a hit %.0f", 1-miss, bdaySockets, bdayMaxProbes, math.Round(float64(n+1)/float64(bdaySockets+1)))
}

func TestMsgRoundTrip(t *testing.T) {
	for _, m := range []bdayMsg{
		{Type: msgHello, Nonce: [16]byte{1, 2, 3}, Class: natSymmetric, Addr: ap("192.0.0.140:0")},
		{Type: msgHello, Class: natEIM, Addr: ap("192.0.0.141:4242")},
		{Type: msgHello},
		{Type: msgReady},
		{Type: msgHit, Port: 40000},
		{Type: msgEnd, Reason: reasonBothSymmetric},
	} {
		got, err := readMsg(bytes.NewReader(m.encode()))
		if err != nil || got != m {
			t.Errorf("%+v: read back %+v, %v", m, got, err)
		}
	}
	for _, b := range [][]byte{
		{}, {msgReady}, {9, 0}, {msgHit, 2, 0, 80}, {msgEnd, 1, byte(reasonCount)},
		{msgReady, 1, 0}, append([]byte{msgHello, 23}, make([]byte, 22)...),
	} {
		if _, err := parseMsg(b); err == nil {
			t.Errorf("%x accepted", b)
		}
	}
}

func TestProbe(t *testing.T) {
	n := newNonce()
	p := makeProbe(n, 40000)
	if p[0]&0x40 != 0 {
		t.Fatal("a probe looks like a QUIC packet")
	}
	if port, ok := parseProbe(p, n); !ok || port != 40000 {
		t.Fatalf("parseProbe = %d %v", port, ok)
	}
	if _, ok := parseProbe(p, newNonce()); ok {
		t.Fatal("a probe with another nonce accepted")
	}
}

// FuzzBirthdayMsg: any accepted frame re-encodes to itself.
func FuzzBirthdayMsg(f *testing.F) {
	f.Add((bdayMsg{Type: msgHello, Class: natEIM, Addr: ap("192.0.0.141:4242")}).encode())
	f.Add((bdayMsg{Type: msgHit, Port: 5000}).encode())
	f.Add([]byte{msgEnd, 1, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := readMsg(bytes.NewReader(b))
		if err != nil {
			return
		}
		enc := m.encode()
		if !bytes.Equal(enc, b[:len(enc)]) {
			t.Fatalf("%x parsed as %+v, encodes as %x", b, m, enc)
		}
		if m2, err := parseMsg(enc); err != nil || m2 != m {
			t.Fatalf("round trip %+v -> %+v %v", m, m2, err)
		}
	})
}

func TestIPPort(t *testing.T) {
	for _, tc := range []struct {
		a   string
		udp bool
		ap  string
		ok  bool
	}{
		{"/ip4/0.0.0.0/udp/4242/quic-v1", true, "0.0.0.0:4242", true},
		{"/ip4/192.0.0.140/tcp/4242", false, "192.0.0.140:4242", true},
		{"/ip4/192.0.0.140/tcp/4242/ws", false, "192.0.0.140:4242", true},
		{"/ip6/::1/udp/4242/quic-v1", false, "", false},
	} {
		udp, got, ok := ipPort(ma.StringCast(tc.a))
		if ok != tc.ok || (ok && (udp != tc.udp || got.String() != tc.ap)) {
			t.Errorf("ipPort(%s) = %v %v %v", tc.a, udp, got, ok)
		}
	}
}

// TestBirthdayDue: the symmetric side runs up to bdayInitiators exchanges
// at once, one per peer, and a failed exchange is retried after
// bdayFirstRetry, then a doubled backoff.
func TestBirthdayDue(t *testing.T) {
	now := time.Unix(1000, 0)
	b := &birthday{now: func() time.Time { return now }, peers: map[peer.ID]*bdayPeer{}}
	var ps []peer.ID
	for i := 0; i < 5; i++ {
		ps = append(ps, peer.ID(fmt.Sprintf("peer-%d", i)))
	}
	got := b.dueAmong(ps)
	if len(got) != bdayInitiators {
		t.Fatalf("first pick: %d peers, want %d", len(got), bdayInitiators)
	}
	if again := b.dueAmong(ps); len(again) != 0 {
		t.Fatalf("all slots busy, yet picked %v", again)
	}
	b.finish(got[0], reasonNoHit, natEIM, true)
	next := b.dueAmong(ps)
	if len(next) != 1 || next[0] == got[0] || next[0] == got[1] || next[0] == got[2] {
		t.Fatalf("after one finished: picked %v, want one peer not yet tried", next)
	}
	// got[0] failed: not before bdayFirstRetry.
	for _, p := range next {
		b.finish(p, reasonDirect, natEIM, true)
	}
	now = now.Add(bdayFirstRetry - time.Millisecond)
	for _, p := range b.dueAmong(ps) {
		if p == got[0] {
			t.Fatalf("%s picked again before bdayFirstRetry", p)
		}
		b.finish(p, reasonDirect, natEIM, true)
	}
	now = now.Add(time.Millisecond)
	if !slices.Contains(b.dueAmong(ps), got[0]) {
		t.Fatalf("%s not picked again after bdayFirstRetry", got[0])
	}
	b.finish(got[0], reasonNoHit, natEIM, true)
	now = now.Add(bdayFirstRetry)
	if slices.Contains(b.dueAmong(ps), got[0]) {
		t.Fatalf("%s picked again after bdayFirstRetry; the backoff should have doubled", got[0])
	}
	// A peer no longer relayed is forgotten.
	b.dueAmong(ps[:1])
	b.mu.Lock()
	n := len(b.peers)
	b.mu.Unlock()
	if n > bdayInitiators+1 {
		t.Fatalf("%d peers kept after 4 went direct", n)
	}
}
