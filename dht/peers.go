package dht

import (
	"sort"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Peer is one connected peer.
type Peer struct {
	Address peer.ID
	Addrs   []ma.Multiaddr // remote addresses of its open connections
	Path    string         // direct or relayed
	Via     string         // the relay's address when relayed
	Route   Route          // of the connection a member link would take
	RTT     time.Duration  // smoothed; zero when unknown
	InDHT   bool           // in the routing table
	Punch   *PunchState    // hole punches with it while relayed; nil if none
}

// Peers lists connected peers, sorted by address.
func (n *Node) Peers() []Peer {
	rt := map[peer.ID]bool{}
	for _, p := range n.RoutingTablePeers() {
		rt[p] = true
	}
	var out []Peer
	for _, p := range n.Host.Network().Peers() {
		conns := n.Host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			continue
		}
		path, via := PathOf(conns)
		e := Peer{Address: p, Path: path, Via: via, Route: BestRoute(conns), InDHT: rt[p], RTT: n.Host.Peerstore().LatencyEWMA(p)}
		if path == "relayed" {
			st, ok := n.punch.State(p)
			if n.bday.state(p, &st) || ok {
				e.Punch = &st
			}
		}
		for _, c := range conns {
			e.Addrs = append(e.Addrs, c.RemoteMultiaddr())
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}

// PathOf says how a set of connections to one peer reaches it: "direct" if
// any connection is direct, else "relayed" with the relay's address.
func PathOf(conns []network.Conn) (path, via string) {
	if len(conns) == 0 {
		return "", ""
	}
	for _, c := range conns {
		if !isCircuit(c.RemoteMultiaddr()) {
			return "direct", ""
		}
	}
	return "relayed", relayOf(conns[0].RemoteMultiaddr())
}

// Route says how one connection reaches its peer.
type Route struct {
	Path      string // direct or relayed
	Via       string // the relay's address when relayed
	Transport string // tcp, quic, ws or webtransport (of the direct hop: to the relay when relayed)
	Scope     string // lan (a private address or an attached subnet) or internet
}

// BestRoute describes the connection to a peer that a new member link
// would take (see linkStream): direct TCP, else another direct
// connection, else a relayed one. The zero Route when there is none.
func BestRoute(conns []network.Conn) Route {
	if c := tcpConn(conns); c != nil {
		return RouteOf(c)
	}
	var best network.Conn
	for _, c := range conns {
		if best == nil || isCircuit(best.RemoteMultiaddr()) && !isCircuit(c.RemoteMultiaddr()) {
			best = c
		}
	}
	if best == nil {
		return Route{}
	}
	return RouteOf(best)
}

// RouteOf describes connection c.
func RouteOf(c network.Conn) Route {
	a := c.RemoteMultiaddr()
	r := Route{Path: "direct", Transport: transportOf(a), Scope: scopeOf(a)}
	if isCircuit(a) {
		r.Path, r.Via = "relayed", relayOf(a)
	}
	return r
}

// transportOf names the transport of a's first hop.
func transportOf(a ma.Multiaddr) string {
	for _, p := range []struct {
		code int
		name string
	}{{ma.P_WEBTRANSPORT, "webtransport"}, {ma.P_QUIC_V1, "quic"}, {ma.P_WS, "ws"}, {ma.P_WSS, "ws"}, {ma.P_TCP, "tcp"}} {
		if _, err := a.ValueForProtocol(p.code); err == nil {
			return p.name
		}
	}
	return "other"
}

// scopeOf is "lan" when a's IP is private, loopback or CGNAT (manet's
// private ranges, IPv6 ULA and link-local), else "internet".
func scopeOf(a ma.Multiaddr) string {
	if manet.IsPrivateAddr(a) || manet.IsIPLoopback(a) {
		return "lan"
	}
	return "internet"
}

// firstPath is the path of the oldest open connection: how first contact
// was made, even if hole punching has since added a direct one.
func firstPath(conns []network.Conn) (path, via string) {
	var oldest network.Conn
	for _, c := range conns {
		if oldest == nil || c.Stat().Opened.Before(oldest.Stat().Opened) {
			oldest = c
		}
	}
	if oldest == nil {
		return "", ""
	}
	return PathOf([]network.Conn{oldest})
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// relayOf returns the relay's peer ID from .../p2p/RELAY/p2p-circuit/...
func relayOf(a ma.Multiaddr) string {
	relay := ""
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_P2P:
			relay = c.Value()
		case ma.P_CIRCUIT:
			return relay
		}
	}
	return ""
}
