package dht

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
)

// NodeProtocol is advertised by every kadlan node, whatever its DHT mode: a
// node behind NAT is a DHT client and does not serve /kadlan/kad/1.0.0, yet
// it is exactly the node a relay exists for. The handler answers nothing;
// the protocol only marks the peer as a kadlan node in identify.
const NodeProtocol protocol.ID = ProtocolPrefix + "/node/1.0.0"

// identifyWaitTimeout bounds how long the relay waits for identify to tell
// it a peer's protocols before deciding on its reservation or circuit.
const identifyWaitTimeout = 5 * time.Second

// relayACL makes the relay serve kadlan nodes only: a reservation is
// granted to a peer that speaks one of kadlan's protocols (the DHT under
// /kadlan, or NodeProtocol) or sits in the routing table, and a circuit is
// opened only from such a peer. libp2p itself refuses a circuit to a
// destination without a reservation, so two strangers can never use the
// relay between them. A stranger can claim kadlan's protocols; what bounds
// it then is the per-IP and per-ASN share of the reservations (RelayLimits).
type relayACL struct {
	nodeRef *atomic.Pointer[Node]

	allowedReservations atomic.Uint64
	refusedReservations atomic.Uint64
	allowedCircuits     atomic.Uint64
	refusedCircuits     atomic.Uint64
	refusedStranger     atomic.Uint64 // circuits refused: a non-member over CircuitsPerStranger
}

func (a *relayACL) AllowReserve(p peer.ID, addr ma.Multiaddr) bool {
	ok := a.isKadlanPeer(p, addr)
	if ok {
		a.allowedReservations.Add(1)
		if n := a.nodeRef.Load(); n != nil {
			n.vouch.reserved(n, p)
		}
	} else {
		// Log the first refusals and then one in 1024: a stranger
		// asking in a loop must not write a line per request.
		if c := a.refusedReservations.Add(1); c <= 4 || c%1024 == 0 {
			if n := a.nodeRef.Load(); n != nil {
				n.logf("dht: relay: refused a reservation to %s (%s): not a kadlan node (%d refused so far)", p, addr, c)
			}
		}
	}
	return ok
}

func (a *relayACL) AllowConnect(src peer.ID, srcAddr ma.Multiaddr, dest peer.ID) bool {
	ok := a.isKadlanPeer(src, srcAddr)
	if !ok {
		a.refusedCircuits.Add(1)
		return false
	}
	if n := a.nodeRef.Load(); n != nil && !n.isMember(src) {
		// The request's own hop stream is open already, so it counts.
		if open := circuitsFrom(n, src); open > n.RelayLimits().CircuitsPerStranger {
			a.refusedStranger.Add(1)
			return false
		}
	}
	a.allowedCircuits.Add(1)
	return true
}

// hopProtocol is circuit relay v2's hop protocol: a source's stream of it
// stays open for as long as its circuit runs.
const hopProtocol = proto.ProtoIDv2Hop

// circuitsFrom counts the hop streams that src has open to this relay: its
// circuits (and reservation requests in flight).
func circuitsFrom(n *Node, src peer.ID) int {
	c := 0
	for _, conn := range n.Host.Network().ConnsToPeer(src) {
		for _, s := range conn.GetStreams() {
			if s.Protocol() == hopProtocol && s.Stat().Direction == network.DirInbound {
				c++
			}
		}
	}
	return c
}

// isMember reports whether p is a member of a network this node is on.
func (n *Node) isMember(p peer.ID) bool { return n.cfg.IsMember != nil && n.cfg.IsMember(p) }

// isKadlanPeer waits (bounded) for identify on p's connection from addr and
// then reports whether p speaks a kadlan protocol or is in the routing table.
func (a *relayACL) isKadlanPeer(p peer.ID, addr ma.Multiaddr) bool {
	n := a.nodeRef.Load()
	if n == nil {
		return false
	}
	if n.inRoutingTable(p) {
		return true
	}
	if speaksKadlan(n, p) {
		return true
	}
	// The peer's request may arrive before our identify of it finished
	// (the two sides identify each other concurrently): wait for it.
	ids, ok := n.Host.(interface{ IDService() identify.IDService })
	if !ok {
		return false
	}
	timeout := time.NewTimer(identifyWaitTimeout)
	defer timeout.Stop()
	for _, c := range n.Host.Network().ConnsToPeer(p) {
		if addr != nil && !c.RemoteMultiaddr().Equal(addr) {
			continue
		}
		select {
		case <-ids.IDService().IdentifyWait(c):
		case <-timeout.C:
			return false
		}
		break
	}
	return speaksKadlan(n, p) || n.inRoutingTable(p)
}

// speaksKadlan reports whether identify told us p serves a protocol under
// kadlan's prefix.
func speaksKadlan(n *Node, p peer.ID) bool {
	protos, err := n.Host.Peerstore().GetProtocols(p)
	if err != nil {
		return false
	}
	for _, pr := range protos {
		if strings.HasPrefix(string(pr), string(ProtocolPrefix)+"/") {
			return true
		}
	}
	return false
}

// handleNodeProtocol closes the stream: NodeProtocol carries nothing.
func handleNodeProtocol(s network.Stream) { s.Reset() }

// RelayStatus is what the relay service allows and what it did: the
// effective limits and the ACL's decisions since start.
type RelayStatus struct {
	Limits              RelayLimits `json:"limits"`
	AllowedReservations uint64      `json:"allowed_reservations"` // reservation requests that passed the kadlan check (the per-IP/ASN caps may still refuse them)
	RefusedReservations uint64      `json:"refused_reservations"` // refused: not a kadlan node
	AllowedCircuits     uint64      `json:"allowed_circuits"`
	RefusedCircuits     uint64      `json:"refused_circuits"` // circuit requests from peers that are not kadlan nodes
	RefusedStranger     uint64      `json:"refused_stranger"` // circuit requests from non-members over CircuitsPerStranger
	Serving             int         `json:"serving"`          // peers this relay names by circuit addresses through itself (vouch.go)
}

// RelayLimits are the effective limits of this node's relay service
// (configured values with defaults filled in).
func (n *Node) RelayLimits() RelayLimits { return n.cfg.RelayLimits.withDefaults() }

// RelayStatus reports the relay limits and the ACL's counters.
func (n *Node) RelayStatus() RelayStatus {
	return RelayStatus{
		Limits:              n.RelayLimits(),
		AllowedReservations: n.acl.allowedReservations.Load(),
		RefusedReservations: n.acl.refusedReservations.Load(),
		AllowedCircuits:     n.acl.allowedCircuits.Load(),
		RefusedCircuits:     n.acl.refusedCircuits.Load(),
		RefusedStranger:     n.acl.refusedStranger.Load(),
		Serving:             n.vouch.count(),
	}
}
