package dht

import (
	"net"
	"sort"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Dial ranking: on a LAN, TCP first.
//
// libp2p's default ranker dials QUIC first everywhere and TCP 30 ms (LAN)
// or 250 ms (Internet) later, so a connection between two nodes that can
// use both ends up on QUIC. Member links run at about twice the speed on
// TCP (the kernel segments and checksums it; quic-go does per-packet work
// in user space), so a QUIC connection was later closed and redialled over
// TCP (upgradeTCP, now before the link opens; it used to take the link
// down once on the way): most of the
// time from start to first ping on a LAN. On addresses that are not
// public (private, CGNAT, loopback, benchmarking ranges) a TCP handshake
// costs a fraction of a millisecond more than QUIC's, so kadlanRanker dials
// TCP there first and QUIC only lanQUICDelay later (libp2p's swarm holds
// further dials while a connected TCP socket upgrades): the connection a
// link needs is the first one made, and nothing moves. Public addresses
// keep libp2p's ranking, with relayFirstRanker's rule for circuits (QUIC's one round trip is worth more than TCP's
// speed for a first contact across the Internet; upgradeTCP follows).
func kadlanRanker(addrs []ma.Multiaddr) []network.AddrDelay {
	return rankAddrs(addrs, onLinkNow)
}

// onLinkDelay is how long public and relayed addresses wait when the peer
// has an address on one of this node's own subnets: the LAN path wins
// over a path through the router's public address (hairpinning) or a
// relay, and where the LAN address does not answer the wait is short.
const onLinkDelay = 150 * time.Millisecond

// rankAddrs is kadlanRanker with onLink saying whether an IP is on one of
// this node's subnets.
func rankAddrs(addrs []ma.Multiaddr, onLink func(net.IP) bool) []network.AddrDelay {
	var lan, rest []ma.Multiaddr
	for _, a := range addrs {
		if !isCircuit(a) && isIPAddr(a) && !manet.IsPublicAddr(a) {
			lan = append(lan, a)
		} else {
			rest = append(rest, a)
		}
	}
	out := relayFirstRanker(rest)
	local := false
	for _, a := range lan {
		if ip, err := manet.ToIP(a); err == nil && onLink(ip) {
			local = true
		}
	}
	if local {
		for i := range out {
			out[i].Delay += onLinkDelay
		}
	}
	var tcps, quics, others []ma.Multiaddr
	for _, a := range lan {
		switch {
		case isPlainTCP(a):
			tcps = append(tcps, a)
		case isQUIC(a):
			quics = append(quics, a)
		default:
			others = append(others, a)
		}
	}
	if len(tcps) == 0 {
		return sortByDelay(append(out, swarm.DefaultDialRanker(lan)...))
	}
	sortByPort(tcps)
	sortByPort(quics)
	var d time.Duration
	for i, a := range tcps {
		if i > 0 {
			d += swarm.PrivateTCPDelay
		}
		out = append(out, network.AddrDelay{Addr: a, Delay: d})
	}
	d += lanQUICDelay
	for i, a := range quics {
		if i > 0 {
			d += swarm.PrivateQUICDelay
		}
		out = append(out, network.AddrDelay{Addr: a, Delay: d})
	}
	for _, a := range others {
		out = append(out, network.AddrDelay{Addr: a, Delay: d + swarm.PrivateOtherDelay})
	}
	return sortByDelay(out)
}

func sortByDelay(ds []network.AddrDelay) []network.AddrDelay {
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Delay < ds[j].Delay })
	return ds
}

// lanQUICDelay is how long QUIC waits behind TCP on a LAN: long enough for
// a TCP handshake on any LAN, short enough not to matter where TCP is
// blocked.
const lanQUICDelay = 100 * time.Millisecond

func isIPAddr(a ma.Multiaddr) bool {
	_, err := manet.ToIP(a)
	return err == nil
}

// sortByPort puts lower ports first (more likely the listen port), IPv6
// before IPv4 on a tie, as libp2p's ranker does.
func sortByPort(as []ma.Multiaddr) {
	port := func(a ma.Multiaddr) string {
		for _, c := range []int{ma.P_TCP, ma.P_UDP} {
			if v, err := a.ValueForProtocol(c); err == nil {
				return v
			}
		}
		return ""
	}
	sort.SliceStable(as, func(i, j int) bool {
		pi, pj := port(as[i]), port(as[j])
		if len(pi) != len(pj) {
			return len(pi) < len(pj)
		}
		if pi != pj {
			return pi < pj
		}
		_, e6i := as[i].ValueForProtocol(ma.P_IP6)
		_, e6j := as[j].ValueForProtocol(ma.P_IP6)
		return e6i == nil && e6j != nil
	})
}

// onLinkNow reports whether ip is on a subnet of one of this machine's
// interfaces (cached for a few seconds; the dialler asks on every dial).
func onLinkNow(ip net.IP) bool {
	nets := subnets.Load()
	if nets == nil || time.Since(nets.at) > subnetsTTL {
		nets = &subnetSet{at: time.Now()}
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
					nets.nets = append(nets.nets, n)
				}
			}
		}
		subnets.Store(nets)
	}
	for _, n := range nets.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}

type subnetSet struct {
	at   time.Time
	nets []*net.IPNet
}

const subnetsTTL = 5 * time.Second

var subnets atomic.Pointer[subnetSet]
