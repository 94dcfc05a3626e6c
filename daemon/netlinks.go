package daemon

import (
	"context"
	"strings"
	"time"

	"github.com/kadlan/kadlan/overlay"
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

// dial opens a member link to p: a stream, our Hello, then the engine.
func (j *joined) dial(ctx context.Context, p peer.ID) {
	j.mu.Lock()
	if j.dialing[p] || j.eng == nil {
		j.mu.Unlock()
		return
	}
	j.dialing[p] = true
	ann := j.ann
	hello, err := j.m.Hello(ann)
	eng := j.eng
	j.mu.Unlock()
	defer func() {
		j.mu.Lock()
		delete(j.dialing, p)
		j.mu.Unlock()
	}()
	if err != nil {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := j.mgr.node.Connect(dctx, p); err != nil {
		return
	}
	s, err := j.linkStream(dctx, p)
	if err != nil {
		return
	}
	b, err := overlay.AppendHello(nil, hello)
	if err == nil {
		s.SetWriteDeadline(time.Now().Add(helloTimeout))
		_, err = s.Write(b)
		s.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		s.Reset()
		return
	}
	if err := eng.AddLink(p, s, true); err != nil {
		s.Reset()
		return
	}
	j.protect(p)
	j.mgr.logf("networks: %s: link to %s over %s", j.m.ID.Short(), p, s.Conn().RemoteMultiaddr())
	if c := s.Conn(); isQUIC(c.RemoteMultiaddr()) && !c.Stat().Limited {
		j.spawn(func(ctx context.Context) { j.mgr.upgradeTCP(ctx, p, c) })
	}
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
// peer is dialled with its QUIC addresses hidden. The link drops with the
// QUIC connection and is reopened over TCP at once (Engine.NeedLink); if
// anything fails the node simply stays on QUIC. Connections that carry
// relaying (carriesRelay) are left alone.
func (nm *netManager) upgradeTCP(ctx context.Context, p peer.ID, qc network.Conn) {
	if t, ok := nm.tcpTried.Load(p); ok && time.Since(t.(time.Time)) < tcpUpgradeEvery {
		return // failed lately
	}
	h := nm.node.Host
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
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	probe, err := tpt.Dial(ctx, tcps[0], p)
	if err != nil {
		nm.tcpTried.Store(p, time.Now())
		return
	}
	probe.Close()
	if tcpConn(h.Network().ConnsToPeer(p)) != nil {
		return // p dialled us over TCP meanwhile
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
		nm.tcpTried.Store(p, time.Now())
		nm.logf("networks: moving %s from QUIC to TCP: %v", p, err)
		return
	}
	nm.logf("networks: %s moved from QUIC to TCP for member links", p)
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

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
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
func (j *joined) linkStream(ctx context.Context, p peer.ID) (network.Stream, error) {
	h := j.mgr.node.Host
	if c := tcpConn(h.Network().ConnsToPeer(p)); c != nil {
		s, err := c.NewStream(ctx)
		if err == nil {
			if err = msmux.SelectProtoOrFail(protocol.ID(overlay.ProtocolID), s); err == nil {
				if err = s.SetProtocol(protocol.ID(overlay.ProtocolID)); err == nil {
					return s, nil
				}
			}
			s.Reset()
		}
	}
	return h.NewStream(network.WithAllowLimitedConn(ctx, "kadlan-link"), p, protocol.ID(overlay.ProtocolID))
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

// handleStream accepts a member link: it reads the Hello, checks that the
// sender is authorized on that network, and hands the stream to the engine.
// Anything else is reset: a peer cannot make this node accept frames for a
// network it has not joined or the peer is not authorized on.
func (nm *netManager) handleStream(s network.Stream) {
	if !nm.g.Enter() {
		s.Reset() // shutting down
		return
	}
	defer nm.g.Leave()
	p := s.Conn().RemotePeer()
	s.SetReadDeadline(time.Now().Add(helloTimeout))
	h, err := overlay.ReadHello(s)
	s.SetReadDeadline(time.Time{})
	if err != nil {
		s.Reset()
		return
	}
	nm.mu.Lock()
	j := nm.nets[h.Network]
	nm.mu.Unlock()
	if j == nil {
		s.Reset()
		return
	}
	j.mu.Lock()
	err = j.m.AcceptHello(p, h, time.Now())
	eng := j.eng
	if err == nil {
		j.dirty = true
	}
	j.mu.Unlock()
	if err != nil || eng == nil {
		if err != nil {
			nm.logf("networks: %s: link from %s refused: %v", h.Network.Short(), p, err)
		}
		s.Reset()
		return
	}
	j.syncSwitch()
	if err := eng.AddLink(p, s, false); err != nil {
		s.Reset()
		return
	}
	j.protect(p)
	nm.logf("networks: %s: link from %s over %s", h.Network.Short(), p, s.Conn().RemoteMultiaddr())
}

// linkTag names the network in the connection manager's protections.
func (j *joined) linkTag() string { return "kadlan-link-" + j.m.ID.Short() }

// protect keeps the connection manager from trimming the connections of
// member p's link (idle strangers go first; see dht.ConnLimits).
func (j *joined) protect(p peer.ID) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.protected[p] {
		j.protected[p] = true
		j.mgr.node.ProtectLink(p, j.linkTag())
	}
}

// unprotect drops the protection of p's connections; j.mu is held.
func (j *joined) unprotect(p peer.ID) {
	if j.protected[p] {
		delete(j.protected, p)
		j.mgr.node.UnprotectLink(p, j.linkTag())
	}
}
