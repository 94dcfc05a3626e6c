package dht

import (
	"net"
	"net/netip"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/x/rate"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// libp2p's resource manager rate-limits every new connection per remote
// IP (0.2 a second after a burst of 16), outbound ones included: a node
// that roamed a few times within a minute could no longer dial its own
// DHT neighbours and relays ("rate limit exceeded" on every address,
// bench-roam at 80 ms RTT), and stayed unreachable for 30 s. A node's own
// dials need no protection from itself, so kadlan turns that limiter off
// and limits only connections that arrive, in a connection gater, per
// source IP (/32 for IPv4, /56 and /48 for IPv6). The burst is larger than
// libp2p's because a household or a CGNAT exit shares one IPv4 address.
var (
	inboundIPv4Limits = []rate.SubnetLimit{{PrefixLength: 32, Limit: rate.Limit{RPS: 1, Burst: 32}}}
	inboundIPv6Limits = []rate.SubnetLimit{
		{PrefixLength: 56, Limit: rate.Limit{RPS: 1, Burst: 32}},
		{PrefixLength: 48, Limit: rate.Limit{RPS: 2, Burst: 128}},
	}
)

// inboundGater rate-limits accepted connections per source subnet; dials
// are never limited. Loopback and the subnets of this machine's own
// interfaces are exempt: an office of hundreds of kadlan nodes on one IPv6
// /64 all count as one /56 (the 60-host lab did), and a LAN's neighbours
// are not the flood this guards against.
type inboundGater struct {
	lim    *rate.Limiter
	reach  *reachGuard // told of dials and accepts (reach.go); may be nil
	gates  *relayGates // circuits waiting for their relay (relaydial.go); may be nil
	onLink func(net.IP) bool
}

func newInboundGater(reach *reachGuard, gates *relayGates) *inboundGater {
	return &inboundGater{reach: reach, gates: gates, onLink: onLinkNow, lim: &rate.Limiter{
		NetworkPrefixLimits: []rate.PrefixLimit{
			{Prefix: netip.MustParsePrefix("127.0.0.0/8")},
			{Prefix: netip.MustParsePrefix("::1/128")},
		},
		SubnetRateLimiter: rate.SubnetLimiter{
			IPv4SubnetLimits: inboundIPv4Limits,
			IPv6SubnetLimits: inboundIPv6Limits,
			GracePeriod:      time.Minute,
		},
	}}
}

func (g *inboundGater) InterceptAccept(cm network.ConnMultiaddrs) bool {
	if g.reach != nil {
		g.reach.accepted(cm.RemoteMultiaddr())
	}
	ip, err := manet.ToIP(cm.RemoteMultiaddr())
	if err != nil {
		return true // not IP (a relayed connection is limited by its relay)
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok || g.onLink(ip) {
		return true
	}
	return g.lim.Allow(a.Unmap())
}

func (g *inboundGater) InterceptPeerDial(p peer.ID) bool { return !g.gates.isDead(p) }
func (g *inboundGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	if !g.gates.allow(p, a) {
		return false
	}
	if g.reach != nil {
		if ip, ok := publicIP(a); ok {
			g.reach.sentTo(ip)
		}
	}
	return true
}
func (g *inboundGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}
func (g *inboundGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
