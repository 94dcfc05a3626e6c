package dht

import (
	"net/netip"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// natClass is what a node knows of its NAT's mapping.
type natClass uint8

const (
	natUnknown natClass = iota
	natEIM
	natSymmetric
)

func (c natClass) String() string {
	switch c {
	case natEIM:
		return "endpoint-independent"
	case natSymmetric:
		return "symmetric"
	}
	return "unknown"
}

// mapObs is one peer's observation of this node's connection.
type mapObs struct {
	udp       bool
	localPort int
	ext       netip.AddrPort // as the peer saw it
	seen      time.Time
}

type obsKey struct {
	p   peer.ID
	udp bool
}

// classify judges the NAT from observations of connections from the
// listen ports (quicPort, tcpPort): two observers seeing one local port
// on different external ports mean symmetric; two or more agreeing mean
// EIM. UDP decides when it can, TCP otherwise. ext is the external UDP
// address of the QUIC port when EIM (from TCP: its address, with the QUIC
// port, which an EIM NAT that keeps ports preserves).
func classify(obs []mapObs, quicPort, tcpPort int) (natClass, netip.AddrPort) {
	judge := func(udp bool, port int) (natClass, netip.AddrPort, int) {
		var first netip.AddrPort
		n := 0
		for _, o := range obs {
			if o.udp != udp || o.localPort != port || port == 0 {
				continue
			}
			if n == 0 {
				first = o.ext
			} else if o.ext != first {
				return natSymmetric, first, n + 1
			}
			n++
		}
		if n >= 2 {
			return natEIM, first, n
		}
		return natUnknown, first, n
	}
	uc, uext, un := judge(true, quicPort)
	if uc != natUnknown {
		return uc, uext
	}
	tc, text, _ := judge(false, tcpPort)
	switch tc {
	case natSymmetric:
		return natSymmetric, netip.AddrPortFrom(text.Addr(), 0)
	case natEIM:
		if un == 1 && uext.Addr() == text.Addr() {
			return natEIM, uext
		}
		return natEIM, netip.AddrPortFrom(text.Addr(), uint16(quicPort))
	}
	return natUnknown, netip.AddrPort{}
}

// observe records what a peer saw of a direct connection c.
func (b *birthday) observe(c network.Conn, observed ma.Multiaddr) {
	if c == nil || observed == nil || isCircuit(c.RemoteMultiaddr()) || !manet.IsPublicAddr(observed) {
		return
	}
	lu, lp, ok := ipPort(c.LocalMultiaddr())
	if !ok {
		return
	}
	ou, op, ok := ipPort(observed)
	if !ok || ou != lu || !op.Addr().Is4() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.obs[obsKey{c.RemotePeer(), lu}] = mapObs{udp: lu, localPort: int(lp.Port()), ext: op, seen: now}
	for k, o := range b.obs {
		if now.Sub(o.seen) > punchObservedTTL {
			delete(b.obs, k)
		}
	}
	for len(b.obs) > bdayObservations {
		var oldK obsKey
		var old time.Time
		for k, o := range b.obs {
			if old.IsZero() || o.seen.Before(old) {
				oldK, old = k, o.seen
			}
		}
		delete(b.obs, oldK)
	}
}

// ipPort returns whether a is UDP (QUIC) or TCP, and its IPv4 address
// and port.
func ipPort(a ma.Multiaddr) (udp bool, ap netip.AddrPort, ok bool) {
	if a == nil {
		return false, ap, false
	}
	ips, err := a.ValueForProtocol(ma.P_IP4)
	if err != nil {
		return false, ap, false
	}
	ip, err := netip.ParseAddr(ips)
	if err != nil {
		return false, ap, false
	}
	ports, err := a.ValueForProtocol(ma.P_UDP)
	udp = err == nil
	if !udp {
		if ports, err = a.ValueForProtocol(ma.P_TCP); err != nil {
			return false, ap, false
		}
	}
	port, err := strconv.ParseUint(ports, 10, 16)
	if err != nil {
		return false, ap, false
	}
	return udp, netip.AddrPortFrom(ip, uint16(port)), true
}

// listenPorts are the node's IPv4 QUIC and TCP listen ports (lent sockets
// excluded).
func (b *birthday) listenPorts() (quicPort, tcpPort int) {
	for _, a := range b.h.Network().ListenAddresses() {
		udp, ap, ok := ipPort(a)
		if !ok || isCircuit(a) {
			continue
		}
		if udp && isQUIC(a) && quicPort == 0 && !b.isHidden(int(ap.Port())) {
			quicPort = int(ap.Port())
		}
		if !udp && isPlainTCP(a) && tcpPort == 0 {
			tcpPort = int(ap.Port())
		}
	}
	return quicPort, tcpPort
}

// class is this node's NAT mapping, and its external address.
func (b *birthday) class() (natClass, netip.AddrPort) {
	qp, tp := b.listenPorts()
	b.mu.Lock()
	obs := make([]mapObs, 0, len(b.obs))
	now := b.now()
	for _, o := range b.obs {
		if now.Sub(o.seen) <= punchObservedTTL {
			obs = append(obs, o)
		}
	}
	b.mu.Unlock()
	return classify(obs, qp, tp)
}
