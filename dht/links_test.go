package dht

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// TestDialLinkPrefersTCP: two public nodes that listen on TCP and QUIC.
// DialLink delivers its hello first on the stream, and a member link
// starts on direct TCP even when the connection was QUIC (here: a knew
// only b's QUIC address; on the Internet libp2p ranks QUIC first): the
// node moves the connection before it opens the stream, so no link is
// closed under its first frames by the move.
func TestDialLinkPrefersTCP(t *testing.T) {
	both := func(c *Config) {
		c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	a, b := newNode(t, both), newNode(t, both)
	const proto = protocol.ID("/kadlan/test-link/1.0.0")
	got := make(chan string, 16)
	b.Host.SetStreamHandler(proto, func(s network.Stream) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(s, buf); err == nil {
			got <- string(buf)
		}
		s.Close()
	})
	// QUIC first: a knows only b's QUIC address until it connected.
	var quic, tcp []string
	for _, ad := range b.Host.Addrs() {
		if isQUIC(ad) {
			quic = append(quic, ad.String())
		} else if isPlainTCP(ad) {
			tcp = append(tcp, ad.String())
		}
	}
	if len(quic) == 0 || len(tcp) == 0 {
		t.Fatalf("b listens on %v", b.Host.Addrs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Host.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: onlyQUIC(b)}); err != nil {
		t.Fatal(err)
	}
	s, err := a.DialLink(ctx, b.ID(), proto, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	select {
	case h := <-got:
		if h != "hello" {
			t.Fatalf("first bytes %q", h)
		}
	case <-ctx.Done():
		t.Fatal("hello never arrived")
	}
	if !isPlainTCP(s.Conn().RemoteMultiaddr()) {
		t.Fatalf("the link started over %s, want TCP (connections %v)", s.Conn().RemoteMultiaddr(), a.Host.Network().ConnsToPeer(b.ID()))
	}
}

// TestDialLinkKeepsPeersQUICLink: when the peer opened a link over QUIC a
// moment ago (both ends dialling at once), DialLink does not move the
// connection to TCP, which would close it and the peer's link with it.
func TestDialLinkKeepsPeersQUICLink(t *testing.T) {
	both := func(c *Config) {
		c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	a, b := newNode(t, both), newNode(t, both)
	const proto = protocol.ID("/kadlan/test-link/1.0.0")
	inbound := make(chan network.Stream, 4) // links b opened, at a
	a.Host.SetStreamHandler(proto, func(s network.Stream) { inbound <- s })
	b.Host.SetStreamHandler(proto, func(s network.Stream) { io.Copy(io.Discard, s) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// b's link to a, over QUIC only (b knows only a's QUIC address).
	if err := b.Host.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: onlyQUIC(a)}); err != nil {
		t.Fatal(err)
	}
	bs, err := b.Host.NewStream(ctx, a.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Reset()
	if _, err := bs.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	var as network.Stream
	select {
	case as = <-inbound:
	case <-ctx.Done():
		t.Fatal("b's link never arrived")
	}
	defer as.Reset()
	// a dials its own link to b meanwhile, knowing b's TCP address (from
	// identify), so that moving to TCP is on the table.
	waitFor(t, "b's TCP address at a", func() bool {
		for _, ad := range a.Host.Peerstore().Addrs(b.ID()) {
			if isPlainTCP(ad) {
				return true
			}
		}
		return false
	})
	s, err := a.DialLink(ctx, b.ID(), proto, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	// b.s link still carries data both ways.
	buf := make([]byte, 5)
	if _, err := io.ReadFull(as, buf); err != nil || string(buf) != "first" {
		t.Fatalf("b's link after a's dial: %q, %v", buf, err)
	}
	if _, err := as.Write([]byte("reply")); err != nil {
		t.Fatalf("writing on b's link after a's dial: %v", err)
	}
	bs.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(bs, buf); err != nil || string(buf) != "reply" {
		t.Fatalf("b's link lost the reply: %q, %v (connections %v)", buf, err, a.Host.Network().ConnsToPeer(b.ID()))
	}
}

// TestDialLinkAwaitsPeersLink: the peer's QUIC connection is up and its
// link stream follows a moment later, while this node dials its own link:
// DialLink waits for the peer's link rather than moving the connection to
// TCP under it.
func TestDialLinkAwaitsPeersLink(t *testing.T) {
	// The connection's age must not end the wait on a busy machine (its
	// identify can take seconds): b's link ends it.
	defer func(w time.Duration) { linkRaceWindow = w }(linkRaceWindow)
	linkRaceWindow = 30 * time.Second
	both := func(c *Config) {
		c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	a, b := newNode(t, both), newNode(t, both)
	const proto = protocol.ID("/kadlan/test-link/1.0.0")
	inbound := make(chan network.Stream, 4) // links b opened, at a
	a.Host.SetStreamHandler(proto, func(s network.Stream) { inbound <- s })
	b.Host.SetStreamHandler(proto, func(s network.Stream) { io.Copy(io.Discard, s) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// b knows a's TCP address too, so identify tells a b's.
	if err := b.Host.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: onlyQUIC(a)}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b's TCP address at a", func() bool {
		for _, ad := range a.Host.Peerstore().Addrs(b.ID()) {
			if isPlainTCP(ad) {
				return true
			}
		}
		return false
	})
	type result struct {
		s   network.Stream
		err error
	}
	dialled := make(chan result, 1)
	go func() {
		s, err := a.DialLink(ctx, b.ID(), proto, []byte("hello"))
		dialled <- result{s, err}
	}()
	// b's link arrives a little later (its hello is on the way).
	time.Sleep(50 * time.Millisecond) // the race under test, not a wait for state
	bs, err := b.Host.NewStream(ctx, a.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Reset()
	if _, err := bs.Write([]byte("first")); err != nil {
		t.Fatal(err)
	}
	res := <-dialled
	if res.err != nil {
		t.Fatal(res.err)
	}
	defer res.s.Reset()
	// a's link joined b's on the QUIC connection instead of moving it.
	if !isQUIC(res.s.Conn().RemoteMultiaddr()) {
		t.Fatalf("a's link runs over %s: the connection b's link was coming on was moved to TCP", res.s.Conn().RemoteMultiaddr())
	}
	var as network.Stream
	select {
	case as = <-inbound:
	case <-ctx.Done():
		t.Fatal("b's link never arrived")
	}
	defer as.Reset()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(as, buf); err != nil || string(buf) != "first" {
		t.Fatalf("b's link after a's dial: %q, %v", buf, err)
	}
	if _, err := as.Write([]byte("reply")); err != nil {
		t.Fatalf("writing on b's link after a's dial: %v", err)
	}
	bs.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(bs, buf); err != nil || string(buf) != "reply" {
		t.Fatalf("b's link lost the reply: %q, %v", buf, err)
	}
}

func onlyQUIC(n *Node) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range n.Host.Addrs() {
		if isQUIC(a) {
			out = append(out, a)
		}
	}
	return out
}

// TestLANDialsTCPFirst: knowing both of a LAN peer's addresses, a node
// connects over TCP at once (kadlanRanker): a member link starts on the
// transport it keeps, with nothing to move.
func TestLANDialsTCPFirst(t *testing.T) {
	both := func(c *Config) {
		c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	a, b := newNode(t, both), newNode(t, both)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Host.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	cs := a.Host.Network().ConnsToPeer(b.ID())
	if len(cs) != 1 || !isPlainTCP(cs[0].RemoteMultiaddr()) {
		t.Fatalf("connections %v, want one over TCP", cs)
	}
}

func TestRankerOrder(t *testing.T) {
	addrs := []ma.Multiaddr{
		ma.StringCast("/ip4/192.168.1.10/udp/4242/quic-v1"),
		ma.StringCast("/ip4/192.168.1.10/tcp/4242"),
		ma.StringCast("/ip4/192.168.1.10/tcp/4242/ws"),
		ma.StringCast("/ip4/192.0.0.140/udp/4242/quic-v1"),
		ma.StringCast("/ip4/192.0.0.140/tcp/4242"),
	}
	delay := map[string]time.Duration{}
	for _, ad := range rankAddrs(addrs, func(net.IP) bool { return false }) {
		delay[ad.Addr.String()] = ad.Delay
	}
	if len(delay) != len(addrs) {
		t.Fatalf("ranked %d of %d addresses: %v", len(delay), len(addrs), delay)
	}
	lanTCP, lanQUIC := delay["/ip4/192.168.1.10/tcp/4242"], delay["/ip4/192.168.1.10/udp/4242/quic-v1"]
	if lanTCP != 0 || lanQUIC < lanQUICDelay {
		t.Errorf("LAN: TCP at %v, QUIC at %v; want TCP first, QUIC %v later", lanTCP, lanQUIC, lanQUICDelay)
	}
	pubTCP, pubQUIC := delay["/ip4/192.0.0.140/tcp/4242"], delay["/ip4/192.0.0.140/udp/4242/quic-v1"]
	if pubQUIC != 0 || pubTCP <= pubQUIC {
		t.Errorf("Internet: QUIC at %v, TCP at %v; want libp2p's order (QUIC first)", pubQUIC, pubTCP)
	}
}

// A peer with an address on one of this node's subnets is dialled there
// first: its public address (through the router, hairpinned) waits.
func TestRankerOnLinkFirst(t *testing.T) {
	addrs := []ma.Multiaddr{
		ma.StringCast("/ip4/192.168.1.11/tcp/4242"),
		ma.StringCast("/ip4/192.0.0.140/udp/4242/quic-v1"),
		ma.StringCast("/ip4/192.0.0.140/tcp/4242"),
	}
	onLink := func(ip net.IP) bool { return ip.Equal(net.ParseIP("192.168.1.11")) }
	delay := map[string]time.Duration{}
	for _, ad := range rankAddrs(addrs, onLink) {
		delay[ad.Addr.String()] = ad.Delay
	}
	if delay["/ip4/192.168.1.11/tcp/4242"] != 0 || delay["/ip4/192.0.0.140/udp/4242/quic-v1"] < onLinkDelay {
		t.Fatalf("delays %v: want the on-link address first, the public ones %v later", delay, onLinkDelay)
	}
}
