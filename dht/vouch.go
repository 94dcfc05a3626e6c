package dht

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// A relay names the nodes it holds reservations for. A node behind NAT is
// found because the DHT servers nearest to its key, which are its relays,
// answer FIND_PEER with the circuit addresses it advertises; they learn
// those from its identify push once the reservations exist. libp2p rate-
// limits incoming identify pushes per source /24 (IPv6 /56 and /48) to one
// every 5 s after a burst of 10, and a rejected push is never sent again.
// Behind one NAT or CGNAT address, or in one lab whose Internet is a /24,
// a handful of starting nodes exhaust that burst at every relay: a node's
// relays then held no address of it until its addresses next changed
// (AutoNAT's verdict 15 s later, or never), and it was not findable (in
// bench-connect at 0 ms, one NATed node in five per class for 30 s; with
// six nodes started behind one symmetric NAT, one of six: every push from
// it was reset with "rate limited"; TestEveryNATClass).
//
// So the relay does not wait to be told: a reservation it grants makes it
// add, to its own peerstore, the circuit addresses through itself for the
// reserving peer (the two the peer itself advertises per relay, see
// trimCircuitAddrs), with their own TTL so identify's updates of the
// peer's addresses leave them alone. A peer whose reservation the relay's
// limits refused, or whose connection is gone, loses them within
// vouchCheck. Nothing a peer sends can make the relay name it at another
// relay's addresses: the relay only vouches for paths through itself, for
// a peer that holds a reservation on it.
type vouch struct {
	mu    sync.Mutex
	peers map[peer.ID]vouched
}

type vouched struct {
	addrs []ma.Multiaddr
	since time.Time
}

const (
	// vouchTTL is the addresses' TTL in the peerstore: the reservation's
	// lifetime (relayv2's default), distinct from identify's TTLs.
	vouchTTL = time.Hour
	// vouchCheck is how often the vouched peers are checked, and how long
	// a granted reservation has to show up as the relay's connection
	// manager tag before its addresses are removed.
	vouchCheck = 2 * time.Second
	// vouchMax bounds the peers vouched for: the relay's reservation slots
	// (128 by default) with room for renewals and refusals.
	vouchMax = 1024
	// reservationTag is the connection manager tag relayv2 puts on a peer
	// holding a reservation.
	reservationTag = "relay-reservation"
)

func newVouch() *vouch { return &vouch{peers: map[peer.ID]vouched{}} }

// circuitAddrsVia lists the circuit addresses through this node for p:
// one TCP and one QUIC address, public ones when this node has any (its
// advertised addresses: loopback only where the node allows it).
func circuitAddrsVia(n *Node) []ma.Multiaddr {
	c, err := ma.NewMultiaddr("/p2p/" + n.ID().String() + "/p2p-circuit")
	if err != nil {
		return nil
	}
	var public, all []ma.Multiaddr
	for _, a := range n.Host.Addrs() {
		if isCircuit(a) {
			continue
		}
		ca := a.Encapsulate(c)
		all = append(all, ca)
		if manet.IsPublicAddr(a) {
			public = append(public, ca)
		}
	}
	if len(public) > 0 {
		all = public
	}
	return trimCircuitAddrs(all)
}

// reserved is called when the relay grants p a reservation (or renews it).
func (v *vouch) reserved(n *Node, p peer.ID) {
	addrs := circuitAddrsVia(n)
	if len(addrs) == 0 {
		return
	}
	v.mu.Lock()
	old, had := v.peers[p]
	if !had && len(v.peers) >= vouchMax {
		v.mu.Unlock()
		return
	}
	v.peers[p] = vouched{addrs: addrs, since: time.Now()}
	v.mu.Unlock()
	if had {
		forget(n, p, old.addrs, addrs)
	}
	n.Host.Peerstore().AddAddrs(p, addrs, vouchTTL)
}

// forget removes from p's peerstore entry the addresses of old that are not
// in keep.
func forget(n *Node, p peer.ID, old, keep []ma.Multiaddr) {
	for _, a := range old {
		if !ma.Contains(keep, a) {
			n.Host.Peerstore().SetAddr(p, a, 0)
		}
	}
}

// check drops the addresses of peers that hold no reservation (any more)
// or are no longer connected.
func (v *vouch) check(n *Node) {
	now := time.Now()
	type gone struct {
		p     peer.ID
		addrs []ma.Multiaddr
	}
	var drop []gone
	v.mu.Lock()
	for p, e := range v.peers {
		if now.Sub(e.since) < vouchCheck {
			continue
		}
		tagged := false
		if ti := n.Host.ConnManager().GetTagInfo(p); ti != nil {
			_, tagged = ti.Tags[reservationTag]
		}
		if !tagged || n.Host.Network().Connectedness(p) != network.Connected {
			drop = append(drop, gone{p, e.addrs})
			delete(v.peers, p)
		}
	}
	v.mu.Unlock()
	for _, g := range drop {
		forget(n, g.p, g.addrs, nil)
	}
}

// count is the number of peers vouched for.
func (v *vouch) count() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.peers)
}

// runVouch checks the vouched peers every vouchCheck until ctx ends (owned
// by n.wg).
func (n *Node) runVouch(ctx context.Context) {
	every(ctx, vouchCheck, func() { n.vouch.check(n) })
}
