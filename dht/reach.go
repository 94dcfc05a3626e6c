package dht

import (
	"context"
	"net/netip"
	"sync"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Public only once a stranger got in. AutoNAT's dial-back comes from the
// server the node asked, an address it has sent packets to, which an
// address-restricted NAT (endpoint-independent mapping, address-dependent
// filtering) lets in: such a node was judged public, dropped its relays,
// and nobody else could reach it (bench-connect at 0 ms RTT: 10 of 10
// address-restricted pairs failed; libp2p/specs#714 describes it). A node
// whose own interfaces have no public address is therefore public for
// kadlan only after an inbound connection arrived from a public address it
// never sent anything to (a stranger: no NAT that filters lets that in).
// Until then it stays private: it keeps its relays, and hole punching
// still makes its paths direct (address-restricted NATs punch). A node
// behind a full-cone NAT or a port forward is confirmed by the first peer
// that dials its public address directly (a DCUtR direct dial, a DHT
// neighbour).

const sentToMax = 8192 // remote IPs remembered as "sent to"

// reachGuard keeps the IPs this node sent to and whether a stranger got in.
// The IPs are kept in two generations of at most sentToMax/2 each: when the
// newer is full it becomes the older and the older is dropped, so memory is
// bounded and an IP sent to within the last sentToMax/2 distinct IPs is
// always remembered, at O(1) per dial.
type reachGuard struct {
	mu        sync.Mutex
	sent, old map[netip.Addr]struct{}
	strangers map[netip.Addr]bool // accepted from a stranger, not yet connected
	confirmed netip.Addr          // the first stranger that connected
	kick      chan struct{}
}

func newReachGuard() *reachGuard {
	return &reachGuard{sent: map[netip.Addr]struct{}{}, strangers: map[netip.Addr]bool{}, kick: make(chan struct{}, 1)}
}

func publicIP(a ma.Multiaddr) (netip.Addr, bool) {
	if a == nil || isCircuit(a) || !manet.IsPublicAddr(a) {
		return netip.Addr{}, false
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	return addr.Unmap(), ok
}

// sentTo records that this node sends to ip (a dial, a probe).
func (g *reachGuard) sentTo(ip netip.Addr) {
	if !ip.IsValid() {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.sent[ip]; !ok && len(g.sent) >= sentToMax/2 {
		g.old, g.sent = g.sent, make(map[netip.Addr]struct{}, sentToMax/2)
	}
	g.sent[ip] = struct{}{}
	delete(g.strangers, ip)
}

// hasSent says whether ip is remembered as sent to; g.mu is held.
func (g *reachGuard) hasSent(ip netip.Addr) bool {
	_, a := g.sent[ip]
	_, b := g.old[ip]
	return a || b
}

// accepted is called for every inbound connection attempt.
func (g *reachGuard) accepted(a ma.Multiaddr) {
	ip, ok := publicIP(a)
	if !ok {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.hasSent(ip) && len(g.strangers) < 64 {
		g.strangers[ip] = true
	}
}

// connected is called for every new connection: an inbound one from a
// stranger confirms the node is reachable; afterwards the node sends to it.
func (g *reachGuard) connected(c network.Conn) {
	ip, ok := publicIP(c.RemoteMultiaddr())
	if !ok {
		return
	}
	g.mu.Lock()
	first := false
	if c.Stat().Direction == network.DirInbound && g.strangers[ip] && !g.confirmed.IsValid() {
		g.confirmed, first = ip, true
	}
	g.mu.Unlock()
	g.sentTo(ip)
	if first {
		select {
		case g.kick <- struct{}{}:
		default:
		}
	}
}

func (g *reachGuard) stranger() (netip.Addr, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.confirmed, g.confirmed.IsValid()
}

// autoNATSays is AutoNAT's own verdict (Unknown without AutoNAT).
func (n *Node) autoNATSays() network.Reachability {
	if h, ok := n.Host.(interface{ GetAutoNat() autonat.AutoNAT }); ok {
		if an := h.GetAutoNat(); an != nil {
			return an.Status()
		}
	}
	return network.ReachabilityUnknown
}

// guardReachability makes the node private while AutoNAT says public and
// no stranger has got in, and public once one has. It runs until ctx ends
// (owned by n.wg); em emits the node's reachability events.
func (n *Node) guardReachability(ctx context.Context, em event.Emitter, changed <-chan struct{}) {
	warned := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-n.reach.kick:
		}
		an := n.autoNATSays()
		want := an
		stranger, ok := n.reach.stranger()
		if an == network.ReachabilityPublic && !ok {
			want = network.ReachabilityPrivate
			if !warned {
				n.logf("dht: AutoNAT says public, but no node this one never contacted has reached it yet (an address-restricted NAT lets dial-backs in): private, keeping relays, until one does")
				warned = true
			}
		}
		if an == network.ReachabilityPublic && ok && n.Reachability() != network.ReachabilityPublic {
			n.logf("dht: %s, a node this one never contacted, reached it: public", stranger)
		}
		if want != n.Reachability() && want != network.ReachabilityUnknown {
			em.Emit(event.EvtLocalReachabilityChanged{Reachability: want})
		}
	}
}
