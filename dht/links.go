package dht

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	msmux "github.com/multiformats/go-multistream"
)

// Member links (overlay's) are long-lived streams that carry a network's
// frames between two members. The node owns how they travel: it finds and
// connects the member (DHT, relays, hole punching), prefers a direct TCP
// connection for the stream, and moves a direct QUIC connection to TCP
// where the peer listens on TCP.

// linkDialTimeout bounds DialLink's connection set-up.
const linkDialTimeout = 20 * time.Second

// DialLink connects to p, opens a stream for proto on the best connection
// and writes first (a hello) on it before returning the stream. When the
// connection is direct QUIC to a peer that also listens on TCP, the node
// first moves it to TCP (see upgradeTCP), so that the link starts on the
// transport it keeps: moving it later closed the QUIC connection under
// the fresh link, and the first frames on it were lost (issue 13). That
// costs a first link the TCP probe and handshake; if the move fails the
// link runs over QUIC.
func (n *Node) DialLink(ctx context.Context, p peer.ID, proto protocol.ID, first []byte) (network.Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, linkDialTimeout)
	defer cancel()
	before := map[string]bool{} // connections this dial did not open
	for _, c := range n.Host.Network().ConnsToPeer(p) {
		before[c.ID()] = true
	}
	if err := n.Connect(ctx, p); err != nil {
		return nil, err
	}
	if tcpConn(n.Host.Network().ConnsToPeer(p)) == nil {
		n.awaitPeersLink(ctx, p, proto, before)
	}
	if conns := n.Host.Network().ConnsToPeer(p); tcpConn(conns) == nil && !carriesStream(conns, proto) {
		for _, c := range conns {
			if isQUIC(c.RemoteMultiaddr()) && !c.Stat().Limited {
				n.upgradeTCP(ctx, p, c)
				break
			}
		}
	}
	s, err := n.linkStream(ctx, p, proto)
	if err != nil {
		return nil, fmt.Errorf("link stream to %s: %w", p, err)
	}
	if len(first) > 0 {
		s.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err = s.Write(first)
		s.SetWriteDeadline(time.Time{})
		if err != nil {
			s.Reset()
			return nil, fmt.Errorf("link to %s: %w", p, err)
		}
	}
	if s.Conn().Stat().Limited {
		n.relayedLink(p, s)
	}
	return s, nil
}

// carriesStream reports whether one of conns that a move to TCP would
// close (direct QUIC) carries a stream of proto:
// a link the peer opened over QUIC a moment ago (both ends dialling at
// once). Moving to TCP would close that connection and the link with
// what is in flight on it (found by bench-scale's e2e first pings: the
// echo arrived, the reply was lost), so DialLink then stays on QUIC.
func carriesStream(conns []network.Conn, proto protocol.ID) bool {
	for _, c := range conns {
		if c.Stat().Limited || !isQUIC(c.RemoteMultiaddr()) {
			continue // the move leaves it open
		}
		for _, s := range c.GetStreams() {
			if s.Protocol() == proto {
				return true
			}
		}
	}
	return false
}

// linkRaceWindow is how long after the peer opened a direct QUIC
// connection DialLink waits for the peer's link on it before moving the
// connection to TCP (a variable for tests on a loaded machine).
var linkRaceWindow = time.Second

