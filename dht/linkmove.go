package dht

import (
	"context"
	"sync"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A member link opened while its peer is reachable only through a relay
// runs on the relayed connection, and a stream never changes connection:
// once hole punching gave the pair a direct path, the link went on through
// the relay (through its bandwidth, at its latency) until the relay's
// circuit limit cut it, up to an hour later. So DialLink registers links
// it opened on a relayed connection, and when the peer becomes directly
// connected (libp2p's connectedness goes from limited to connected) the
// node resets them: the engine dials the link again at once (NeedLink),
// and the new stream takes the direct connection. Only the dialling side
// moves its links; the other side sees its end reset.
type relayedLinks struct {
	mu sync.Mutex
	m  map[peer.ID][]network.Stream
	n  int
}

// Bounds of the links waiting for a direct path.
const (
	relayedLinksPerPeer = 8
	relayedLinksMax     = 4096
)

// add registers s, a link stream on a relayed connection to p.
func (r *relayedLinks) add(p peer.ID, s network.Stream) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[peer.ID][]network.Stream{}
	}
	if len(r.m[p]) >= relayedLinksPerPeer || r.n >= relayedLinksMax {
		return
	}
	r.m[p] = append(r.m[p], s)
	r.n++
}

// take removes and returns p's registered links.
func (r *relayedLinks) take(p peer.ID) []network.Stream {
	r.mu.Lock()
	defer r.mu.Unlock()
	ss := r.m[p]
	delete(r.m, p)
	r.n -= len(ss)
	return ss
}

// watchRelayedLinks moves links off relayed connections when their peer
// becomes directly connected, and forgets the links of peers that went
// away.
func (n *Node) watchRelayedLinks(ctx context.Context) error {
	return n.onEvent(ctx, new(event.EvtPeerConnectednessChanged), func(e any) {
		ev := e.(event.EvtPeerConnectednessChanged)
		switch ev.Connectedness {
		case network.Connected:
			n.moveLinksOffRelay(ev.Peer)
		case network.NotConnected:
			n.relayed.take(ev.Peer)
		}
	})
}

// relayedLink is called by DialLink for a link stream s it opened to p on
// a relayed connection.
func (n *Node) relayedLink(p peer.ID, s network.Stream) {
	n.relayed.add(p, s)
	if n.Host.Network().Connectedness(p) == network.Connected {
		n.moveLinksOffRelay(p) // the direct path came first
	}
}

// SetRedial sets how the node moves a member link off a relay: redial(p)
// asks the link's owner (the daemon's engines) to dial p again, the new
// link replacing the relayed one with what waits in its queue and what is
// in flight on it, and reports whether it did. Without it, or when it
// did not, the relayed link is reset and its owner dials again with an
// empty queue (what was in flight on it is lost: bench-scale's e2e first
// pings lost their reply this way).
func (n *Node) SetRedial(redial func(p peer.ID) bool) { n.redial.Store(&redial) }

// moveLinksOffRelay moves p's links that still run on relayed
// connections, now that a direct one exists: by a redial that replaces
// them (SetRedial), else by resetting them.
func (n *Node) moveLinksOffRelay(p peer.ID) {
	var live []network.Stream
	for _, s := range n.relayed.take(p) {
		if !s.Conn().IsClosed() && s.Conn().Stat().Limited {
			live = append(live, s)
		}
	}
	if len(live) == 0 {
		return
	}
	if r := n.redial.Load(); r != nil && (*r)(p) {
		n.logf("dht: %s is directly connected: dialling its member link again to move it off the relay", p)
		return
	}
	n.logf("dht: %s is directly connected: moving its member link off the relay", p)
	for _, s := range live {
		s.Reset()
	}
}