// awaitPeersLink waits, while a direct QUIC connection to p that this
// dial did not open (the peer dialled it, or a hole punch made it before
// the dial began: not in before, by ID) is younger than linkRaceWindow,
// for a link stream of proto from the peer on it. Both ends dialling at
// once, the peer's connection is up a moment before its link stream:
// moving the connection to TCP then closed it under the peer's link,
// hello and first frames included (bench-scale's e2e first pings, 3 of
// 120 lost at 60 nodes, NATed targets among them). It returns at once
// when there is no such connection.
func (n *Node) awaitPeersLink(ctx context.Context, p peer.ID, proto protocol.ID, before map[string]bool) {
	for {
		young := false
		for _, c := range n.Host.Network().ConnsToPeer(p) {
			st := c.Stat()
			if !st.Limited && isQUIC(c.RemoteMultiaddr()) && (st.Direction == network.DirInbound || before[c.ID()]) && time.Since(st.Opened) < linkRaceWindow {
				young = true
			}
		}
		if !young || carriesStream(n.Host.Network().ConnsToPeer(p), proto) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// peerOpening reports whether the peer opened a stream on one of the
// direct QUIC connections among conns within linkRaceWindow: a link (its
// hello, its first frames) or anything else in flight that closing the
// connection would lose, whichever way the connection was dialled (a
// hole punch's, say, which awaitPeersLink does not wait on).
func peerOpening(conns []network.Conn) bool {
	for _, c := range conns {
		if c.Stat().Limited || !isQUIC(c.RemoteMultiaddr()) {
			continue
		}
		for _, s := range c.GetStreams() {
			if st := s.Stat(); st.Direction == network.DirInbound && time.Since(st.Opened) < linkRaceWindow {
				return true
			}
		}
	}
	return false
}

// tcpUpgradeEvery is how long upgradeTCP leaves a peer alone after a
// failed attempt.
const tcpUpgradeEvery = 5 * time.Minute

// upgradeTCP moves the connection to p from QUIC to TCP when p listens on
// TCP at the IP address the QUIC connection reached (a public node), so
// that the member link runs over the faster transport (see linkStream).
// libp2p's dialer never opens a second direct connection to a peer, and
// ranks QUIC first, so: a probe dial over TCP outside the swarm proves
// that TCP gets through; then the QUIC connections are closed and the
// peer is dialled with its QUIC addresses hidden. DialLink does this
// before it opens the link's stream; if anything fails the node simply
// stays on QUIC. Connections that carry
// relaying (carriesRelay) are left alone.
func (n *Node) upgradeTCP(ctx context.Context, p peer.ID, qc network.Conn) {
	if t, ok := n.tcpTried.Load(p); ok && time.Since(t.(time.Time)) < tcpUpgradeEvery {
		return // failed lately
	}
	h := n.Host
	ip, err := manet.ToIP(qc.RemoteMultiaddr())
	if err != nil || carriesRelay(h, p) {
		return
	}
	var tcps, quics []ma.Multiaddr
	for _, a := range h.Peerstore().Addrs(p) {
		if isQUIC(a) {
			quics = append(quics, a)
		} else if aip, err := manet.ToIP(a); err == nil && aip.Equal(ip) && isPlainTCP(a) {
			tcps = append(tcps, a)
		}
	}
	sw, ok := h.Network().(interface {
		TransportForDialing(ma.Multiaddr) transport.Transport
	})
	if len(tcps) == 0 || !ok {
		return
	}
	tpt := sw.TransportForDialing(tcps[0])
	if tpt == nil {
		return
	}
	// A public node answers the probe (TCP, Noise, yamux) in a few RTTs;
	// a peer behind NAT never does (its NAT drops the SYN): the link's
	// first frames must not wait out a long timeout for it.
	pctx, pcancel := context.WithTimeout(ctx, probeWait(h.Peerstore().LatencyEWMA(p)))
	probe, err := tpt.Dial(pctx, tcps[0], p)
	pcancel()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err != nil {
		n.tcpTried.Store(p, time.Now())
		return
	}
	probe.Close()
	if tcpConn(h.Network().ConnsToPeer(p)) != nil {
		return // p dialled us over TCP meanwhile
	}
	if peerOpening(h.Network().ConnsToPeer(p)) {
		return // the move would cut what the peer is sending: stay on QUIC
	}
	ps := h.Peerstore()
	ps.SetAddrs(p, quics, 0)
	for _, c := range h.Network().ConnsToPeer(p) {
		if isQUIC(c.RemoteMultiaddr()) && !c.Stat().Limited {
			c.Close()
		}
	}
	_, err = h.Network().DialPeer(network.WithForceDirectDial(ctx, "kadlan-link-tcp"), p)
	ps.AddAddrs(p, quics, peerstore.RecentlyConnectedAddrTTL)
	if err != nil {
		n.tcpTried.Store(p, time.Now())
		n.logf("dht: moving %s from QUIC to TCP: %v", p, err)
		return
	}
	n.logf("dht: %s moved from QUIC to TCP for member links", p)
}

// carriesRelay reports whether closing the connections to p would cut
// relaying: p relays for this node (a reservation lives as long as its
// connection), this node relays for p, or a circuit runs over them.
func carriesRelay(h host.Host, p peer.ID) bool {
	viaP := "/p2p/" + p.String() + "/p2p-circuit"
	for _, a := range h.Addrs() {
		if strings.Contains(a.String(), viaP) {
			return true
		}
	}
	viaSelf := "/p2p/" + h.ID().String() + "/p2p-circuit"
	for _, a := range h.Peerstore().Addrs(p) {
		if strings.Contains(a.String(), viaSelf) {
			return true
		}
	}
	for _, c := range h.Network().ConnsToPeer(p) {
		for _, st := range c.GetStreams() {
			if strings.HasPrefix(string(st.Protocol()), "/libp2p/circuit/") {
				return true
			}
		}
	}
	return false
}

func isQUIC(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_QUIC_V1)
	return err == nil && !isCircuit(a)
}

// isPlainTCP: TCP, not WebSocket, not relayed.
func isPlainTCP(a ma.Multiaddr) bool {
	if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
		return false
	}
	_, err := a.ValueForProtocol(ma.P_WS)
	return err != nil && !isCircuit(a)
}

// linkStream opens the member link stream to p. A direct TCP connection
// (Noise + yamux) is preferred: it carried about twice what QUIC did TAP to
// TAP (make bench-dataplane, README "Performance"), since the kernel
// segments and checksums TCP and quic-go does all of it per 1.2 KB packet
// in user space. Otherwise libp2p picks (QUIC, or a relayed connection).
func (n *Node) linkStream(ctx context.Context, p peer.ID, proto protocol.ID) (network.Stream, error) {
	h := n.Host
	if c := tcpConn(h.Network().ConnsToPeer(p)); c != nil {
		s, err := c.NewStream(ctx)
		if err == nil {
			if err = msmux.SelectProtoOrFail(proto, s); err == nil {
				if err = s.SetProtocol(proto); err == nil {
					return s, nil
				}
			}
			s.Reset()
		}
	}
	return h.NewStream(network.WithAllowLimitedConn(ctx, "kadlan-link"), p, proto)
}

// tcpConn returns a direct plain-TCP connection among cs, or nil.
func tcpConn(cs []network.Conn) network.Conn {
	for _, c := range cs {
		if !c.IsClosed() && !c.Stat().Limited && isPlainTCP(c.RemoteMultiaddr()) {
			return c
		}
	}
	return nil
}

// Links is the member-link transport of one protocol: it implements
// overlay.Transport (the engine dials members through it).
type Links struct {
	n     *Node
	proto protocol.ID
}

// Links returns the member-link transport for proto.
func (n *Node) Links(proto protocol.ID) Links { return Links{n, proto} }

// DialLink implements overlay.Transport (see Node.DialLink).
func (l Links) DialLink(ctx context.Context, p peer.ID, hello []byte) (io.ReadWriteCloser, error) {
	return l.n.DialLink(ctx, p, l.proto, hello)
}
